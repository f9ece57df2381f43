//! Typed attribute values from text, for ingest.
//!
//! [`convert_text`] converts one text cell to an attribute type with the same
//! result as crmkit's Python `mapping.convert`, on the forms that a CSV or a
//! JSON export carries in practice. Anything it cannot convert with certainty
//! (a bad value, or a rare form such as `1_000` or a date-time with a non-UTC
//! offset) is [`Converted::Unsure`]: the host converts those few values itself,
//! so that both the result and the error message stay in one place.
//!
//! [`json_objects`] writes one JSON object per row from typed columns: the
//! custom attributes of a batch of contacts, encoded for the store.

use std::fmt::Write as _;

/// An attribute type, as declared in a workflow or inferred on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// Text, trimmed; blank is missing.
    String,
    /// A whole number (64-bit).
    Integer,
    /// A floating-point number.
    Number,
    /// yes/no, true/false, 1/0, …
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// An ISO 8601 date-time, stored in UTC.
    DateTime,
    /// Strings split on a separator.
    List,
}

impl AttrType {
    /// The type named `name` (`string`, `integer`, `number`, `boolean`,
    /// `date`, `datetime`, `list`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "datetime" => Self::DateTime,
            "list" => Self::List,
            _ => return None,
        })
    }
}

/// One converted cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted<'a> {
    /// Missing (blank text).
    Null,
    /// The trimmed input itself (strings, and dates already in canonical form).
    Same(&'a str),
    /// New text (a date-time in canonical UTC form).
    Text(String),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(Vec<&'a str>),
    /// Not converted here: the host converts (or rejects) this value.
    Unsure,
}

/// Whitespace as Python's `str.strip()` sees it (Unicode White_Space plus the
/// ASCII file, group, record and unit separators).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s` trimmed like Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

const TRUE_WORDS: [&str; 7] = ["true", "yes", "y", "1", "t", "on", "x"];
const FALSE_WORDS: [&str; 6] = ["false", "no", "n", "0", "f", "off"];

/// `value` converted to `typ` (see the module notes for [`Converted::Unsure`]).
pub fn convert_text<'a>(value: &'a str, typ: AttrType, list_separator: &str) -> Converted<'a> {
    if typ == AttrType::List {
        if list_separator.is_empty() {
            return Converted::Unsure;
        }
        return Converted::List(
            value
                .split(list_separator)
                .map(py_strip)
                .filter(|p| !p.is_empty())
                .collect(),
        );
    }
    let s = py_strip(value);
    if s.is_empty() {
        return Converted::Null;
    }
    match typ {
        AttrType::String => Converted::Same(s),
        AttrType::Integer => match s.parse::<i64>() {
            Ok(v) => Converted::Int(v),
            Err(_) => Converted::Unsure,
        },
        AttrType::Number => {
            if s.bytes()
                .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b))
            {
                s.parse::<f64>()
                    .map(Converted::Float)
                    .unwrap_or(Converted::Unsure)
            } else {
                Converted::Unsure
            }
        }
        AttrType::Boolean => {
            if s.len() > 5 || !s.is_ascii() {
                return Converted::Unsure;
            }
            let low = s.to_ascii_lowercase();
            if TRUE_WORDS.contains(&low.as_str()) {
                Converted::Bool(true)
            } else if FALSE_WORDS.contains(&low.as_str()) {
                Converted::Bool(false)
            } else {
                Converted::Unsure
            }
        }
        AttrType::Date => {
            let head = s.get(..10).unwrap_or(s);
            if s.len() >= 10 && s.is_char_boundary(10) && valid_date(head) {
                Converted::Same(head)
            } else {
                Converted::Unsure
            }
        }
        AttrType::DateTime => datetime_utc(s).map_or(Converted::Unsure, Converted::Text),
        AttrType::List => unreachable!("handled above"),
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// True for a real calendar date written `YYYY-MM-DD` (years 1–9999).
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&s[..4]), digits(&s[5..7]), digits(&s[8..10])) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]` with no offset, `Z` or `+00:00`, in
/// Python's `isoformat()` form with a `+00:00` offset; `None` for other forms.
fn datetime_utc(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 16 || !s.is_char_boundary(10) || !valid_date(&s[..10]) {
        return None;
    }
    if b[10] != b'T' && b[10] != b' ' {
        return None;
    }
    let mut rest = &s[11..];
    for suffix in ["Z", "+00:00", "-00:00", "+0000"] {
        if let Some(r) = rest.strip_suffix(suffix) {
            rest = r;
            break;
        }
    }
    if rest.contains(['+', 'Z', 'z']) || rest.matches('-').count() > 0 {
        return None;
    }
    let (hms, frac) = match rest.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (rest, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let h = digits(parts[0])?;
    let mi = digits(parts[1])?;
    let sec = if parts.len() == 3 {
        digits(parts[2])?
    } else {
        0
    };
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut out = String::with_capacity(32);
    let _ = write!(out, "{}T{h:02}:{mi:02}:{sec:02}", &s[..10]);
    if let Some(f) = frac {
        if parts.len() != 3 || f.is_empty() || f.len() > 6 || digits(f).is_none() {
            return None;
        }
        let micros = digits(f)? * 10u32.pow(6 - f.len() as u32);
        if micros != 0 {
            let _ = write!(out, ".{micros:06}");
        }
    }
    out.push_str("+00:00");
    Some(out)
}

/// Days since 1970-01-01 of a valid civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch seconds of an ISO 8601 time as Python's
/// `int(datetime.fromisoformat(s).timestamp())` gives it (UTC when no offset
/// is written): `YYYY-MM-DD`, optionally followed by `T` or a space,
/// `HH:MM[:SS[.ffffff]]` and `Z`, `±HH:MM` or `±HHMM`. Times before 1970 and
/// other forms are `None` (the host parses those).
pub fn epoch_seconds(text: &str) -> Option<i64> {
    let s = py_strip(text);
    let b = s.as_bytes();
    if b.len() < 10 || !s.is_char_boundary(10) || !valid_date(&s[..10]) {
        return None;
    }
    let y = i64::from(digits(&s[..4])?);
    let m = i64::from(digits(&s[5..7])?);
    let d = i64::from(digits(&s[8..10])?);
    if y < 1970 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    if b[10] != b'T' && b[10] != b' ' {
        return None;
    }
    let mut rest = &s[11..];
    let mut offset = 0i64;
    if let Some(r) = rest.strip_suffix('Z') {
        rest = r;
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (body, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let off = &off[1..];
        let (oh, om) = match off.len() {
            5 if off.as_bytes()[2] == b':' => (&off[..2], &off[3..]),
            4 => (&off[..2], &off[2..]),
            _ => return None,
        };
        let (oh, om) = (i64::from(digits(oh)?), i64::from(digits(om)?));
        if oh > 23 || om > 59 {
            return None;
        }
        offset = sign * (oh * 3600 + om * 60);
        rest = body;
    }
    let (hms, frac) = match rest.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (rest, None),
    };
    let mut parts = hms.split(':');
    let h = parts.next().filter(|p| p.len() == 2).and_then(digits)?;
    let mi = parts.next().filter(|p| p.len() == 2).and_then(digits)?;
    let sec = match parts.next() {
        Some(p) if p.len() == 2 => digits(p)?,
        Some(_) => return None,
        None if frac.is_some() => return None,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 6 || digits(f).is_none() {
            return None;
        }
    }
    let t = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec) - offset;
    // int() truncates toward zero; a fraction changes nothing from 1970 on.
    (t >= 0).then_some(t)
}

/// One typed value of a row, for [`json_objects`].
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue<'a> {
    /// Absent: the key is left out of the row's object.
    Missing,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite number (a non-finite one is left out, as JSON has none).
    Float(f64),
    /// A string.
    Str(&'a str),
    /// A list of strings.
    List(Vec<String>),
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One compact JSON object per row from `columns` (name, values), keys in
/// column order, missing values left out; `None` for a row with no value.
pub fn json_objects(columns: &[(&str, Vec<JsonValue<'_>>)], rows: usize) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(rows);
    let mut buf = String::new();
    for i in 0..rows {
        buf.clear();
        for (name, values) in columns {
            let v = &values[i];
            if matches!(v, JsonValue::Missing) || matches!(v, JsonValue::Float(f) if !f.is_finite())
            {
                continue;
            }
            buf.push(if buf.is_empty() { '{' } else { ',' });
            push_json_str(&mut buf, name);
            buf.push(':');
            match v {
                JsonValue::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
                JsonValue::Int(n) => {
                    let _ = write!(buf, "{n}");
                }
                JsonValue::Float(f) => {
                    if f.fract() == 0.0 && f.abs() < 1e16 {
                        let _ = write!(buf, "{f:.1}");
                    } else {
                        let _ = write!(buf, "{f:?}");
                    }
                }
                JsonValue::Str(s) => push_json_str(&mut buf, s),
                JsonValue::List(items) => {
                    buf.push('[');
                    for (k, s) in items.iter().enumerate() {
                        if k > 0 {
                            buf.push(',');
                        }
                        push_json_str(&mut buf, s);
                    }
                    buf.push(']');
                }
                JsonValue::Missing => unreachable!(),
            }
        }
        if buf.is_empty() {
            out.push(None);
        } else {
            buf.push('}');
            out.push(Some(buf.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_numbers_and_booleans() {
        assert_eq!(
            convert_text(" 42 ", AttrType::Integer, ";"),
            Converted::Int(42)
        );
        assert_eq!(
            convert_text("+7", AttrType::Integer, ";"),
            Converted::Int(7)
        );
        assert_eq!(
            convert_text("4.0", AttrType::Integer, ";"),
            Converted::Unsure
        );
        assert_eq!(convert_text("  ", AttrType::Integer, ";"), Converted::Null);
        assert_eq!(
            convert_text("1.5e3", AttrType::Number, ";"),
            Converted::Float(1500.0)
        );
        assert_eq!(
            convert_text("1_0", AttrType::Number, ";"),
            Converted::Unsure
        );
        assert_eq!(
            convert_text("nan", AttrType::Number, ";"),
            Converted::Unsure
        );
        assert_eq!(
            convert_text("YES", AttrType::Boolean, ";"),
            Converted::Bool(true)
        );
        assert_eq!(
            convert_text("off", AttrType::Boolean, ";"),
            Converted::Bool(false)
        );
        assert_eq!(
            convert_text("maybe", AttrType::Boolean, ";"),
            Converted::Unsure
        );
    }

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert_eq!(
            convert_text("2024-02-29", AttrType::Date, ";"),
            Converted::Same("2024-02-29")
        );
        assert_eq!(
            convert_text("2024-02-29T10:00", AttrType::Date, ";"),
            Converted::Same("2024-02-29")
        );
        assert_eq!(
            convert_text("2023-02-29", AttrType::Date, ";"),
            Converted::Unsure
        );
        assert_eq!(
            convert_text("2023-13-01", AttrType::Date, ";"),
            Converted::Unsure
        );
        assert_eq!(
            convert_text("01/02/2023", AttrType::Date, ";"),
            Converted::Unsure
        );
        assert_eq!(
            convert_text("2023-01-0é", AttrType::Date, ";"),
            Converted::Unsure
        );
    }

    #[test]
    fn datetimes_in_utc_take_python_isoformat() {
        let t = |s| convert_text(s, AttrType::DateTime, ";");
        assert_eq!(
            t("2024-03-01T10:20:30Z"),
            Converted::Text("2024-03-01T10:20:30+00:00".into())
        );
        assert_eq!(
            t("2024-03-01 10:20"),
            Converted::Text("2024-03-01T10:20:00+00:00".into())
        );
        assert_eq!(
            t("2024-03-01T10:20:30.5"),
            Converted::Text("2024-03-01T10:20:30.500000+00:00".into())
        );
        assert_eq!(t("2024-03-01T10:20:30+02:00"), Converted::Unsure);
        assert_eq!(t("2024-03-01T25:00"), Converted::Unsure);
    }

    #[test]
    fn epoch_seconds_of_iso_times() {
        assert_eq!(epoch_seconds("1970-01-01"), Some(0));
        assert_eq!(epoch_seconds("2024-07-18T09:59:55Z"), Some(1_721_296_795));
        assert_eq!(
            epoch_seconds("2024-07-18 11:59:55.25+02:00"),
            Some(1_721_296_795)
        );
        assert_eq!(
            epoch_seconds("2024-07-18T04:59:55-0500"),
            Some(1_721_296_795)
        );
        assert_eq!(epoch_seconds("2024-02-29T00:00"), Some(1_709_164_800));
        assert_eq!(epoch_seconds("1969-12-31T23:59:59Z"), None);
        assert_eq!(epoch_seconds("2024-07-18T09:59:60Z"), None);
        assert_eq!(epoch_seconds("2024-07-18T9:59Z"), None);
        assert_eq!(epoch_seconds("18/07/2024"), None);
    }

    #[test]
    fn lists_split_and_trim() {
        assert_eq!(
            convert_text(" a ; b;;c ", AttrType::List, ";"),
            Converted::List(vec!["a", "b", "c"])
        );
        assert_eq!(
            convert_text("", AttrType::List, ";"),
            Converted::List(vec![])
        );
    }

    #[test]
    fn json_objects_leave_missing_values_out() {
        let cols = vec![
            (
                "plan",
                vec![JsonValue::Str("Pro \"x\""), JsonValue::Missing],
            ),
            ("n", vec![JsonValue::Float(2.0), JsonValue::Missing]),
            (
                "tags",
                vec![JsonValue::List(vec!["a".into()]), JsonValue::Missing],
            ),
        ];
        assert_eq!(
            json_objects(&cols, 2),
            vec![
                Some(r#"{"plan":"Pro \"x\"","n":2.0,"tags":["a"]}"#.to_string()),
                None
            ]
        );
    }
}
