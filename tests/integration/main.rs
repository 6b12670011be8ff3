//! All integration tests in one binary (each file under `tests/` would link all of DataFusion
//! again). One module per area; `conformance` and `slt` are shared by every backend.

mod cli;
mod common;
mod conformance;
mod differential;
mod dml;
mod file;
mod memory;
mod postgres;
mod postgres_more;
mod slt;
