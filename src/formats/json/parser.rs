//! A pull parser over one JSON text (RFC 8259): the decoders ask for the next token and convert
//! it straight into a column, so nothing is built per value. Numbers come back as their text
//! (exact DECIMALs), strings as borrowed slices unless they hold escapes. Errors carry the byte
//! offset and an excerpt of the message.

use smallvec::SmallVec;

use crate::formats::{excerpt, DecodeError};

/// Deeper nesting is refused (Jackson's default limit), so a hostile message cannot exhaust memory.
const MAX_DEPTH: usize = 1000;

/// What the next value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Null,
    True,
    False,
    Number,
    String,
    Array,
    Object,
}

impl Token {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Token::Null => "null",
            Token::True | Token::False => "a boolean",
            Token::Number => "a number",
            Token::String => "a string",
            Token::Array => "an array",
            Token::Object => "an object",
        }
    }
}

pub(crate) struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
    /// Holds strings that contain escapes.
    buf: String,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Self {
        // A UTF-8 byte order mark is skipped, as Jackson does.
        let pos = if src.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        Parser { src, pos, depth: 0, buf: String::new() }
    }

    /// A parser positioned at `pos` of `src` (a value found earlier in the same message).
    pub(crate) fn at(src: &'a [u8], pos: usize) -> Self {
        Parser { src, pos, depth: 0, buf: String::new() }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// An error at the current position: what was `expected` and what is there.
    pub(crate) fn error(&self, expected: &str) -> DecodeError {
        let found = match self.src.get(self.pos) {
            None => "the end of the message".to_string(),
            Some(_) => format!("`{}`", excerpt(&self.src[self.pos..], 24)),
        };
        let start = self.pos.saturating_sub(24);
        let before =
            if self.pos > 0 { format!(" after `{}`", excerpt(&self.src[start..self.pos], 24)) } else { String::new() };
        DecodeError::new(format!("malformed JSON at byte {}: expected {expected}, found {found}{before}", self.pos))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.pos >= self.src.len()
    }

    /// Fails unless only whitespace follows the value.
    pub(crate) fn finish(&mut self) -> Result<(), DecodeError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error("the end of the message after the JSON value"))
        }
    }

    /// The kind of the next value (whitespace skipped).
    pub(crate) fn peek(&mut self) -> Result<Token, DecodeError> {
        self.ws();
        Ok(match self.src.get(self.pos) {
            Some(b'n') => Token::Null,
            Some(b't') => Token::True,
            Some(b'f') => Token::False,
            Some(b'"') => Token::String,
            Some(b'[') => Token::Array,
            Some(b'{') => Token::Object,
            Some(b'-' | b'0'..=b'9') => Token::Number,
            _ => return Err(self.error("a JSON value")),
        })
    }

    fn literal(&mut self, word: &'static [u8], what: &'static str) -> Result<(), DecodeError> {
        self.ws();
        if self.src[self.pos.min(self.src.len())..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    pub(crate) fn null(&mut self) -> Result<(), DecodeError> {
        self.literal(b"null", "null")
    }

    pub(crate) fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.peek()? {
            Token::True => self.literal(b"true", "true").map(|_| true),
            Token::False => self.literal(b"false", "false").map(|_| false),
            _ => Err(self.error("true or false")),
        }
    }

    /// The text of a number, checked against JSON's grammar.
    pub(crate) fn number(&mut self) -> Result<&'a str, DecodeError> {
        self.ws();
        let start = self.pos;
        let s = self.src;
        let digits = |p: &mut usize| {
            let from = *p;
            while s.get(*p).is_some_and(u8::is_ascii_digit) {
                *p += 1;
            }
            *p > from
        };
        let mut p = self.pos;
        if s.get(p) == Some(&b'-') {
            p += 1;
        }
        match s.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                digits(&mut p);
            }
            _ => {
                self.pos = p;
                return Err(self.error("a digit"));
            }
        }
        if s.get(p) == Some(&b'.') {
            p += 1;
            if !digits(&mut p) {
                self.pos = p;
                return Err(self.error("a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = s.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = s.get(p) {
                p += 1;
            }
            if !digits(&mut p) {
                self.pos = p;
                return Err(self.error("a digit in the exponent"));
            }
        }
        self.pos = p;
        // Only ASCII was accepted above.
        std::str::from_utf8(&s[start..p]).map_err(|_| self.error("a number"))
    }

    fn utf8<'s>(&self, bytes: &'s [u8], at: usize) -> Result<&'s str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|e| {
            DecodeError::new(format!(
                "malformed JSON at byte {}: a string holds bytes that are not UTF-8",
                at + e.valid_up_to()
            ))
        })
    }

    /// A string value, unescaped. Borrowed from the message unless it holds escapes.
    pub(crate) fn string(&mut self) -> Result<&str, DecodeError> {
        self.ws();
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.error("a string"));
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.src.get(self.pos) {
                None => return Err(self.error("the closing quote of a string")),
                Some(b'"') => {
                    let bytes = &self.src[start..self.pos];
                    self.pos += 1;
                    return std::str::from_utf8(bytes).map_err(|e| {
                        DecodeError::new(format!(
                            "malformed JSON at byte {}: a string holds bytes that are not UTF-8",
                            start + e.valid_up_to()
                        ))
                    });
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return Err(self.error("a control character in a string to be escaped")),
                _ => self.pos += 1,
            }
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = self.escaped(start, &mut buf);
        self.buf = buf;
        result?;
        Ok(&self.buf)
    }

    /// The rest of a string that holds escapes, from the first backslash; `start` is where its
    /// text began.
    fn escaped(&mut self, start: usize, buf: &mut String) -> Result<(), DecodeError> {
        buf.push_str(self.utf8(&self.src[start..self.pos], start)?);
        loop {
            let run = self.pos;
            while let Some(&b) = self.src.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            buf.push_str(self.utf8(&self.src[run..self.pos], run)?);
            match self.src.get(self.pos) {
                None => return Err(self.error("the closing quote of a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.src.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if self.src.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(
                                        self.error("the low surrogate `\\uDC00`–`\\uDFFF` after a high surrogate")
                                    );
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    self.pos -= 4;
                                    return Err(self.error("a low surrogate `\\uDC00`–`\\uDFFF`"));
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&high) {
                                self.pos -= 4;
                                return Err(self.error("a character, not a lone low surrogate"));
                            } else {
                                high
                            };
                            buf.push(char::from_u32(code).ok_or_else(|| self.error("a Unicode scalar value"))?);
                            continue;
                        }
                        _ => return Err(self.error("an escape: one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX")),
                    };
                    buf.push(c);
                    self.pos += 1;
                }
                Some(_) => return Err(self.error("a control character in a string to be escaped")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.src.get(self.pos) {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.error("four hex digits after \\u")),
            };
            v = v * 16 + d as u32;
            self.pos += 1;
        }
        Ok(v)
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), DecodeError> {
        self.ws();
        if self.src.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::new(format!(
                "the message nests arrays and objects deeper than {MAX_DEPTH} levels (at byte {})",
                self.pos
            )));
        }
        Ok(())
    }

    pub(crate) fn begin_object(&mut self) -> Result<(), DecodeError> {
        self.expect(b'{', "an object")?;
        self.enter()
    }

    /// The next key of an object (`first`: right after `{`), or `None` at its end.
    pub(crate) fn next_key(&mut self, first: bool) -> Result<Option<&str>, DecodeError> {
        self.ws();
        if self.src.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        if !first {
            self.expect(b',', "',' or '}'")?;
            self.ws();
        }
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.error(if first { "a key or '}'" } else { "a key" }));
        }
        let key_start = self.pos;
        self.string()?;
        let key_end = self.pos;
        self.expect(b':', "':' after a key")?;
        // The key is in the buffer when it held escapes, else in the message.
        let raw = &self.src[key_start + 1..key_end - 1];
        if raw.contains(&b'\\') {
            Ok(Some(&self.buf))
        } else {
            Ok(Some(std::str::from_utf8(raw).map_err(|_| self.error("a UTF-8 key"))?))
        }
    }

    pub(crate) fn begin_array(&mut self) -> Result<(), DecodeError> {
        self.expect(b'[', "an array")?;
        self.enter()
    }

    /// Whether another element follows (`first`: right after `[`); consumes `]` at the end.
    pub(crate) fn next_item(&mut self, first: bool) -> Result<bool, DecodeError> {
        self.ws();
        if self.src.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        if !first {
            self.expect(b',', "',' or ']'")?;
        }
        Ok(true)
    }

    fn skip_string(&mut self) -> Result<(), DecodeError> {
        self.string().map(|_| ())
    }

    /// Skips the next value, checking its syntax.
    pub(crate) fn skip(&mut self) -> Result<(), DecodeError> {
        // true: inside an object.
        let mut stack: SmallVec<[bool; 16]> = SmallVec::new();
        loop {
            match self.peek()? {
                Token::Null => self.null()?,
                Token::True | Token::False => {
                    self.boolean()?;
                }
                Token::Number => {
                    self.number()?;
                }
                Token::String => self.skip_string()?,
                Token::Array => {
                    self.pos += 1;
                    if self.depth + stack.len() >= MAX_DEPTH {
                        return Err(self.deep());
                    }
                    self.ws();
                    if self.src.get(self.pos) == Some(&b']') {
                        self.pos += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                Token::Object => {
                    self.pos += 1;
                    if self.depth + stack.len() >= MAX_DEPTH {
                        return Err(self.deep());
                    }
                    self.ws();
                    if self.src.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                    } else {
                        stack.push(true);
                        self.key_and_colon()?;
                        continue;
                    }
                }
            }
            // After a value: close finished containers, or go on to the next element.
            loop {
                let Some(&in_object) = stack.last() else { return Ok(()) };
                self.ws();
                match self.src.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        if in_object {
                            self.key_and_colon()?;
                        }
                        break;
                    }
                    Some(b']') if !in_object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    Some(b'}') if in_object => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(self.error(if in_object { "',' or '}'" } else { "',' or ']'" })),
                }
            }
        }
    }

    fn deep(&self) -> DecodeError {
        DecodeError::new(format!(
            "the message nests arrays and objects deeper than {MAX_DEPTH} levels (at byte {})",
            self.pos
        ))
    }

    fn key_and_colon(&mut self) -> Result<(), DecodeError> {
        self.ws();
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.error("a key"));
        }
        self.skip_string()?;
        self.expect(b':', "':' after a key")
    }

    /// Skips the next value and returns its bytes as they are in the message.
    pub(crate) fn raw(&mut self) -> Result<&'a [u8], DecodeError> {
        self.ws();
        let start = self.pos;
        self.skip()?;
        Ok(&self.src[start..self.pos])
    }
}

/// A syntactically valid JSON text without the whitespace between tokens (how Flink shows an
/// object or array read into a STRING column).
pub(crate) fn compact(raw: &[u8], out: &mut String) {
    let mut in_string = false;
    let mut escaped = false;
    let mut run_start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push_str(&String::from_utf8_lossy(&raw[run_start..i]));
            run_start = i + 1;
        }
    }
    out.push_str(&String::from_utf8_lossy(&raw[run_start..]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a whole value the way the decoders do, returning a canonical rendering.
    fn render(p: &mut Parser<'_>, out: &mut String) -> Result<(), DecodeError> {
        match p.peek()? {
            Token::Null => {
                p.null()?;
                out.push_str("null");
            }
            Token::True | Token::False => out.push_str(if p.boolean()? { "true" } else { "false" }),
            Token::Number => out.push_str(p.number()?),
            Token::String => {
                let s = p.string()?.to_string();
                out.push_str(&format!("{s:?}"));
            }
            Token::Array => {
                p.begin_array()?;
                out.push('[');
                let mut first = true;
                while p.next_item(first)? {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    render(p, out)?;
                }
                out.push(']');
            }
            Token::Object => {
                p.begin_object()?;
                out.push('{');
                let mut first = true;
                while let Some(k) = p.next_key(first)? {
                    let k = k.to_string();
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&format!("{k:?}:"));
                    render(p, out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    fn parse(text: &str) -> Result<String, DecodeError> {
        let mut p = Parser::new(text.as_bytes());
        let mut out = String::new();
        render(&mut p, &mut out)?;
        p.finish()?;
        Ok(out)
    }

    fn skips(text: &str) -> Result<(), DecodeError> {
        let mut p = Parser::new(text.as_bytes());
        p.skip()?;
        p.finish()
    }

    #[test]
    fn accepts_and_refuses_what_serde_json_does() {
        let cases = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"x"}}"#,
            r#"  [ 1 , -0 , 0.5 , 1e10 , -2.5E-3 , 1E+2 ]  "#,
            r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#,
            r#"{}"#,
            r#"[]"#,
            r#"{"a":{}}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[01]"#,
            r#"[1.]"#,
            r#"[.5]"#,
            r#"[+1]"#,
            r#"[1e]"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"["\x"]"#,
            r#"["\ud800"]"#,
            r#"["\udc00"]"#,
            r#"[nul]"#,
            r#"[truex]"#,
            r#"{"a":1}}"#,
            r#"{"a":1} {"b":2}"#,
            "[\"tab\tinside\"]",
            r#"["unterminated]"#,
            r#"[1 2]"#,
            r#"{"a":1 "b":2}"#,
            r#""#,
            r#"   "#,
            r#"-"#,
            r#"[-]"#,
            r#"1"#,
            r#"{"k\u0041":2}"#,
        ];
        for text in cases {
            let ours = parse(text);
            let ours_skip = skips(text);
            let theirs = serde_json::from_str::<serde_json::Value>(text);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{text}: ours {ours:?}, serde_json {theirs:?}");
            assert_eq!(ours_skip.is_ok(), theirs.is_ok(), "skip {text}: {ours_skip:?}");
            // The same strings come out (serde_json as the oracle for unescaping).
            if let (Ok(ours), Ok(serde_json::Value::String(s))) = (&ours, &theirs) {
                assert_eq!(ours, &format!("{s:?}"), "{text}");
            }
        }
    }

    #[test]
    fn escaped_keys_and_strings_are_unescaped() {
        assert_eq!(parse(r#"{"k\u0041":"a\nb"}"#).unwrap(), r#"{"kA":"a\nb"}"#);
        assert_eq!(parse(r#""\ud83d\ude00""#).unwrap(), "\"😀\"");
    }

    #[test]
    fn invalid_utf8_in_a_string_is_an_error_naming_the_byte() {
        let mut p = Parser::new(b"\"ab\xff\"");
        let err = p.string().unwrap_err().to_string();
        assert!(err.contains("byte 3") && err.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn errors_name_the_offset_and_quote_the_text() {
        let err = parse(r#"{"a":1 "b":2}"#).unwrap_err().to_string();
        assert!(err.contains("byte 7") && err.contains("expected ',' or '}'") && err.contains("`\"b\":2}`"), "{err}");
        let err = parse("").unwrap_err().to_string();
        assert!(err.contains("the end of the message"), "{err}");
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_without_recursion() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = skips(&deep).unwrap_err().to_string();
        assert!(err.contains("deeper than"), "{err}");
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        skips(&ok).unwrap();
    }

    #[test]
    fn raw_and_compact_keep_strings_intact() {
        let mut p = Parser::new(br#" { "a" : [1, 2] , "b" : "x y\" z" } "#);
        let raw = p.raw().unwrap();
        let mut out = String::new();
        compact(raw, &mut out);
        assert_eq!(out, r#"{"a":[1,2],"b":"x y\" z"}"#);
    }
}
