//! Changes as text lines in Flink's print format: `+I[1, alice]`.
//!
//! Values follow Flink's `Row.toString` closely: NULL as `null`, timestamps in ISO form
//! (`2024-05-01T12:00:00.123`), bytes as a list of signed bytes. Nested ROW values print as
//! `{a: 1, b: x}` (Flink: `(1, x)`).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::ChangeBatch;
use crate::error::Result;

/// One line per row, each starting with `prefix`.
pub fn format_rows(batch: &ChangeBatch, prefix: &str) -> Result<String> {
    let options = FormatOptions::default().with_null("null").with_display_error(true);
    let rows = batch.rows();
    let formatters =
        rows.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
    let mut out = String::with_capacity(batch.num_rows() * 32);
    for i in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str(batch.kind(i).short());
        out.push('[');
        for (c, f) in formatters.iter().enumerate() {
            if c > 0 {
                out.push_str(", ");
            }
            let column = rows.column(c);
            if matches!(column.data_type(), DataType::Binary) && column.is_valid(i) {
                let bytes: Vec<String> =
                    column.as_binary::<i32>().value(i).iter().map(|b| (*b as i8).to_string()).collect();
                out.push('[');
                out.push_str(&bytes.join(", "));
                out.push(']');
            } else {
                out.push_str(&f.value(i).to_string());
            }
        }
        out.push_str("]\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::test_util::batch;
    use crate::changelog::RowKind::*;

    #[test]
    fn lines_look_like_flink() {
        let b = batch(&[(Insert, 1, Some("alice")), (UpdateBefore, 1, Some("alice")), (UpdateAfter, 1, None)]);
        assert_eq!(format_rows(&b, "").unwrap(), "+I[1, alice]\n-U[1, alice]\n+U[1, null]\n");
        assert_eq!(format_rows(&b.head(1), "out> ").unwrap(), "out> +I[1, alice]\n");
    }
}
