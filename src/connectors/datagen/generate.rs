//! Field generators and the row/event generator behind the datagen source. Every value is a pure
//! function of (seed, row ordinal, field), so a position of (seed, events) resumes exactly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{i256, DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::rng::SplitMix64;
use super::{DatagenConfig, DatagenPosition};
use crate::changelog::{ChangeBatch, ChangelogMode, RowKind};
use crate::connectors::ConnectorOptions;
use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;
use crate::sql::ColumnSpec;

#[derive(Debug)]
enum Kind {
    Random,
    Sequence {
        start: i128,
        end: i128,
    },
    /// The changelog key column: its value is the generated key.
    Key,
}

#[derive(Debug)]
pub struct FieldGen {
    data_type: DataType,
    kind: Kind,
    null_rate: f64,
    int_range: (i128, i128),
    float_range: (f64, f64),
    length: usize,
    var_len: bool,
    max_past: Duration,
}

fn integer_range(dt: &DataType) -> Option<(i128, i128)> {
    Some(match dt {
        DataType::Int8 => (i8::MIN as i128, i8::MAX as i128),
        DataType::Int16 => (i16::MIN as i128, i16::MAX as i128),
        DataType::Int32 => (i32::MIN as i128, i32::MAX as i128),
        DataType::Int64 => (i64::MIN as i128, i64::MAX as i128),
        DataType::UInt8 => (0, u8::MAX as i128),
        DataType::UInt16 => (0, u16::MAX as i128),
        DataType::UInt32 => (0, u32::MAX as i128),
        DataType::UInt64 => (0, u64::MAX as i128),
        DataType::Decimal128(p, _) | DataType::Decimal256(p, _) => {
            let max = 10i128.checked_pow((*p).min(38) as u32).map(|m| m - 1).unwrap_or(i128::MAX);
            (-max, max)
        }
        _ => return None,
    })
}

impl FieldGen {
    pub fn parse(column: &ColumnSpec, is_key: bool, o: &mut ConnectorOptions) -> Result<Self> {
        let dt = column.data_type.clone();
        let key = |suffix: &str| format!("fields.{}.{suffix}", column.name);
        let unsupported = |what: &str| {
            Error::user(format!(
                "datagen cannot generate {what} for column `{}` of type {}",
                column.name,
                flink_type_name(&column.data_type)
            ))
        };
        if matches!(dt, DataType::List(_) | DataType::Map(..) | DataType::Struct(_)) {
            return Err(unsupported("values"));
        }
        let mut field = FieldGen {
            data_type: dt.clone(),
            kind: Kind::Random,
            null_rate: 0.0,
            int_range: (0, 0),
            float_range: (0.0, 1_000_000.0),
            length: 100,
            var_len: false,
            max_past: Duration::ZERO,
        };
        if is_key {
            field.kind = Kind::Key;
            return Ok(field);
        }
        let null_key = key("null-rate");
        if let Some(rate) = o.parse::<f64>(&null_key, "a number between 0 and 1")? {
            if !(0.0..=1.0).contains(&rate) {
                return Err(o.invalid(&null_key, &rate.to_string(), "a number between 0 and 1"));
            }
            if rate > 0.0 && !column.nullable {
                return Err(Error::user(format!(
                    "option '{null_key}' asks for NULLs in column `{}`, which is NOT NULL",
                    column.name
                )));
            }
            field.null_rate = rate;
        }
        let kind_key = key("kind");
        let kind = o.choice(&kind_key, &["random", "sequence"])?.unwrap_or("random");
        let is_text = matches!(dt, DataType::Utf8);
        let int_range = integer_range(&dt);

        if kind == "sequence" {
            let Some((lo, hi)) = int_range.or(is_text.then_some((i64::MIN as i128, i64::MAX as i128))) else {
                return Err(unsupported("a sequence"));
            };
            let (start_key, end_key) = (key("start"), key("end"));
            let start = o.parse::<i128>(&start_key, "a whole number")?;
            let end = o.parse::<i128>(&end_key, "a whole number")?;
            let (Some(start), Some(end)) = (start, end) else {
                return Err(Error::user(format!(
                    "a sequence needs both '{start_key}' and '{end_key}' (column `{}`)",
                    column.name
                )));
            };
            if start > end || start < lo || end > hi {
                return Err(Error::user(format!(
                    "sequence {start}..{end} of column `{}` is empty or outside the range of {}",
                    column.name,
                    flink_type_name(&dt)
                )));
            }
            field.kind = Kind::Sequence { start, end };
            return Ok(field);
        }

        if let Some((lo, hi)) = int_range {
            let (min_key, max_key) = (key("min"), key("max"));
            let scale = match dt {
                DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => s.max(0) as u32,
                _ => 0,
            };
            let mut bound = |k: &str, default: i128| -> Result<i128> {
                let Some(text) = o.string(k) else { return Ok(default) };
                parse_scaled(&text, scale).filter(|v| (lo..=hi).contains(v)).ok_or_else(|| {
                    o.invalid(k, &text, &format!("a number within the range of {}", flink_type_name(&dt)))
                })
            };
            let min = bound(&min_key, lo)?;
            let max = bound(&max_key, hi)?;
            if min > max {
                return Err(Error::user(format!("'{min_key}' is greater than '{max_key}'")));
            }
            field.int_range = (min, max);
        } else if matches!(dt, DataType::Float32 | DataType::Float64) {
            let (min_key, max_key) = (key("min"), key("max"));
            let min = o.parse::<f64>(&min_key, "a number")?.unwrap_or(0.0);
            let max = o.parse::<f64>(&max_key, "a number")?.unwrap_or(1_000_000.0);
            if min > max {
                return Err(Error::user(format!("'{min_key}' is greater than '{max_key}'")));
            }
            field.float_range = (min, max);
        } else if matches!(dt, DataType::Utf8 | DataType::Binary) {
            let len_key = key("length");
            if let Some(len) = o.parse::<usize>(&len_key, "a positive whole number")? {
                if len == 0 {
                    return Err(o.invalid(&len_key, "0", "a positive whole number"));
                }
                field.length = len;
            }
            field.var_len = o.bool(&key("var-len"))?.unwrap_or(false);
        } else if matches!(dt, DataType::Date32 | DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_)) {
            field.max_past = o.duration(&key("max-past"))?.unwrap_or(Duration::ZERO);
        }
        Ok(field)
    }

    /// How many rows a sequence field can give.
    pub fn sequence_len(&self) -> Option<u64> {
        match self.kind {
            Kind::Sequence { start, end } => Some(u64::try_from(end - start + 1).unwrap_or(u64::MAX)),
            _ => None,
        }
    }

    fn is_null(&self, rng: &mut SplitMix64) -> bool {
        self.null_rate > 0.0 && rng.unit() < self.null_rate
    }

    fn int_value(&self, row: &RowRef, rng: &mut SplitMix64) -> Option<i128> {
        match self.kind {
            Kind::Key => Some(row.key as i128),
            _ if self.is_null(rng) => None,
            Kind::Sequence { start, .. } => Some(start + row.ordinal as i128),
            Kind::Random => Some(rng.between(self.int_range.0, self.int_range.1)),
        }
    }

    fn build(&self, index: usize, rows: &[RowRef], now_nanos: i128) -> Result<ArrayRef> {
        let n = rows.len();
        let rng_of = |r: &RowRef| SplitMix64::derive(r.seed, index as u64, 0x5eed);
        macro_rules! ints {
            ($builder:ty, $t:ty) => {{
                let mut b = <$builder>::with_capacity(n);
                for r in rows {
                    b.append_option(self.int_value(r, &mut rng_of(r)).map(|v| v as $t));
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        let temporal = |r: &RowRef| -> Option<i128> {
            let mut rng = rng_of(r);
            if self.is_null(&mut rng) {
                return None;
            }
            let past = self.max_past.as_nanos() as i128;
            Some(now_nanos - if past > 0 { rng.between(0, past) } else { 0 })
        };
        let per_unit = |unit: &TimeUnit| -> i128 {
            match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            }
        };
        const DAY_NANOS: i128 = 86_400_000_000_000;
        Ok(match &self.data_type {
            DataType::Int8 => ints!(Int8Builder, i8),
            DataType::Int16 => ints!(Int16Builder, i16),
            DataType::Int32 => ints!(Int32Builder, i32),
            DataType::Int64 => ints!(Int64Builder, i64),
            DataType::UInt8 => ints!(UInt8Builder, u8),
            DataType::UInt16 => ints!(UInt16Builder, u16),
            DataType::UInt32 => ints!(UInt32Builder, u32),
            DataType::UInt64 => ints!(UInt64Builder, u64),
            DataType::Decimal128(p, s) => {
                let mut b = Decimal128Builder::with_capacity(n).with_precision_and_scale(*p, *s)?;
                for r in rows {
                    b.append_option(self.int_value(r, &mut rng_of(r)));
                }
                Arc::new(b.finish())
            }
            DataType::Decimal256(p, s) => {
                let mut b = Decimal256Builder::with_capacity(n).with_precision_and_scale(*p, *s)?;
                for r in rows {
                    b.append_option(self.int_value(r, &mut rng_of(r)).map(i256::from_i128));
                }
                Arc::new(b.finish())
            }
            DataType::Float32 | DataType::Float64 => {
                let (lo, hi) = self.float_range;
                let values: Float64Array = rows
                    .iter()
                    .map(|r| {
                        let mut rng = rng_of(r);
                        (!self.is_null(&mut rng)).then(|| lo + rng.unit() * (hi - lo))
                    })
                    .collect();
                if self.data_type == DataType::Float32 {
                    Arc::new(values.unary::<_, datafusion::arrow::datatypes::Float32Type>(|v| v as f32))
                } else {
                    Arc::new(values)
                }
            }
            DataType::Boolean => {
                let values: BooleanArray = rows
                    .iter()
                    .map(|r| {
                        let mut rng = rng_of(r);
                        (!self.is_null(&mut rng)).then(|| rng.next_u64() & 1 == 1)
                    })
                    .collect();
                Arc::new(values)
            }
            DataType::Utf8 => {
                const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                let mut b = StringBuilder::with_capacity(n, n * self.length.min(64));
                let mut buf = String::with_capacity(self.length);
                for r in rows {
                    let mut rng = rng_of(r);
                    match self.kind {
                        Kind::Sequence { .. } | Kind::Key => match self.int_value(r, &mut rng) {
                            Some(v) => b.append_value(v.to_string()),
                            None => b.append_null(),
                        },
                        Kind::Random => {
                            if self.is_null(&mut rng) {
                                b.append_null();
                                continue;
                            }
                            let len =
                                if self.var_len { 1 + rng.below(self.length as u64) as usize } else { self.length };
                            buf.clear();
                            buf.extend(
                                (0..len).map(|_| ALPHANUMERIC[rng.below(ALPHANUMERIC.len() as u64) as usize] as char),
                            );
                            b.append_value(&buf);
                        }
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Binary => {
                let mut b = BinaryBuilder::with_capacity(n, n * self.length.min(64));
                let mut buf = Vec::with_capacity(self.length);
                for r in rows {
                    let mut rng = rng_of(r);
                    if self.is_null(&mut rng) {
                        b.append_null();
                        continue;
                    }
                    let len = if self.var_len { 1 + rng.below(self.length as u64) as usize } else { self.length };
                    buf.clear();
                    buf.extend((0..len).map(|_| rng.next_u64() as u8));
                    b.append_value(&buf);
                }
                Arc::new(b.finish())
            }
            DataType::Date32 => {
                let values: Date32Array =
                    rows.iter().map(|r| temporal(r).map(|t| t.div_euclid(DAY_NANOS) as i32)).collect();
                Arc::new(values)
            }
            DataType::Timestamp(unit, tz) => {
                let values: Int64Array =
                    rows.iter().map(|r| temporal(r).map(|t| (t / per_unit(unit)) as i64)).collect();
                datafusion::arrow::compute::cast(&values, &DataType::Timestamp(*unit, tz.clone()))?
            }
            DataType::Time32(unit) => {
                let values: Int32Array = rows
                    .iter()
                    .map(|r| temporal(r).map(|t| (t.rem_euclid(DAY_NANOS) / per_unit(unit)) as i32))
                    .collect();
                datafusion::arrow::compute::cast(&values, &DataType::Time32(*unit))?
            }
            DataType::Time64(unit) => {
                let values: Int64Array = rows
                    .iter()
                    .map(|r| temporal(r).map(|t| (t.rem_euclid(DAY_NANOS) / per_unit(unit)) as i64))
                    .collect();
                datafusion::arrow::compute::cast(&values, &DataType::Time64(*unit))?
            }
            other => {
                return Err(Error::internal(format!("datagen accepted unsupported type {other}")));
            }
        })
    }
}

/// `text` as a whole number of units of 10^-scale ("12.5" at scale 2 → 1250).
fn parse_scaled(text: &str, scale: u32) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = t.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, t));
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > scale as usize {
        return None;
    }
    let digits = format!("{int}{frac:0<width$}", width = scale as usize);
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i128 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// One generated row: everything its values depend on.
#[derive(Debug, Clone, Copy)]
struct RowRef {
    seed: u64,
    ordinal: u64,
    key: u64,
}

enum Event {
    Insert(RowRef),
    Update(RowRef, RowRef),
    Delete(RowRef),
}

pub struct RowGenerator {
    config: Arc<DatagenConfig>,
    seed: u64,
    events: u64,
    limit: Option<u64>,
    event_rng: SplitMix64,
    live: HashMap<u64, RowRef>,
}

impl RowGenerator {
    pub fn new(config: Arc<DatagenConfig>, seed: u64) -> Self {
        let sequence_limit = config.fields.iter().filter_map(|f| f.sequence_len()).min();
        let limit = match (config.number_of_rows, sequence_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RowGenerator { config, seed, events: 0, limit, event_rng: SplitMix64::new(seed), live: HashMap::new() }
    }

    /// Events generated so far, and how many there will be in all when bounded.
    pub fn events(&self) -> (u64, Option<u64>) {
        (self.events, self.limit)
    }

    pub fn position(&self) -> DatagenPosition {
        DatagenPosition { seed: self.seed, events: self.events }
    }

    /// Generates and drops `events` events, to resume where a previous run stopped.
    pub fn skip(&mut self, events: u64) {
        for _ in 0..events {
            if self.next_event().is_none() {
                break;
            }
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        if self.limit.is_some_and(|l| self.events >= l) {
            return None;
        }
        let ordinal = self.events;
        self.events += 1;
        let row_seed = SplitMix64::derive(self.seed, ordinal, 0x0123).next_u64();
        let Some(changelog) = &self.config.changelog else {
            return Some(Event::Insert(RowRef { seed: row_seed, ordinal, key: 0 }));
        };
        let key = self.event_rng.below(changelog.key_space) + 1;
        let new = RowRef { seed: row_seed, ordinal, key };
        match self.live.get(&key).copied() {
            None => {
                self.live.insert(key, new);
                Some(Event::Insert(new))
            }
            Some(old) if self.event_rng.unit() < changelog.delete_ratio => {
                self.live.remove(&key);
                Some(Event::Delete(old))
            }
            Some(old) => {
                self.live.insert(key, new);
                Some(Event::Update(old, new))
            }
        }
    }

    /// About `target` rows (an update pair is never split); `None` once exhausted.
    pub fn next_batch(&mut self, target: usize) -> Result<Option<ChangeBatch>> {
        let upsert = self.config.changelog.as_ref().is_some_and(|c| c.mode == ChangelogMode::Upsert);
        let mut rows = Vec::with_capacity(target + 1);
        let mut kinds = Vec::with_capacity(target + 1);
        while rows.len() < target {
            let Some(event) = self.next_event() else { break };
            match event {
                Event::Insert(r) => {
                    rows.push(r);
                    kinds.push(RowKind::Insert);
                }
                Event::Update(old, new) => {
                    if !upsert {
                        rows.push(old);
                        kinds.push(RowKind::UpdateBefore);
                    }
                    rows.push(new);
                    kinds.push(RowKind::UpdateAfter);
                }
                Event::Delete(old) => {
                    rows.push(old);
                    kinds.push(RowKind::Delete);
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let now_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        let columns = self
            .config
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| f.build(i, &rows, now_nanos))
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(self.config.schema.clone(), columns)?;
        Ok(Some(ChangeBatch::from_kinds(batch, &kinds)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_parsing() {
        assert_eq!(parse_scaled("12.5", 2), Some(1250));
        assert_eq!(parse_scaled("-3", 1), Some(-30));
        assert_eq!(parse_scaled("1.234", 2), None);
        assert_eq!(parse_scaled("abc", 0), None);
    }
}
