//! Spatial values (not a connector; shared by mysql-cdc and the jdbc scan). Pure functions over
//! bytes:
//!
//! - OGC Well-Known Binary (WKB, OGC 06-103r4 §8.2: a byte-order byte, a `u32` type, then the
//!   coordinates as IEEE doubles) parsed into a [`Geometry`], 2D types 1–7;
//! - MySQL's and MariaDB's stored form of a spatial value, as snapshot rows and the binlog carry
//!   it: the SRID as a little-endian `u32`, then the WKB ([`split_mysql`]);
//! - the JSON text Flink CDC writes for a spatial column declared STRING ([`flink_json`]).
//!
//! Flink CDC (`MySqlDeserializationConverterFactory`) turns the WKB into GeoJSON with Esri's
//! geometry-api-java (`OGCGeometry.fromBinary(wkb).asGeoJson()`), reads that back with Jackson
//! and writes `{"coordinates"|"geometries", "type", "srid"}` (keys in that order, a HashMap's).
//! Matching it byte for byte means matching what those libraries do on the way:
//!
//! - numbers: an integral value below 10^17 prints as an integer (`3`, not `3.0`); any other as
//!   Java's `Double.toString` prints it (`0.5`, `1.0E-5`, `1.2345678E7`); a NaN coordinate as
//!   `null`, a point of NaN as `[]`;
//! - polygon rings are closed (first point repeated last), each keeps its first point, and
//!   exterior rings run counter-clockwise, holes clockwise (Esri reverses the others);
//! - a one-point linestring repeats its point; empty linestrings and rings are left out;
//! - inside a GEOMETRYCOLLECTION members are `{"type", "coordinates"}`, a multi-linestring or
//!   multi-polygon of one part is written as `LineString`/`Polygon`, and a nested collection is
//!   `{"type", "geometries", "crs"}` with Esri's default `EPSG:4326` name.
//!
//! An infinite coordinate (which neither server stores) makes Jackson fail in Flink, and is an
//! error here.

use std::fmt::Write as _;

/// A point's x and y.
pub type Xy = [f64; 2];

#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Point(Xy),
    LineString(Vec<Xy>),
    /// Rings, the first one exterior.
    Polygon(Vec<Vec<Xy>>),
    MultiPoint(Vec<Xy>),
    MultiLineString(Vec<Vec<Xy>>),
    MultiPolygon(Vec<Vec<Vec<Xy>>>),
    /// A GEOMETRYCOLLECTION.
    Collection(Vec<Geometry>),
}

/// How deep collections may nest; deeper input is refused rather than recursed into.
const MAX_DEPTH: usize = 32;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| {
            format!("WKB ends inside a value ({} bytes, {} more needed at byte {})", self.bytes.len(), n, self.at)
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, little_endian: bool) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "WKB u32".to_string())?;
        Ok(if little_endian { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn f64(&mut self, little_endian: bool) -> Result<f64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "WKB double".to_string())?;
        Ok(if little_endian { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }

    fn xy(&mut self, little_endian: bool) -> Result<Xy, String> {
        Ok([self.f64(little_endian)?, self.f64(little_endian)?])
    }

    /// A count of items of at least `item_size` bytes each, checked against what is left (so a
    /// corrupt count cannot ask for a huge allocation).
    fn count(&mut self, little_endian: bool, item_size: usize) -> Result<usize, String> {
        let n = self.u32(little_endian)? as usize;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(item_size) > left {
            return Err(format!("WKB count {n} at byte {} exceeds the {left} bytes left", self.at - 4));
        }
        Ok(n)
    }

    fn points(&mut self, little_endian: bool) -> Result<Vec<Xy>, String> {
        let n = self.count(little_endian, 16)?;
        (0..n).map(|_| self.xy(little_endian)).collect()
    }

    fn rings(&mut self, little_endian: bool) -> Result<Vec<Vec<Xy>>, String> {
        let n = self.count(little_endian, 4)?;
        (0..n).map(|_| self.points(little_endian)).collect()
    }

    /// A geometry's byte order and type; `at` is where it starts, for messages.
    fn header(&mut self, at: usize) -> Result<(bool, u32), String> {
        let little_endian = match self.take(1)?[0] {
            0 => false,
            1 => true,
            other => return Err(format!("WKB byte order {other} at byte {at} is neither 0 nor 1")),
        };
        Ok((little_endian, self.u32(little_endian)?))
    }

    /// The members of a multi-geometry, each a whole WKB geometry of type `kind` with its own
    /// byte order, read by `body`.
    fn members<T>(
        &mut self,
        little_endian: bool,
        kind: u32,
        mut body: impl FnMut(&mut Self, bool) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let n = self.count(little_endian, 9)?;
        (0..n)
            .map(|_| {
                let at = self.at;
                let (member_endian, member_kind) = self.header(at)?;
                if member_kind != kind {
                    return Err(format!("WKB member of type {member_kind} at byte {at} where type {kind} belongs"));
                }
                body(self, member_endian)
            })
            .collect()
    }

    fn geometry(&mut self, depth: usize) -> Result<Geometry, String> {
        if depth > MAX_DEPTH {
            return Err(format!("WKB collections nest deeper than {MAX_DEPTH} levels"));
        }
        let at = self.at;
        let (little_endian, kind) = self.header(at)?;
        Ok(match kind {
            1 => Geometry::Point(self.xy(little_endian)?),
            2 => Geometry::LineString(self.points(little_endian)?),
            3 => Geometry::Polygon(self.rings(little_endian)?),
            4 => Geometry::MultiPoint(self.members(little_endian, 1, Self::xy)?),
            5 => Geometry::MultiLineString(self.members(little_endian, 2, Self::points)?),
            6 => Geometry::MultiPolygon(self.members(little_endian, 3, Self::rings)?),
            7 => {
                let n = self.count(little_endian, 9)?;
                Geometry::Collection((0..n).map(|_| self.geometry(depth + 1)).collect::<Result<_, _>>()?)
            }
            other => {
                return Err(format!(
                "WKB geometry type {other} at byte {at} is not a 2D OGC type (1–7; Z, M and curves are not supported)"
            ))
            }
        })
    }
}

/// Parses one WKB geometry, which must span `bytes` exactly.
pub fn parse_wkb(bytes: &[u8]) -> Result<Geometry, String> {
    let mut reader = Reader { bytes, at: 0 };
    let geometry = reader.geometry(0)?;
    if reader.at != bytes.len() {
        return Err(format!("{} bytes follow the WKB geometry", bytes.len() - reader.at));
    }
    Ok(geometry)
}

/// A MySQL/MariaDB spatial value: its SRID (as Java's signed `int`, which Flink CDC prints)
/// and its WKB.
pub fn split_mysql(bytes: &[u8]) -> Result<(i32, &[u8]), String> {
    match bytes.split_first_chunk::<4>() {
        Some((srid, wkb)) => Ok((i32::from_le_bytes(*srid), wkb)),
        None => Err(format!("a spatial value of {} bytes has no SRID (4 bytes, then WKB)", bytes.len())),
    }
}

/// A MySQL/MariaDB spatial value as Flink CDC's JSON text.
pub fn mysql_to_flink_json(bytes: &[u8]) -> Result<String, String> {
    let (srid, wkb) = split_mysql(bytes)?;
    flink_json(srid, &parse_wkb(wkb)?)
}

/// A MySQL/MariaDB spatial value as OGC WKB (its SRID left off), checked to be one whole
/// geometry.
pub fn mysql_to_wkb(bytes: &[u8]) -> Result<&[u8], String> {
    let (_, wkb) = split_mysql(bytes)?;
    parse_wkb(wkb)?;
    Ok(wkb)
}

/// Flink CDC's JSON text of `geometry` with `srid` (see the module documentation).
pub fn flink_json(srid: i32, geometry: &Geometry) -> Result<String, String> {
    const COORDINATES: &str = "{\"coordinates\":";
    let mut out = String::with_capacity(64);
    // Top-level multi-geometries keep their multi type (Esri's preferMultiGeometry).
    let kind = match geometry {
        Geometry::Point(p) => {
            out.push_str(COORDINATES);
            point(&mut out, *p)?;
            "Point"
        }
        Geometry::LineString(l) => {
            out.push_str(COORDINATES);
            single_line(&mut out, std::slice::from_ref(l))?;
            "LineString"
        }
        Geometry::Polygon(rings) => {
            out.push_str(COORDINATES);
            polygon(&mut out, rings)?;
            "Polygon"
        }
        Geometry::MultiPoint(points) => {
            out.push_str(COORDINATES);
            positions(&mut out, points)?;
            "MultiPoint"
        }
        Geometry::MultiLineString(l) => {
            out.push_str(COORDINATES);
            in_brackets(&mut out, |out| lines(out, l))?;
            "MultiLineString"
        }
        Geometry::MultiPolygon(p) => {
            out.push_str(COORDINATES);
            in_brackets(&mut out, |out| polygons(out, p))?;
            "MultiPolygon"
        }
        Geometry::Collection(members) => {
            out.push_str("{\"geometries\":");
            collection(&mut out, members)?;
            "GeometryCollection"
        }
    };
    let _ = write!(out, ",\"type\":\"{kind}\",\"srid\":{srid}}}");
    Ok(out)
}

/// The members of a collection, as Esri writes them (without `crs`, multi-geometries of one
/// part as single ones).
fn collection(out: &mut String, members: &[Geometry]) -> Result<(), String> {
    out.push('[');
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let tagged = |out: &mut String, kind: &str| {
            let _ = write!(out, "{{\"type\":\"{kind}\",\"coordinates\":");
        };
        match member {
            Geometry::Point(p) => {
                tagged(out, "Point");
                point(out, *p)?;
            }
            Geometry::LineString(l) => {
                tagged(out, "LineString");
                single_line(out, std::slice::from_ref(l))?;
            }
            Geometry::Polygon(rings) => {
                tagged(out, "Polygon");
                polygon(out, rings)?;
            }
            Geometry::MultiPoint(points) => {
                tagged(out, "MultiPoint");
                positions(out, points)?;
            }
            Geometry::MultiLineString(l) if l.iter().filter(|l| !l.is_empty()).count() <= 1 => {
                tagged(out, "LineString");
                single_line(out, l)?;
            }
            Geometry::MultiLineString(l) => {
                tagged(out, "MultiLineString");
                in_brackets(out, |out| lines(out, l))?;
            }
            Geometry::MultiPolygon(p) if p.iter().filter(|p| has_ring(p)).count() <= 1 => {
                tagged(out, "Polygon");
                match p.iter().find(|p| has_ring(p)) {
                    Some(rings) => polygon(out, rings)?,
                    None => out.push_str("[]"),
                }
            }
            Geometry::MultiPolygon(p) => {
                tagged(out, "MultiPolygon");
                in_brackets(out, |out| polygons(out, p))?;
            }
            Geometry::Collection(inner) => {
                out.push_str("{\"type\":\"GeometryCollection\",\"geometries\":");
                collection(out, inner)?;
                out.push_str(",\"crs\":{\"type\":\"name\",\"properties\":{\"name\":\"EPSG:4326\"}}}");
                continue;
            }
        }
        out.push('}');
    }
    out.push(']');
    Ok(())
}

fn in_brackets(out: &mut String, inner: impl FnOnce(&mut String) -> Result<(), String>) -> Result<(), String> {
    out.push('[');
    inner(out)?;
    out.push(']');
    Ok(())
}

fn has_ring(rings: &[Vec<Xy>]) -> bool {
    rings.iter().any(|r| !r.is_empty())
}

/// A point; one whose x is NaN is empty (`[]`).
fn point(out: &mut String, p: Xy) -> Result<(), String> {
    if p[0].is_nan() {
        out.push_str("[]");
        return Ok(());
    }
    position(out, p)
}

fn position(out: &mut String, p: Xy) -> Result<(), String> {
    out.push('[');
    number(out, p[0])?;
    out.push(',');
    number(out, p[1])?;
    out.push(']');
    Ok(())
}

fn positions(out: &mut String, points: &[Xy]) -> Result<(), String> {
    out.push('[');
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        position(out, *p)?;
    }
    out.push(']');
    Ok(())
}

/// The non-empty linestrings of `all`, comma-separated.
fn lines(out: &mut String, all: &[Vec<Xy>]) -> Result<(), String> {
    for (i, line) in all.iter().filter(|l| !l.is_empty()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        match line.as_slice() {
            // Esri stores a one-point path as two equal points.
            [p] => positions(out, &[*p, *p])?,
            points => positions(out, points)?,
        }
    }
    Ok(())
}

/// The coordinates of a geometry written as one LineString: its only non-empty linestring, or
/// `[]`.
fn single_line(out: &mut String, all: &[Vec<Xy>]) -> Result<(), String> {
    if all.iter().all(|l| l.is_empty()) {
        out.push_str("[]");
        return Ok(());
    }
    lines(out, all)
}

fn polygons(out: &mut String, all: &[Vec<Vec<Xy>>]) -> Result<(), String> {
    for (i, rings) in all.iter().filter(|p| has_ring(p)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        polygon(out, rings)?;
    }
    Ok(())
}

/// A polygon's non-empty rings, the first of them exterior.
fn polygon(out: &mut String, rings: &[Vec<Xy>]) -> Result<(), String> {
    out.push('[');
    for (i, ring) in rings.iter().filter(|r| !r.is_empty()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        closed_ring(out, ring, i == 0)?;
    }
    out.push(']');
    Ok(())
}

fn same_point(a: Xy, b: Xy) -> bool {
    let same = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan());
    same(a[0], b[0]) && same(a[1], b[1])
}

/// A ring as Esri writes it: its points without a repeated closing point (one point counts
/// twice), in its own order when it runs the right way (an exterior counter-clockwise, a hole
/// clockwise), else reversed behind its first point; then the first point again.
fn closed_ring(out: &mut String, ring: &[Xy], exterior: bool) -> Result<(), String> {
    let doubled;
    let stored: &[Xy] = match ring {
        [p] => {
            doubled = [*p, *p];
            &doubled
        }
        [first, .., last] if ring.len() >= 3 && same_point(*first, *last) => &ring[..ring.len() - 1],
        _ => ring,
    };
    let keep_order = is_clockwise(stored) != exterior;
    let rest = &stored[1..];
    let mut order: Vec<Xy> = Vec::with_capacity(stored.len() + 1);
    order.push(stored[0]);
    if keep_order {
        order.extend_from_slice(rest);
    } else {
        order.extend(rest.iter().rev());
    }
    order.push(stored[0]);
    positions(out, &order)
}

/// Esri's orientation test (`InternalUtils.isClockwiseRing`): the turn at the highest point
/// (greatest y, then greatest x; the first such), or, where that turn is straight, the sign of
/// the ring's area.
fn is_clockwise(ring: &[Xy]) -> bool {
    let greater = |a: Xy, b: Xy| {
        // Point2D.compare(a, b) == -1, i.e. b > a by (y, x).
        if a[1] < b[1] {
            true
        } else if a[1] > b[1] {
            false
        } else {
            a[0] < b[0]
        }
    };
    let mut highest: Option<usize> = None;
    let mut max = [f64::NEG_INFINITY, f64::NEG_INFINITY];
    for (i, p) in ring.iter().enumerate() {
        if greater(max, *p) {
            highest = Some(i);
            max = *p;
        }
    }
    let Some(h) = highest else { return false };
    let n = ring.len();
    let (p, q, r) = (ring[(h + n - 1) % n], ring[h], ring[(h + 1) % n]);
    let det = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]);
    if det < 0.0 {
        return true;
    }
    if det > 0.0 {
        return false;
    }
    // Esri's ring area: positive for a clockwise ring.
    let origin = ring[0];
    let area: f64 = (0..n)
        .map(|i| {
            let (s, e) = (ring[i], ring[(i + 1) % n]);
            ((e[0] - origin[0]) - (s[0] - origin[0])) * ((e[1] - origin[1]) + (s[1] - origin[1])) * 0.5
        })
        .sum();
    area > 0.0
}

/// A coordinate as it comes out of Esri's `%.17g` and Jackson's re-reading (see the module
/// documentation).
fn number(out: &mut String, v: f64) -> Result<(), String> {
    if v.is_nan() {
        out.push_str("null");
        return Ok(());
    }
    if v.is_infinite() {
        return Err(format!("the coordinate {v} has no JSON form"));
    }
    let shortest = format!("{:e}", v.abs());
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((shortest.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if v == 0.0 {
        out.push('0');
    } else if v.fract() == 0.0 && v.abs() < 1e17 {
        // The shortest digits padded with zeros, as `%.17g` prints them.
        let zeros = (exponent + 1 - digits.len() as i32).max(0) as usize;
        let _ = write!(out, "{sign}{digits}{}", "0".repeat(zeros));
    } else if (1e-3..1e7).contains(&v.abs()) {
        out.push_str(sign);
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int, fraction) = padded.split_at(int_len);
            let _ = write!(out, "{int}.{}", if fraction.is_empty() { "0" } else { fraction });
        } else {
            let _ = write!(out, "0.{}{digits}", "0".repeat((-exponent - 1) as usize));
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let _ = write!(out, "{sign}{first}.{}E{exponent}", if rest.is_empty() { "0" } else { rest });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WKB writer for the tests, per OGC 06-103r4 §8.2.
    struct Wkb {
        bytes: Vec<u8>,
        little_endian: bool,
    }

    impl Wkb {
        fn new(little_endian: bool) -> Self {
            Wkb { bytes: Vec::new(), little_endian }
        }
        fn header(&mut self, kind: u32) -> &mut Self {
            self.bytes.push(self.little_endian as u8);
            self.u32(kind)
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            let b = if self.little_endian { v.to_le_bytes() } else { v.to_be_bytes() };
            self.bytes.extend_from_slice(&b);
            self
        }
        fn xy(&mut self, x: f64, y: f64) -> &mut Self {
            for v in [x, y] {
                let b = if self.little_endian { v.to_le_bytes() } else { v.to_be_bytes() };
                self.bytes.extend_from_slice(&b);
            }
            self
        }
        fn points(&mut self, points: &[(f64, f64)]) -> &mut Self {
            self.u32(points.len() as u32);
            for (x, y) in points {
                self.xy(*x, *y);
            }
            self
        }
        fn point(&mut self, x: f64, y: f64) -> &mut Self {
            self.header(1).xy(x, y)
        }
        fn line(&mut self, points: &[(f64, f64)]) -> &mut Self {
            self.header(2).points(points)
        }
        fn polygon(&mut self, rings: &[&[(f64, f64)]]) -> &mut Self {
            self.header(3).u32(rings.len() as u32);
            for ring in rings {
                self.points(ring);
            }
            self
        }
    }

    fn json(bytes: &[u8]) -> String {
        flink_json(0, &parse_wkb(bytes).unwrap()).unwrap()
    }

    /// MySQL's stored value: SRID 0 (LE), then the WKB.
    fn mysql(wkb: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(wkb);
        v
    }

    // Expected texts: Flink CDC's MySqlConnectorITCase.testAllDataTypes (column_type_test.sql).
    #[test]
    fn flink_cdc_all_types_expectations() {
        let mut w = Wkb::new(true);
        w.point(1.0, 1.0);
        assert_eq!(mysql_to_flink_json(&mysql(&w.bytes)).unwrap(), r#"{"coordinates":[1,1],"type":"Point","srid":0}"#);

        let square: &[(f64, f64)] = &[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)];
        let mut w = Wkb::new(true);
        w.polygon(&[square]);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[[[1,1],[2,1],[2,2],[1,2],[1,1]]],"type":"Polygon","srid":0}"#);

        let mut w = Wkb::new(true);
        w.line(&[(3.0, 0.0), (3.0, 3.0), (3.0, 5.0)]);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[[3,0],[3,3],[3,5]],"type":"LineString","srid":0}"#);

        let mut w = Wkb::new(true);
        w.header(4).u32(2).point(1.0, 1.0).point(2.0, 2.0);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[[1,1],[2,2]],"type":"MultiPoint","srid":0}"#);

        let mut w = Wkb::new(true);
        w.header(5).u32(2).line(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]).line(&[(4.0, 4.0), (5.0, 5.0)]);
        assert_eq!(
            json(&w.bytes),
            r#"{"coordinates":[[[1,1],[2,2],[3,3]],[[4,4],[5,5]]],"type":"MultiLineString","srid":0}"#
        );

        let mut w = Wkb::new(true);
        w.header(6).u32(2).polygon(&[&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]]).polygon(&[&[
            (5.0, 5.0),
            (7.0, 5.0),
            (7.0, 7.0),
            (5.0, 7.0),
            (5.0, 5.0),
        ]]);
        assert_eq!(
            json(&w.bytes),
            r#"{"coordinates":[[[[0,0],[10,0],[10,10],[0,10],[0,0]]],[[[5,5],[7,5],[7,7],[5,7],[5,5]]]],"type":"MultiPolygon","srid":0}"#
        );

        let mut w = Wkb::new(true);
        w.header(7).u32(3).point(10.0, 10.0).point(30.0, 30.0).line(&[(15.0, 15.0), (20.0, 20.0)]);
        assert_eq!(
            json(&w.bytes),
            r#"{"geometries":[{"type":"Point","coordinates":[10,10]},{"type":"Point","coordinates":[30,30]},{"type":"LineString","coordinates":[[15,15],[20,20]]}],"type":"GeometryCollection","srid":0}"#
        );
    }

    #[test]
    fn the_issue_example_and_srid() {
        // `{"coordinates":[[3,0],[3,3]],"type":"LineString","srid":0}` (issue #21), SRID 4326.
        let mut w = Wkb::new(true);
        w.line(&[(3.0, 0.0), (3.0, 3.0)]);
        let mut value = 4326u32.to_le_bytes().to_vec();
        value.extend_from_slice(&w.bytes);
        assert_eq!(
            mysql_to_flink_json(&value).unwrap(),
            r#"{"coordinates":[[3,0],[3,3]],"type":"LineString","srid":4326}"#
        );
        assert_eq!(mysql_to_wkb(&value).unwrap(), &w.bytes[..]);
    }

    #[test]
    fn big_endian_members_and_numbers_as_java_prints_them() {
        let mut w = Wkb::new(false);
        w.header(4).u32(6);
        for (x, y) in [(0.5, -2.25), (1e-5, 12345678.5), (1e20, -0.0), (0.0005, 123.456), (72057594037927936.0, 3.0)] {
            w.point(x, y);
        }
        w.point(f64::NAN, 1.0);
        assert_eq!(
            json(&w.bytes),
            r#"{"coordinates":[[0.5,-2.25],[1.0E-5,1.23456785E7],[1.0E20,0],[5.0E-4,123.456],[72057594037927940,3],[null,1]],"type":"MultiPoint","srid":0}"#
        );
        let mut w = Wkb::new(true);
        w.point(f64::NAN, f64::NAN);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[],"type":"Point","srid":0}"#);
        let mut w = Wkb::new(true);
        w.point(f64::INFINITY, 0.0);
        assert!(flink_json(0, &parse_wkb(&w.bytes).unwrap()).unwrap_err().contains("inf"));
    }

    #[test]
    fn rings_are_closed_and_oriented_like_esri() {
        // A clockwise exterior and a counter-clockwise hole come out reversed behind their
        // first points; an unclosed ring is closed.
        let exterior_cw: &[(f64, f64)] = &[(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 0.0), (0.0, 0.0)];
        let hole_ccw: &[(f64, f64)] = &[(2.0, 2.0), (4.0, 2.0), (4.0, 4.0)];
        let mut w = Wkb::new(true);
        w.polygon(&[exterior_cw, hole_ccw]);
        assert_eq!(
            json(&w.bytes),
            r#"{"coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[2,2],[4,4],[4,2],[2,2]]],"type":"Polygon","srid":0}"#
        );
        // A one-point linestring repeats its point; empty parts are left out.
        let mut w = Wkb::new(true);
        w.header(5).u32(3).line(&[(1.0, 2.0)]).line(&[]).line(&[(3.0, 4.0), (5.0, 6.0)]);
        assert_eq!(
            json(&w.bytes),
            r#"{"coordinates":[[[1,2],[1,2]],[[3,4],[5,6]]],"type":"MultiLineString","srid":0}"#
        );
        let mut w = Wkb::new(true);
        w.line(&[]);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[],"type":"LineString","srid":0}"#);
        let mut w = Wkb::new(true);
        w.header(5).u32(1).line(&[]);
        assert_eq!(json(&w.bytes), r#"{"coordinates":[],"type":"MultiLineString","srid":0}"#);
    }

    #[test]
    fn collection_members_follow_esri_without_crs_except_nested_collections() {
        let mut w = Wkb::new(true);
        w.header(7).u32(4);
        w.header(5).u32(1).line(&[(1.0, 1.0), (2.0, 2.0)]);
        w.header(6).u32(1).polygon(&[&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]]);
        w.header(4).u32(1).point(7.0, 8.0);
        w.header(7).u32(1).point(1.5, 2.5);
        assert_eq!(
            json(&w.bytes),
            concat!(
                r#"{"geometries":[{"type":"LineString","coordinates":[[1,1],[2,2]]},"#,
                r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]},"#,
                r#"{"type":"MultiPoint","coordinates":[[7,8]]},"#,
                r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1.5,2.5]}],"#,
                r#""crs":{"type":"name","properties":{"name":"EPSG:4326"}}}],"type":"GeometryCollection","srid":0}"#
            )
        );
        let mut w = Wkb::new(true);
        w.header(7).u32(0);
        assert_eq!(json(&w.bytes), r#"{"geometries":[],"type":"GeometryCollection","srid":0}"#);
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(split_mysql(&[0, 0, 0]).unwrap_err().contains("no SRID"));
        let mut w = Wkb::new(true);
        w.point(1.0, 2.0);
        assert!(parse_wkb(&w.bytes[..20]).unwrap_err().contains("ends inside"));
        let mut long = w.bytes.clone();
        long.push(0);
        assert!(parse_wkb(&long).unwrap_err().contains("1 bytes follow"));
        assert!(parse_wkb(&[2, 1, 0, 0, 0]).unwrap_err().contains("byte order 2"));
        let mut z = Wkb::new(true);
        z.header(1001).xy(1.0, 2.0);
        assert!(parse_wkb(&z.bytes).unwrap_err().contains("type 1001"));
        let mut huge = Wkb::new(true);
        huge.header(2).u32(u32::MAX);
        assert!(parse_wkb(&huge.bytes).unwrap_err().contains("exceeds"));
        let mut wrong = Wkb::new(true);
        wrong.header(4).u32(1).line(&[(1.0, 1.0)]);
        assert!(parse_wkb(&wrong.bytes).unwrap_err().contains("type 2 at byte 9 where type 1 belongs"));
        let mut deep = Wkb::new(true);
        for _ in 0..40 {
            deep.header(7).u32(1);
        }
        deep.point(0.0, 0.0);
        assert!(parse_wkb(&deep.bytes).unwrap_err().contains("deeper"));
    }
}
