//! Growable columns the decoders fill value by value and turn into Arrow arrays at `finish`.
//! Unlike Arrow's builders they can be truncated, so a message that fails half-way is rolled
//! back without a trace.

use std::sync::Arc;

use datafusion::arrow::array::{make_array, ArrayData, ArrayRef};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use datafusion::arrow::datatypes::{i256, DataType, Field};

use crate::error::{Error, Result};
use crate::sql::types::flink_type_name;

/// The values of one column (or nested field) decoded so far.
pub(crate) struct Column {
    data_type: DataType,
    /// Whether the column may hold NULL (nested fields declared NOT NULL may not).
    pub(crate) nullable: bool,
    valid: Vec<bool>,
    pub(crate) data: Data,
}

pub(crate) enum Data {
    Null,
    Bool(Vec<bool>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I128(Vec<i128>),
    I256(Vec<i256>),
    /// Utf8 and Binary: values end at `offsets[i + 1]`.
    Bytes {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
    },
    Map {
        offsets: Vec<i32>,
        keys: Box<Column>,
        values: Box<Column>,
    },
    Struct {
        fields: Names,
        children: Vec<Column>,
    },
}

/// Field names with a lookup that favours the next field in declared order.
pub(crate) struct Names {
    names: Vec<String>,
    index: std::collections::HashMap<String, usize>,
}

impl Names {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Names { names, index }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The index of `key`; `hint` is tried first (fields usually come in declared order).
    pub(crate) fn find(&self, key: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| n == key) {
            return Some(hint);
        }
        if self.names.len() <= 8 {
            return self.names.iter().position(|n| n == key);
        }
        self.index.get(key).copied()
    }
}

/// A value a column cannot take; the caller says where.
pub(crate) type ValueResult = std::result::Result<(), String>;

impl Column {
    /// A column for values of `data_type`; fails for types no JSON format reads.
    pub(crate) fn new(data_type: &DataType, nullable: bool) -> Result<Column> {
        let data = match data_type {
            DataType::Null => Data::Null,
            DataType::Boolean => Data::Bool(Vec::new()),
            DataType::Int8 => Data::I8(Vec::new()),
            DataType::Int16 => Data::I16(Vec::new()),
            DataType::Int32 | DataType::Date32 | DataType::Time32(_) => Data::I32(Vec::new()),
            DataType::Int64 | DataType::Time64(_) | DataType::Timestamp(_, _) => Data::I64(Vec::new()),
            DataType::UInt8 => Data::U8(Vec::new()),
            DataType::UInt16 => Data::U16(Vec::new()),
            DataType::UInt32 => Data::U32(Vec::new()),
            DataType::UInt64 => Data::U64(Vec::new()),
            DataType::Float32 => Data::F32(Vec::new()),
            DataType::Float64 => Data::F64(Vec::new()),
            DataType::Decimal128(_, _) => Data::I128(Vec::new()),
            DataType::Decimal256(_, _) => Data::I256(Vec::new()),
            DataType::Utf8 | DataType::Binary => Data::Bytes { offsets: vec![0], bytes: Vec::new() },
            DataType::List(item) => {
                Data::List { offsets: vec![0], item: Box::new(Column::new(item.data_type(), item.is_nullable())?) }
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => Data::Map {
                    offsets: vec![0],
                    keys: Box::new(Column::new(kv[0].data_type(), false)?),
                    values: Box::new(Column::new(kv[1].data_type(), kv[1].is_nullable())?),
                },
                _ => return Err(Error::internal(format!("map type {data_type} has no key/value entries"))),
            },
            DataType::Struct(fields) => Data::Struct {
                fields: Names::new(fields.iter().map(|f| f.name().clone()).collect()),
                children: fields.iter().map(|f| Column::new(f.data_type(), f.is_nullable())).collect::<Result<_>>()?,
            },
            other => {
                return Err(Error::user(format!(
                    "type {} has no JSON form cdc-sql reads or writes",
                    flink_type_name(other)
                )))
            }
        };
        Ok(Column { data_type: data_type.clone(), nullable, valid: Vec::new(), data })
    }

    pub(crate) fn data_type(&self) -> &DataType {
        &self.data_type
    }

    pub(crate) fn len(&self) -> usize {
        self.valid.len()
    }

    /// Drops every value from `len` on.
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.valid.len() {
            return;
        }
        self.valid.truncate(len);
        match &mut self.data {
            Data::Null => {}
            Data::Bool(v) => v.truncate(len),
            Data::I8(v) => v.truncate(len),
            Data::I16(v) => v.truncate(len),
            Data::I32(v) => v.truncate(len),
            Data::I64(v) => v.truncate(len),
            Data::U8(v) => v.truncate(len),
            Data::U16(v) => v.truncate(len),
            Data::U32(v) => v.truncate(len),
            Data::U64(v) => v.truncate(len),
            Data::F32(v) => v.truncate(len),
            Data::F64(v) => v.truncate(len),
            Data::I128(v) => v.truncate(len),
            Data::I256(v) => v.truncate(len),
            Data::Bytes { offsets, bytes } => {
                offsets.truncate(len + 1);
                bytes.truncate(offsets[len] as usize);
            }
            Data::List { offsets, item } => {
                offsets.truncate(len + 1);
                item.truncate(offsets[len] as usize);
            }
            Data::Map { offsets, keys, values } => {
                offsets.truncate(len + 1);
                keys.truncate(offsets[len] as usize);
                values.truncate(offsets[len] as usize);
            }
            Data::Struct { children, .. } => children.iter_mut().for_each(|c| c.truncate(len)),
        }
    }

    /// A NULL where the value stands for the column's own NULL; fails for NOT NULL nested fields.
    pub(crate) fn push_null(&mut self) -> ValueResult {
        if !self.nullable {
            return Err("is declared NOT NULL but the message has no value for it".into());
        }
        self.push_placeholder();
        Ok(())
    }

    /// A NULL slot under a NULL parent (a struct's children), allowed whatever the field declares.
    fn push_placeholder(&mut self) {
        self.valid.push(false);
        match &mut self.data {
            Data::Null => {}
            Data::Bool(v) => v.push(false),
            Data::I8(v) => v.push(0),
            Data::I16(v) => v.push(0),
            Data::I32(v) => v.push(0),
            Data::I64(v) => v.push(0),
            Data::U8(v) => v.push(0),
            Data::U16(v) => v.push(0),
            Data::U32(v) => v.push(0),
            Data::U64(v) => v.push(0),
            Data::F32(v) => v.push(0.0),
            Data::F64(v) => v.push(0.0),
            Data::I128(v) => v.push(0),
            Data::I256(v) => v.push(i256::ZERO),
            Data::Bytes { offsets, .. } | Data::List { offsets, .. } | Data::Map { offsets, .. } => {
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last);
            }
            Data::Struct { children, .. } => children.iter_mut().for_each(|c| c.push_placeholder()),
        }
    }

    /// Marks the value just appended to the typed storage as present.
    fn present(&mut self) {
        self.valid.push(true);
    }

    pub(crate) fn push_bool(&mut self, b: bool) -> ValueResult {
        match &mut self.data {
            Data::Bool(v) => v.push(b),
            _ => return Err(self.wrong("a boolean")),
        }
        self.present();
        Ok(())
    }

    /// An integer into any integer column, checked against its range.
    pub(crate) fn push_int(&mut self, x: i128) -> ValueResult {
        let range = || "is out of range".to_string();
        match &mut self.data {
            Data::I8(v) => v.push(i8::try_from(x).map_err(|_| range())?),
            Data::I16(v) => v.push(i16::try_from(x).map_err(|_| range())?),
            Data::I32(v) => v.push(i32::try_from(x).map_err(|_| range())?),
            Data::I64(v) => v.push(i64::try_from(x).map_err(|_| range())?),
            Data::U8(v) => v.push(u8::try_from(x).map_err(|_| range())?),
            Data::U16(v) => v.push(u16::try_from(x).map_err(|_| range())?),
            Data::U32(v) => v.push(u32::try_from(x).map_err(|_| range())?),
            Data::U64(v) => v.push(u64::try_from(x).map_err(|_| range())?),
            _ => return Err(self.wrong("an integer")),
        }
        self.present();
        Ok(())
    }

    /// The i32 storage of DATE and TIME(0–3) columns, or the i64 one of TIME(4–9) and TIMESTAMP.
    pub(crate) fn push_temporal(&mut self, x: i64) -> ValueResult {
        match &mut self.data {
            Data::I32(v) => v.push(i32::try_from(x).map_err(|_| "is out of range".to_string())?),
            Data::I64(v) => v.push(x),
            _ => return Err(self.wrong("a temporal value")),
        }
        self.present();
        Ok(())
    }

    pub(crate) fn push_f64(&mut self, x: f64) -> ValueResult {
        match &mut self.data {
            Data::F64(v) => v.push(x),
            Data::F32(v) => v.push(x as f32),
            _ => return Err(self.wrong("a float")),
        }
        self.present();
        Ok(())
    }

    pub(crate) fn push_f32(&mut self, x: f32) -> ValueResult {
        match &mut self.data {
            Data::F32(v) => v.push(x),
            Data::F64(v) => v.push(x as f64),
            _ => return Err(self.wrong("a float")),
        }
        self.present();
        Ok(())
    }

    /// An unscaled decimal already checked against the column's precision.
    pub(crate) fn push_decimal(&mut self, x: i256) -> ValueResult {
        match &mut self.data {
            Data::I128(v) => v.push(x.to_i128().ok_or_else(|| "is out of range".to_string())?),
            Data::I256(v) => v.push(x),
            _ => return Err(self.wrong("a decimal")),
        }
        self.present();
        Ok(())
    }

    /// Text into a STRING column or bytes into a BYTES column.
    pub(crate) fn push_bytes(&mut self, b: &[u8]) -> ValueResult {
        match &mut self.data {
            Data::Bytes { offsets, bytes } => {
                bytes.extend_from_slice(b);
                let end = i32::try_from(bytes.len()).map_err(|_| {
                    "makes one batch hold more than 2 GiB of text; decode fewer messages per batch".to_string()
                })?;
                offsets.push(end);
            }
            _ => return Err(self.wrong("text")),
        }
        self.present();
        Ok(())
    }

    /// Starts a list or map value; close it with [`Column::end_nested`].
    pub(crate) fn nested_len(&self) -> usize {
        match &self.data {
            Data::List { item, .. } => item.len(),
            Data::Map { keys, .. } => keys.len(),
            _ => 0,
        }
    }

    /// Ends the list or map value whose elements were appended to the children.
    pub(crate) fn end_nested(&mut self) -> ValueResult {
        let len = self.nested_len();
        match &mut self.data {
            Data::List { offsets, .. } | Data::Map { offsets, .. } => {
                offsets.push(i32::try_from(len).map_err(|_| "has more than 2^31 elements in one batch".to_string())?)
            }
            _ => return Err(self.wrong("a list")),
        }
        self.present();
        Ok(())
    }

    /// Ends a struct value whose children were all appended.
    pub(crate) fn end_struct(&mut self) {
        self.present();
    }

    fn wrong(&self, what: &str) -> String {
        format!("cannot hold {what} (column type {})", flink_type_name(&self.data_type))
    }

    /// The values so far as an Arrow array; the column starts empty again.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef> {
        Ok(make_array(self.finish_data()?))
    }

    fn finish_data(&mut self) -> Result<ArrayData> {
        let len = self.valid.len();
        let valid = std::mem::take(&mut self.valid);
        let nulls = if valid.iter().all(|v| *v) { None } else { Some(NullBuffer::new(BooleanBuffer::from(valid))) };
        let builder = ArrayData::builder(self.data_type.clone()).len(len).nulls(nulls);
        fn take<T: Default>(v: &mut T) -> T {
            std::mem::take(v)
        }
        let offsets_buffer = |offsets: &mut Vec<i32>| {
            let o = std::mem::replace(offsets, vec![0]);
            Buffer::from_vec(o)
        };
        let builder = match &mut self.data {
            Data::Null => ArrayData::builder(DataType::Null).len(len),
            Data::Bool(v) => builder.add_buffer(BooleanBuffer::from(take(v)).into_inner()),
            Data::I8(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::I16(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::I32(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::I64(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::U8(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::U16(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::U32(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::U64(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::F32(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::F64(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::I128(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::I256(v) => builder.add_buffer(Buffer::from_vec(take(v))),
            Data::Bytes { offsets, bytes } => {
                builder.add_buffer(offsets_buffer(offsets)).add_buffer(Buffer::from_vec(take(bytes)))
            }
            Data::List { offsets, item } => {
                builder.add_buffer(offsets_buffer(offsets)).add_child_data(item.finish_data()?)
            }
            Data::Map { offsets, keys, values } => {
                let DataType::Map(entries, _) = &self.data_type else {
                    return Err(Error::internal("map column without a map type"));
                };
                let n = keys.len();
                let kv = ArrayData::builder(entries.data_type().clone())
                    .len(n)
                    .add_child_data(keys.finish_data()?)
                    .add_child_data(values.finish_data()?)
                    .build()?;
                builder.add_buffer(offsets_buffer(offsets)).add_child_data(kv)
            }
            Data::Struct { children, .. } => {
                let mut b = builder;
                for c in children.iter_mut() {
                    b = b.add_child_data(c.finish_data()?);
                }
                b
            }
        };
        Ok(builder.build()?)
    }
}

/// The fields of a schema as columns to fill (every top-level column may hold NULL: a Debezium
/// delete of a table without REPLICA IDENTITY FULL, for one, carries only the key).
pub(crate) fn columns_of(fields: &[Arc<Field>]) -> Result<Vec<Column>> {
    fields
        .iter()
        .map(|f| {
            Column::new(f.data_type(), true)
                .map_err(|e| e.context(format!("column `{}` ({})", f.name(), flink_type_name(f.data_type()))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Fields;

    #[test]
    fn truncation_rolls_back_nested_values() {
        let dt = DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(Fields::from(vec![Field::new("s", DataType::Utf8, true)])),
            true,
        )));
        let mut c = Column::new(&dt, true).unwrap();
        let push_row = |c: &mut Column, texts: &[&str]| {
            let Data::List { item, .. } = &mut c.data else { panic!() };
            for t in texts {
                let Data::Struct { children, .. } = &mut item.data else { panic!() };
                children[0].push_bytes(t.as_bytes()).unwrap();
                item.end_struct();
            }
            c.end_nested().unwrap();
        };
        push_row(&mut c, &["a", "b"]);
        push_row(&mut c, &["ccc"]);
        c.truncate(1);
        push_row(&mut c, &["d"]);
        c.push_null().unwrap();
        let a = c.finish().unwrap();
        let list = a.as_list::<i32>();
        assert_eq!(list.len(), 3);
        assert!(list.is_null(2));
        let second = list.value(1);
        let s = second.as_struct().column(0).as_string::<i32>().value(0).to_string();
        assert_eq!(s, "d");
        assert_eq!(c.len(), 0, "finish starts over");
    }

    #[test]
    fn integers_are_range_checked_and_not_null_fields_refuse_null() {
        let mut c = Column::new(&DataType::Int8, false).unwrap();
        assert_eq!(c.push_int(200).unwrap_err(), "is out of range");
        assert!(c.push_null().is_err());
        c.push_int(-5).unwrap();
        let a = c.finish().unwrap();
        assert_eq!(a.as_primitive::<datafusion::arrow::datatypes::Int8Type>().value(0), -5);
        let mut d = Column::new(&DataType::Date32, true).unwrap();
        d.push_temporal(19_000).unwrap();
        d.push_null().unwrap();
        let a = d.finish().unwrap();
        assert_eq!(a.data_type(), &DataType::Date32);
        assert_eq!(a.null_count(), 1);
    }
}
