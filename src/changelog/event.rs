//! What a source emits and a pipeline's operators pass along, in order: changes of a table, or a
//! truncation of one. Events name their table, so one source can carry several tables (each
//! `Changes` event in its own table's columns), and an operator can keep state per table.

use std::sync::Arc;

use datafusion::scalar::ScalarValue;

use super::ChangeBatch;

/// Names a captured table within its source (e.g. `schema.table`); `None` for the one table a
/// source was declared for, when it does not tell its tables apart.
pub type TableId = Option<Arc<str>>;

#[derive(Debug, Clone)]
pub enum Event {
    /// Changes of one table.
    Changes { table: TableId, changes: ChangeBatch },
    /// The table was emptied (`TRUNCATE`), without a delete for each of its rows.
    Truncated(Truncation),
}

#[derive(Debug, Clone)]
pub struct Truncation {
    pub table: TableId,
    /// Values for the columns (by index) that describe a change rather than a row — metadata
    /// such as `op_ts` or `row_kind` — in the deletes the truncation becomes; the other columns
    /// keep the values of the rows deleted.
    pub change_columns: Vec<(usize, ScalarValue)>,
}

impl Event {
    /// Changes of the table a source was declared for.
    pub fn changes(changes: ChangeBatch) -> Self {
        Event::Changes { table: None, changes }
    }
}
