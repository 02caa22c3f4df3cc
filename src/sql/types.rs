//! Flink SQL types ↔ Arrow types. The mapping (DESIGN.md §4: faithful by default):
//!
//! | Flink                              | Arrow                                            |
//! |------------------------------------|--------------------------------------------------|
//! | CHAR(n), VARCHAR(n), STRING        | Utf8 (lengths are not enforced, as in Flink)     |
//! | BOOLEAN                            | Boolean                                          |
//! | BINARY(n), VARBINARY(n), BYTES     | Binary                                           |
//! | DECIMAL(p, s), p ≤ 38 / p ≤ 76     | Decimal128(p, s) / Decimal256(p, s)              |
//! | TINYINT … BIGINT                   | Int8 … Int64                                     |
//! | TINYINT UNSIGNED … BIGINT UNSIGNED | UInt8 … UInt64 (ours: MySQL unsigned, no loss)   |
//! | FLOAT, DOUBLE                      | Float32, Float64                                 |
//! | DATE                               | Date32                                           |
//! | TIME(p)                            | Time32(s/ms) for p ≤ 3, Time64(µs/ns) for p ≤ 9  |
//! | TIMESTAMP(p)                       | Timestamp(unit of p, no zone)                    |
//! | TIMESTAMP_LTZ(p), TIMESTAMP(p) WITH LOCAL TIME ZONE | Timestamp(unit of p, "UTC")     |
//! | ARRAY<T>, T ARRAY                  | List<T>                                          |
//! | MAP<K, V>                          | Map<K, V>                                        |
//! | ROW<a T, …>                        | Struct<a T, …>                                   |
//!
//! The unit of a precision p: 0 → seconds, 1–3 → milliseconds, 4–6 → microseconds,
//! 7–9 → nanoseconds.

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

pub const UTC: &str = "UTC";

pub fn time_unit_for_precision(precision: u64) -> TimeUnit {
    match precision {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

fn precision_of(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// The Flink spelling of an Arrow type, for messages and DESCRIBE of query results.
pub fn flink_type_name(dt: &DataType) -> String {
    match dt {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "BYTES".into()
        }
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            format!("DECIMAL({p}, {s})")
        }
        DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("TIME({})", precision_of(u)),
        DataType::Timestamp(u, None) => format!("TIMESTAMP({})", precision_of(u)),
        DataType::Timestamp(u, Some(_)) => format!("TIMESTAMP_LTZ({})", precision_of(u)),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", flink_type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", flink_type_name(kv[0].data_type()), flink_type_name(kv[1].data_type()))
            }
            other => format!("MAP<{other}>"),
        },
        DataType::Struct(fields) => {
            let inner: Vec<String> =
                fields.iter().map(|f| format!("`{}` {}", f.name(), flink_type_name(f.data_type()))).collect();
            format!("ROW<{}>", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// Whether a query column of type `from` may be written into a column of type `to` without an
/// explicit CAST: conversions that cannot lose information or change meaning, and integer
/// narrowing, which is checked per value (DataFusion types integer literals as BIGINT, so Flink's
/// `INT + 1` would otherwise not fit an INT column; a value out of range stops the job).
pub fn implicit_cast_allowed(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to || *from == Null {
        return true;
    }
    let int_range = |dt: &DataType| -> Option<(i128, i128)> {
        Some(match dt {
            Int8 => (i8::MIN as i128, i8::MAX as i128),
            Int16 => (i16::MIN as i128, i16::MAX as i128),
            Int32 => (i32::MIN as i128, i32::MAX as i128),
            Int64 => (i64::MIN as i128, i64::MAX as i128),
            UInt8 => (0, u8::MAX as i128),
            UInt16 => (0, u16::MAX as i128),
            UInt32 => (0, u32::MAX as i128),
            UInt64 => (0, u64::MAX as i128),
            _ => return None,
        })
    };
    let int_digits = |dt: &DataType| -> Option<u8> {
        Some(match dt {
            Int8 | UInt8 => 3,
            Int16 | UInt16 => 5,
            Int32 | UInt32 => 10,
            Int64 => 19,
            UInt64 => 20,
            _ => return None,
        })
    };
    match (from, to) {
        (f, t) if int_range(f).is_some() && int_range(t).is_some() => true,
        (f, Float64) if int_digits(f).is_some_and(|d| d <= 10) => true,
        (f, Float32) if int_digits(f).is_some_and(|d| d <= 5) => true,
        (Float32, Float64) => true,
        (f, Decimal128(p, s) | Decimal256(p, s)) if int_digits(f).is_some() => {
            int_digits(f).is_some_and(|d| (*p as i16 - *s as i16) >= d as i16)
        }
        (Decimal128(fp, fs) | Decimal256(fp, fs), Decimal128(tp, ts) | Decimal256(tp, ts)) => {
            ts >= fs && (*tp as i16 - *ts as i16) >= (*fp as i16 - *fs as i16)
        }
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Date32, Timestamp(_, None)) => true,
        (Timestamp(fu, None), Timestamp(tu, None)) => precision_of(tu) >= precision_of(fu),
        (Timestamp(fu, Some(_)), Timestamp(tu, Some(_))) => precision_of(tu) >= precision_of(fu),
        (Time32(fu) | Time64(fu), Time32(tu) | Time64(tu)) => precision_of(tu) >= precision_of(fu),
        (List(f), List(t)) => implicit_cast_allowed(f.data_type(), t.data_type()),
        _ => false,
    }
}

/// `List<item>` with Arrow's conventional child name.
pub fn list_of(item: DataType, nullable: bool) -> DataType {
    DataType::List(std::sync::Arc::new(Field::new("item", item, nullable)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;

    #[test]
    fn widening_and_checked_integer_narrowing_are_implicit() {
        assert!(implicit_cast_allowed(&Int32, &Int64));
        assert!(implicit_cast_allowed(&Int64, &Int32), "checked per value");
        assert!(!implicit_cast_allowed(&Float64, &Int32));
        assert!(implicit_cast_allowed(&UInt32, &Int64));
        assert!(implicit_cast_allowed(&Int64, &Decimal128(20, 0)));
        assert!(!implicit_cast_allowed(&Int64, &Decimal128(10, 0)));
        assert!(implicit_cast_allowed(&Decimal128(10, 2), &Decimal256(50, 4)));
        assert!(!implicit_cast_allowed(&Decimal128(10, 2), &Decimal128(10, 0)));
        assert!(!implicit_cast_allowed(&Utf8, &Int32));
        assert!(!implicit_cast_allowed(&Int32, &Utf8));
        assert!(implicit_cast_allowed(
            &Timestamp(TimeUnit::Millisecond, None),
            &Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(!implicit_cast_allowed(
            &Timestamp(TimeUnit::Microsecond, None),
            &Timestamp(TimeUnit::Millisecond, None)
        ));
        assert!(!implicit_cast_allowed(
            &Timestamp(TimeUnit::Microsecond, None),
            &Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ));
    }

    #[test]
    fn names_read_like_flink() {
        assert_eq!(flink_type_name(&Decimal256(65, 30)), "DECIMAL(65, 30)");
        assert_eq!(flink_type_name(&Timestamp(TimeUnit::Millisecond, Some("UTC".into()))), "TIMESTAMP_LTZ(3)");
        assert_eq!(flink_type_name(&list_of(Int32, true)), "ARRAY<INT>");
    }
}
