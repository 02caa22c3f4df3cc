//! Splits a job file or REPL buffer into statements at `;`, outside quotes and comments.
//! `EXECUTE STATEMENT SET BEGIN … END;` stays one statement although it contains `;`.

/// One statement of a script: its text without the final `;`, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStatement {
    pub text: String,
    /// Byte offset of the statement's first character in the script.
    pub offset: usize,
}

/// The complete statements of a script, and the offset of the unterminated text after them (if
/// any, e.g. a REPL line still waiting for its `;`).
#[derive(Debug, Default)]
pub struct Split {
    pub statements: Vec<RawStatement>,
    pub incomplete: Option<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Normal,
    Quoted(char),
    LineComment,
    BlockComment,
}

pub fn split(script: &str) -> Split {
    let mut out = Split::default();
    let mut state = State::Normal;
    let mut start: Option<usize> = None;
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut last_word_is_end = false;
    let mut chars = script.char_indices().peekable();

    let finish_word = |word: &mut String, words: &mut Vec<String>, last_end: &mut bool| {
        if !word.is_empty() {
            *last_end = word.eq_ignore_ascii_case("END");
            if words.len() < 3 {
                words.push(word.to_ascii_uppercase());
            }
            word.clear();
        }
    };

    while let Some((i, c)) = chars.next() {
        match state {
            State::Quoted(q) => {
                if c == q {
                    // A doubled quote is an escaped quote inside the literal.
                    if chars.peek().map(|(_, n)| *n) == Some(q) {
                        chars.next();
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Normal;
                }
            }
            State::BlockComment => {
                if c == '*' && chars.peek().map(|(_, n)| *n) == Some('/') {
                    chars.next();
                    state = State::Normal;
                }
            }
            State::Normal => {
                if c == '-' && chars.peek().map(|(_, n)| *n) == Some('-') {
                    finish_word(&mut word, &mut words, &mut last_word_is_end);
                    state = State::LineComment;
                    continue;
                }
                if c == '/' && chars.peek().map(|(_, n)| *n) == Some('*') {
                    finish_word(&mut word, &mut words, &mut last_word_is_end);
                    chars.next();
                    state = State::BlockComment;
                    continue;
                }
                if c.is_whitespace() {
                    finish_word(&mut word, &mut words, &mut last_word_is_end);
                    continue;
                }
                if c == ';' {
                    finish_word(&mut word, &mut words, &mut last_word_is_end);
                    let in_statement_set =
                        words.len() == 3 && words[0] == "EXECUTE" && words[1] == "STATEMENT" && words[2] == "SET";
                    if in_statement_set && !last_word_is_end {
                        last_word_is_end = false;
                        continue;
                    }
                    if let Some(s) = start.take() {
                        out.statements.push(RawStatement { text: script[s..i].to_string(), offset: s });
                    }
                    words.clear();
                    last_word_is_end = false;
                    continue;
                }
                if start.is_none() {
                    start = Some(i);
                }
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                } else {
                    finish_word(&mut word, &mut words, &mut last_word_is_end);
                    last_word_is_end = false;
                    if matches!(c, '\'' | '"' | '`') {
                        state = State::Quoted(c);
                    }
                }
            }
        }
    }
    out.incomplete = start;
    out
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(script: &str, offset: usize) -> (usize, usize) {
    let before = &script[..offset.min(script.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The statement text preceded by enough line breaks and spaces that a SQL parser reports the
/// same line and column numbers as the job file.
pub fn padded(script: &str, statement: &RawStatement) -> String {
    let (line, column) = line_col(script, statement.offset);
    let mut s = String::with_capacity(line + column + statement.text.len());
    s.extend(std::iter::repeat_n('\n', line - 1));
    s.extend(std::iter::repeat_n(' ', column - 1));
    s.push_str(&statement.text);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<String> {
        split(script).statements.into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let script = "SET 'a' = 'x;y'; -- c;omment\nCREATE TABLE `t;` (a INT) /* ; */ WITH ('k' = 'it''s;');\n";
        assert_eq!(texts(script), vec!["SET 'a' = 'x;y'", "CREATE TABLE `t;` (a INT) /* ; */ WITH ('k' = 'it''s;')"]);
    }

    #[test]
    fn statement_set_stays_one_statement() {
        let script = "EXECUTE STATEMENT SET\nBEGIN\nINSERT INTO a SELECT * FROM b;\nINSERT INTO c SELECT * FROM d;\nEND;\nSHOW TABLES;";
        let t = texts(script);
        assert_eq!(t.len(), 2);
        assert!(t[0].ends_with("END"));
        assert_eq!(t[1], "SHOW TABLES");
    }

    #[test]
    fn unterminated_tail_is_reported() {
        let s = split("SHOW TABLES; SELECT 1");
        assert_eq!(s.statements.len(), 1);
        assert_eq!(s.incomplete, Some(13));
        assert_eq!(split("SHOW TABLES; -- done\n").incomplete, None);
        assert_eq!(split("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1;").incomplete, Some(0));
    }

    #[test]
    fn locations_are_one_based_characters() {
        let script = "-- é\n  SELECT 1;";
        let s = &split(script).statements[0];
        assert_eq!(line_col(script, s.offset), (2, 3));
        assert_eq!(padded(script, s), "\n  SELECT 1");
    }
}
