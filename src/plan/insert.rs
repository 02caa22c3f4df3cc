//! `INSERT INTO sink [(cols)] SELECT …`: plans the query, lines its columns up with the sink's
//! persisted columns (by position, or by the column list) and adds the casts that cannot lose
//! data. Anything else is a planning error naming the column.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Column, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{cast, lit, Expr, LogicalPlanBuilder};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::{same_type, CompiledQuery};
use crate::error::{Error, Result};
use crate::sql::types::{flink_type_name, implicit_cast_allowed};
use crate::sql::TableSpec;

/// The sink side of an INSERT, as the catalog knows it.
pub struct SinkTarget<'a> {
    pub spec: &'a TableSpec,
}

#[derive(Debug)]
pub struct PlannedInsert {
    pub sink_table: String,
    /// Produces batches with exactly the sink's persisted column types and names.
    pub query: CompiledQuery,
    /// The sink's persisted columns.
    pub sink_schema: SchemaRef,
}

/// The table an INSERT writes to.
pub fn insert_target(insert: &ast::Insert) -> Result<String> {
    match &insert.table {
        ast::TableObject::TableName(name) if name.0.len() == 1 => {
            Ok(name.0[0].as_ident().map(|i| i.value.clone()).unwrap_or_else(|| name.to_string()))
        }
        other => Err(Error::user(format!("cannot INSERT INTO {other}: name a table created with CREATE TABLE"))),
    }
}

pub async fn plan_insert(state: &SessionState, insert: &ast::Insert, target: SinkTarget<'_>) -> Result<PlannedInsert> {
    let spec = target.spec;
    let Some(query) = &insert.source else {
        return Err(Error::user("INSERT needs a SELECT: INSERT INTO sink SELECT … FROM source"));
    };
    let plan = state.statement_to_plan(DFStatement::Statement(Box::new(ast::Statement::Query(query.clone())))).await?;
    let input = plan.schema().clone();
    let sink_columns: Vec<_> = spec.persisted_columns().collect();

    // For each query column, the sink column it fills.
    let targets: Vec<usize> = if insert.columns.is_empty() {
        if input.fields().len() != sink_columns.len() {
            let names: Vec<&str> = sink_columns.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::user(format!(
                "the query gives {} columns but sink `{}` takes {} ({}); select one value per sink column or \
                 name the columns: INSERT INTO {} (col, …) SELECT …",
                input.fields().len(),
                spec.name,
                sink_columns.len(),
                names.join(", "),
                spec.name
            )));
        }
        (0..sink_columns.len()).collect()
    } else {
        let mut targets = Vec::with_capacity(insert.columns.len());
        for name in &insert.columns {
            let name =
                name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_else(|| name.to_string());
            let Some(i) = sink_columns.iter().position(|c| c.name == name) else {
                return Err(Error::user(format!("sink `{}` has no writable column `{name}`", spec.name)));
            };
            if targets.contains(&i) {
                return Err(Error::user(format!("column `{name}` is listed twice in the INSERT")));
            }
            targets.push(i);
        }
        if targets.len() != input.fields().len() {
            return Err(Error::user(format!(
                "the INSERT lists {} columns but the query gives {}",
                targets.len(),
                input.fields().len()
            )));
        }
        targets
    };

    let mut exprs = Vec::with_capacity(sink_columns.len());
    for (sink_index, column) in sink_columns.iter().enumerate() {
        let expr = match targets.iter().position(|t| *t == sink_index) {
            Some(q) => {
                let (qualifier, field) = input.qualified_field(q);
                let e = Expr::Column(Column::new(qualifier.cloned(), field.name()));
                if same_type(field.data_type(), &column.data_type) {
                    e
                } else if implicit_cast_allowed(field.data_type(), &column.data_type) {
                    cast(e, column.data_type.clone())
                } else {
                    return Err(Error::user(format!(
                        "cannot write the query's column {} (`{}`, {}) into column `{}` of sink `{}`, which is {}; \
                         add CAST(… AS {}) to the SELECT if the conversion is intended",
                        q + 1,
                        field.name(),
                        flink_type_name(field.data_type()),
                        column.name,
                        spec.name,
                        column.type_text,
                        column.type_text
                    )));
                }
            }
            None if !column.nullable => {
                return Err(Error::user(format!(
                    "column `{}` of sink `{}` is NOT NULL but the INSERT gives it no value",
                    column.name, spec.name
                )));
            }
            None => cast(lit(ScalarValue::Null), column.data_type.clone()),
        };
        exprs.push(expr.alias(&column.name));
    }
    let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
    let plan = state.optimize(&plan)?;
    let query = CompiledQuery::compile(state, &plan)?;
    Ok(PlannedInsert { sink_table: spec.name.clone(), query, sink_schema: spec.persisted_schema() })
}

/// A keyed sink takes an updating result by its PRIMARY KEY: every update and delete of the
/// result must land on the one sink row it changes, so one of the result's unique keys (a GROUP
/// BY's key; a join's; a Top-N's partition key, and the row number when N > 1) must be among the
/// sink's key columns. Where none is, the session puts an upsert materializer before the sink
/// (Flink's `table.exec.sink.upsert-materialize` = AUTO), so this error is only shown (as a
/// warning) under NONE.
pub fn check_sink_key(sink: &TableSpec, query: &CompiledQuery) -> Result<()> {
    if !query.is_stateful() || sink.primary_key.is_empty() {
        return Ok(());
    }
    let columns: Vec<&str> = sink.persisted_columns().map(|c| c.name.as_str()).collect();
    let in_sink_key = |i: &usize| columns.get(*i).is_some_and(|c| sink.primary_key.iter().any(|k| k == c));
    let unique = query.unique_keys();
    if unique.iter().any(|key| key.iter().all(in_sink_key)) {
        return Ok(());
    }
    let key = sink.primary_key.join(", ");
    match unique.first() {
        Some(smallest) => {
            let names: Vec<&str> = smallest.iter().filter_map(|i| columns.get(*i).copied()).collect();
            Err(Error::user(format!(
                "sink `{}` has PRIMARY KEY ({key}) but the query's result is keyed by ({}), its {}: each update would \
                 land on the wrong row. Declare PRIMARY KEY ({}) NOT ENFORCED on the sink, or leave \
                 'table.exec.sink.upsert-materialize' at AUTO for an upsert materializer",
                sink.name,
                names.join(", "),
                query.key_columns(),
                names.join(", ")
            )))
        }
        None => Err(Error::user(format!(
            "sink `{}` has PRIMARY KEY ({key}) but the query's result has no key it covers: select the result's key as \
             it is (not computed over) into the sink's key columns — every GROUP BY column; for a join, the PRIMARY \
             KEYs of both sides, or the left side's alone where the join looks rows up by the right side's PRIMARY \
             KEY; for a Top-N, the PARTITION BY columns, with the row number when N > 1 (or leave \
             'table.exec.sink.upsert-materialize' at AUTO for an upsert materializer)",
            sink.name
        ))),
    }
}
