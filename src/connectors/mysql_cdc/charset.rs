//! Character data as the server stores it (snapshots run with `character_set_results =
//! binary`, and the binlog carries stored bytes) decoded into text by the column's character
//! set, or refused. Pure.
//!
//! UTF-8, ASCII and binary columns must be valid UTF-8; latin1 is MySQL's cp1252; the UTF-16
//! and UTF-32 sets are decoded. Other character sets (gbk, big5, sjis, cp1251, …) are read only
//! where a value is plain ASCII, which they all encode as ASCII does: their other bytes are not
//! UTF-8, and reading them as UTF-8 anyway would, now and then, succeed with the wrong
//! characters (GBK's `系统`, CF B5 CD B3, is valid UTF-8 for `ϵͳ`). swe7,
//! a 7-bit set whose bytes below 0x80 are not all ASCII, is not read at all.

use std::borrow::Cow;

/// How a column's stored bytes become text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4, utf8mb3, ascii, binary (and no character set).
    Utf8,
    /// MySQL's latin1, which is Windows-1252.
    Latin1,
    /// ucs2, utf16: big-endian UTF-16.
    Utf16Be,
    Utf16Le,
    /// utf32: big-endian.
    Utf32Be,
    /// Any other set: read where a value is ASCII only.
    AsciiOnly(String),
    /// swe7.
    Unsupported(String),
}

impl Charset {
    /// By `information_schema.COLUMNS.CHARACTER_SET_NAME`.
    pub fn of(name: Option<&str>) -> Charset {
        let Some(name) = name else { return Charset::Utf8 };
        match name.to_ascii_lowercase().as_str() {
            "utf8" | "utf8mb3" | "utf8mb4" | "ascii" | "binary" => Charset::Utf8,
            "latin1" => Charset::Latin1,
            "ucs2" | "utf16" => Charset::Utf16Be,
            "utf16le" => Charset::Utf16Le,
            "utf32" => Charset::Utf32Be,
            "swe7" => Charset::Unsupported(name.to_string()),
            other => Charset::AsciiOnly(other.to_string()),
        }
    }

    /// The text of stored bytes; the error says why they are not text in this set.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| "bytes that are not UTF-8".into()),
            Charset::Latin1 => Ok(Cow::Owned(bytes.iter().map(|&c| cp1252_char(c)).collect())),
            Charset::Utf16Be | Charset::Utf16Le => {
                if !bytes.len().is_multiple_of(2) {
                    return Err("an odd number of UTF-16 bytes".into());
                }
                let units = bytes.chunks_exact(2).map(|u| {
                    if *self == Charset::Utf16Be {
                        u16::from_be_bytes([u[0], u[1]])
                    } else {
                        u16::from_le_bytes([u[0], u[1]])
                    }
                });
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .map(Cow::Owned)
                    .map_err(|_| "an unpaired UTF-16 surrogate".into())
            }
            Charset::Utf32Be => {
                if !bytes.len().is_multiple_of(4) {
                    return Err("a UTF-32 value whose length is not a multiple of 4".into());
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect::<Option<String>>()
                    .map(Cow::Owned)
                    .ok_or_else(|| "a code point that is not a character".into())
            }
            Charset::AsciiOnly(name) => match bytes.is_ascii() {
                // ASCII is valid UTF-8.
                true => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| e.to_string()),
                false => Err(format!(
                    "characters beyond ASCII in character set {name}, which mysql-cdc reads only where a value is plain \
                     ASCII (convert the column to utf8mb4)"
                )),
            },
            Charset::Unsupported(name) => {
                Err(format!("text in character set {name}, which mysql-cdc does not read (convert the column to utf8mb4)"))
            }
        }
    }
}

fn cp1252_char(c: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    if (0x80..0xa0).contains(&c) {
        HIGH[(c - 0x80) as usize]
    } else {
        c as char
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_set_decodes_its_own_bytes_or_refuses() {
        assert_eq!(Charset::of(Some("utf8mb4")).decode("ü✓".as_bytes()).unwrap(), "ü✓");
        assert!(Charset::Utf8.decode(&[0xff]).is_err());
        assert_eq!(Charset::of(Some("latin1")).decode(&[0x63, 0x61, 0x66, 0xe9, 0x80]).unwrap(), "café€");
        // 'a✓' in utf16 (big-endian), utf16le and utf32.
        assert_eq!(Charset::of(Some("utf16")).decode(&[0, 0x61, 0x27, 0x13]).unwrap(), "a✓");
        assert_eq!(Charset::of(Some("ucs2")).decode(&[0, 0x61]).unwrap(), "a");
        assert_eq!(Charset::of(Some("utf16le")).decode(&[0x61, 0, 0x13, 0x27]).unwrap(), "a✓");
        assert_eq!(Charset::of(Some("utf32")).decode(&[0, 0, 0, 0x61, 0, 0, 0x27, 0x13]).unwrap(), "a✓");
        // An emoji as a surrogate pair, and a lone surrogate.
        assert_eq!(Charset::Utf16Be.decode(&[0xd8, 0x3d, 0xde, 0x00]).unwrap(), "😀");
        assert!(Charset::Utf16Be.decode(&[0xd8, 0x3d]).is_err());
        assert!(Charset::Utf16Be.decode(&[0, 0x61, 0]).is_err());
        // GBK '系统' happens to be valid UTF-8 ('ϵͳ'): refused, not misread; ASCII passes.
        let gbk = Charset::of(Some("gbk"));
        let system: &[u8] = &[0xcf, 0xb5, 0xcd, 0xb3];
        assert_eq!(Charset::Utf8.decode(system).unwrap(), "ϵͳ");
        assert!(gbk.decode(system).unwrap_err().contains("gbk"));
        assert_eq!(gbk.decode(b"plain").unwrap(), "plain");
        assert_eq!(Charset::of(None), Charset::Utf8);
        assert!(Charset::of(Some("swe7")).decode(b"[").unwrap_err().contains("swe7"));
    }
}
