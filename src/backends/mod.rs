//! One folder per backend. Each implements [`crate::Backend`] and [`crate::Database`] and is
//! registered by URL scheme in [`crate::config::DatabaseFactory`].

#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
pub mod file;
#[cfg(feature = "hdfs")]
pub mod hdfs;
#[cfg(feature = "hdfs")]
mod hdfs_parquet;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
