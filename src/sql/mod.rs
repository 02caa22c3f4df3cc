//! From job-file text to statements: splitting, Flink DDL, `SET`, statement sets.

pub mod env;
pub mod parser;
pub mod split;
pub mod table;
pub mod temporal;
pub mod types;

pub use parser::{parse_script, parse_statement, LocatedStatement, Statement};
pub use table::{ColumnSpec, ComputedColumn, Declared, MetadataColumn, TableOption, TableSpec};
