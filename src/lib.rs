//! # dataknobs — one SQL engine over every store
//!
//! dataknobs is built on Apache DataFusion. Every backend registers its collections as
//! DataFusion tables whose filter, projection and limit pushdown maps onto one query model
//! ([`Record`], [`Query`], [`Database`]). Query and join across backends with SQL
//! ([`Engine::sql`]) or the DataFrame builder ([`Engine::table`]); use each collection's
//! record API ([`Engine::database`]) for CRUD.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dataknobs::Result<()> {
//! use dataknobs::{Engine, Query, SortOrder};
//! let engine = Engine::new(); // an in-memory backend, attached as `memory`, is the default
//! engine.execute("CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT, age BIGINT)").await?;
//! engine.execute("INSERT INTO people VALUES ('1', 'Ada', 36), ('2', 'Alan', 41)").await?;
//! let batches = engine.execute("SELECT name FROM people WHERE age > 40").await?;
//! assert_eq!(batches[0].num_rows(), 1);
//!
//! // The same table through the record API.
//! let people = engine.database("people").await?;
//! let found = people.search(&Query::new().try_filter("age", ">=", 30)?.sort("age", SortOrder::Desc)).await?;
//! assert_eq!(found[0].id(), Some("2"));
//! # Ok(()) }
//! ```
//!
//! Modules: [`record`] (values, records, Arrow conversion), [`query`] (the query model),
//! [`database`] (the traits), [`pushdown`] (DataFusion `Expr` → `Query`), [`table`] (the
//! DataFusion bridge), [`engine`], [`config`] (URLs and the backend registry), [`backends`].

pub mod backends;
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod database;
pub mod depth;
pub mod describe;
pub mod dml;
pub mod engine;
pub mod error;
pub mod fulltext;
pub mod kv;
pub mod local;
pub mod options;
pub mod pushdown;
pub mod query;
pub mod record;
pub mod rules;
pub mod store;
pub mod table;

pub use backends::memory::MemoryBackend;
pub use config::DatabaseFactory;
pub use database::{
    Backend, BlockingDatabase, Capabilities, CollectionSpec, Database, FilterSupport, Partition,
    StoreDefault,
};
pub use engine::Engine;
pub use error::{Error, ErrorKind, Result};
pub use query::{Filter, FilterExpr, Operand, Operator, Query, SortOrder, SortSpec};
pub use record::{Field, FieldType, Record, Value, batch_to_records, records_to_batch};

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
