//! MariaDB's INET4, INET6 and UUID columns are stored as fixed binary strings (4, 16 and 16
//! bytes): a snapshot `SELECT` returns their text (`::1`), while the binlog carries the stored
//! bytes, with trailing zero bytes stripped as for any fixed BINARY. These functions give the
//! binlog's values the text the server prints, so snapshot and binlog agree (and no raw bytes
//! reach a STRING column). Pure.
//!
//! INET6 text follows the server's own formatting (MariaDB's `Inet6::to_string`, MySQL's
//! `INET6_NTOA`): lower-case hex groups without leading zeros; the longest run of zero groups,
//! even a single one, the first of equally long runs, written `::`; an address whose first six
//! groups are zero (IPv4-compatible) or five zero groups then `ffff` (IPv4-mapped) ends in
//! dotted IPv4 form. This is not RFC 5952 (which keeps a lone zero group), so not
//! `std::net::Ipv6Addr`'s text.

use std::fmt::Write as _;

/// A MariaDB type stored as fixed binary and read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryText {
    Inet4,
    Inet6,
    Uuid,
}

impl BinaryText {
    /// By `information_schema.COLUMNS.DATA_TYPE`.
    pub fn of(data_type: &str) -> Option<BinaryText> {
        match data_type {
            "inet4" => Some(BinaryText::Inet4),
            "inet6" => Some(BinaryText::Inet6),
            "uuid" => Some(BinaryText::Uuid),
            _ => None,
        }
    }

    fn width(self) -> usize {
        match self {
            BinaryText::Inet4 => 4,
            BinaryText::Inet6 | BinaryText::Uuid => 16,
        }
    }

    /// The text of a binlog value (trailing zero bytes possibly stripped).
    pub fn text(self, stored: &[u8]) -> Result<String, String> {
        let width = self.width();
        if stored.len() > width {
            return Err(format!("{} bytes where {self:?} stores {width}", stored.len()));
        }
        let mut bytes = [0u8; 16];
        bytes[..stored.len()].copy_from_slice(stored);
        let bytes = &bytes[..width];
        Ok(match self {
            BinaryText::Inet4 => ipv4(bytes),
            BinaryText::Inet6 => ipv6(bytes),
            BinaryText::Uuid => {
                let mut out = String::with_capacity(36);
                for (i, b) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        out.push('-');
                    }
                    let _ = write!(out, "{b:02x}");
                }
                out
            }
        })
    }
}

fn ipv4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn ipv6(bytes: &[u8]) -> String {
    let words: Vec<u16> = bytes.chunks_exact(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect();
    // The gap: the longest run of zero words, the first of equally long ones.
    let (mut gap_at, mut gap_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > gap_len {
                (gap_at, gap_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if i == gap_at {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += gap_len;
            continue;
        }
        if i == 6 && gap_at == 0 && (gap_len == 6 || (gap_len == 5 && words[5] == 0xffff)) {
            out.push_str(&ipv4(&bytes[12..]));
            break;
        }
        let _ = write!(out, "{:x}", words[i]);
        if i != 7 {
            out.push(':');
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    /// Stored bytes (`HEX(c)`) and the text MariaDB 10.11 prints for them.
    #[test]
    fn inet6_as_the_server_prints_it() {
        for (stored, text) in [
            ("00000000000000000000000000000001", "::1"),
            ("00010000000000000000000000000000", "1::"),
            ("00000000000000000000FFFF01020304", "::ffff:1.2.3.4"),
            ("00000000000000000000000001020304", "::1.2.3.4"),
            ("20010DB8000000000001000000000001", "2001:db8::1:0:0:1"),
            ("00000000000000000000000000000102", "::102"),
            ("00000000000000000000FFFF00000000", "::ffff:0.0.0.0"),
            ("00010000000000020000000000000003", "1:0:0:2::3"),
            ("00010000000200000003000000040000", "1::2:0:3:0:4:0"),
            ("00000000000000000000000000000000", "::"),
            ("0000000000000000FFFF000001020304", "::ffff:0:102:304"),
            ("ABCDEF01000000000000000000000000", "abcd:ef01::"),
            ("00000000000100000000000000000000", "0:0:1::"),
            ("00010000000100020003000400050006", "1::1:2:3:4:5:6"),
            ("00000000000000000001FFFF01020304", "::1:ffff:102:304"),
        ] {
            assert_eq!(BinaryText::Inet6.text(&hex(stored)).unwrap(), text, "{stored}");
        }
        // The binlog strips trailing zero bytes: `1::` arrives as 00 01.
        assert_eq!(BinaryText::Inet6.text(&[0, 1]).unwrap(), "1::");
        assert!(BinaryText::Inet6.text(&[0; 17]).is_err());
    }

    #[test]
    fn inet4_and_uuid() {
        assert_eq!(BinaryText::Inet4.text(&hex("FF000001")).unwrap(), "255.0.0.1");
        assert_eq!(BinaryText::Inet4.text(&[1]).unwrap(), "1.0.0.0");
        assert_eq!(BinaryText::Inet4.text(&[]).unwrap(), "0.0.0.0");
        assert_eq!(
            BinaryText::Uuid.text(&hex("6CCD780CBABA102695645B8C656024DB")).unwrap(),
            "6ccd780c-baba-1026-9564-5b8c656024db"
        );
        assert_eq!(
            BinaryText::Uuid.text(&hex("0000000000001000800000")).unwrap(),
            "00000000-0000-1000-8000-000000000000"
        );
        assert_eq!(BinaryText::of("inet6"), Some(BinaryText::Inet6));
        assert_eq!(BinaryText::of("binary"), None);
    }
}
