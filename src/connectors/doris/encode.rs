//! JSON lines for Stream Load, written straight from Arrow arrays: one object per row keyed by
//! column name, plus `__DORIS_DELETE_SIGN__` (0 or 1) when deletes are sent. The values are
//! written by the JSON formats' writer ([`crate::formats::json::write`]) in Doris' style.
//!
//! Value shapes (what Doris' JSON reader converts into the column type):
//! integers and booleans as JSON numbers/booleans; floats as numbers, NaN and ±Infinity as the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"`; DECIMAL as an exact quoted string (`"12.30"`, so
//! no reader goes through a double); DATE `"YYYY-MM-DD"`; TIMESTAMP `"YYYY-MM-DD hh:mm:ss[.f…]"`
//! with the fraction digits of its precision (TIMESTAMP_LTZ in UTC); TIME `"hh:mm:ss[.f…]"`;
//! strings escaped per RFC 8259; ARRAY as a JSON array, ROW as an object, MAP as an object whose
//! keys are the map keys as strings. BYTES has no JSON form Doris reads back unchanged: refused.

use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::formats::json::write::{unsupported_type, write_str, MapNullKeyMode, Style, Writer};
use crate::sql::types::flink_type_name;

pub const DELETE_SIGN: &str = "__DORIS_DELETE_SIGN__";

/// Doris' value shapes: DECIMAL quoted, BYTES refused, timestamps with a space and all fraction
/// digits of their precision, no zone suffix.
fn doris_style() -> Style {
    Style { map_null_key: MapNullKeyMode::Literal, ..Style::doris() }
}

/// Encodes batches of one schema.
pub struct JsonLinesEncoder {
    /// `{"a":` for the first column, `,"b":` for the others.
    keys: Vec<Vec<u8>>,
    delete_key: Option<Vec<u8>>,
    style: Style,
}

impl JsonLinesEncoder {
    /// Fails, naming the column, if a column's type cannot be written.
    pub fn new(schema: &Schema, with_delete_sign: bool) -> Result<Self> {
        let style = doris_style();
        for field in schema.fields() {
            if let Some(t) = unsupported_type(field.data_type(), &style) {
                return Err(Error::user(format!(
                    "column `{}` has type {}, which the doris sink cannot write ({t} has no JSON form Doris loads unchanged); CAST it, e.g. to STRING",
                    field.name(),
                    flink_type_name(field.data_type())
                )));
            }
        }
        let keys = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                write_str(&mut key, f.name());
                key.push(b':');
                key
            })
            .collect();
        let delete_key = with_delete_sign.then(|| {
            let mut key = vec![if schema.fields().is_empty() { b'{' } else { b',' }];
            write_str(&mut key, DELETE_SIGN);
            key.push(b':');
            key
        });
        Ok(JsonLinesEncoder { keys, delete_key, style })
    }

    /// Appends every row of `batch` with the given delete sign.
    pub fn encode_all(&self, batch: &RecordBatch, delete: bool, out: &mut Vec<u8>) -> Result<()> {
        self.encode_rows(batch, (0..batch.num_rows()).map(|row| (row, delete)), out)
    }

    /// Appends the chosen rows, each with its delete sign.
    pub fn encode_rows(
        &self,
        batch: &RecordBatch,
        rows: impl Iterator<Item = (usize, bool)>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let writers: Vec<Writer<'_>> =
            batch.columns().iter().map(|c| Writer::new(c.as_ref(), &self.style)).collect::<Result<_>>()?;
        for (row, delete) in rows {
            for (key, writer) in self.keys.iter().zip(&writers) {
                out.extend_from_slice(key);
                writer.write(row, out)?;
            }
            if let Some(key) = &self.delete_key {
                out.extend_from_slice(key);
                out.push(if delete { b'1' } else { b'0' });
            } else if self.keys.is_empty() {
                out.push(b'{');
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(())
    }
}

/// Types both body formats write as one plain value.
pub(super) fn is_scalar(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::*;
    use datafusion::arrow::buffer::OffsetBuffer;

    use super::*;

    fn encode(columns: Vec<(&str, ArrayRef)>, delete: bool) -> String {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let encoder = JsonLinesEncoder::new(&batch.schema(), true).unwrap();
        let mut out = Vec::new();
        encoder.encode_all(&batch, delete, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        text
    }

    #[test]
    fn scalars_and_nulls() {
        let text = encode(
            vec![
                ("id", Arc::new(Int64Array::from(vec![Some(i64::MIN), None])) as ArrayRef),
                ("u", Arc::new(UInt64Array::from(vec![u64::MAX, 0]))),
                ("ok", Arc::new(BooleanArray::from(vec![Some(true), None]))),
                ("f", Arc::new(Float64Array::from(vec![1.5, f64::NAN]))),
                ("g", Arc::new(Float32Array::from(vec![f32::INFINITY, f32::NEG_INFINITY]))),
            ],
            false,
        );
        assert_eq!(
            text,
            "{\"id\":-9223372036854775808,\"u\":18446744073709551615,\"ok\":true,\"f\":1.5,\"g\":\"Infinity\",\"__DORIS_DELETE_SIGN__\":0}\n\
             {\"id\":null,\"u\":0,\"ok\":null,\"f\":\"NaN\",\"g\":\"-Infinity\",\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }

    #[test]
    fn decimals_are_exact_strings() {
        let d = Decimal128Array::from(vec![1230, -5, 0, i128::MAX]).with_precision_and_scale(38, 2).unwrap();
        let big = Decimal256Array::from(vec![i256::from_i128(-123456)]).with_precision_and_scale(76, 3).unwrap();
        let text = encode(vec![("d", Arc::new(d) as ArrayRef)], true);
        assert!(text.starts_with("{\"d\":\"12.30\",\"__DORIS_DELETE_SIGN__\":1}\n{\"d\":\"-0.05\""), "{text}");
        assert!(text.contains("\"0.00\"") && text.contains("\"1701411834604692317316873037158841057.27\""), "{text}");
        let text = encode(vec![("d", Arc::new(big) as ArrayRef)], false);
        assert!(text.starts_with("{\"d\":\"-123.456\""), "{text}");
    }

    #[test]
    fn temporal_values() {
        let text = encode(
            vec![
                ("d", Arc::new(Date32Array::from(vec![0, 19_723, -1])) as ArrayRef),
                ("ts", Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, 0, -1]))),
                ("ltz", Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3]).with_timezone("UTC"))),
                ("t", Arc::new(Time64MicrosecondArray::from(vec![45_296_000_001, 0, 86_399_999_999]))),
            ],
            false,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("\"d\":\"1970-01-01\",\"ts\":\"2023-11-14 22:13:20.123456\",\"ltz\":\"1970-01-01 00:00:00.001\",\"t\":\"12:34:56.000001\""), "{}", lines[0]);
        assert!(lines[1].contains("\"d\":\"2024-01-01\""), "{}", lines[1]);
        assert!(lines[2].contains("\"d\":\"1969-12-31\",\"ts\":\"1969-12-31 23:59:59.999999\""), "{}", lines[2]);
    }

    #[test]
    fn strings_are_escaped() {
        let text = encode(vec![("s", Arc::new(StringArray::from(vec!["a\"b\\c\nd\u{1}é"])) as ArrayRef)], false);
        assert_eq!(text, "{\"s\":\"a\\\"b\\\\c\\nd\\u0001é\",\"__DORIS_DELETE_SIGN__\":0}\n");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["s"], "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn nested_values() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None]);
        let strukt = StructArray::from(vec![
            (Arc::new(Field::new("a", DataType::Int32, true)), Arc::new(Int32Array::from(vec![7, 8])) as ArrayRef),
            (Arc::new(Field::new("b", DataType::Utf8, true)), Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ]);
        let entries = StructArray::from(vec![
            (Arc::new(Field::new("key", DataType::Int32, false)), Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                Arc::new(Field::new("value", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["one", "two"])) as ArrayRef,
            ),
        ]);
        let map = MapArray::new(
            Arc::new(Field::new("entries", entries.data_type().clone(), false)),
            OffsetBuffer::new(vec![0, 2, 2].into()),
            entries,
            None,
            false,
        );
        let text =
            encode(vec![("l", Arc::new(list) as ArrayRef), ("r", Arc::new(strukt)), ("m", Arc::new(map))], false);
        assert_eq!(
            text,
            "{\"l\":[1,null],\"r\":{\"a\":7,\"b\":\"x\"},\"m\":{\"1\":\"one\",\"2\":\"two\"},\"__DORIS_DELETE_SIGN__\":0}\n\
             {\"l\":null,\"r\":{\"a\":8,\"b\":\"y\"},\"m\":{},\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }

    #[test]
    fn bytes_are_refused_by_name() {
        let schema = Schema::new(vec![Field::new("payload", DataType::Binary, true)]);
        let err = JsonLinesEncoder::new(&schema, false).err().unwrap().to_string();
        assert!(err.contains("`payload`") && err.contains("BYTES"), "{err}");
    }

    #[test]
    fn selected_rows_carry_their_own_sign() {
        let batch =
            RecordBatch::try_from_iter(vec![("k", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef)]).unwrap();
        let encoder = JsonLinesEncoder::new(&batch.schema(), true).unwrap();
        let mut out = Vec::new();
        encoder.encode_rows(&batch, [(2, true), (0, false)].into_iter(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"k\":3,\"__DORIS_DELETE_SIGN__\":1}\n{\"k\":1,\"__DORIS_DELETE_SIGN__\":0}\n"
        );
    }
}
