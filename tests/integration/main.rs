//! All integration tests in one binary (each file under `tests/` would link all of DataFusion
//! again). One module per area; `conformance`, `slt` and `differential` are shared by every
//! backend, which wires them up with `backend_suite!` (in `suite`).

mod cli;
mod common;
mod conformance;
mod correctness;
mod differential;
mod dml;
mod elasticsearch;
mod elasticsearch8;
mod elasticsearch_more;
mod elasticsearch_tls;
mod examples;
mod file;
mod hdfs_kv;
mod hdfs_sql;
mod memory;
mod opensearch;
mod postgres;
mod postgres_more;
mod postgres_writes;
mod redis_kv;
mod redis_sql;
mod repl_pty;
mod s3;
mod s3_objects;
mod s3_records;
mod s3_write;
mod slt;
mod suite;
mod tpch_pg;
