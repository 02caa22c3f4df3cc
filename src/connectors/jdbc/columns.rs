//! Arrow column builders fed from database values, and the calendar arithmetic both dialects need.
//! Readers decode wire values (PostgreSQL binary, MySQL text) straight into these builders; range
//! checks happen on append, so a value that does not fit the declared type is an error naming the
//! column, never a silent NULL or wrap-around.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Decimal256Builder, Float32Builder, Float64Builder,
    Int64Builder, StringBuilder, UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{i256, DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::connectors::float_decimal::{float_to_decimal, unfit_message, Float};
use crate::error::{Error, Result};

/// What the scan must know of a source column beyond the declared type, learnt from the server
/// before reading (PostgreSQL: the prepared `SELECT`'s column types; MySQL: its result
/// columns' types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Other,
    /// A 4-byte float (MySQL FLOAT, PostgreSQL `real`): into DECIMAL through its own shortest form.
    Float32,
    /// MySQL FLOAT(M,D): a 4-byte float that Flink CDC (Debezium) reads as a DOUBLE, so its
    /// decimal form is the widened value's.
    Float32Widened,
    /// An 8-byte float (MySQL DOUBLE, PostgreSQL `double precision`).
    Float64,
    /// A MySQL/MariaDB spatial value (SRID, then WKB).
    Geometry,
    /// MySQL BIT(n), which the text protocol sends as its raw bytes.
    Bit,
}

/// Whether the jdbc connector reads and writes columns of this Arrow type.
pub fn is_supported(dt: &DataType) -> bool {
    use DataType::*;
    matches!(
        dt,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | Binary
            | Decimal128(..)
            | Decimal256(..)
            | Date32
            | Time32(_)
            | Time64(_)
            | Timestamp(..)
    )
}

/// The integer range a column of an integer type accepts.
fn int_range(dt: &DataType) -> (i64, i64) {
    match dt {
        DataType::Int8 => (i8::MIN as i64, i8::MAX as i64),
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        DataType::UInt8 => (0, u8::MAX as i64),
        DataType::UInt16 => (0, u16::MAX as i64),
        DataType::UInt32 => (0, u32::MAX as i64),
        DataType::Date32 => (i32::MIN as i64, i32::MAX as i64),
        DataType::Time32(_) => (0, 86_400_000),
        _ => (i64::MIN, i64::MAX),
    }
}

enum Values {
    Bool(BooleanBuilder),
    /// Every integer, date, time and timestamp type: values are range-checked on append and the
    /// array is cast to the declared type at the end (a reinterpretation, never lossy).
    Int(Int64Builder),
    UInt64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Dec128(Decimal128Builder),
    Dec256(Decimal256Builder),
}

pub struct ColumnBuilder {
    name: String,
    data_type: DataType,
    values: Values,
    range: (i64, i64),
    /// Multiplier from microseconds to the declared unit (or divisor when negative).
    micros_scale: i64,
}

impl ColumnBuilder {
    pub fn new(name: &str, data_type: &DataType, capacity: usize) -> Result<Self> {
        use DataType::*;
        let values = match data_type {
            Boolean => Values::Bool(BooleanBuilder::with_capacity(capacity)),
            UInt64 => Values::UInt64(UInt64Builder::with_capacity(capacity)),
            Float32 => Values::F32(Float32Builder::with_capacity(capacity)),
            Float64 => Values::F64(Float64Builder::with_capacity(capacity)),
            Utf8 => Values::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            Binary => Values::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Decimal128(p, s) => {
                Values::Dec128(Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?)
            }
            Decimal256(p, s) => {
                Values::Dec256(Decimal256Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?)
            }
            dt if is_supported(dt) => Values::Int(Int64Builder::with_capacity(capacity)),
            other => return Err(Error::user(format!("column `{name}`: type {other} is not supported by jdbc"))),
        };
        let micros_scale = match data_type {
            Time32(u) | Time64(u) | Timestamp(u, _) => match u {
                TimeUnit::Second => -1_000_000,
                TimeUnit::Millisecond => -1_000,
                TimeUnit::Microsecond => 1,
                TimeUnit::Nanosecond => 1_000,
            },
            _ => 1,
        };
        Ok(ColumnBuilder {
            name: name.to_string(),
            data_type: data_type.clone(),
            values,
            range: int_range(data_type),
            micros_scale,
        })
    }

    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A spatial value that is not the SRID + WKB the server stores.
    pub fn unreadable_spatial(&self, why: &str) -> Error {
        Error::user(format!("column `{}` holds a spatial value the jdbc scan cannot read: {why}", self.name))
    }

    fn mismatch(&self, what: &str) -> Error {
        Error::user(format!("column `{}` is declared {} but the database sent {what}", self.name, self.data_type))
    }

    pub fn out_of_range(&self, value: impl std::fmt::Display) -> Error {
        Error::user(format!(
            "column `{}`: value {value} does not fit the declared type {}; declare a wider type",
            self.name, self.data_type
        ))
    }

    pub fn append_null(&mut self) {
        match &mut self.values {
            Values::Bool(b) => b.append_null(),
            Values::Int(b) => b.append_null(),
            Values::UInt64(b) => b.append_null(),
            Values::F32(b) => b.append_null(),
            Values::F64(b) => b.append_null(),
            Values::Text(b) => b.append_null(),
            Values::Bytes(b) => b.append_null(),
            Values::Dec128(b) => b.append_null(),
            Values::Dec256(b) => b.append_null(),
        }
    }

    pub fn append_bool(&mut self, v: bool) -> Result<()> {
        match &mut self.values {
            Values::Bool(b) => b.append_value(v),
            Values::Int(_) | Values::UInt64(_) => return self.append_i64(v as i64),
            _ => return Err(self.mismatch("a boolean")),
        }
        Ok(())
    }

    /// An integer (or a date in days, a time or timestamp already in the declared unit).
    pub fn append_i64(&mut self, v: i64) -> Result<()> {
        let (lo, hi) = self.range;
        match &mut self.values {
            Values::Int(b) if v >= lo && v <= hi => b.append_value(v),
            Values::Int(_) => return Err(self.out_of_range(v)),
            Values::UInt64(b) if v >= 0 => b.append_value(v as u64),
            Values::UInt64(_) => return Err(self.out_of_range(v)),
            Values::Bool(b) => b.append_value(v != 0),
            Values::F64(b) => b.append_value(v as f64),
            Values::Dec128(_) | Values::Dec256(_) => return self.append_decimal_text(&v.to_string()),
            _ => return Err(self.mismatch("an integer")),
        }
        Ok(())
    }

    /// A time of day or a timestamp in microseconds, converted to the declared unit.
    pub fn append_micros(&mut self, micros: i64) -> Result<()> {
        let v = if self.micros_scale >= 1 {
            micros.checked_mul(self.micros_scale).ok_or_else(|| self.out_of_range(micros))?
        } else {
            micros.div_euclid(-self.micros_scale)
        };
        self.append_i64(v)
    }

    /// A floating-point value: as is into FLOAT/DOUBLE, into DECIMAL as Flink converts it
    /// (its shortest decimal form, rounded half-up to the scale).
    pub fn append_float(&mut self, v: Float) -> Result<()> {
        let wide = match v {
            Float::F32(v) => v as f64,
            Float::F64(v) => v,
        };
        let (precision, scale) = match self.data_type {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (p, s),
            _ => (0, 0),
        };
        let decimal = || {
            float_to_decimal(v, precision, scale).map_err(|unfit| {
                Error::user(format!("column `{}`: {}", self.name, unfit_message(v, precision, scale, unfit)))
            })
        };
        match &self.values {
            Values::Dec128(_) => {
                let unscaled = decimal()?.to_i128().ok_or_else(|| self.out_of_range(v))?;
                if let Values::Dec128(b) = &mut self.values {
                    b.append_value(unscaled);
                }
            }
            Values::Dec256(_) => {
                let unscaled = decimal()?;
                if let Values::Dec256(b) = &mut self.values {
                    b.append_value(unscaled);
                }
            }
            _ => match &mut self.values {
                Values::F64(b) => b.append_value(wide),
                Values::F32(b) => b.append_value(wide as f32),
                _ => return Err(self.mismatch("a floating-point number")),
            },
        }
        Ok(())
    }

    pub fn append_bytes(&mut self, v: &[u8]) -> Result<()> {
        match &mut self.values {
            Values::Bytes(b) => b.append_value(v),
            Values::Text(b) => match std::str::from_utf8(v) {
                Ok(s) => b.append_value(s),
                Err(_) => {
                    return Err(Error::user(format!(
                        "column `{}` is declared STRING but holds bytes that are not UTF-8; declare it BYTES",
                        self.name
                    )))
                }
            },
            _ => return Err(self.mismatch("bytes")),
        }
        Ok(())
    }

    /// A decimal number as text (`-12.340`), for DECIMAL and unsigned BIGINT columns.
    pub fn append_decimal_text(&mut self, text: &str) -> Result<()> {
        let (precision, scale) = match self.data_type {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (p, s),
            _ => (0, 0),
        };
        match &mut self.values {
            Values::Dec128(b) => match parse_decimal(text, scale as i32) {
                Some(v) if decimal_fits(v.unsigned_abs(), precision) => b.append_value(v),
                _ => return Err(self.out_of_range(text)),
            },
            Values::Dec256(b) => match parse_decimal_256(text, scale as i32) {
                Some(v) => b.append_value(v),
                None => return Err(self.out_of_range(text)),
            },
            Values::UInt64(b) => match text.parse::<u64>() {
                Ok(v) => b.append_value(v),
                Err(_) => return Err(self.out_of_range(text)),
            },
            Values::Int(_) => match text.parse::<i64>() {
                Ok(v) => return self.append_i64(v),
                Err(_) => return Err(self.out_of_range(text)),
            },
            Values::F64(b) => match text.parse::<f64>() {
                Ok(v) => b.append_value(v),
                Err(_) => return Err(self.mismatch(&format!("'{text}'"))),
            },
            Values::F32(b) => match text.parse::<f32>() {
                Ok(v) => b.append_value(v),
                Err(_) => return Err(self.mismatch(&format!("'{text}'"))),
            },
            _ => return Err(self.mismatch("a number")),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<ArrayRef> {
        let array: ArrayRef = match &mut self.values {
            Values::Bool(b) => Arc::new(b.finish()),
            Values::UInt64(b) => Arc::new(b.finish()),
            Values::F32(b) => Arc::new(b.finish()),
            Values::F64(b) => Arc::new(b.finish()),
            Values::Text(b) => Arc::new(b.finish()),
            Values::Bytes(b) => Arc::new(b.finish()),
            Values::Dec128(b) => Arc::new(b.finish()),
            Values::Dec256(b) => Arc::new(b.finish()),
            Values::Int(b) => {
                let ints: ArrayRef = Arc::new(b.finish());
                match &self.data_type {
                    DataType::Int64 => ints,
                    DataType::Date32 | DataType::Time32(_) => cast(&cast(&ints, &DataType::Int32)?, &self.data_type)?,
                    other => cast(&ints, other)?,
                }
            }
        };
        Ok(array)
    }
}

/// Rows decoded into one builder per declared column.
pub struct BatchBuilder {
    schema: SchemaRef,
    pub columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(schema: SchemaRef, capacity: usize) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.name(), f.data_type(), capacity))
            .collect::<Result<Vec<_>>>()?;
        Ok(BatchBuilder { schema, columns, rows: 0 })
    }

    pub fn row_done(&mut self) {
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(&mut self) -> Result<RecordBatch> {
        let arrays = self.columns.iter_mut().map(|c| c.finish()).collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        // A NOT NULL declaration is a promise about the source: check it instead of trusting it.
        for (field, array) in self.schema.fields().iter().zip(&arrays) {
            if !field.is_nullable() && array.null_count() > 0 {
                return Err(Error::user(format!(
                    "column `{}` is declared NOT NULL but the database holds NULL in it; drop NOT NULL from the declaration",
                    field.name()
                )));
            }
        }
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

fn decimal_fits(abs: u128, precision: u8) -> bool {
    precision >= 39 || abs < 10u128.pow(precision as u32)
}

/// `-12.5` at scale 2 → -1250. None if it has more fractional digits than `scale` (other than
/// trailing zeros) or is not a plain decimal number.
pub fn parse_decimal(text: &str, scale: i32) -> Option<i128> {
    let (negative, digits, zeros) = decimal_digits(text, scale)?;
    let mut v: i128 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as i128)?;
    }
    v = v.checked_mul(10i128.checked_pow(zeros as u32)?)?;
    Some(if negative { -v } else { v })
}

fn parse_decimal_256(text: &str, scale: i32) -> Option<i256> {
    let (negative, digits, zeros) = decimal_digits(text, scale)?;
    let ten = i256::from_i128(10);
    let mut v = i256::ZERO;
    for d in digits {
        v = v.checked_mul(ten)?.checked_add(i256::from_i128((d - b'0') as i128))?;
    }
    v = v.checked_mul(ten.checked_pow(zeros as u32)?)?;
    Some(if negative { v.wrapping_neg() } else { v })
}

/// The sign of a decimal text, its unscaled digits at `scale` (integer digits, then the kept
/// fraction digits) and how many zeros follow them.
fn decimal_digits(text: &str, scale: i32) -> Option<(bool, impl Iterator<Item = u8> + '_, usize)> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = scale.max(0) as usize;
    let kept = frac.len().min(scale);
    if frac[kept..].bytes().any(|b| b != b'0') {
        return None;
    }
    Some((negative, int.bytes().chain(frac[..kept].bytes()), scale - kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Decimal128Array, TimestampMillisecondArray};

    #[test]
    fn decimals_parse_at_the_declared_scale() {
        assert_eq!(parse_decimal("12.5", 2), Some(1250));
        assert_eq!(parse_decimal("-0.01", 2), Some(-1));
        assert_eq!(parse_decimal("7", 3), Some(7000));
        assert_eq!(parse_decimal("1.2300", 2), Some(123));
        assert_eq!(parse_decimal("1.234", 2), None);
        assert_eq!(parse_decimal("1e5", 0), None);
        assert_eq!(
            parse_decimal_256("-12345678901234567890123456789012345678901.5", 1).map(|v| v.to_string()),
            Some("-123456789012345678901234567890123456789015".to_string())
        );
    }

    #[test]
    fn out_of_range_values_are_errors_not_nulls() {
        let mut b = ColumnBuilder::new("small", &DataType::Int8, 4).unwrap();
        b.append_i64(127).unwrap();
        let err = b.append_i64(128).unwrap_err().to_string();
        assert!(err.contains("`small`") && err.contains("128"), "{err}");
        let mut d = ColumnBuilder::new("d", &DataType::Decimal128(4, 2), 4).unwrap();
        d.append_decimal_text("99.99").unwrap();
        assert!(d.append_decimal_text("100.00").is_err());
        let a = d.finish().unwrap();
        assert_eq!(a.as_any().downcast_ref::<Decimal128Array>().unwrap().value(0), 9999);
    }

    // Expected values: Flink CDC's conversion (`BigDecimal.valueOf(double)`, or
    // `Float.toString` for a float, rounded HALF_UP to the scale).
    #[test]
    fn floats_into_decimals_round_half_up_and_refuse_overflow() {
        let mut d = ColumnBuilder::new("w", &DataType::Decimal128(10, 3), 4).unwrap();
        d.append_float(Float::F32(1.1)).unwrap();
        d.append_float(Float::F64(123.4565)).unwrap();
        d.append_float(Float::F64(-0.0005)).unwrap();
        let err = d.append_float(Float::F64(1e12)).unwrap_err().to_string();
        assert!(err.contains("column `w`") && err.contains("DECIMAL(10, 3)"), "{err}");
        let a = d.finish().unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((a.value(0), a.value(1), a.value(2)), (1_100, 123_457, -1));
        let mut f = ColumnBuilder::new("f", &DataType::Float32, 1).unwrap();
        f.append_float(Float::F64(0.5)).unwrap();
        assert!(ColumnBuilder::new("s", &DataType::Utf8, 1).unwrap().append_float(Float::F64(0.5)).is_err());
    }

    #[test]
    fn micros_convert_to_the_declared_unit() {
        let mut b = ColumnBuilder::new("t", &DataType::Timestamp(TimeUnit::Millisecond, None), 2).unwrap();
        b.append_micros(1_500_999).unwrap();
        b.append_micros(-1).unwrap();
        let a = b.finish().unwrap();
        let a = a.as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        assert_eq!((a.value(0), a.value(1)), (1_500, -1));
    }
}
