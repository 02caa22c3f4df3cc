//! Reading DATE / TIME / TIMESTAMP / TIMESTAMP_LTZ arguments as chrono values and writing results
//! back in the unit the column has, without a lossy detour through one unit.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

use crate::func::Call;
use crate::zone::Zone;

/// What a temporal argument holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Date,
    Time(TimeUnit),
    /// TIMESTAMP (`ltz` false: a wall-clock time) or TIMESTAMP_LTZ (an instant).
    Timestamp(TimeUnit, bool),
}

impl Kind {
    pub(crate) fn of(t: &DataType) -> Option<Kind> {
        Some(match t {
            DataType::Date32 => Kind::Date,
            DataType::Time32(u) | DataType::Time64(u) => Kind::Time(*u),
            DataType::Timestamp(u, tz) => Kind::Timestamp(*u, tz.is_some()),
            _ => return None,
        })
    }

    fn per_second(unit: TimeUnit) -> i64 {
        match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }
    }

    /// The raw value as a date-time: a date at midnight, a time on 1970-01-01, a timestamp as
    /// stored (wall clock for TIMESTAMP, UTC for TIMESTAMP_LTZ).
    pub(crate) fn decode(self, raw: i64) -> Option<NaiveDateTime> {
        match self {
            Kind::Date => NaiveDate::from_num_days_from_ce_opt(i32::try_from(raw).ok()?.checked_add(719_163)?)?
                .and_hms_opt(0, 0, 0),
            Kind::Time(unit) | Kind::Timestamp(unit, _) => {
                let per = Self::per_second(unit);
                let secs = raw.div_euclid(per);
                let nanos = raw.rem_euclid(per) * (1_000_000_000 / per);
                DateTime::from_timestamp(secs, u32::try_from(nanos).ok()?).map(|t| t.naive_utc())
            }
        }
    }

    /// The raw value of a date-time in this kind's unit (a date keeps the day, a time the time
    /// of day).
    pub(crate) fn encode(self, t: &NaiveDateTime) -> Option<i64> {
        match self {
            Kind::Date => Some(t.date().signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days()),
            Kind::Time(unit) => {
                let per = Self::per_second(unit);
                Some(t.num_seconds_from_midnight() as i64 * per + t.nanosecond() as i64 / (1_000_000_000 / per))
            }
            Kind::Timestamp(unit, _) => {
                let utc = t.and_utc();
                let per = Self::per_second(unit);
                utc.timestamp()
                    .checked_mul(per)?
                    .checked_add(utc.timestamp_subsec_nanos() as i64 / (1_000_000_000 / per))
            }
        }
    }
}

/// A temporal argument, read row by row.
pub(crate) struct TimeArg<'a> {
    pub(crate) kind: Kind,
    values: Values<'a>,
    zone: Zone,
}

enum Values<'a> {
    Scalar(Option<i64>),
    Array(&'a dyn Array),
}

fn raw_of<T: ArrowPrimitiveType>(a: &dyn Array, row: usize) -> Option<i64>
where
    T::Native: Into<i64>,
{
    let a = a.as_primitive::<T>();
    a.is_valid(row).then(|| a.value(row).into())
}

impl<'a> TimeArg<'a> {
    pub(crate) fn new(call: &Call<'a>, i: usize) -> Result<Self> {
        let arg = call.value(i)?;
        let kind = Kind::of(&arg.data_type()).ok_or_else(|| {
            call.error(format!("expected a DATE, TIME or TIMESTAMP argument, got {}", arg.data_type()))
        })?;
        let values = match arg {
            ColumnarValue::Array(a) => Values::Array(a.as_ref()),
            ColumnarValue::Scalar(s) => Values::Scalar(scalar_raw(s)),
        };
        Ok(TimeArg { kind, values, zone: call.zone()? })
    }

    /// The raw stored value of `row`.
    pub(crate) fn raw(&self, row: usize) -> Option<i64> {
        match &self.values {
            Values::Scalar(v) => *v,
            Values::Array(a) => match self.kind {
                Kind::Date => raw_of::<Date32Type>(*a, row),
                Kind::Time(TimeUnit::Second) => raw_of::<Time32SecondType>(*a, row),
                Kind::Time(TimeUnit::Millisecond) => raw_of::<Time32MillisecondType>(*a, row),
                Kind::Time(TimeUnit::Microsecond) => raw_of::<Time64MicrosecondType>(*a, row),
                Kind::Time(TimeUnit::Nanosecond) => raw_of::<Time64NanosecondType>(*a, row),
                Kind::Timestamp(TimeUnit::Second, _) => raw_of::<TimestampSecondType>(*a, row),
                Kind::Timestamp(TimeUnit::Millisecond, _) => raw_of::<TimestampMillisecondType>(*a, row),
                Kind::Timestamp(TimeUnit::Microsecond, _) => raw_of::<TimestampMicrosecondType>(*a, row),
                Kind::Timestamp(TimeUnit::Nanosecond, _) => raw_of::<TimestampNanosecondType>(*a, row),
            },
        }
    }

    /// The wall-clock time of `row`: a TIMESTAMP_LTZ is shown in the session time zone, as
    /// Flink does for every field it extracts or formats.
    pub(crate) fn local(&self, row: usize) -> Option<NaiveDateTime> {
        let t = self.kind.decode(self.raw(row)?)?;
        Some(match self.kind {
            Kind::Timestamp(_, true) => self.zone.to_local(&t),
            _ => t,
        })
    }

    /// The instant of `row` (a wall-clock value is read in the session time zone).
    pub(crate) fn utc(&self, row: usize) -> Option<NaiveDateTime> {
        let t = self.kind.decode(self.raw(row)?)?;
        Some(match self.kind {
            Kind::Timestamp(_, true) => t,
            _ => self.zone.to_utc(&t),
        })
    }

    /// Turns a wall-clock result back into this argument's storage (an instant for LTZ).
    pub(crate) fn store_local(&self, local: &NaiveDateTime) -> Option<i64> {
        match self.kind {
            Kind::Timestamp(_, true) => self.kind.encode(&self.zone.to_utc(local)),
            _ => self.kind.encode(local),
        }
    }
}

fn scalar_raw(s: &ScalarValue) -> Option<i64> {
    match s {
        ScalarValue::Date32(v) => v.map(i64::from),
        ScalarValue::Time32Second(v) | ScalarValue::Time32Millisecond(v) => v.map(i64::from),
        ScalarValue::Time64Microsecond(v)
        | ScalarValue::Time64Nanosecond(v)
        | ScalarValue::TimestampSecond(v, _)
        | ScalarValue::TimestampMillisecond(v, _)
        | ScalarValue::TimestampMicrosecond(v, _)
        | ScalarValue::TimestampNanosecond(v, _) => *v,
        _ => None,
    }
}

/// Builds a DATE / TIME / TIMESTAMP array of type `t` from raw values in its unit.
pub(crate) fn temporal_array(values: Vec<Option<i64>>, t: &DataType) -> Result<ArrayRef> {
    fn build<T: ArrowPrimitiveType>(values: Vec<Option<i64>>) -> PrimitiveArray<T>
    where
        T::Native: TryFrom<i64>,
    {
        values.into_iter().map(|v| v.and_then(|v| T::Native::try_from(v).ok())).collect()
    }
    Ok(match t {
        DataType::Date32 => Arc::new(build::<Date32Type>(values)) as ArrayRef,
        DataType::Time32(TimeUnit::Second) => Arc::new(build::<Time32SecondType>(values)),
        DataType::Time32(_) => Arc::new(build::<Time32MillisecondType>(values)),
        DataType::Time64(TimeUnit::Microsecond) => Arc::new(build::<Time64MicrosecondType>(values)),
        DataType::Time64(_) => Arc::new(build::<Time64NanosecondType>(values)),
        DataType::Timestamp(TimeUnit::Second, tz) => {
            Arc::new(build::<TimestampSecondType>(values).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            Arc::new(build::<TimestampMillisecondType>(values).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            Arc::new(build::<TimestampMicrosecondType>(values).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            Arc::new(build::<TimestampNanosecondType>(values).with_timezone_opt(tz.clone()))
        }
        other => {
            return Err(datafusion::common::DataFusionError::Internal(format!("not a temporal type: {other}")));
        }
    })
}

/// Midnight of a date as a date-time.
pub(crate) fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_round_trip_in_every_unit() {
        let t = NaiveDate::from_ymd_opt(2024, 3, 5).and_then(|d| d.and_hms_nano_opt(7, 8, 9, 123_456_789)).expect("t");
        for (kind, raw) in [
            (Kind::Timestamp(TimeUnit::Second, false), 1_709_622_489),
            (Kind::Timestamp(TimeUnit::Millisecond, false), 1_709_622_489_123),
            (Kind::Timestamp(TimeUnit::Microsecond, true), 1_709_622_489_123_456),
            (Kind::Timestamp(TimeUnit::Nanosecond, false), 1_709_622_489_123_456_789),
        ] {
            assert_eq!(kind.encode(&t), Some(raw), "{kind:?}");
            assert_eq!(kind.decode(raw).and_then(|n| kind.encode(&n)), Some(raw), "{kind:?}");
        }
        assert_eq!(Kind::Date.encode(&t), Some(19787));
        assert_eq!(Kind::Date.decode(19787), NaiveDate::from_ymd_opt(2024, 3, 5).and_then(|d| d.and_hms_opt(0, 0, 0)));
        assert_eq!(Kind::Time(TimeUnit::Millisecond).encode(&t), Some(25_689_123));
        // Before 1970: floor division keeps the fraction positive.
        let before = Kind::Timestamp(TimeUnit::Millisecond, false).decode(-1).expect("t");
        assert_eq!(before.to_string(), "1969-12-31 23:59:59.999");
    }
}
