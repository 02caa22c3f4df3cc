//! Flink function syntax that is not a plain function call, turned into calls of the functions
//! in this crate before DataFusion plans the statement.
//!
//! | Flink syntax | becomes |
//! |---|---|
//! | `IF(c, a, b)` | `CASE WHEN c THEN a ELSE b END` (only the chosen branch is evaluated, common type) |
//! | `TIMESTAMPADD(DAY, n, t)`, `TIMESTAMPDIFF(DAY, a, b)` | the unit keyword as a string: `timestampadd('DAY', n, t)` |
//! | `EXTRACT(DOW FROM t)` | `extract('DOW', t)` (Flink's field numbering, not DataFusion's `date_part`) |
//! | `FLOOR(t TO DAY)`, `CEIL(t TO DAY)` | `time_floor('DAY', t)`, `time_ceil('DAY', t)` |
//! | `JSON_OBJECT([KEY] k VALUE v, … [NULL \| ABSENT ON NULL])` | `json_object('NULL ON NULL', k, v, …)` |
//! | `JSON_ARRAY(v, … [NULL \| ABSENT ON NULL])` | `json_array('ABSENT ON NULL', v, …)` |
//! | `JSON_VALUE(j, p RETURNING t)` | `TRY_CAST(json_value(j, p) AS t)` (Flink's default NULL ON ERROR) |
//! | `MOD(a, b)` | `a % b` |
//! | `SUBSTRING(s FROM a [FOR n])`, `SUBSTR(s, a[, n])` | `substr(s, a[, n])`, Flink's positions (0 is 1, negative counts from the end) |
//! | `s [NOT] SIMILAR TO p [ESCAPE e]` | `[NOT] similar_to(s, p[, e])`: SQL regular expressions (`%`, `_`), not POSIX ones |
//! | `INTERVAL '1 02:03:04.5' DAY TO SECOND`, `INTERVAL '2-10' YEAR TO MONTH`… | one interval DataFusion reads (`'1 days 2 hours …'`) |
//! | `MAP[k1, v1, k2, v2]` | `map(make_array(k1, k2), make_array(v1, v2))` |
//! | `ARRAY_SORT(a, asc [, nulls_first])` | `array_sort(a, 'ASC' \| 'DESC', 'NULLS FIRST' \| 'NULLS LAST')` |
//! | `ARRAY_SLICE(a, start)` | `array_slice(a, start, -1)` |
//! | `LISTAGG(s [, sep])` | `string_agg(s, sep)`, `sep` `','` by default (an aggregate: DISTINCT and FILTER kept) |
//!
//! `KEY … VALUE …` and `MAP[…]` are not something sqlparser reads, so they are first rewritten at
//! the token level ([`rewrite_tokens`]: `KEY` dropped, `VALUE` made a comma, `MAP[…]` made a call
//! `map_literal(…)`); the rest is rewritten on the parsed statement ([`rewrite_statement`]).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, CaseWhen, CeilFloorKind, DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArguments, Ident, JsonNullClause, ObjectName, Spanned, Statement, Value,
};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// The SQL forms rewritten here, by the Flink function name they implement (for the function
/// table in docs/sql.md).
pub const REWRITTEN: &[&str] = &[
    "IF",
    "TIMESTAMPADD",
    "TIMESTAMPDIFF",
    "EXTRACT",
    "FLOOR",
    "CEIL",
    "JSON_OBJECT",
    "JSON_ARRAY",
    "JSON_VALUE",
    "MOD",
    "SUBSTRING",
    "SUBSTR",
    "SIMILAR TO",
    "INTERVAL",
    "MAP",
    "ARRAY_SORT",
    "ARRAY_SLICE",
    "LISTAGG",
];

/// The call `MAP[…]` becomes at the token level, rewritten into DataFusion's `map` later.
const MAP_LITERAL: &str = "map_literal";

/// A rewrite that cannot be done: what is wrong and where (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub line: u64,
    pub column: u64,
}

fn word_is(t: &TokenWithSpan, w: &str) -> bool {
    matches!(&t.token, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

fn is_blank(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

/// Rewrites `JSON_OBJECT([KEY] k VALUE v, …)` into `JSON_OBJECT(k, v, …)` in a token stream.
pub fn rewrite_tokens(tokens: &mut Vec<TokenWithSpan>) {
    /// One open parenthesis: whether it is a JSON_OBJECT's, and where its current argument is.
    struct Frame {
        json_object: bool,
        /// No significant token of the current argument seen yet.
        at_start: bool,
        /// The current argument is a key (before its VALUE).
        in_key: bool,
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut opens_json_object = false;
    // `[` of a `MAP[` and the brackets nested in it: true for the map's own.
    let mut brackets: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let next_significant = tokens[i + 1..].iter().find(|t| !is_blank(t)).map(|t| &t.token);
        let in_object = frames.last().is_some_and(|f| f.json_object);
        let token = &tokens[i];
        match &token.token {
            Token::Word(_) if word_is(token, "MAP") && matches!(next_significant, Some(Token::LBracket)) => {
                let span = token.span;
                tokens[i] = TokenWithSpan::new(Token::make_word(MAP_LITERAL, None), span);
                if let Some(f) = frames.last_mut() {
                    f.at_start = false;
                }
                // The blanks between `MAP` and `[` go; the `[` opens the call.
                while tokens.get(i + 1).is_some_and(is_blank) {
                    tokens.remove(i + 1);
                }
                if let Some(open) = tokens.get_mut(i + 1) {
                    open.token = Token::LParen;
                }
                brackets.push(true);
                frames.push(Frame { json_object: false, at_start: true, in_key: true });
                i += 2;
                continue;
            }
            Token::LBracket => brackets.push(false),
            Token::RBracket => {
                if brackets.pop() == Some(true) {
                    tokens[i].token = Token::RParen;
                    frames.pop();
                }
            }
            Token::LParen => {
                frames.push(Frame { json_object: opens_json_object, at_start: true, in_key: true });
                opens_json_object = false;
            }
            Token::RParen => {
                frames.pop();
            }
            Token::Comma if in_object => {
                if let Some(f) = frames.last_mut() {
                    f.at_start = true;
                    f.in_key = true;
                }
            }
            _ if is_blank(token) => {}
            _ if in_object
                && frames.last().is_some_and(|f| f.at_start)
                && word_is(token, "KEY")
                && !matches!(next_significant, Some(Token::Comma | Token::RParen))
                && !tokens[i + 1..].iter().find(|t| !is_blank(t)).is_some_and(|t| word_is(t, "VALUE")) =>
            {
                tokens.remove(i);
                continue;
            }
            _ if in_object && frames.last().is_some_and(|f| f.in_key && !f.at_start) && word_is(token, "VALUE") => {
                let span = tokens[i].span;
                tokens[i] = TokenWithSpan::new(Token::Comma, span);
                if let Some(f) = frames.last_mut() {
                    f.in_key = false;
                    f.at_start = true;
                }
            }
            _ => {
                opens_json_object = word_is(token, "JSON_OBJECT") && next_significant == Some(&Token::LParen);
                if let Some(f) = frames.last_mut() {
                    f.at_start = false;
                }
            }
        }
        i += 1;
    }
}

fn string(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(datafusion::sql::sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// The plain argument expressions of a call, or `None` if it has named or wildcard arguments.
fn plain_args(f: &Function) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = &f.args else {
        return Some(vec![]);
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn number(n: &str) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn bool_literal(e: &Expr) -> Option<bool> {
    match e {
        Expr::Value(v) => match v.value {
            Value::Boolean(b) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

const MAP_UPPER: &str = "MAP_LITERAL";

/// Flink's interval texts (`'d h:m:s.f'` DAY TO SECOND, `'y-m'` YEAR TO MONTH…) as one text
/// DataFusion reads, e.g. `'-1 days -2 hours'`.
fn interval_text(text: &str, lead: &DateTimeField, last: &DateTimeField) -> Result<String, String> {
    let name = |f: &DateTimeField| datetime_field_name(f);
    let bad = || {
        format!(
            "'{text}' is not an INTERVAL {} TO {} value (e.g. '10 00:00:00.004' DAY TO SECOND, '2-10' YEAR TO MONTH)",
            name(lead),
            name(last)
        )
    };
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let units: &[&str] = match (name(lead).as_str(), name(last).as_str()) {
        ("YEAR", "MONTH") => &["years", "months"],
        ("DAY", "HOUR") => &["days", "hours"],
        ("DAY", "MINUTE") => &["days", "hours", "minutes"],
        ("DAY", "SECOND") => &["days", "hours", "minutes", "seconds"],
        ("HOUR", "MINUTE") => &["hours", "minutes"],
        ("HOUR", "SECOND") => &["hours", "minutes", "seconds"],
        ("MINUTE", "SECOND") => &["minutes", "seconds"],
        _ => return Err(bad()),
    };
    let parts: Vec<&str> = t.split([' ', ':', '-']).filter(|p| !p.is_empty()).collect();
    if parts.len() != units.len() {
        return Err(bad());
    }
    let sign = if negative { "-" } else { "" };
    let mut out = Vec::new();
    for (i, (value, unit)) in parts.iter().zip(units).enumerate() {
        let fraction_ok = i == units.len() - 1 && *unit == "seconds";
        let valid =
            value.chars().all(|c| c.is_ascii_digit() || (fraction_ok && c == '.')) && value.parse::<f64>().is_ok();
        if !valid {
            return Err(bad());
        }
        out.push(format!("{sign}{value} {unit}"));
    }
    Ok(out.join(" "))
}

/// A unit keyword written where a value would be (`DAY` in `TIMESTAMPADD(DAY, 1, t)`), as text.
fn unit_keyword(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) if id.quote_style.is_none() => Some(id.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn datetime_field_name(field: &DateTimeField) -> String {
    match field {
        DateTimeField::Custom(id) => id.value.to_ascii_uppercase(),
        other => other.to_string().to_ascii_uppercase(),
    }
}

/// Rewrites one expression whose children are already rewritten.
fn rewrite(expr: &mut Expr) -> Result<(), SyntaxError> {
    let at = expr.span().start;
    let error = |message: String| SyntaxError { message, line: at.line, column: at.column };
    let replacement = match &*expr {
        Expr::Substring { expr: inner, substring_from, substring_for, .. } => {
            let mut args = vec![(**inner).clone(), substring_from.as_deref().cloned().unwrap_or_else(|| number("1"))];
            args.extend(substring_for.as_deref().cloned());
            Some(call("substr", args))
        }
        Expr::SimilarTo { negated, expr: inner, pattern, escape_char } => {
            let mut args = vec![(**inner).clone(), (**pattern).clone()];
            args.extend(escape_char.clone().map(Expr::Value));
            let test = call("similar_to", args);
            Some(if *negated {
                Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Not, expr: Box::new(test) }
            } else {
                test
            })
        }
        Expr::Interval(interval) if interval.last_field.is_some() => {
            let (Some(lead), Some(last)) = (&interval.leading_field, &interval.last_field) else {
                return Ok(());
            };
            let text = match &*interval.value {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(t) => t.clone(),
                    _ => return Err(error("an INTERVAL … TO … value must be a quoted string".into())),
                },
                _ => return Err(error("an INTERVAL … TO … value must be a quoted string".into())),
            };
            let plain = interval_text(&text, lead, last).map_err(error)?;
            Some(Expr::Interval(datafusion::sql::sqlparser::ast::Interval {
                value: Box::new(string(&plain)),
                leading_field: None,
                leading_precision: None,
                last_field: None,
                fractional_seconds_precision: None,
            }))
        }
        Expr::Extract { field, expr: inner, .. } => {
            Some(call("extract", vec![string(&datetime_field_name(field)), (**inner).clone()]))
        }
        Expr::Floor { expr: inner, field: CeilFloorKind::DateTimeField(f) } if *f != DateTimeField::NoDateTime => {
            Some(call("time_floor", vec![string(&datetime_field_name(f)), (**inner).clone()]))
        }
        Expr::Ceil { expr: inner, field: CeilFloorKind::DateTimeField(f) } if *f != DateTimeField::NoDateTime => {
            Some(call("time_ceil", vec![string(&datetime_field_name(f)), (**inner).clone()]))
        }
        Expr::Function(f) if f.name.0.len() == 1 && f.over.is_none() => {
            let name = f.name.to_string().to_ascii_uppercase();
            match name.as_str() {
                "IF" => {
                    let args = plain_args(f).unwrap_or_default();
                    let [condition, then, otherwise]: [Expr; 3] = args.try_into().map_err(|a: Vec<Expr>| {
                        error(format!(
                            "IF expects 3 arguments (condition, value if true, value if false), got {}",
                            a.len()
                        ))
                    })?;
                    Some(Expr::Case {
                        case_token: AttachedToken::empty(),
                        end_token: AttachedToken::empty(),
                        operand: None,
                        conditions: vec![CaseWhen { condition, result: then }],
                        else_result: Some(Box::new(otherwise)),
                    })
                }
                "MOD" => {
                    let args = plain_args(f).unwrap_or_default();
                    let [a, b]: [Expr; 2] = args
                        .try_into()
                        .map_err(|a: Vec<Expr>| error(format!("MOD expects 2 arguments, got {}", a.len())))?;
                    Some(Expr::BinaryOp {
                        left: Box::new(Expr::Nested(Box::new(a))),
                        op: datafusion::sql::sqlparser::ast::BinaryOperator::Modulo,
                        right: Box::new(Expr::Nested(Box::new(b))),
                    })
                }
                // An aggregate: the call keeps its DISTINCT and FILTER.
                "LISTAGG" => {
                    let mut agg = f.clone();
                    agg.name = ObjectName::from(vec![Ident::new("string_agg")]);
                    if let FunctionArguments::List(list) = &mut agg.args {
                        if list.args.len() == 1 {
                            list.args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(string(","))));
                        }
                    }
                    Some(Expr::Function(agg))
                }
                "SUBSTR" | "SUBSTRING" => {
                    let args = plain_args(f).unwrap_or_default();
                    Some(call("substr", args))
                }
                MAP_UPPER => {
                    let args = plain_args(f).unwrap_or_default();
                    if !args.len().is_multiple_of(2) || args.is_empty() {
                        return Err(error(format!("MAP[…] expects key, value pairs, got {} values", args.len())));
                    }
                    let keys = args.iter().step_by(2).cloned().collect();
                    let values = args.iter().skip(1).step_by(2).cloned().collect();
                    Some(call("map", vec![call("make_array", keys), call("make_array", values)]))
                }
                "ARRAY_SORT" => {
                    let mut args = plain_args(f).unwrap_or_default();
                    if args.len() < 2 {
                        None
                    } else {
                        let ascending = bool_literal(&args[1]).ok_or_else(|| {
                            error("ARRAY_SORT: the sort order must be TRUE (ascending) or FALSE".into())
                        })?;
                        let nulls_first = match args.get(2) {
                            Some(e) => bool_literal(e)
                                .ok_or_else(|| error("ARRAY_SORT: null_first must be TRUE or FALSE".into()))?,
                            None => ascending,
                        };
                        args.truncate(1);
                        args.push(string(if ascending { "ASC" } else { "DESC" }));
                        args.push(string(if nulls_first { "NULLS FIRST" } else { "NULLS LAST" }));
                        Some(call("array_sort", args))
                    }
                }
                "ARRAY_SLICE" => {
                    let mut args = plain_args(f).unwrap_or_default();
                    if args.len() == 2 {
                        args.push(number("-1"));
                        Some(call("array_slice", args))
                    } else {
                        None
                    }
                }
                "JSON_VALUE" => match &f.args {
                    FunctionArguments::List(list) => {
                        let returning = list.clauses.iter().find_map(|c| match c {
                            FunctionArgumentClause::JsonReturningClause(r) => Some(r.data_type.clone()),
                            _ => None,
                        });
                        match returning {
                            Some(data_type) => {
                                let args = plain_args(f).unwrap_or_default();
                                Some(Expr::Cast {
                                    kind: datafusion::sql::sqlparser::ast::CastKind::TryCast,
                                    expr: Box::new(call("json_value", args)),
                                    data_type,
                                    array: false,
                                    format: None,
                                })
                            }
                            None => None,
                        }
                    }
                    _ => None,
                },
                "TIMESTAMPADD" | "TIMESTAMPDIFF" => {
                    let mut args = plain_args(f).unwrap_or_default();
                    if args.len() != 3 {
                        return Err(error(format!("{name} expects 3 arguments (unit, …), got {}", args.len())));
                    }
                    match unit_keyword(&args[0]) {
                        Some(unit) => {
                            args[0] = string(&unit);
                            Some(call(&name.to_ascii_lowercase(), args))
                        }
                        None => None,
                    }
                }
                "JSON_OBJECT" | "JSON_ARRAY" => {
                    let mut on_null = if name == "JSON_OBJECT" { "NULL ON NULL" } else { "ABSENT ON NULL" };
                    if let FunctionArguments::List(list) = &f.args {
                        for clause in &list.clauses {
                            match clause {
                                FunctionArgumentClause::JsonNullClause(JsonNullClause::NullOnNull) => {
                                    on_null = "NULL ON NULL"
                                }
                                FunctionArgumentClause::JsonNullClause(JsonNullClause::AbsentOnNull) => {
                                    on_null = "ABSENT ON NULL"
                                }
                                other => return Err(error(format!("{name} does not take {other}"))),
                            }
                        }
                    }
                    let args = plain_args(f).ok_or_else(|| error(format!("{name} takes plain values")))?;
                    if name == "JSON_OBJECT" && args.len() % 2 != 0 {
                        return Err(error("JSON_OBJECT expects KEY … VALUE … pairs".to_string()));
                    }
                    let mut all = vec![string(on_null)];
                    all.extend(args);
                    Some(call(&name.to_ascii_lowercase(), all))
                }
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(r) = replacement {
        *expr = r;
    }
    Ok(())
}

/// Rewrites the Flink function syntax of a parsed INSERT or SELECT.
pub fn rewrite_statement(statement: &mut Statement) -> Result<(), SyntaxError> {
    match visit_expressions_mut(statement, |e| match rewrite(e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err),
    }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    pub(crate) fn parse(sql: &str) -> Result<Statement, String> {
        let dialect = GenericDialect {};
        let mut tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| e.to_string())?;
        rewrite_tokens(&mut tokens);
        let mut statement =
            Parser::new(&dialect).with_tokens_with_locations(tokens).parse_statement().map_err(|e| e.to_string())?;
        rewrite_statement(&mut statement).map_err(|e| e.message)?;
        Ok(statement)
    }

    #[test]
    fn rewrites() {
        let cases = [
            ("SELECT IF(a > 1, 'x', 'y')", "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END"),
            ("SELECT TIMESTAMPADD(day, 1, t)", "SELECT timestampadd('DAY', 1, t)"),
            ("SELECT TIMESTAMPDIFF(SQL_TSI_HOUR, a, b)", "SELECT timestampdiff('SQL_TSI_HOUR', a, b)"),
            ("SELECT EXTRACT(DOW FROM t)", "SELECT extract('DOW', t)"),
            (
                "SELECT FLOOR(t TO MINUTE), CEIL(t TO DAY), FLOOR(x)",
                "SELECT time_floor('MINUTE', t), time_ceil('DAY', t), FLOOR(x)",
            ),
            ("SELECT JSON_OBJECT()", "SELECT json_object('NULL ON NULL')"),
            (
                "SELECT JSON_OBJECT('K1' VALUE 'V1', KEY 'K2' VALUE JSON_OBJECT(KEY 'K3' VALUE v) ABSENT ON NULL)",
                "SELECT json_object('ABSENT ON NULL', 'K1', 'V1', 'K2', json_object('NULL ON NULL', 'K3', v))",
            ),
            ("SELECT JSON_OBJECT(KEY 'value' VALUE value)", "SELECT json_object('NULL ON NULL', 'value', value)"),
            ("SELECT JSON_OBJECT(key VALUE key)", "SELECT json_object('NULL ON NULL', key, key)"),
            ("SELECT JSON_ARRAY(1, '2' NULL ON NULL)", "SELECT json_array('NULL ON NULL', 1, '2')"),
            ("SELECT JSON_ARRAY()", "SELECT json_array('ABSENT ON NULL')"),
            ("SELECT MOD(a + 1, 3)", "SELECT (a + 1) % (3)"),
            ("SELECT SUBSTRING(s FROM 2 FOR 3), SUBSTR(s, -2)", "SELECT substr(s, 2, 3), substr(s, -2)"),
            ("SELECT s NOT SIMILAR TO 'a%' ESCAPE '!'", "SELECT NOT similar_to(s, 'a%', '!')"),
            (
                "SELECT INTERVAL '-10 00:00:00.004' DAY TO SECOND",
                "SELECT INTERVAL '-10 days -00 hours -00 minutes -00.004 seconds'",
            ),
            (
                "SELECT INTERVAL '2-10' YEAR TO MONTH, INTERVAL '1' DAY",
                "SELECT INTERVAL '2 years 10 months', INTERVAL '1' DAY",
            ),
            ("SELECT MAP['a', 1, 'b', 2]['a'], m[1]", "SELECT map(make_array('a', 'b'), make_array(1, 2))['a'], m[1]"),
            (
                "SELECT ARRAY_SORT(a, FALSE), ARRAY_SORT(a, TRUE, FALSE), ARRAY_SORT(a)",
                "SELECT array_sort(a, 'DESC', 'NULLS LAST'), array_sort(a, 'ASC', 'NULLS LAST'), ARRAY_SORT(a)",
            ),
            ("SELECT ARRAY_SLICE(a, 2)", "SELECT array_slice(a, 2, -1)"),
            ("SELECT LISTAGG(s) FROM t", "SELECT string_agg(s, ',') FROM t"),
            (
                "SELECT LISTAGG(DISTINCT s, '; ') FILTER (WHERE s <> '') FROM t",
                "SELECT string_agg(DISTINCT s, '; ') FILTER (WHERE s <> '') FROM t",
            ),
            ("SELECT JSON_VALUE(j, '$.a' RETURNING INT)", "SELECT TRY_CAST(json_value(j, '$.a') AS INT)"),
            ("SELECT f(a, b) FROM t WHERE IF(a, b, c)", "SELECT f(a, b) FROM t WHERE CASE WHEN a THEN b ELSE c END"),
        ];
        for (sql, expected) in cases {
            assert_eq!(parse(sql).map(|s| s.to_string()), Ok(expected.to_string()), "{sql}");
        }
    }

    #[test]
    fn errors_point_at_the_call() {
        let e = parse("SELECT 1,\n  IF(a, b)").unwrap_err();
        assert!(e.contains("IF expects 3 arguments"), "{e}");
        let dialect = GenericDialect {};
        let mut tokens = Tokenizer::new(&dialect, "SELECT 1,\n  IF(a, b)").tokenize_with_location().expect("tokens");
        rewrite_tokens(&mut tokens);
        let mut s = Parser::new(&dialect).with_tokens_with_locations(tokens).parse_statement().expect("parses");
        let err = rewrite_statement(&mut s).unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert!(parse("SELECT JSON_OBJECT('a' VALUE 1, 'b')").unwrap_err().contains("pairs"));
        assert!(parse("SELECT INTERVAL '1:2' DAY TO SECOND")
            .unwrap_err()
            .contains("is not an INTERVAL DAY TO SECOND value"));
        assert!(parse("SELECT ARRAY_SORT(a, b)").unwrap_err().contains("sort order"));
    }
}
