//! Java regular expressions (what Flink's REGEXP_* functions take) on Rust's `regex` engine.
//!
//! The common syntax is the same. Where the meaning differs, the pattern is translated so the
//! result is Java's: `\d`, `\w`, `\s` (and `\D`, `\W`, `\S`) are ASCII classes in Java but Unicode
//! in Rust; Java's POSIX classes `\p{Alpha}`, `\p{Digit}`, `\p{Punct}`… become their ASCII sets.
//! What Rust's engine cannot do at all — look-ahead/look-behind, backreferences, possessive and
//! atomic groups — is refused with an error naming the feature (a literal pattern is checked
//! while the query is planned), instead of silently returning NULL for every row as Flink does
//! for a pattern it cannot compile.

use regex::Regex;

/// Java's ASCII POSIX classes, as Rust class bodies.
const POSIX: &[(&str, &str)] = &[
    ("Lower", "a-z"),
    ("Upper", "A-Z"),
    ("ASCII", "\\x00-\\x7F"),
    ("Alpha", "A-Za-z"),
    ("Digit", "0-9"),
    ("Alnum", "0-9A-Za-z"),
    ("Punct", "!-/:-@\\[-`{-~"),
    ("Graph", "!-~"),
    ("Print", " -~"),
    ("Blank", " \\t"),
    ("Cntrl", "\\x00-\\x1F\\x7F"),
    ("XDigit", "0-9A-Fa-f"),
    ("Space", " \\t\\n\\x0B\\x0C\\r"),
];

fn class_body(escape: char) -> Option<(&'static str, bool)> {
    Some(match escape {
        'd' => ("0-9", false),
        'D' => ("0-9", true),
        'w' => ("0-9A-Za-z_", false),
        'W' => ("0-9A-Za-z_", true),
        's' => (" \\t\\n\\x0B\\x0C\\r", false),
        'S' => (" \\t\\n\\x0B\\x0C\\r", true),
        _ => return None,
    })
}

/// Rewrites the parts of a Java pattern whose meaning differs in Rust.
fn translate(pattern: &str) -> Result<String, String> {
    let unsupported = |what: &str| {
        Err(format!(
            "regular expression '{pattern}' uses {what}, which Java supports but cdc-sql's regex engine does not"
        ))
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    // The last thing written was a quantifier (`*`, `+`, `?`, `{n,m}`): a `+` after it makes it
    // possessive in Java.
    let mut after_quantifier = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let was_quantifier = std::mem::replace(&mut after_quantifier, false);
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    out.push('\\');
                    i += 1;
                    continue;
                };
                if let Some((body, negated)) = class_body(e) {
                    match (in_class, negated) {
                        (false, false) => out.push_str(&format!("[{body}]")),
                        (false, true) => out.push_str(&format!("[^{body}]")),
                        (true, false) => out.push_str(body),
                        (true, true) => out.push_str(&format!("[^{body}]")),
                    }
                    i += 2;
                    continue;
                }
                if e == 'p' || e == 'P' {
                    let rest: String = chars[i + 2..].iter().collect();
                    if let Some(name) = rest.strip_prefix('{').and_then(|r| r.split_once('}')).map(|(n, _)| n) {
                        let bare = name.strip_prefix("Is").unwrap_or(name);
                        if let Some((_, body)) = POSIX.iter().find(|(n, _)| *n == bare) {
                            let negate = if e == 'P' { "^" } else { "" };
                            if in_class && e == 'p' {
                                out.push_str(body);
                            } else {
                                out.push_str(&format!("[{negate}{body}]"));
                            }
                            i += 3 + name.chars().count() + 1;
                            continue;
                        }
                    }
                }
                if e.is_ascii_digit() && e != '0' && !in_class {
                    return unsupported("a backreference");
                }
                if e == 'k' {
                    return unsupported("a named backreference");
                }
                out.push('\\');
                out.push(e);
                i += 2;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                // A leading `]` or `^]` is a literal bracket, not the end of the class.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
                i += 1;
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                match (chars.get(i + 2), chars.get(i + 3)) {
                    (Some('='), _) | (Some('!'), _) => return unsupported("a look-ahead"),
                    (Some('<'), Some('=' | '!')) => return unsupported("a look-behind"),
                    (Some('>'), _) => return unsupported("an atomic group"),
                    _ => {}
                }
                out.push(c);
                i += 1;
            }
            '+' if !in_class && was_quantifier => return unsupported("a possessive quantifier"),
            '*' | '+' | '?' | '}' if !in_class => {
                // `+?` / `*?` (lazy) is fine; only a `+` right after a quantifier is possessive.
                after_quantifier = !(c == '?' && was_quantifier);
                out.push(c);
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Compiles a Java regular expression; the error says what in it cannot be run.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    Regex::new(&translated).map_err(|e| format!("invalid regular expression '{pattern}': {e}"))
}

/// Compiles the pattern of each row, once when it is the same for all rows; a pattern that does
/// not compile is remembered as such.
#[derive(Default)]
pub(crate) struct Regexes {
    last: Option<(String, Result<Regex, String>)>,
}

impl Regexes {
    pub(crate) fn get(&mut self, pattern: &str) -> Result<&Regex, &str> {
        if !matches!(&self.last, Some((p, _)) if p == pattern) {
            self.last = Some((pattern.to_string(), compile(pattern)));
        }
        match &self.last {
            Some((_, Ok(r))) => Ok(r),
            Some((_, Err(e))) => Err(e),
            None => Err("no pattern"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_classes_are_ascii() {
        let d = compile(r"\d+").expect("compiles");
        assert_eq!(d.find("a٣12").map(|m| m.as_str()), Some("12"));
        let w = compile(r"[\w-]+").expect("compiles");
        assert_eq!(w.find("é_a-b").map(|m| m.as_str()), Some("_a-b"));
        assert!(compile(r"\S+\s\W").expect("compiles").is_match("ab !"));
        let p = compile(r"\p{Alpha}+[\p{Digit}]\P{Punct}").expect("compiles");
        assert_eq!(p.find("xyz7a").map(|m| m.as_str()), Some("xyz7a"));
        assert!(compile(r"[]a]").expect("compiles").is_match("]"));
        assert!(compile(r"\\d").expect("compiles").is_match(r"\d"));
    }

    #[test]
    fn unsupported_java_features_are_named() {
        for (pattern, what) in [
            ("a(?=b)", "look-ahead"),
            ("(?<!a)b", "look-behind"),
            (r"(a)\1", "backreference"),
            ("a*+", "possessive"),
            ("(?>a)", "atomic"),
        ] {
            let e = compile(pattern).unwrap_err();
            assert!(e.contains(what), "{pattern}: {e}");
        }
        assert!(compile("(?<name>a)").is_ok());
        assert!(compile(r"a\++").is_ok());
        assert!(compile("(").unwrap_err().contains("invalid regular expression '('"));
    }
}
