//! The parts of the MySQL client/server protocol the snapshot's own sessions speak, as pure
//! functions over bytes: the initial handshake, the handshake response with the password
//! scrambles of `mysql_native_password` and `caching_sha2_password`, the server's replies (OK,
//! ERR, EOF, auth switch, more auth data), prepared statements without parameters, and the cells
//! of text and binary result set rows.
//!
//! References: the MySQL source's client/server protocol documentation (`Protocol::HandshakeV10`,
//! `Protocol::HandshakeResponse41`, `Protocol::LengthEncodedInteger`, `ProtocolText::ResultsetRow`,
//! `COM_STMT_PREPARE`, `COM_STMT_EXECUTE`, `ProtocolBinary::ResultsetRow`) and MariaDB's, which
//! speak the same for these packets.

use sha1::Digest as _;

pub const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
pub const CLIENT_LONG_FLAG: u32 = 0x0000_0004;
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_TRANSACTIONS: u32 = 0x0000_2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub const CLIENT_MULTI_RESULTS: u32 = 0x0002_0000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
pub const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

/// What we ask for (plus [`CLIENT_CONNECT_WITH_DB`] with a database); the session uses the
/// intersection with the server's capabilities.
pub const CLIENT_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF;

/// `utf8mb4_general_ci`: every server since 5.5.3 knows it.
const UTF8MB4_GENERAL_CI: u8 = 45;

/// A payload this long continues in the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

pub const COM_QUERY: u8 = 0x03;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_EXECUTE: u8 = 0x17;

/// Column types (`enum_field_types`), as column definitions and the binlog's table maps give
/// them.
pub mod column_type {
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub server_version: String,
    pub capabilities: u32,
    /// The nonce the password is scrambled with (20 bytes from current servers).
    pub nonce: Vec<u8>,
    pub auth_plugin: String,
}

/// A malformed packet: the server is not speaking the protocol we expect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} packet from the server")]
pub struct Malformed {
    pub what: &'static str,
}

fn malformed(what: &'static str) -> Malformed {
    Malformed { what }
}

/// Reads a NUL-terminated string at `at`, moving past the NUL.
fn nul_terminated<'a>(bytes: &'a [u8], at: &mut usize, what: &'static str) -> Result<&'a [u8], Malformed> {
    let rest = bytes.get(*at..).ok_or(malformed(what))?;
    let end = rest.iter().position(|b| *b == 0).ok_or(malformed(what))?;
    *at += end + 1;
    Ok(&rest[..end])
}

impl Handshake {
    /// Parses `Protocol::HandshakeV10`.
    pub fn parse(p: &[u8]) -> Result<Handshake, Malformed> {
        const WHAT: &str = "initial handshake";
        if p.first() != Some(&10) {
            return Err(malformed(WHAT));
        }
        let mut at = 1;
        let server_version = String::from_utf8_lossy(nul_terminated(p, &mut at, WHAT)?).into_owned();
        at += 4; // connection id
        let mut nonce = p.get(at..at + 8).ok_or(malformed(WHAT))?.to_vec();
        at += 9; // and a filler byte
        let lower = p.get(at..at + 2).ok_or(malformed(WHAT))?;
        let mut capabilities = u16::from_le_bytes([lower[0], lower[1]]) as u32;
        at += 2;
        let mut auth_plugin = String::from("mysql_native_password");
        if let Some(rest) = p.get(at..at + 16) {
            // charset (1), status (2), upper capabilities (2), nonce length (1), reserved (10)
            capabilities |= (u16::from_le_bytes([rest[3], rest[4]]) as u32) << 16;
            let nonce_len = rest[5] as usize;
            at += 16;
            if capabilities & CLIENT_SECURE_CONNECTION != 0 {
                let part2 = nonce_len.saturating_sub(8).max(13);
                let bytes = p.get(at..at + part2).ok_or(malformed(WHAT))?;
                // The second part ends with a NUL that is not part of the nonce.
                let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
                nonce.extend_from_slice(bytes);
                at += part2;
            }
            if capabilities & CLIENT_PLUGIN_AUTH != 0 {
                // Some servers omit the final NUL.
                let rest = p.get(at..).unwrap_or_default();
                let name = rest.split(|b| *b == 0).next().unwrap_or_default();
                auth_plugin = String::from_utf8_lossy(name).into_owned();
            }
        }
        Ok(Handshake { server_version, capabilities, nonce, auth_plugin })
    }
}

/// The scrambled password `plugin` expects, `None` for a plugin we do not speak.
pub fn scramble(plugin: &str, password: &str, nonce: &[u8]) -> Option<Vec<u8>> {
    if password.is_empty() {
        return matches!(plugin, "mysql_native_password" | "caching_sha2_password").then(Vec::new);
    }
    let nonce = &nonce[..nonce.len().min(20)];
    match plugin {
        // SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))
        "mysql_native_password" => {
            let stage1 = sha1::Sha1::digest(password.as_bytes());
            let stage2 = sha1::Sha1::digest(stage1);
            let mut hasher = sha1::Sha1::new();
            hasher.update(nonce);
            hasher.update(stage2);
            let mask = hasher.finalize();
            Some(stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect())
        }
        // SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)
        "caching_sha2_password" => {
            let stage1 = sha2::Sha256::digest(password.as_bytes());
            let stage2 = sha2::Sha256::digest(stage1);
            let mut hasher = sha2::Sha256::new();
            hasher.update(stage2);
            hasher.update(nonce);
            let mask = hasher.finalize();
            Some(stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect())
        }
        _ => None,
    }
}

/// `Protocol::HandshakeResponse41`, without connection attributes; `database` is sent when
/// `capabilities` has [`CLIENT_CONNECT_WITH_DB`].
pub fn handshake_response(capabilities: u32, user: &str, auth: &[u8], database: Option<&str>, plugin: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + user.len() + auth.len() + plugin.len());
    p.extend_from_slice(&capabilities.to_le_bytes());
    p.extend_from_slice(&(MAX_PAYLOAD as u32).to_le_bytes());
    p.push(UTF8MB4_GENERAL_CI);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        put_lenenc_int(&mut p, auth.len() as u64);
    } else {
        p.push(auth.len() as u8);
    }
    p.extend_from_slice(auth);
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 {
        p.extend_from_slice(database.unwrap_or_default().as_bytes());
        p.push(0);
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
    }
    p
}

fn put_lenenc_int(p: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => p.push(n as u8),
        251..=0xFFFF => {
            p.push(0xFC);
            p.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            p.push(0xFD);
            p.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            p.push(0xFE);
            p.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Reads a length-encoded integer at `at`, moving past it; `None` when `bytes` ends first or
/// holds the NULL marker (0xFB) there.
pub fn lenenc_int(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    let (width, value) = match first {
        0..=0xFA => (0, first as u64),
        0xFC => (2, 0),
        0xFD => (3, 0),
        0xFE => (8, 0),
        _ => return None,
    };
    if width == 0 {
        *at += 1;
        return Some(value);
    }
    let raw = bytes.get(*at + 1..*at + 1 + width)?;
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(raw);
    *at += 1 + width;
    Some(u64::from_le_bytes(le))
}

/// A server reply to a command or to authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok,
    Err {
        code: u16,
        state: String,
        message: String,
    },
    /// The end of a result set: a classic EOF or, with `CLIENT_DEPRECATE_EOF`, an OK with 0xFE.
    End,
    /// `Protocol::AuthSwitchRequest`: authenticate again with this plugin and nonce.
    AuthSwitch {
        plugin: String,
        nonce: &'a [u8],
    },
    /// `Protocol::AuthMoreData` (e.g. `caching_sha2_password`'s 0x03 fast-auth success).
    AuthMoreData(&'a [u8]),
    /// Anything else: a column count, a column definition, a row.
    Data,
}

impl<'a> Reply<'a> {
    /// Classifies a payload. `in_auth` tells 0xFE apart: an auth switch during authentication,
    /// the end of a result set otherwise.
    pub fn parse(p: &'a [u8], in_auth: bool) -> Result<Reply<'a>, Malformed> {
        match p.first() {
            Some(0x00) if p.len() >= 7 || in_auth => Ok(Reply::Ok),
            Some(0xFF) => {
                let code = p.get(1..3).map(|c| u16::from_le_bytes([c[0], c[1]])).ok_or(malformed("error"))?;
                let (state, message) = match p.get(3) {
                    Some(b'#') => (
                        String::from_utf8_lossy(p.get(4..9).unwrap_or_default()).into_owned(),
                        String::from_utf8_lossy(p.get(9..).unwrap_or_default()).into_owned(),
                    ),
                    _ => (String::new(), String::from_utf8_lossy(p.get(3..).unwrap_or_default()).into_owned()),
                };
                Ok(Reply::Err { code, state, message })
            }
            Some(0xFE) if in_auth => {
                let mut at = 1;
                let plugin = match nul_terminated(p, &mut at, "auth switch") {
                    Ok(name) => String::from_utf8_lossy(name).into_owned(),
                    // A bare 0xFE: the old password scheme, which nobody may use any more.
                    Err(_) => String::from("mysql_old_password"),
                };
                let nonce = p.get(at..).unwrap_or_default();
                Ok(Reply::AuthSwitch { plugin, nonce: nonce.strip_suffix(&[0]).unwrap_or(nonce) })
            }
            Some(0xFE) if p.len() < MAX_PAYLOAD => Ok(Reply::End),
            Some(0x01) if in_auth => Ok(Reply::AuthMoreData(&p[1..])),
            Some(_) => Ok(Reply::Data),
            None => Err(malformed("empty")),
        }
    }
}

/// `COM_STMT_PREPARE_OK`: the statement's id and the definitions that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub id: u32,
    pub columns: u16,
    pub params: u16,
}

impl Prepared {
    pub fn parse(p: &[u8]) -> Result<Prepared, Malformed> {
        const WHAT: &str = "statement prepared";
        match p {
            [0, id @ ..] if id.len() >= 8 => Ok(Prepared {
                id: u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
                columns: u16::from_le_bytes([id[4], id[5]]),
                params: u16::from_le_bytes([id[6], id[7]]),
            }),
            _ => Err(malformed(WHAT)),
        }
    }
}

/// `COM_STMT_EXECUTE` of a statement without parameters, its rows sent at once (no cursor).
pub fn execute_command(statement: u32) -> [u8; 10] {
    let mut command = [COM_STMT_EXECUTE, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    command[1..5].copy_from_slice(&statement.to_le_bytes());
    command
}

/// What a reader needs of a `Protocol::ColumnDefinition41`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDefinition {
    pub column_type: u8,
    /// Fraction digits (31 and above: not fixed, as for a FLOAT without (M,D)).
    pub decimals: u8,
}

/// The type and decimals of a `Protocol::ColumnDefinition41`: after six length-encoded strings
/// (catalog, schema, table, original table, name, original name) and the length of the fixed
/// fields come the character set (2 bytes), the display length (4), the type (1), the flags (2)
/// and the decimals (1).
pub fn column_definition(def: &[u8]) -> Result<ColumnDefinition, Malformed> {
    const WHAT: &str = "column definition";
    let mut at = 0;
    for _ in 0..6 {
        let len = lenenc_int(def, &mut at).ok_or(malformed(WHAT))? as usize;
        at = at.checked_add(len).ok_or(malformed(WHAT))?;
    }
    lenenc_int(def, &mut at).ok_or(malformed(WHAT))?;
    let fixed = def.get(at..at + 10).ok_or(malformed(WHAT))?;
    Ok(ColumnDefinition { column_type: fixed[6], decimals: fixed[9] })
}

/// Splits a binary result set row (`ProtocolBinary::ResultsetRow`) of columns of `types` into
/// the byte ranges of its values (`None` = NULL), reusing `cells`. A value's range holds its
/// fixed-width little-endian bytes, the fields of a date, time or datetime after their length
/// byte (empty for a zero value), or the bytes of any other value as the text protocol sends them.
pub fn binary_row_cells(row: &[u8], types: &[u8], cells: &mut Vec<Option<(usize, usize)>>) -> Result<(), Malformed> {
    use column_type as t;
    const WHAT: &str = "binary result row";
    cells.clear();
    let nulls = row.get(1..1 + (types.len() + 9) / 8).filter(|_| row[0] == 0).ok_or(malformed(WHAT))?;
    let mut at = 1 + nulls.len();
    for (i, ty) in types.iter().enumerate() {
        let bit = i + 2;
        if nulls[bit / 8] & (1 << (bit % 8)) != 0 {
            cells.push(None);
            continue;
        }
        let (from, len) = match *ty {
            t::LONGLONG | t::DOUBLE => (at, 8),
            t::LONG | t::INT24 | t::FLOAT => (at, 4),
            t::SHORT | t::YEAR => (at, 2),
            t::TINY => (at, 1),
            t::NULL => (at, 0),
            t::DATE | t::DATETIME | t::TIMESTAMP | t::TIME => (at + 1, *row.get(at).ok_or(malformed(WHAT))? as usize),
            _ => {
                let len = lenenc_int(row, &mut at).ok_or(malformed(WHAT))? as usize;
                (at, len)
            }
        };
        let end = from.checked_add(len).filter(|end| *end <= row.len()).ok_or(malformed(WHAT))?;
        cells.push(Some((from, end)));
        at = end;
    }
    if at != row.len() {
        return Err(malformed(WHAT));
    }
    Ok(())
}

/// Splits a text result set row into its cells (`None` = NULL), reusing `cells` for the byte
/// ranges of `row`; fails when the row does not hold `columns` cells exactly.
pub fn row_cells(row: &[u8], columns: usize, cells: &mut Vec<Option<(usize, usize)>>) -> Result<(), Malformed> {
    cells.clear();
    let mut at = 0;
    while at < row.len() {
        if row[at] == 0xFB {
            cells.push(None);
            at += 1;
            continue;
        }
        let len = lenenc_int(row, &mut at).ok_or(malformed("result row"))? as usize;
        let end = at.checked_add(len).filter(|end| *end <= row.len()).ok_or(malformed("result row"))?;
        cells.push(Some((at, end)));
        at = end;
    }
    if cells.len() != columns {
        return Err(malformed("result row"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The initial handshake packet of MariaDB 10.11.19 (Debian), captured on this machine.
    const MARIADB_HANDSHAKE: &str = "0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275312d6c6f67\
        0006000000446a684d2672303500fef72d0200ff81150000000000001d000000594323227d7554234d3d2b5d00\
        6d7973716c5f6e61746976655f70617373776f726400";
    /// Its answer to a wrong password.
    const ACCESS_DENIED: &str = "ff15042332383030304163636573732064656e69656420666f72207573657220276364635f75736572\
        2740273132372e302e302e312720287573696e672070617373776f72643a2059455329";

    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn parses_a_mariadb_handshake() {
        let h = Handshake::parse(&hex(MARIADB_HANDSHAKE)).unwrap();
        assert_eq!(h.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1-log");
        assert_eq!(h.auth_plugin, "mysql_native_password");
        assert_eq!(h.nonce.len(), 20);
        assert_eq!(&h.nonce[..8], b"DjhM&r05");
        assert_eq!(&h.nonce[8..], b"YC#\"}uT#M=+]");
        assert!(h.capabilities & CLIENT_PLUGIN_AUTH != 0 && h.capabilities & CLIENT_DEPRECATE_EOF != 0);
        assert_eq!(Handshake::parse(&[9, 0]), Err(malformed("initial handshake")));
        assert!(Handshake::parse(&hex(MARIADB_HANDSHAKE)[..20]).is_err());
    }

    #[test]
    fn scrambles_match_the_reference_algorithms() {
        // Expected values from Python's hashlib, an independent implementation of the formulas.
        let nonce = b"abcdefghijklmnopqrst";
        let native = scramble("mysql_native_password", "secret", nonce).unwrap();
        assert_eq!(native, hex("8817c50fa779daef010ee7577825b0847df9842e"));
        let sha2 = scramble("caching_sha2_password", "secret", nonce).unwrap();
        assert_eq!(sha2, hex("c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"));
        let with_nul = [nonce.as_slice(), b"\0"].concat();
        assert_eq!(scramble("mysql_native_password", "secret", &with_nul).unwrap(), native, "20 bytes of nonce count");
        assert_eq!(scramble("mysql_native_password", "", nonce), Some(Vec::new()));
        assert_eq!(scramble("client_ed25519", "secret", nonce), None);
        assert_eq!(scramble("mysql_clear_password", "secret", nonce), None);
    }

    #[test]
    fn handshake_response_layout() {
        let caps = CLIENT_CAPABILITIES;
        let p = handshake_response(caps, "cdc", &[1, 2, 3], Some("ignored"), "mysql_native_password");
        assert_eq!(&p[..4], &caps.to_le_bytes());
        assert_eq!(p[8], UTF8MB4_GENERAL_CI);
        assert_eq!(&p[32..36], b"cdc\0");
        assert_eq!(&p[36..40], &[3, 1, 2, 3]);
        assert_eq!(&p[40..], b"mysql_native_password\0", "no database without CLIENT_CONNECT_WITH_DB");
        let p = handshake_response(caps | CLIENT_CONNECT_WITH_DB, "cdc", &[], Some("shop"), "mysql_native_password");
        assert_eq!(&p[36..], b"\0shop\0mysql_native_password\0");
    }

    #[test]
    fn length_encoded_integers() {
        for (bytes, value, used) in [
            (vec![0xFA], 250, 1),
            (vec![0xFC, 0x34, 0x12], 0x1234, 3),
            (vec![0xFD, 0x56, 0x34, 0x12], 0x12_3456, 4),
            (vec![0xFE, 1, 2, 3, 4, 5, 6, 7, 8], 0x0807_0605_0403_0201, 9),
        ] {
            let mut at = 0;
            assert_eq!(lenenc_int(&bytes, &mut at), Some(value));
            assert_eq!(at, used);
            let mut encoded = Vec::new();
            put_lenenc_int(&mut encoded, value);
            assert_eq!(encoded, bytes);
        }
        let mut at = 0;
        assert_eq!(lenenc_int(&[0xFC, 1], &mut at), None, "cut short");
        assert_eq!(lenenc_int(&[0xFB], &mut at), None, "NULL is no integer");
    }

    #[test]
    fn replies() {
        assert_eq!(Reply::parse(&[0, 0, 0, 2, 0, 0, 0], false), Ok(Reply::Ok));
        assert_eq!(Reply::parse(&[0xFE, 0, 0, 2, 0, 0, 0], false), Ok(Reply::End));
        assert_eq!(
            Reply::parse(&hex(ACCESS_DENIED), true),
            Ok(Reply::Err {
                code: 1045,
                state: "28000".into(),
                message: "Access denied for user 'cdc_user'@'127.0.0.1' (using password: YES)".into()
            })
        );
        let switch = [b"\xfemysql_native_password\0".as_slice(), b"0123456789abcdefghij\0"].concat();
        assert_eq!(
            Reply::parse(&switch, true),
            Ok(Reply::AuthSwitch { plugin: "mysql_native_password".into(), nonce: b"0123456789abcdefghij" })
        );
        assert_eq!(Reply::parse(&[0x01, 0x03], true), Ok(Reply::AuthMoreData(&[0x03])));
        assert_eq!(Reply::parse(&[0x01, 0x03], false), Ok(Reply::Data), "a row whose first cell is one byte");
        assert_eq!(Reply::parse(&[], false), Err(malformed("empty")));
    }

    #[test]
    fn row_cells_with_nulls_empty_and_long_values() {
        let long = vec![b'x'; 300];
        let mut row = vec![0x01, b'7', 0xFB, 0x00, 0xFC, 0x2C, 0x01];
        row.extend_from_slice(&long);
        let mut cells = Vec::new();
        row_cells(&row, 4, &mut cells).unwrap();
        let text: Vec<Option<&[u8]>> = cells.iter().map(|c| c.map(|(s, e)| &row[s..e])).collect();
        assert_eq!(text, [Some(b"7".as_slice()), None, Some(b"".as_slice()), Some(long.as_slice())]);
        assert!(row_cells(&row, 3, &mut cells).is_err(), "a column count that does not match");
        assert!(row_cells(&row[..20], 4, &mut cells).is_err(), "a row cut short");
    }

    /// MariaDB 10.11's answers to `COM_STMT_PREPARE` and `COM_STMT_EXECUTE` of
    /// `SELECT * FROM z`, captured on this machine. Table `z` has the columns
    /// `ti TINYINT, su SMALLINT UNSIGNED, mi MEDIUMINT, i INT, bu BIGINT UNSIGNED, f FLOAT,
    /// db DOUBLE, de DECIMAL(10,3), y YEAR, dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL,
    /// tm TIME(6), v VARCHAR(10), b BIT(3), j JSON` and two rows:
    /// `(-5, 65535, -8388608, 7, 18446744073709551615, 1.5, -2.25, -12.345, 2024, '2024-02-29',
    /// '2024-02-29 13:14:15.123456', '2023-11-14 22:13:20.5', '-838:59:59.000001', 'héllo'
    /// (latin1), b'101', '{"a": 1}')` and one of NULLs but for `y` 0, `dt` '0000-00-00',
    /// `dtm` '0000-00-00 00:00:00' and `tm` '00:00:00'.
    const PREPARE_OK: &str = "000200000010000000000000";
    const MEDIUMINT_DEFINITION: &str = "036465660164017a017a026d69026d690c3f0009000000090000000000";
    const JSON_DEFINITION: &str = "036465660164017a017a016a016a0c3f00fffffffffc9000000000";
    pub(crate) const TYPES: [u8; 16] = [1, 2, 9, 3, 8, 4, 5, 0xf6, 13, 10, 12, 7, 11, 0xfd, 16, 0xfc];
    pub(crate) const BINARY_ROW: &str =
        "00000000fbffff000080ff07000000ffffffffffffffff0000c03f00000000000002c0072d31322e333435\
        e80704e807021d0be807021d0d0e0f40e201000be7070b0e160d1420a107000c0122000000163b3b010000000568e96c6c6f01\
        05087b2261223a20317d";
    pub(crate) const BINARY_ROW_OF_NULLS: &str = "00fca3030000000000";
    /// The same rows as the text protocol sends them (`COM_QUERY`).
    pub(crate) const TEXT_ROW: &str = "022d35053635353335082d38333838363038013714313834343637343430373337303935353136313503312e35\
        052d322e3235072d31322e33343504323032340a323032342d30322d32391a323032342d30322d32392031333a31343a31352e3132333435\
        361a323032332d31312d31342032323a31333a32302e353030303030112d3833383a35393a35392e3030303030310568e96c6c6f0105087b\
        2261223a20317d";
    pub(crate) const TEXT_ROW_OF_NULLS: &str =
        "fbfbfbfbfbfbfbfb04303030300a303030302d30302d30301a303030302d30302d30302030303a30\
        303a30302e303030303030fb0f30303a30303a30302e303030303030fbfbfb";

    #[test]
    fn prepared_statement_replies() {
        assert_eq!(Prepared::parse(&hex(PREPARE_OK)), Ok(Prepared { id: 2, columns: 16, params: 0 }));
        assert!(Prepared::parse(&hex(ACCESS_DENIED)).is_err());
        assert_eq!(execute_command(0x0102_0304), [0x17, 4, 3, 2, 1, 0, 1, 0, 0, 0]);
        let definition = |text: &str| column_definition(&hex(text)).map(|d| (d.column_type, d.decimals));
        assert_eq!(definition(MEDIUMINT_DEFINITION), Ok((column_type::INT24, 0)));
        assert_eq!(definition(JSON_DEFINITION), Ok((0xfc, 0)));
        // `f` FLOAT: charset 63, length 12, type 4, flags 0, decimals 31 (not fixed).
        assert_eq!(definition("036465660164017a017a016601660c3f000c0000000400001f0000"), Ok((column_type::FLOAT, 31)));
        assert!(column_definition(&hex(JSON_DEFINITION)[..20]).is_err());
    }

    #[test]
    fn binary_row_cells_of_every_layout() {
        let row = hex(BINARY_ROW);
        let mut cells = Vec::new();
        binary_row_cells(&row, &TYPES, &mut cells).unwrap();
        let values: Vec<&[u8]> = cells.iter().map(|c| &row[c.unwrap().0..c.unwrap().1]).collect();
        let expected: [&[u8]; 16] = [
            &[0xfb],
            &[0xff, 0xff],
            &[0x00, 0x00, 0x80, 0xff],
            &[7, 0, 0, 0],
            &[0xff; 8],
            &1.5f32.to_le_bytes(),
            &(-2.25f64).to_le_bytes(),
            b"-12.345",
            &2024u16.to_le_bytes(),
            &[0xe8, 0x07, 2, 29],
            &[0xe8, 0x07, 2, 29, 13, 14, 15, 0x40, 0xe2, 0x01, 0x00],
            &[0xe7, 0x07, 11, 14, 22, 13, 20, 0x20, 0xa1, 0x07, 0x00],
            &[1, 34, 0, 0, 0, 22, 59, 59, 1, 0, 0, 0],
            b"h\xe9llo",
            &[0b101],
            br#"{"a": 1}"#,
        ];
        assert_eq!(values, expected);

        let row = hex(BINARY_ROW_OF_NULLS);
        binary_row_cells(&row, &TYPES, &mut cells).unwrap();
        let values: Vec<Option<&[u8]>> = cells.iter().map(|c| c.map(|(s, e)| &row[s..e])).collect();
        let mut expected: Vec<Option<&[u8]>> = vec![None; 16];
        expected[8] = Some(&[0, 0]);
        expected[9] = Some(&[]);
        expected[10] = Some(&[]);
        expected[12] = Some(&[]);
        assert_eq!(values, expected, "zero dates and times have no fields");

        let row = hex(BINARY_ROW);
        assert!(binary_row_cells(&row[..row.len() - 1], &TYPES, &mut cells).is_err(), "a row cut short");
        assert!(binary_row_cells(&row, &TYPES[..15], &mut cells).is_err(), "a column count that does not match");
        assert!(binary_row_cells(&[0xfe, 0, 0, 0], &TYPES[..1], &mut cells).is_err(), "no row header");
    }
}
