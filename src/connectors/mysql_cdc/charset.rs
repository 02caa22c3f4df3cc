//! Character data as the server stores it (snapshots run with `character_set_results =
//! binary`, and the binlog carries stored bytes) decoded into text by the column's character
//! set, or refused. Pure.
//!
//! UTF-8 columns must be valid UTF-8 and ascii columns ASCII; the UTF-16 and UTF-32 sets are
//! decoded here. The legacy single- and multi-byte sets are decoded by `encoding_rs` (the WHATWG
//! Encoding Standard's decoders), each corrected to the server's own table where the two differ:
//! the WHATWG decoders are the browsers' (its "gbk" decoder is gb18030, "big5" is Big5-HKSCS,
//! "EUC-JP" and "Shift_JIS" carry the IBM/NEC extensions, "windows-874" is a superset of
//! tis620, and ISO-8859-9 is read as windows-1254), so a byte sequence one of them reads as a
//! character the server's table does not have would otherwise become a character the column
//! never held. `charset_tables.rs` lists those differences, taken from MariaDB 10.11 converting
//! every byte sequence of each set to utf8mb4; a live test repeats that comparison.
//!
//! Decoding is strict: a sequence that is not a character of the set, or that the server itself
//! cannot convert to Unicode, is an error naming it, never a replacement character. Sets with no
//! faithful decoder (dec8, cp850, cp852, hp8, keybcs2, macce, armscii8, geostd8) are read only
//! where a value is plain ASCII, which they encode as ASCII does, and swe7 (a 7-bit set with
//! letters in ASCII's places) not at all; convert such columns to utf8mb4.

use std::borrow::Cow;
use std::sync::OnceLock;

use encoding_rs::{DecoderResult, Encoding};

use super::charset_tables as tables;

/// How a column's stored bytes become text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4, utf8mb3, binary (and no character set).
    Utf8,
    Ascii,
    /// ucs2, utf16: big-endian UTF-16.
    Utf16Be,
    Utf16Le,
    /// utf32: big-endian.
    Utf32Be,
    /// A set of one byte per character (latin1, cp1251, koi8r, …).
    SingleByte(&'static SingleByte),
    /// A set of one to four bytes per character (gbk, big5, sjis, …).
    MultiByte(&'static MultiByte),
    /// A set mysql-cdc has no faithful decoder for.
    Unsupported(String),
}

/// A one-byte-per-character set: `encoding_rs`'s decoder for each byte, corrected by the
/// server's table.
#[derive(Debug)]
pub struct SingleByte {
    /// The MySQL name.
    pub name: &'static str,
    pub encoding: &'static Encoding,
    /// Bytes the server reads otherwise than `encoding` does (`None`: not a character).
    pub differences: &'static [(u8, Option<char>)],
    table: OnceLock<[Option<char>; 256]>,
}

impl PartialEq for SingleByte {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for SingleByte {}

impl SingleByte {
    pub const fn new(
        name: &'static str,
        encoding: &'static Encoding,
        differences: &'static [(u8, Option<char>)],
    ) -> Self {
        SingleByte { name, encoding, differences, table: OnceLock::new() }
    }

    fn table(&self) -> &[Option<char>; 256] {
        self.table.get_or_init(|| {
            let mut table = [None; 256];
            for (byte, slot) in table.iter_mut().enumerate() {
                let one = [byte as u8];
                let text = self.encoding.decode_without_bom_handling_and_without_replacement(&one);
                *slot = text.and_then(|t| t.chars().next());
            }
            for (byte, c) in self.differences {
                table[*byte as usize] = *c;
            }
            table
        })
    }

    fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        if let Some(ascii) = ascii(bytes) {
            return Ok(Cow::Borrowed(ascii));
        }
        let table = self.table();
        let mut out = String::with_capacity(bytes.len() * 2);
        for (at, b) in bytes.iter().enumerate() {
            match table[*b as usize] {
                Some(c) => out.push(c),
                None => return Err(not_a_character(self.name, &bytes[at..at + 1], at)),
            }
        }
        Ok(Cow::Owned(out))
    }
}

/// How a multi-byte set's characters are delimited: the length of the character starting at a
/// byte of 0x80 or more (its lead byte), `None` where no character starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Lead bytes in the range take one following byte, of 0x40 or more (so that the gb18030
    /// decoder that reads gbk never takes a four-byte sequence).
    TwoByte { lead_from: u8, lead_to: u8 },
    /// sjis, cp932: 0xA1–0xDF alone (half-width katakana); 0x81–0x9F and 0xE0–0xFC lead two.
    ShiftJis,
    /// ujis, eucjpms: 0x8E and 0xA1–0xFE lead two bytes, 0x8F three.
    EucJp,
    /// gb18030: 0x81–0xFE lead two bytes, or four where the second is a digit.
    Gb18030,
}

impl Layout {
    fn char_len(self, rest: &[u8]) -> Option<usize> {
        let lead = rest[0];
        let n = match self {
            Layout::TwoByte { lead_from, lead_to } => {
                ((lead_from..=lead_to).contains(&lead) && rest.get(1).is_none_or(|t| *t >= 0x40)).then_some(2)?
            }
            Layout::ShiftJis => match lead {
                0xa1..=0xdf => 1,
                0x81..=0x9f | 0xe0..=0xfc => 2,
                _ => return None,
            },
            Layout::EucJp => match lead {
                0x8e | 0xa1..=0xfe => 2,
                0x8f => 3,
                _ => return None,
            },
            Layout::Gb18030 => match (lead, rest.get(1)) {
                (0x81..=0xfe, Some(0x30..=0x39)) => 4,
                (0x81..=0xfe, _) => 2,
                _ => return None,
            },
        };
        Some(n)
    }
}

/// A set of several bytes per character: `encoding_rs`'s decoder, with the server's layout and
/// its table's differences.
#[derive(Debug)]
pub struct MultiByte {
    pub name: &'static str,
    pub encoding: &'static Encoding,
    pub layout: Layout,
    /// Ranges of characters (their bytes, big-endian) the server reads otherwise than `encoding`
    /// does, sorted: `(first, last, Some(c))` reads `first` as `c` and each next one as the next
    /// code point; `None`: the server has no character there.
    pub differences: &'static [(u32, u32, Option<char>)],
}

impl PartialEq for MultiByte {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for MultiByte {}

impl MultiByte {
    fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        if let Some(ascii) = ascii(bytes) {
            return Ok(Cow::Borrowed(ascii));
        }
        let mut out = String::with_capacity(bytes.len() * 2);
        // Bytes from `run` on are decoded by `encoding` in one call when a difference or the end
        // comes; characters are delimited here so that a difference is found by its bytes.
        let mut run = 0;
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] < 0x80 {
                at += 1;
                continue;
            }
            let n = self
                .layout
                .char_len(&bytes[at..])
                .ok_or_else(|| not_a_character(self.name, &bytes[at..(at + 2).min(bytes.len())], at))?;
            let Some(char_bytes) = bytes.get(at..at + n) else {
                return Err(not_a_character(self.name, &bytes[at..], at));
            };
            let code = char_bytes.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32);
            if let Some(difference) = self.difference(code) {
                self.decode_run(&bytes[run..at], run, &mut out)?;
                match difference {
                    Some(c) => out.push(c),
                    None => return Err(not_a_character(self.name, char_bytes, at)),
                }
                run = at + n;
            }
            at += n;
        }
        self.decode_run(&bytes[run..], run, &mut out)?;
        Ok(Cow::Owned(out))
    }

    /// How the server reads `code` where it differs from `encoding`.
    fn difference(&self, code: u32) -> Option<Option<char>> {
        let i = self.differences.partition_point(|d| d.0 <= code);
        let (first, last, c) = *self.differences.get(i.checked_sub(1)?)?;
        (code <= last).then(|| c.and_then(|c| char::from_u32(c as u32 + (code - first))))
    }

    /// Decodes `run` (at `offset` in the value) onto `out`, strictly.
    fn decode_run(&self, run: &[u8], offset: usize, out: &mut String) -> Result<(), String> {
        if run.is_empty() {
            return Ok(());
        }
        let mut decoder = self.encoding.new_decoder_without_bom_handling();
        out.reserve(decoder.max_utf8_buffer_length_without_replacement(run.len()).unwrap_or(run.len() * 3));
        let (result, read) = decoder.decode_to_string_without_replacement(run, out, true);
        match result {
            DecoderResult::InputEmpty => Ok(()),
            DecoderResult::Malformed(bad, after) => {
                let end = read - after as usize;
                let start = end.saturating_sub(bad as usize);
                Err(not_a_character(self.name, &run[start..end.max(start + 1).min(run.len())], offset + start))
            }
            // The buffer was reserved for the worst case.
            DecoderResult::OutputFull => Err(format!("text in character set {} longer than expected", self.name)),
        }
    }
}

fn ascii(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

fn not_a_character(charset: &str, bytes: &[u8], at: usize) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "bytes {} (at byte {at}) that are not a character of character set {charset} the server could convert to \
         Unicode",
        hex.join(" ")
    )
}

impl Charset {
    /// By `information_schema.COLUMNS.CHARACTER_SET_NAME` (MySQL's and MariaDB's names).
    pub fn of(name: Option<&str>) -> Charset {
        let Some(name) = name else { return Charset::Utf8 };
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "utf8" | "utf8mb3" | "utf8mb4" | "binary" => return Charset::Utf8,
            "ascii" => return Charset::Ascii,
            "ucs2" | "utf16" => return Charset::Utf16Be,
            "utf16le" => return Charset::Utf16Le,
            "utf32" => return Charset::Utf32Be,
            _ => {}
        }
        if let Some(set) = tables::SINGLE_BYTE.iter().find(|s| s.name == lower) {
            return Charset::SingleByte(set);
        }
        if let Some(set) = tables::MULTI_BYTE.iter().find(|s| s.name == lower) {
            return Charset::MultiByte(set);
        }
        Charset::Unsupported(lower)
    }

    /// The text of stored bytes; the error says why they are not text in this set.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
                let at = e.valid_up_to();
                let end = (at + e.error_len().unwrap_or(bytes.len() - at)).min(bytes.len());
                let hex: Vec<String> = bytes[at..end].iter().map(|b| format!("{b:02X}")).collect();
                format!("bytes {} (at byte {at}) that are not UTF-8", hex.join(" "))
            }),
            Charset::Ascii => ascii(bytes).map(Cow::Borrowed).ok_or_else(|| {
                let at = bytes.iter().position(|b| !b.is_ascii()).unwrap_or(0);
                not_a_character("ascii", &bytes[at..at + 1], at)
            }),
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
            Charset::SingleByte(set) => set.decode(bytes),
            Charset::MultiByte(set) => set.decode(bytes),
            // These sets encode ASCII as ASCII, but for swe7 (a 7-bit set with letters in its place).
            Charset::Unsupported(name) => match ascii(bytes) {
                Some(ascii) if name != "swe7" => Ok(Cow::Borrowed(ascii)),
                _ => Err(format!(
                    "text beyond ASCII in character set {name}, which mysql-cdc has no faithful decoder for \
                     (convert the column: ALTER TABLE … MODIFY … CHARACTER SET utf8mb4)"
                )),
            },
        }
    }
}

/// The text of `bytes` stored in a column of MySQL character set `charset` (as
/// `information_schema` names it), as mysql-cdc reads it. For tests that compare it with the
/// server's own conversion.
#[doc(hidden)]
pub fn decode_stored_text(charset: &str, bytes: &[u8]) -> Result<String, String> {
    Charset::of(Some(charset)).decode(bytes).map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(set: &str, bytes: &[u8]) -> Result<String, String> {
        decode_stored_text(set, bytes)
    }

    #[test]
    fn each_set_decodes_its_own_bytes_or_refuses() {
        assert_eq!(Charset::of(Some("utf8mb4")).decode("ü✓".as_bytes()).unwrap(), "ü✓");
        assert!(Charset::Utf8.decode(&[0x61, 0xff]).unwrap_err().contains("FF (at byte 1)"));
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
        assert_eq!(Charset::of(None), Charset::Utf8);
        assert!(text("ascii", b"ok\x80").unwrap_err().contains("80 (at byte 2)"));
        let refused = text("swe7", b"[").unwrap_err();
        assert!(refused.contains("swe7") && refused.contains("utf8mb4"), "{refused}");
        assert_eq!(text("cp852", b"plain").unwrap(), "plain");
        let beyond = text("cp852", &[0x9f]).unwrap_err();
        assert!(beyond.contains("cp852") && beyond.contains("utf8mb4"), "{beyond}");
    }

    #[test]
    fn legacy_sets_read_as_the_server_reads_them() {
        // GBK '系统' happens to be valid UTF-8 ('ϵͳ'): read as GBK.
        let system: &[u8] = &[0xcf, 0xb5, 0xcd, 0xb3];
        assert_eq!(Charset::Utf8.decode(system).unwrap(), "ϵͳ");
        assert_eq!(text("gbk", system).unwrap(), "系统");
        assert_eq!(text("gb2312", system).unwrap(), "系统");
        assert_eq!(text("gb18030", system).unwrap(), "系统");
        assert_eq!(text("big5", &[0xa4, 0xa4, 0xa4, 0xe5]).unwrap(), "中文");
        assert_eq!(text("sjis", &[0x93, 0xfa, 0x96, 0x7b, 0xb1]).unwrap(), "日本ｱ");
        assert_eq!(text("cp932", &[0x93, 0xfa, 0x96, 0x7b]).unwrap(), "日本");
        assert_eq!(text("ujis", &[0xc6, 0xfc, 0xcb, 0xdc]).unwrap(), "日本");
        assert_eq!(text("eucjpms", &[0xc6, 0xfc, 0xcb, 0xdc]).unwrap(), "日本");
        assert_eq!(text("euckr", &[0xc7, 0xd1, 0xb1, 0xdb]).unwrap(), "한글");
        assert_eq!(text("cp1250", &[0xa3, 0xf3, 0x64, 0x9f]).unwrap(), "Łódź");
        assert_eq!(text("latin2", &[0xa3, 0xf3, 0x64, 0xbc]).unwrap(), "Łódź");
        assert_eq!(text("cp1251", &[0xcc, 0xee, 0xf1, 0xea, 0xe2, 0xe0]).unwrap(), "Москва");
        assert_eq!(text("koi8r", &[0xed, 0xcf, 0xd3, 0xcb, 0xd7, 0xc1]).unwrap(), "Москва");
        assert_eq!(text("greek", &[0xc1, 0xe8, 0xde, 0xed, 0xe1]).unwrap(), "Αθήνα");
        assert_eq!(text("hebrew", &[0xf9, 0xec, 0xe5, 0xed]).unwrap(), "שלום");
        assert_eq!(text("latin5", &[0xdd, 0x73, 0x74, 0x61, 0x6e, 0x62, 0x75, 0x6c]).unwrap(), "İstanbul");
        assert_eq!(text("tis620", &[0xca, 0xc7, 0xd1, 0xca, 0xb4, 0xd5]).unwrap(), "สวัสดี");
        // Mixed with ASCII, and plain ASCII borrowed as it is.
        assert_eq!(text("gbk", b"id=\xcf\xb5!").unwrap(), "id=系!");
        assert!(matches!(Charset::of(Some("big5")).decode(b"plain").unwrap(), Cow::Borrowed("plain")));
    }

    #[test]
    fn where_the_whatwg_decoders_differ_the_server_wins() {
        // MySQL's latin1 is cp1252 with the five undefined bytes as C1 controls, as WHATWG's.
        assert_eq!(text("latin1", &[0x81, 0x8d]).unwrap(), "\u{81}\u{8d}");
        // latin5 is ISO-8859-9, not windows-1254: 0x80 is a C1 control, not '€'.
        assert_eq!(text("latin5", &[0x80]).unwrap(), "\u{80}");
        // WHATWG's Big5 is Big5-HKSCS: C6A1 is '①' there, 'ヾ' in MySQL's big5; 8740 is HKSCS only.
        assert_eq!(text("big5", &[0xc6, 0xa1]).unwrap(), "ヾ");
        assert!(text("big5", &[0x87, 0x40]).is_err());
        // WHATWG's "gbk" is gb18030: four-byte sequences and the lone 0x80 ('€') are not GBK.
        assert!(text("gbk", &[0x81, 0x30, 0x81, 0x30]).is_err());
        assert!(text("gbk", &[0x80]).unwrap_err().contains("80 (at byte 0)"));
        assert!(text("gbk", &[0x81, 0x30]).unwrap_err().contains("81 30 (at byte 0)"));
        assert_eq!(text("gb18030", &[0x81, 0x30, 0x81, 0x30]).unwrap(), "\u{80}");
        // sjis 815F is the backslash in MySQL's table, the full-width one in cp932's and WHATWG's.
        assert_eq!(text("sjis", &[0x81, 0x5f]).unwrap(), "\\");
        assert_eq!(text("cp932", &[0x81, 0x5f]).unwrap(), "＼");
        // A trail byte cut off, a sequence with no character, and where it is said.
        let cut = text("gbk", &[0x61, 0xcf]).unwrap_err();
        assert!(cut.contains("CF (at byte 1)") && cut.contains("gbk"), "{cut}");
        let bad = text("euckr", &[0x61, 0x62, 0xc7, 0x20]).unwrap_err();
        assert!(bad.contains("at byte 2") && bad.contains("euckr"), "{bad}");
        // A byte the server has no character for in a single-byte set.
        assert!(text("cp1250", &[0x81]).unwrap_err().contains("81 (at byte 0)"));
        // A range of differences read in turn: ujis's user-defined rows are private-use.
        assert_eq!(text("ujis", &[0xf5, 0xa1, 0xf5, 0xa2, 0xf6, 0xa1]).unwrap(), "\u{e000}\u{e001}\u{e05e}");
        // gb18030's GB18030-2022 code points are refused, not read as 2005's or 2022's.
        assert!(text("gb18030", &[0xa6, 0xd9]).is_err());
    }

    #[test]
    fn difference_lists_are_sorted_and_disjoint() {
        for set in &tables::MULTI_BYTE {
            for pair in set.differences.windows(2) {
                assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{} {:x?}", set.name, pair);
            }
        }
        for set in &tables::SINGLE_BYTE {
            assert!(set.differences.windows(2).all(|p| p[0].0 < p[1].0), "{}", set.name);
        }
    }
}
