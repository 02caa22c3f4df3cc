//! The shape every Flink built-in function here shares, so each one is a signature, a return type
//! and a row loop instead of a hand-written `ScalarUDFImpl`.
//!
//! Arguments arrive coerced to the types the signature names; [`Call`] hands them out as scalars
//! or arrays without copying, and [`Func`] turns the result back into a scalar when every argument
//! was one (so a constant call stays a constant for the expressions around it). A function whose
//! literal arguments can be wrong (a format pattern, a regular expression, a charset) checks them
//! while the query is planned, so a bad job fails before it starts.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::types::{logical_binary, logical_float64, logical_int64, logical_string, NativeType};
use datafusion::common::{exec_datafusion_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    TypeSignatureClass, Volatility,
};

use crate::zone::Zone;
use crate::{finish, IntArg, StrArg};

/// Computes the result rows of one call.
pub(crate) type Eval = fn(&Call<'_>) -> Result<ArrayRef>;

/// Validates the literal arguments of a call while it is planned (`None` where not a literal).
pub(crate) type Check = fn(&[Option<&ScalarValue>]) -> std::result::Result<(), String>;

/// How a function's result type follows from its argument types.
#[derive(Clone)]
pub(crate) enum Returns {
    Fixed(DataType),
    /// The type of argument `n`.
    Arg(usize),
    With(fn(&[DataType]) -> Result<DataType>),
    /// Computed from the argument types and the literal arguments (`None` where not literal).
    WithLiterals(fn(&[DataType], &[Option<&ScalarValue>]) -> Result<DataType>),
}

/// One function: a name (plus aliases), a signature, a result type and the row loop.
pub(crate) struct Func {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    returns: Returns,
    eval: Eval,
    check: Option<Check>,
    coerce: Option<Coerce>,
    /// Metadata the result field carries (how JSON_OBJECT knows a value is JSON it built).
    metadata: Option<(&'static str, &'static str)>,
}

/// Coerces the argument types of a `Signature::user_defined` function.
pub(crate) type Coerce = fn(&[DataType]) -> Result<Vec<DataType>>;

impl Func {
    pub(crate) fn new(name: &'static str, signature: Signature, returns: Returns, eval: Eval) -> Self {
        Func { name, aliases: Vec::new(), signature, returns, eval, check: None, coerce: None, metadata: None }
    }

    pub(crate) fn coerce(mut self, coerce: Coerce) -> Self {
        self.coerce = Some(coerce);
        self
    }

    pub(crate) fn metadata(mut self, key: &'static str, value: &'static str) -> Self {
        self.metadata = Some((key, value));
        self
    }

    pub(crate) fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_string());
        self
    }

    pub(crate) fn check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    pub(crate) fn udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
}

impl fmt::Debug for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Func").field("name", &self.name).field("signature", &self.signature).finish()
    }
}

// Functions are identified by name: two `Func`s of one name are the same function.
impl PartialEq for Func {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.signature == other.signature
    }
}

impl Eq for Func {}

impl Hash for Func {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Func {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match self.coerce {
            Some(coerce) => coerce(arg_types),
            None => Err(DataFusionError::Internal(format!("{} has no user-defined coercion", self.name))),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &self.returns {
            Returns::Fixed(t) => Ok(t.clone()),
            Returns::Arg(n) => arg_types
                .get(*n)
                .cloned()
                .ok_or_else(|| exec_datafusion_err!("{}: missing argument {}", self.name, n + 1)),
            Returns::With(f) => f(arg_types),
            Returns::WithLiterals(f) => f(arg_types, &vec![None; arg_types.len()]),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(check) = self.check {
            check(args.scalar_arguments)
                .map_err(|e| DataFusionError::Plan(format!("{}: {e}", self.name.to_uppercase())))?;
        }
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let data_type = match &self.returns {
            Returns::WithLiterals(f) => f(&types, args.scalar_arguments)?,
            _ => self.return_type(&types)?,
        };
        let field = Field::new(self.name, data_type, true);
        Ok(Arc::new(match self.metadata {
            Some((k, v)) => field.with_metadata([(k.to_string(), v.to_string())].into()),
            None => field,
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let call = Call {
            name: self.name,
            args: &args.args,
            arg_fields: &args.arg_fields,
            rows: if scalar { 1 } else { args.number_rows },
            return_type: args.return_field.data_type(),
            config: &args.config_options,
        };
        let out = (self.eval)(&call)?;
        finish(out, scalar)
    }
}

/// One invocation: the arguments of a batch and what the row loop needs around them.
pub(crate) struct Call<'a> {
    pub(crate) name: &'static str,
    args: &'a [ColumnarValue],
    arg_fields: &'a [FieldRef],
    /// Rows to compute: the batch's, or 1 when every argument is a scalar.
    pub(crate) rows: usize,
    pub(crate) return_type: &'a DataType,
    config: &'a ConfigOptions,
}

impl<'a> Call<'a> {
    pub(crate) fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The metadata value of argument `i`'s field under `key`.
    pub(crate) fn arg_metadata(&self, i: usize, key: &str) -> Option<&'a str> {
        self.arg_fields.get(i).and_then(|f| f.metadata().get(key)).map(String::as_str)
    }

    pub(crate) fn arg_type(&self, i: usize) -> DataType {
        self.args.get(i).map(|a| a.data_type()).unwrap_or(DataType::Null)
    }

    pub(crate) fn value(&self, i: usize) -> Result<&'a ColumnarValue> {
        self.args.get(i).ok_or_else(|| exec_datafusion_err!("{}: missing argument {}", self.name, i + 1))
    }

    pub(crate) fn str(&self, i: usize) -> Result<StrArg<'a>> {
        StrArg::new(self.name, self.value(i)?)
    }

    /// A string argument that may be left out: `default` then.
    pub(crate) fn str_or(&self, i: usize, default: &'static str) -> Result<StrArg<'a>> {
        if i < self.args.len() {
            self.str(i)
        } else {
            Ok(StrArg::Scalar(Some(default)))
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<IntArg<'a>> {
        IntArg::new(self.name, self.value(i)?)
    }

    pub(crate) fn float(&self, i: usize) -> Result<F64Arg<'a>> {
        match self.value(i)? {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Ok(F64Arg::Scalar(*v)),
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(F64Arg::Scalar(None)),
            ColumnarValue::Array(a) if a.data_type() == &DataType::Float64 => {
                Ok(F64Arg::Array(a.as_primitive::<Float64Type>()))
            }
            ColumnarValue::Array(a) if a.data_type() == &DataType::Null => Ok(F64Arg::Scalar(None)),
            other => Err(self.error(format!("expected a DOUBLE argument, got {}", other.data_type()))),
        }
    }

    pub(crate) fn bytes(&self, i: usize) -> Result<BinArg<'a>> {
        match self.value(i)? {
            ColumnarValue::Scalar(
                ScalarValue::Binary(v) | ScalarValue::LargeBinary(v) | ScalarValue::BinaryView(v),
            ) => Ok(BinArg::Scalar(v.as_deref())),
            ColumnarValue::Scalar(ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v)) => {
                Ok(BinArg::Scalar(v.as_deref().map(str::as_bytes)))
            }
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(BinArg::Scalar(None)),
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Binary => Ok(BinArg::Binary(a.as_binary::<i32>())),
                DataType::Null => Ok(BinArg::Scalar(None)),
                _ => Ok(BinArg::Str(StrArg::new(self.name, self.value(i)?)?)),
            },
            other => Err(self.error(format!("expected a BYTES argument, got {}", other.data_type()))),
        }
    }

    /// Argument `i` as an array of `rows` rows (a scalar is repeated).
    pub(crate) fn array(&self, i: usize) -> Result<ArrayRef> {
        self.value(i)?.to_array(self.rows)
    }

    /// The literal value of argument `i` when it is a scalar.
    pub(crate) fn scalar(&self, i: usize) -> Option<&'a ScalarValue> {
        match self.args.get(i) {
            Some(ColumnarValue::Scalar(v)) => Some(v),
            _ => None,
        }
    }

    /// The session time zone (`datafusion.execution.time_zone`; UTC when unset).
    pub(crate) fn zone(&self) -> Result<Zone> {
        Zone::of_session(self.config).map_err(|e| self.error(e))
    }

    /// An execution error naming the function.
    pub(crate) fn error(&self, msg: impl fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!("{}: {msg}", self.name.to_uppercase()))
    }
}

/// A DOUBLE argument after coercion.
#[derive(Clone, Copy)]
pub(crate) enum F64Arg<'a> {
    Scalar(Option<f64>),
    Array(&'a Float64Array),
}

impl F64Arg<'_> {
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<f64> {
        match self {
            Self::Scalar(v) => *v,
            Self::Array(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// A BYTES argument (strings are read as their UTF-8 bytes).
#[derive(Clone, Copy)]
pub(crate) enum BinArg<'a> {
    Scalar(Option<&'a [u8]>),
    Binary(&'a BinaryArray),
    Str(StrArg<'a>),
}

impl<'a> BinArg<'a> {
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<&'a [u8]> {
        match self {
            Self::Scalar(v) => *v,
            Self::Binary(a) => a.is_valid(row).then(|| a.value(row)),
            Self::Str(s) => s.get(row).map(str::as_bytes),
        }
    }
}

/// Signature building blocks: Flink's argument families, coerced to one Arrow type each.
pub(crate) mod sig {
    use super::*;

    /// Any string (CHAR, VARCHAR, STRING), passed as is.
    pub(crate) fn string() -> Coercion {
        Coercion::new_exact(TypeSignatureClass::Native(logical_string()))
    }

    /// Any integer, passed as BIGINT.
    pub(crate) fn int() -> Coercion {
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            vec![TypeSignatureClass::Integer],
            NativeType::Int64,
        )
    }

    /// Any number, passed as DOUBLE.
    pub(crate) fn double() -> Coercion {
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_float64()),
            vec![TypeSignatureClass::Numeric],
            NativeType::Float64,
        )
    }

    /// BYTES (BINARY, VARBINARY).
    pub(crate) fn bytes() -> Coercion {
        Coercion::new_exact(TypeSignatureClass::Native(logical_binary()))
    }

    /// Exactly these argument lists.
    pub(crate) fn one_of(lists: Vec<Vec<Coercion>>, volatility: Volatility) -> Signature {
        let signature = |list: Vec<Coercion>| {
            if list.is_empty() {
                TypeSignature::Nullary
            } else {
                TypeSignature::Coercible(list)
            }
        };
        let mut lists: Vec<TypeSignature> = lists.into_iter().map(signature).collect();
        if lists.len() == 1 {
            return Signature::new(lists.remove(0), volatility);
        }
        Signature::one_of(lists, volatility)
    }

    /// One argument list.
    pub(crate) fn args(list: Vec<Coercion>) -> Signature {
        Signature::coercible(list, Volatility::Immutable)
    }

    /// `n` strings.
    pub(crate) fn strings(n: usize) -> Signature {
        args(vec![string(); n])
    }
}
