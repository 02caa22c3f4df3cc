//! cdc-sql: runs Flink SQL change-data-capture jobs in one process on Apache DataFusion.
//!
//! Data flows in module order: [`sql`] (job-file statements) → [`plan`] (SQL to per-batch
//! branches) → [`changelog`] (the batch and row-kind contract) → [`formats`] (message bytes ↔
//! changelog rows, for connectors that carry bytes) → [`operators`] (the dataflow's
//! steps, stateful ones with checkpointed state) → [`runtime`] (jobs, checkpoints) →
//! [`connectors`] (sources and sinks). [`session`] ties them together for the [`cli`]; [`pipeline`]
//! compiles Flink CDC pipeline definitions (YAML) to the same dataflow.

pub mod changelog;
pub mod cli;
pub mod connectors;
pub mod error;
pub mod formats;
pub mod http;
pub mod operators;
pub mod pipeline;
pub mod plan;
pub mod runtime;
pub mod secrets;
pub mod session;
pub mod sql;

pub use error::{Error, ErrorKind, Result};
