//! Flink's lookup join syntax, `JOIN dim FOR SYSTEM_TIME AS OF s.proc [AS d] ON …`, which
//! sqlparser's generic dialect does not read. Before parsing, the clause is taken out of the tokens
//! and kept in the looked-up table's name (`dim FOR SYSTEM_TIME AS OF s.proc`), with an alias so
//! the query still names the table as written; the session resolves such a name to the table's
//! lookup side ([`LookupName::parse`]) and the planner turns the join into a lookup join.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace, Word};

/// Between the table and its time attribute in a looked-up table's name.
const MARK: &str = " FOR SYSTEM_TIME AS OF ";

/// A looked-up table's name as the rewrite leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupName {
    /// The table looked up.
    pub table: String,
    /// The time attribute `AS OF` names, as written: `s.proc` is `["s", "proc"]`.
    pub time: Vec<String>,
}

impl LookupName {
    /// The table and time attribute of a name the rewrite made; `None` for any other name.
    pub fn parse(name: &str) -> Option<LookupName> {
        let (table, time) = name.split_once(MARK)?;
        Some(LookupName { table: table.to_string(), time: time.split('.').map(str::to_string).collect() })
    }
}

/// Whether a computed column's expression makes it a processing-time attribute: `PROCTIME()`.
pub fn is_proctime(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::Function(f) => {
            f.name.to_string().eq_ignore_ascii_case("PROCTIME")
                && match &f.args {
                    ast::FunctionArguments::None => true,
                    ast::FunctionArguments::List(list) => list.args.is_empty(),
                    ast::FunctionArguments::Subquery(_) => false,
                }
        }
        _ => false,
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn is_space(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

/// The index of the next token at or after `i` that is not whitespace.
fn next_solid(tokens: &[TokenWithSpan], mut i: usize) -> usize {
    while i < tokens.len() && is_space(&tokens[i]) {
        i += 1;
    }
    i
}

/// Takes every `FOR SYSTEM_TIME AS OF <column>` out of `tokens` into the name of the table before
/// it. Fails, with the 1-based line and column, where the clause follows no table name or names
/// no column.
pub fn rewrite_tokens(tokens: &mut Vec<TokenWithSpan>) -> Result<(), (String, u64, u64)> {
    let mut i = 0;
    while i < tokens.len() {
        if !is_word(&tokens[i].token, "FOR") {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut clause = true;
        for word in ["SYSTEM_TIME", "AS", "OF"] {
            j = next_solid(tokens, j + 1);
            if j >= tokens.len() || !is_word(&tokens[j].token, word) {
                clause = false;
                break;
            }
        }
        if !clause {
            i += 1;
            continue;
        }
        let at = (tokens[i].span.start.line, tokens[i].span.start.column);
        // The time attribute: a column, perhaps qualified (`s.proc`).
        let mut time = Vec::new();
        let mut end = next_solid(tokens, j + 1);
        loop {
            match tokens.get(end).map(|t| &t.token) {
                Some(Token::Word(w)) => time.push(w.value.clone()),
                _ => {
                    return Err((
                        "FOR SYSTEM_TIME AS OF must name the processing-time column of the table joined from \
                         (`FOR SYSTEM_TIME AS OF s.proc`, where table s declares `proc AS PROCTIME()`)"
                            .into(),
                        at.0,
                        at.1,
                    ))
                }
            }
            if tokens.get(end + 1).map(|t| &t.token) == Some(&Token::Period) {
                end += 2;
            } else {
                end += 1;
                break;
            }
        }
        let follows = tokens.get(next_solid(tokens, end)).map(|t| &t.token);
        if matches!(follows, Some(Token::SingleQuotedString(_) | Token::LParen)) {
            return Err((
                "FOR SYSTEM_TIME AS OF takes the processing-time column of the table joined from, not a point in \
                 time: cdc-sql joins the looked-up table as it is when each row is processed"
                    .into(),
                at.0,
                at.1,
            ));
        }
        // The table: the last part of the name just before the clause.
        let name = (0..i).rev().find(|k| !is_space(&tokens[*k]));
        let Some(Token::Word(table)) = name.map(|k| tokens[k].token.clone()) else {
            return Err(("FOR SYSTEM_TIME AS OF must follow the name of the table looked up".into(), at.0, at.1));
        };
        let name = name.unwrap_or_default();
        tokens[name].token =
            Token::Word(Word { value: format!("{}{MARK}{}", table.value, time.join(".")), ..table.clone() });
        // Without an alias of its own, the table keeps being named as written.
        let after = next_solid(tokens, end);
        let aliased = match tokens.get(after).map(|t| &t.token) {
            Some(Token::Word(w)) => {
                w.quote_style.is_some() || w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword
            }
            _ => false,
        };
        let replacement: Vec<TokenWithSpan> = if aliased {
            Vec::new()
        } else {
            vec![
                TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)),
                TokenWithSpan::wrap(Token::make_keyword("AS")),
                TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)),
                TokenWithSpan::wrap(Token::Word(table)),
            ]
        };
        // From just after the name (the space before FOR goes too) to the end of the clause.
        let len = replacement.len();
        tokens.splice(name + 1..end, replacement);
        i = name + 1 + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
        rewrite_tokens(&mut tokens).unwrap();
        tokens.iter().map(|t| t.token.to_string()).collect()
    }

    #[test]
    fn the_clause_moves_into_the_table_name_and_the_table_keeps_its_name() {
        assert_eq!(
            rewritten("SELECT * FROM o JOIN dim FOR SYSTEM_TIME AS OF o.proc ON o.k = dim.id"),
            "SELECT * FROM o JOIN dim FOR SYSTEM_TIME AS OF o.proc AS dim ON o.k = dim.id"
        );
        assert_eq!(
            rewritten("SELECT * FROM o LEFT JOIN dim for system_time as of proc AS d ON o.k = d.id"),
            "SELECT * FROM o LEFT JOIN dim FOR SYSTEM_TIME AS OF proc AS d ON o.k = d.id"
        );
        assert_eq!(
            rewritten("SELECT * FROM o JOIN `dim` FOR SYSTEM_TIME AS OF o.proc d ON o.k = d.id"),
            "SELECT * FROM o JOIN `dim FOR SYSTEM_TIME AS OF o.proc` d ON o.k = d.id"
        );
        let mut tokens = Tokenizer::new(&GenericDialect {}, "SELECT * FROM o JOIN dim FOR SYSTEM_TIME AS OF o.proc")
            .tokenize_with_location()
            .unwrap();
        rewrite_tokens(&mut tokens).unwrap();
        let Some(Token::Word(w)) = tokens.iter().map(|t| &t.token).find(|t| t.to_string().starts_with("dim")) else {
            panic!("{tokens:?}")
        };
        assert_eq!(
            LookupName::parse(&w.value),
            Some(LookupName { table: "dim".into(), time: vec!["o".into(), "proc".into()] })
        );
        // A FOR that starts no such clause is left alone.
        assert_eq!(rewritten("SELECT SUBSTRING(s FROM 1 FOR 2) FROM t"), "SELECT SUBSTRING(s FROM 1 FOR 2) FROM t");
    }

    #[test]
    fn error_the_clause_needs_a_table_before_it_and_a_column_after_it() {
        for sql in [
            "SELECT * FROM o JOIN (SELECT * FROM d) FOR SYSTEM_TIME AS OF o.proc ON true",
            "SELECT * FROM o JOIN d FOR SYSTEM_TIME AS OF TIMESTAMP '2024-01-01' ON true",
        ] {
            let mut tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
            let (message, line, column) = rewrite_tokens(&mut tokens).unwrap_err();
            assert!(message.contains("FOR SYSTEM_TIME AS OF"), "{message}");
            assert_eq!((line, column), (1, sql.find("FOR SYSTEM").unwrap() as u64 + 1));
        }
    }
}
