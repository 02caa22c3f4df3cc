//! `mask` and `mask_email`: PII masking for CDC pipelines that copy production data downstream.
//!
//! Whenever a rule would leave nothing masked, the whole value is masked instead: a masking
//! function that sometimes returns its input verbatim leaks exactly the short values (PINs,
//! initials, tiny local parts) that are easiest to re-identify. Masked values keep their length
//! in characters, so downstream column widths and length checks still hold.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::types::{logical_int64, logical_string, NativeType};
use datafusion::common::utils::take_function_args;
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_STRING;
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignature, TypeSignatureClass, Volatility,
};

use crate::{finish, IntArg, StrArg};

const MASK: &str = "mask";
const MASK_EMAIL: &str = "mask_email";

fn string_coercion() -> Coercion {
    Coercion::new_exact(TypeSignatureClass::Native(logical_string()))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MaskFunc {
    signature: Signature,
}

impl MaskFunc {
    pub(crate) fn new() -> Self {
        let int = Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            vec![TypeSignatureClass::Integer],
            NativeType::Int64,
        );
        let three = vec![string_coercion(), int.clone(), int];
        let mut four = three.clone();
        four.push(string_coercion());
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Coercible(three), TypeSignature::Coercible(four)],
                Volatility::Immutable,
            ),
        }
    }
}

/// The error is a bare message so it can become a planning or an execution error.
fn keep_count(what: &str, value: i64) -> std::result::Result<usize, String> {
    usize::try_from(value).map_err(|_| format!("{MASK}: {what} must be >= 0, got {value}"))
}

fn mask_char(value: &str) -> std::result::Result<char, String> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!("{MASK}: mask_char must be exactly one character, got '{value}'")),
    }
}

impl ScalarUDFImpl for MaskFunc {
    fn name(&self) -> &str {
        MASK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // Literal arguments are checked while planning so a bad job fails before it starts.
        for (i, what) in [(1, "keep_first"), (2, "keep_last")] {
            if let Some(Some(ScalarValue::Int64(Some(v)))) = args.scalar_arguments.get(i) {
                if let Err(e) = keep_count(what, *v) {
                    return plan_err!("{e}");
                }
            }
        }
        if let Some(Some(v)) = args.scalar_arguments.get(3) {
            if let Some(Some(c)) = v.try_as_str() {
                if let Err(e) = mask_char(c) {
                    return plan_err!("{e}");
                }
            }
        }
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(MASK, DataType::Utf8, nullable)))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (s, first, last, mask) = match args.args.as_slice() {
            [s, first, last] => (s, first, last, None),
            [s, first, last, mask] => (s, first, last, Some(mask)),
            other => {
                return exec_err!("{MASK} expects 3 or 4 arguments, got {}", other.len());
            }
        };
        let s = StrArg::new(MASK, s)?;
        let first = IntArg::new(MASK, first)?;
        let last = IntArg::new(MASK, last)?;
        let mask = match mask {
            Some(m) => StrArg::new(MASK, m)?,
            None => StrArg::Scalar(Some("*")),
        };
        let scalar = s.is_scalar() && first.is_scalar() && last.is_scalar() && mask.is_scalar();
        let rows = if scalar { 1 } else { args.number_rows };
        let mut out = StringBuilder::with_capacity(rows, s.data_len());
        for i in 0..rows {
            let (Some(v), Some(f), Some(l), Some(m)) = (s.get(i), first.get(i), last.get(i), mask.get(i)) else {
                out.append_null();
                continue;
            };
            let f = keep_count("keep_first", f).map_err(|e| exec_datafusion_err!("{e}"))?;
            let l = keep_count("keep_last", l).map_err(|e| exec_datafusion_err!("{e}"))?;
            let m = mask_char(m).map_err(|e| exec_datafusion_err!("{e}"))?;
            write_masked(v, f, l, m, &mut out).map_err(|e| write_error(MASK, e))?;
            out.append_value("");
        }
        finish(Arc::new(out.finish()) as ArrayRef, scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_STRING,
                "Replaces every character except the first keep_first and the last keep_last \
                 with mask_char (default '*'), counting Unicode characters. If that would mask \
                 nothing (keep_first + keep_last >= length), the whole value is masked.",
                "mask(s, keep_first, keep_last [, mask_char])",
            )
            .with_sql_example("mask('4111111111111111', 0, 4) -- ************1111")
            .with_argument("s", "String to mask.")
            .with_argument("keep_first", "Leading characters to keep (>= 0).")
            .with_argument("keep_last", "Trailing characters to keep (>= 0).")
            .with_argument("mask_char", "One character used for masking; default '*'.")
            .build()
        }))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MaskEmailFunc {
    signature: Signature,
}

impl MaskEmailFunc {
    pub(crate) fn new() -> Self {
        Self { signature: Signature::coercible(vec![string_coercion()], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MaskEmailFunc {
    fn name(&self) -> &str {
        MASK_EMAIL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(MASK_EMAIL, DataType::Utf8, nullable)))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [s] = take_function_args(MASK_EMAIL, args.args.iter())?;
        let s = StrArg::new(MASK_EMAIL, s)?;
        let scalar = s.is_scalar();
        let rows = if scalar { 1 } else { args.number_rows };
        let mut out = StringBuilder::with_capacity(rows, s.data_len());
        for i in 0..rows {
            let Some(v) = s.get(i) else {
                out.append_null();
                continue;
            };
            write_masked_email(v, &mut out).map_err(|e| write_error(MASK_EMAIL, e))?;
            out.append_value("");
        }
        finish(Arc::new(out.finish()) as ArrayRef, scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_STRING,
                "Masks the local part of an e-mail address except its first character and keeps \
                 the domain; a one-character local part is masked entirely and a value without \
                 '@' is masked entirely. Length is preserved.",
                "mask_email(s)",
            )
            .with_sql_example("mask_email('alice@example.com') -- a****@example.com")
            .with_argument("s", "E-mail address.")
            .build()
        }))
    }
}

fn write_error(function: &str, e: std::fmt::Error) -> datafusion::common::DataFusionError {
    exec_datafusion_err!("{function}: writing result failed: {e}")
}

fn char_count(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Byte offset of the `n`th character (or the end of `s`).
fn char_offset(s: &str, n: usize) -> usize {
    if s.is_ascii() {
        n.min(s.len())
    } else {
        s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
    }
}

pub(crate) fn write_masked(
    s: &str,
    keep_first: usize,
    keep_last: usize,
    mask: char,
    out: &mut impl std::fmt::Write,
) -> std::fmt::Result {
    let n = char_count(s);
    if keep_first.saturating_add(keep_last) >= n {
        return write_repeated(mask, n, out);
    }
    let start = char_offset(s, keep_first);
    let end = char_offset(s, n - keep_last);
    out.write_str(&s[..start])?;
    write_repeated(mask, n - keep_first - keep_last, out)?;
    out.write_str(&s[end..])
}

pub(crate) fn write_masked_email(s: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    // The last '@' separates the domain: a quoted local part may itself contain '@'.
    let Some(at) = s.rfind('@') else {
        return write_repeated('*', char_count(s), out);
    };
    let (local, domain) = s.split_at(at);
    let mut chars = local.chars();
    if let Some(first) = chars.next() {
        let rest = chars.count();
        if rest == 0 {
            out.write_char('*')?;
        } else {
            out.write_char(first)?;
            write_repeated('*', rest, out)?;
        }
    }
    out.write_str(domain)
}

/// Writes `c` `n` times in chunks rather than one call per character.
fn write_repeated(c: char, n: usize, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    const CHUNK: usize = 64;
    let mut one = [0u8; 4];
    let one = c.encode_utf8(&mut one).as_bytes();
    let per_chunk = CHUNK / one.len();
    let mut buf = [0u8; CHUNK];
    for slot in buf.chunks_exact_mut(one.len()).take(per_chunk) {
        slot.copy_from_slice(one);
    }
    let chunk = std::str::from_utf8(&buf[..per_chunk * one.len()]).map_err(|_| std::fmt::Error)?;
    let mut left = n;
    while left > 0 {
        let take = left.min(per_chunk);
        out.write_str(&chunk[..take * one.len()])?;
        left -= take;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray};
    use datafusion::common::config::ConfigOptions;

    fn call(f: &dyn ScalarUDFImpl, args: Vec<ColumnarValue>, rows: usize) -> Result<ColumnarValue> {
        let arg_fields = args.iter().map(|a| Arc::new(Field::new("a", a.data_type(), true))).collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    fn strings(v: ColumnarValue) -> Vec<Option<String>> {
        let ColumnarValue::Array(a) = v else {
            panic!("expected an array, got {v:?}");
        };
        let a = a.as_any().downcast_ref::<StringArray>().expect("Utf8 result");
        a.iter().map(|s| s.map(str::to_string)).collect()
    }

    fn s(v: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.into())))
    }

    fn int(v: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v)))
    }

    fn masked(v: &str, first: usize, last: usize, c: char) -> String {
        let mut out = String::new();
        write_masked(v, first, last, c, &mut out).expect("write to String");
        out
    }

    fn email(v: &str) -> String {
        let mut out = String::new();
        write_masked_email(v, &mut out).expect("write to String");
        out
    }

    #[test]
    fn mask_rules() {
        assert_eq!(masked("4111111111111111", 0, 4, '*'), "************1111");
        assert_eq!(masked("secret", 1, 1, '#'), "s####t");
        assert_eq!(masked("secret", 0, 0, '*'), "******");
        assert_eq!(masked("secret", 5, 0, '*'), "secre*");
        // Nothing would be masked: everything is masked instead of leaking the value.
        assert_eq!(masked("secret", 3, 3, '*'), "******");
        assert_eq!(masked("abc", 2, 5, '*'), "***");
        assert_eq!(masked("abc", usize::MAX, usize::MAX, '*'), "***");
        assert_eq!(masked("", 0, 0, '*'), "");
        assert_eq!(masked("", 1, 1, '*'), "");
        // Characters, not bytes.
        assert_eq!(masked("Zoë Łukasz 😀", 2, 1, '*'), "Zo*********😀");
        assert_eq!(masked("日本語テキスト", 1, 1, '●'), "日●●●●●ト");
        let long = "x".repeat(1000);
        assert_eq!(masked(&long, 1, 1, '█'), format!("x{}x", "█".repeat(998)));
    }

    #[test]
    fn mask_email_rules() {
        assert_eq!(email("alice@example.com"), "a****@example.com");
        assert_eq!(email("a@example.com"), "*@example.com");
        assert_eq!(email("@example.com"), "@example.com");
        assert_eq!(email("no-at-sign"), "**********");
        assert_eq!(email(""), "");
        assert_eq!(email("\"a@b\"@example.com"), "\"****@example.com");
        assert_eq!(email("zoë@exämple.de"), "z**@exämple.de");
    }

    #[test]
    fn mask_on_arrays_of_every_string_type() -> Result<()> {
        let values = vec![Some("alice"), None, Some("ünïcødé"), Some("ab")];
        let inputs: Vec<ColumnarValue> = vec![
            ColumnarValue::Array(Arc::new(StringArray::from(values.clone()))),
            ColumnarValue::Array(Arc::new(LargeStringArray::from(values.clone()))),
            ColumnarValue::Array(Arc::new(StringViewArray::from(values))),
        ];
        for input in inputs {
            let got = strings(call(&MaskFunc::new(), vec![input.clone(), int(1), int(1)], 4)?);
            assert_eq!(got, vec![Some("a***e".into()), None, Some("ü*****é".into()), Some("**".into())]);
            let got = strings(call(&MaskEmailFunc::new(), vec![input], 4)?);
            assert_eq!(got, vec![Some("*****".into()), None, Some("*******".into()), Some("**".into())]);
        }
        Ok(())
    }

    #[test]
    fn mask_with_column_counts_and_mask_chars() -> Result<()> {
        let first = ColumnarValue::Array(Arc::new(Int64Array::from(vec![Some(0), Some(2), None])));
        let chars = ColumnarValue::Array(Arc::new(StringArray::from(vec![Some("x"), Some("•"), Some("x")])));
        let got = strings(call(&MaskFunc::new(), vec![s("abcdef"), first, int(1), chars], 3)?);
        assert_eq!(got, vec![Some("xxxxxf".into()), Some("ab•••f".into()), None]);
        Ok(())
    }

    #[test]
    fn mask_scalars_give_scalars_and_null_propagates() -> Result<()> {
        let r = call(&MaskFunc::new(), vec![s("abcd"), int(1), int(1)], 10)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Utf8(Some(ref v))) if v == "a**d"), "{r:?}");
        let null_int = ColumnarValue::Scalar(ScalarValue::Int64(None));
        let r = call(&MaskFunc::new(), vec![s("abcd"), null_int, int(1)], 1)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Utf8(None))), "{r:?}");
        let r = call(&MaskEmailFunc::new(), vec![ColumnarValue::Scalar(ScalarValue::Utf8View(None))], 1)?;
        assert!(matches!(r, ColumnarValue::Scalar(ScalarValue::Utf8(None))), "{r:?}");
        Ok(())
    }

    #[test]
    fn mask_errors() {
        let err = call(&MaskFunc::new(), vec![s("abcd"), int(-1), int(1)], 1).expect_err("negative");
        assert!(err.to_string().contains("keep_first must be >= 0, got -1"), "{err}");
        let counts = ColumnarValue::Array(Arc::new(Int64Array::from(vec![1, -2])));
        let err = call(&MaskFunc::new(), vec![s("abcd"), int(1), counts], 2).expect_err("negative");
        assert!(err.to_string().contains("keep_last must be >= 0, got -2"), "{err}");
        for bad in ["", "**"] {
            let err = call(&MaskFunc::new(), vec![s("abcd"), int(1), int(1), s(bad)], 1).expect_err("mask_char");
            assert!(err.to_string().contains("exactly one character"), "{err}");
        }
        let err = call(&MaskFunc::new(), vec![s("abcd"), int(1)], 1).expect_err("arity");
        assert!(err.to_string().contains("3 or 4 arguments"), "{err}");
    }

    #[test]
    fn literal_arguments_are_checked_at_planning() {
        let f = MaskFunc::new();
        let fields: Vec<FieldRef> =
            (0..4).map(|i| Arc::new(Field::new(format!("a{i}"), DataType::Utf8, false))).collect();
        let neg = ScalarValue::Int64(Some(-3));
        let err = f
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields[..3],
                scalar_arguments: &[None, None, Some(&neg)],
            })
            .expect_err("negative keep_last");
        assert!(err.to_string().starts_with("Error during planning"), "{err}");
        let two = ScalarValue::Utf8(Some("ab".into()));
        assert!(f
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, None, None, Some(&two)],
            })
            .is_err());
    }

    #[test]
    fn integer_arguments_are_coerced_by_the_signature() {
        use datafusion::logical_expr::ScalarUDF;
        // Int32 counts (SQL INT columns) must be accepted and widened, not rejected.
        let udf = ScalarUDF::new_from_impl(MaskFunc::new());
        let coerced = datafusion::logical_expr::type_coercion::functions::fields_with_udf(
            &[
                Arc::new(Field::new("s", DataType::Utf8View, true)),
                Arc::new(Field::new("f", Int32Array::from(vec![1]).data_type().clone(), true)),
                Arc::new(Field::new("l", DataType::Int8, true)),
            ],
            &udf,
        )
        .expect("coercion");
        let types: Vec<_> = coerced.iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, vec![DataType::Utf8View, DataType::Int64, DataType::Int64]);
    }
}
