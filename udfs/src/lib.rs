//! Scalar functions that cdc-sql adds to DataFusion so Flink SQL CDC jobs run unchanged: Flink's
//! built-in functions that DataFusion lacks, names differently or evaluates differently, and a few
//! of cdc-sql's own.
//!
//! [`all()`] returns every function; the engine registers them in every session, where they
//! replace DataFusion's functions of the same name. [`syntax`] turns Flink syntax that is not a
//! plain call (IF, EXTRACT, TIMESTAMPADD(DAY, …), JSON_OBJECT(KEY … VALUE …)…) into calls of
//! these functions. Names are lower case because DataFusion lower-cases unquoted function names
//! (`JSON_VALUE(...)` finds `json_value`). Every Flink function and its status here (DataFusion's
//! own, this crate's, or not supported) is listed in docs/sql.md, which a test keeps in step with
//! [`all()`]. One module per family: `string`, `datetime` (with the Java pattern translator),
//! `misc` (hash, arithmetic, predicates), `collection`, `json` / `json_build`, `mask`.
//!
//! The functions below are described here in detail:
//!
//! | Function | Flink counterpart | Notes and limits |
//! |---|---|---|
//! | `json_value(json, path) -> STRING` | `JSON_VALUE(json, path)` (RETURNING STRING, NULL ON EMPTY, NULL ON ERROR) | Scalar at `path` as text: strings unescaped, numbers exactly as written in the document (Flink re-renders them through Java numbers, so e.g. `1e2` can come back as `100.0` there), `true`/`false`. JSON `null`, missing path, object/array target or invalid JSON → `NULL`. |
//! | `json_query(json, path) -> STRING` | `JSON_QUERY(json, path)` (WITHOUT ARRAY WRAPPER, NULL ON EMPTY, NULL ON ERROR) | Object/array at `path` as compact JSON (whitespace removed, strings and numbers kept as written). Scalar target, missing path or invalid JSON → `NULL`. |
//! | `json_exists(json, path) -> BOOLEAN` | `JSON_EXISTS(json, path)` (FALSE ON ERROR) | `true` when `path` exists, even if its value is JSON `null`; invalid JSON → `false`; `NULL` json/path → `NULL`. |
//! | `mask(s, keep_first, keep_last [, mask_char]) -> STRING` | none built in (Hive's `mask_*` family) | Masks every character except the first `keep_first` and last `keep_last` with `mask_char` (default `*`), counting Unicode characters; length is kept. If nothing would be masked (`keep_first + keep_last >= length`) the **whole** value is masked instead. Negative counts or a `mask_char` that is not exactly one character are errors. |
//! | `mask_email(s) -> STRING` | none built in | `alice@example.com` → `a****@example.com`: first character of the local part kept, the rest masked (a one-character local part is masked entirely), domain kept; no `@` → fully masked. |
//! | `now()`, `current_timestamp` | `NOW()`, `CURRENT_TIMESTAMP` (streaming mode: evaluated per record) | Replaces DataFusion's `now()`, which is folded into a literal at plan time: cdc-sql plans a job once and runs it for months. Evaluated when each batch is processed (one value per batch). Same type as DataFusion's: `Timestamp(Nanosecond, datafusion.execution.time_zone)`. |
//!
//! JSON path syntax (shared by the three JSON functions, parsed once per batch when it is a
//! literal or constant): `$`, `.key`, `."quoted key"`, `['key']`, `["key"]` (also `.['key']`, as
//! Flink's docs write it), `[N]` (N ≥ 0), with
//! an optional `lax` or `strict` prefix (both behave alike: with the default ON EMPTY / ON ERROR
//! behaviours they cannot be told apart). Wildcards, recursive descent, filters, slices, `last`
//! and negative indexes are rejected with an error naming the path — a literal path is checked
//! while the query is planned. SQL/JSON lax-mode array unwrapping is not implemented: accessors
//! never look inside arrays for keys or wrap scalars, so `$.a.b` on `{"a":[{"b":1}]}` is empty.
//!
//! JSON documents must be strict RFC 8259 (no comments, no trailing commas, no trailing
//! content). With duplicate object keys the last one wins (as Jackson's default tree parsing does).

use datafusion::arrow::array::{Array, Int64Array, LargeStringArray, StringArray, StringViewArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::{as_int64_array, as_large_string_array, as_string_array, as_string_view_array};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

mod collection;
mod datetime;
mod func;
mod json;
mod json_build;
mod mask;
mod misc;
mod regex;
mod string;
pub mod syntax;
mod zone;

/// Every UDF shipped with cdc-sql, registered automatically in every session.
///
/// `now` carries the session time zone in its return type. `SET datafusion.execution.time_zone`
/// and `SessionStateBuilder::with_scalar_functions` refresh it through
/// `ScalarUDFImpl::with_updated_config`; `SessionContext::register_udf` does not, so a session
/// whose time zone is set *before* plain `register_udf` keeps the default (no time zone).
pub fn all() -> Vec<ScalarUDF> {
    let mut udfs = vec![
        ScalarUDF::new_from_impl(json::JsonFunc::new(json::JsonKind::Value)),
        ScalarUDF::new_from_impl(json::JsonFunc::new(json::JsonKind::Query)),
        ScalarUDF::new_from_impl(json::JsonFunc::new(json::JsonKind::Exists)),
        ScalarUDF::new_from_impl(mask::MaskFunc::new()),
        ScalarUDF::new_from_impl(mask::MaskEmailFunc::new()),
    ];
    udfs.extend(datetime::functions());
    udfs.extend(string::functions());
    udfs.extend(misc::functions());
    udfs.extend(json_build::functions());
    udfs.extend(collection::functions());
    udfs
}

/// Reads a Flink time zone name (`table.local-time-zone`: `Asia/Shanghai`, `UTC`, `GMT+08:00`,
/// `+8`, `PST`…) and returns it as `datafusion.execution.time_zone` takes it (a region name or
/// `+08:00`); the error says what is accepted.
pub fn session_time_zone(name: &str) -> std::result::Result<String, String> {
    Ok(match zone::Zone::parse(name)? {
        zone::Zone::Named(tz) => tz.name().to_string(),
        zone::Zone::Fixed(offset) => {
            let secs = offset.local_minus_utc();
            let m = secs.unsigned_abs() / 60;
            format!("{}{:02}:{:02}", if secs < 0 { '-' } else { '+' }, m / 60, m % 60)
        }
    })
}

/// A string argument after coercion, so the row loops can read any string encoding without being
/// monomorphised for every combination of argument encodings.
#[derive(Clone, Copy)]
pub(crate) enum StrArg<'a> {
    Scalar(Option<&'a str>),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
}

impl<'a> StrArg<'a> {
    pub(crate) fn new(function: &str, arg: &'a ColumnarValue) -> Result<Self> {
        match arg {
            ColumnarValue::Scalar(ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v)) => {
                Ok(Self::Scalar(v.as_deref()))
            }
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(Self::Scalar(None)),
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8 => Ok(Self::Utf8(as_string_array(a)?)),
                DataType::LargeUtf8 => Ok(Self::LargeUtf8(as_large_string_array(a)?)),
                DataType::Utf8View => Ok(Self::Utf8View(as_string_view_array(a)?)),
                DataType::Null => Ok(Self::Scalar(None)),
                other => exec_err!("{function}: expected a string argument, got {other}"),
            },
            ColumnarValue::Scalar(other) => {
                exec_err!("{function}: expected a string argument, got {}", other.data_type())
            }
        }
    }

    pub(crate) fn is_scalar(&self) -> bool {
        matches!(self, Self::Scalar(_))
    }

    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Self::Scalar(v) => *v,
            Self::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            Self::LargeUtf8(a) => a.is_valid(row).then(|| a.value(row)),
            Self::Utf8View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }

    /// Bytes of string data, to size output buffers once instead of growing them per row.
    pub(crate) fn data_len(&self) -> usize {
        match self {
            Self::Scalar(v) => v.map_or(0, str::len),
            Self::Utf8(a) => a.value_data().len(),
            Self::LargeUtf8(a) => a.value_data().len(),
            Self::Utf8View(a) => a.total_buffer_bytes_used() + a.len() * 12,
        }
    }
}

/// An integer argument after coercion to `Int64`.
#[derive(Clone, Copy)]
pub(crate) enum IntArg<'a> {
    Scalar(Option<i64>),
    Array(&'a Int64Array),
}

impl<'a> IntArg<'a> {
    pub(crate) fn new(function: &str, arg: &'a ColumnarValue) -> Result<Self> {
        match arg {
            ColumnarValue::Scalar(ScalarValue::Int64(v)) => Ok(Self::Scalar(*v)),
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(Self::Scalar(None)),
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Int64 => Ok(Self::Array(as_int64_array(a)?)),
                DataType::Null => Ok(Self::Scalar(None)),
                other => exec_err!("{function}: expected an integer argument, got {other}"),
            },
            ColumnarValue::Scalar(other) => {
                exec_err!("{function}: expected an integer argument, got {}", other.data_type())
            }
        }
    }

    pub(crate) fn is_scalar(&self) -> bool {
        matches!(self, Self::Scalar(_))
    }

    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<i64> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// Turns a result computed for one row back into a scalar when every argument was a scalar, so a
/// constant call stays constant for the expressions around it.
pub(crate) fn finish(array: datafusion::arrow::array::ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, RecordBatch};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::exec_datafusion_err;
    use datafusion::prelude::SessionContext;

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        for udf in all() {
            ctx.register_udf(udf);
        }
        ctx
    }

    async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    /// Plans `sql` as cdc-sql does: Flink's function syntax rewritten first.
    async fn flink_query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
        use datafusion::sql::parser::Statement as DFStatement;
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        use datafusion::sql::sqlparser::tokenizer::Tokenizer;
        let dialect = GenericDialect {};
        let mut tokens =
            Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| exec_datafusion_err!("{e}"))?;
        syntax::rewrite_tokens(&mut tokens);
        let mut statement = Parser::new(&dialect).with_tokens_with_locations(tokens).parse_statement()?;
        syntax::rewrite_statement(&mut statement).map_err(|e| exec_datafusion_err!("{}", e.message))?;
        let plan = ctx.state().statement_to_plan(DFStatement::Statement(Box::new(statement))).await?;
        ctx.execute_logical_plan(plan).await?.collect().await
    }

    async fn single_string(ctx: &SessionContext, sql: &str) -> Result<Option<String>> {
        let batches = query(ctx, sql).await?;
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1, "{sql}");
        let col = batches[0].column(0);
        let v = ScalarValue::try_from_array(col, 0)?;
        Ok(match v {
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s,
            other => panic!("{sql}: expected a string, got {other:?}"),
        })
    }

    #[test]
    fn names_are_lower_case_and_unique() {
        let mut names = Vec::new();
        for udf in all() {
            names.push(udf.name().to_string());
            names.extend(udf.aliases().iter().cloned());
        }
        for n in &names {
            assert_eq!(n, &n.to_lowercase());
        }
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len());
    }

    #[tokio::test]
    async fn end_to_end_sql() -> Result<()> {
        let ctx = ctx();
        let cases = [
            (r#"SELECT json_value('{"a":{"b":[1,2]}}', '$.a.b[1]')"#, Some("2")),
            (r#"SELECT JSON_VALUE('{"a":"x"}', '$.a')"#, Some("x")),
            (r#"SELECT json_value('{"a":null}', '$.a')"#, None),
            (r#"SELECT json_value(NULL, '$.a')"#, None),
            (r#"SELECT json_query('{"a":{"b":[1, 2]}}', 'lax $.a')"#, Some(r#"{"b":[1,2]}"#)),
            ("SELECT mask('4111111111111111', 0, 4)", Some("************1111")),
            ("SELECT mask('secret', 1, 1, '#')", Some("s####t")),
            ("SELECT mask_email('alice@example.com')", Some("a****@example.com")),
            ("SELECT json_value(arrow_cast('{\"k\":1}', 'LargeUtf8'), arrow_cast('$.k', 'Utf8View'))", Some("1")),
            ("SELECT mask('abc', NULL, 1)", None),
            ("SELECT mask('abc', 1, 1, NULL)", None),
            ("SELECT mask(arrow_cast('abcdef', 'Dictionary(Int32, Utf8)'), arrow_cast(2, 'Int8'), 1)", Some("ab***f")),
            ("SELECT mask_email(NULL)", None),
            ("SELECT json_query(NULL, NULL)", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(single_string(&ctx, sql).await?.as_deref(), expected, "{sql}");
        }

        let batches = query(
            &ctx,
            r#"SELECT json_exists('{"a":null}', '$.a'), json_exists('{"a":1}', '$.b'), json_exists('nope', '$')"#,
        )
        .await?;
        let row: Vec<Option<bool>> = batches[0]
            .columns()
            .iter()
            .map(|c| {
                c.as_any().downcast_ref::<BooleanArray>().map(|b| b.is_valid(0).then(|| b.value(0))).unwrap_or_default()
            })
            .collect();
        assert_eq!(row, vec![Some(true), Some(false), Some(false)]);
        Ok(())
    }

    #[tokio::test]
    async fn end_to_end_over_a_table() -> Result<()> {
        let ctx = ctx();
        query(
            &ctx,
            r#"CREATE TABLE t (id INT, doc VARCHAR, email VARCHAR) AS VALUES
                (1, '{"user":{"name":"Zoë","tags":["a","b"]}}', 'zoë@example.com'),
                (2, '{"user":{"name":null}}', 'bob'),
                (3, 'not json', NULL),
                (4, NULL, '@x')"#,
        )
        .await?;
        let batches = query(
            &ctx,
            "SELECT id, json_value(doc, '$.user.name') AS name, json_query(doc, '$.user.tags') AS tags, \
             json_exists(doc, '$.user.name') AS has_name, json_value(doc, '$[''user''][\"tags\"][1]') AS tag1, \
             mask_email(email) AS email, mask(email, 1, 3) AS masked FROM t ORDER BY id",
        )
        .await?;
        let text = pretty_format_batches(&batches)?.to_string();
        let expected = "\
+----+------+-----------+----------+------+-----------------+-----------------+
| id | name | tags      | has_name | tag1 | email           | masked          |
+----+------+-----------+----------+------+-----------------+-----------------+
| 1  | Zoë  | [\"a\",\"b\"] | true     | b    | z**@example.com | z***********com |
| 2  |      |           | true     |      | ***             | ***             |
| 3  |      |           | false    |      |                 |                 |
| 4  |      |           |          |      | @x              | **              |
+----+------+-----------+----------+------+-----------------+-----------------+";
        assert_eq!(text, expected);
        Ok(())
    }

    /// Flink's `tableName.compositeType.field` is DataFusion's field access on a struct column.
    #[tokio::test]
    async fn composite_field_access() -> Result<()> {
        let ctx = ctx();
        let batches = query(&ctx, "SELECT t.r.a, t.r.b FROM (SELECT named_struct('a', 1, 'b', 'x') AS r) AS t").await?;
        let text = pretty_format_batches(&batches)?.to_string();
        assert!(text.contains("| 1 ") && text.contains("| x "), "{text}");
        Ok(())
    }

    /// The row loops read columns as well as literals: the same calls over a table.
    #[tokio::test]
    async fn flink_functions_over_columns() -> Result<()> {
        let ctx = ctx();
        query(
            &ctx,
            "CREATE TABLE c (id INT, s VARCHAR, ts TIMESTAMP) AS VALUES
                (1, 'a,b,c', TIMESTAMP '2024-03-05 07:08:09'),
                (2, NULL, NULL),
                (3, 'x', TIMESTAMP '1999-12-31 23:59:59')",
        )
        .await?;
        let batches = flink_query(
            &ctx,
            "SELECT id, SPLIT_INDEX(s, ',', 1) AS second, TO_BASE64(s) AS b64, DATE_FORMAT(ts, 'yyyyMMdd HH') AS d,              TIMESTAMPADD(DAY, id, ts) AS later, IF(id > 1, 'big', 'small') AS size,              JSON_OBJECT('id' VALUE id, 'inner' VALUE JSON_ARRAY(s)) AS j FROM c ORDER BY id",
        )
        .await?;
        let text = pretty_format_batches(&batches)?.to_string();
        let expected = "\
+----+--------+----------+-------------+---------------------+-------+----------------------------+
| id | second | b64      | d           | later               | size  | j                          |
+----+--------+----------+-------------+---------------------+-------+----------------------------+
| 1  | b      | YSxiLGM= | 20240305 07 | 2024-03-06T07:08:09 | small | {\"id\":1,\"inner\":[\"a,b,c\"]} |
| 2  |        |          |             |                     | big   | {\"id\":2,\"inner\":[]}        |
| 3  |        | eA==     | 19991231 23 | 2000-01-03T23:59:59 | big   | {\"id\":3,\"inner\":[\"x\"]}     |
+----+--------+----------+-------------+---------------------+-------+----------------------------+";
        assert_eq!(text, expected);
        Ok(())
    }

    #[tokio::test]
    async fn invalid_literal_path_fails_at_planning() {
        let ctx = ctx();
        let err = ctx
            .sql("SELECT json_value(doc, '$.a[*]') FROM (VALUES ('{}')) AS t(doc)")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("$.a[*]"), "{err}");
        assert!(err.contains("Supported"), "{err}");

        let err = ctx.sql("SELECT mask('abc', -1, 0)").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("keep_first must be >= 0"), "{err}");
    }
}
