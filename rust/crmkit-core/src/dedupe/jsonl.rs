//! JSON Lines files in and out of the matcher, as [`super::file`] does CSV.
//!
//! A row is a line holding a JSON object; blank lines are skipped and any
//! other line is rejected (counted, never written back). A member's value is
//! read as text: a string as it is, a number as written, `true`/`false` as
//! `True`/`False`, `null` as missing; objects and arrays are not contact
//! fields and count as missing. Duplicate keys: the last one wins.
//!
//! [`keys`] lists the members' keys (so the caller can map them to fields),
//! [`read`] reads the match keys of the mapped members,
//! [`write_with_member`] writes each row back with one more member, keeping
//! the line's own bytes, and [`write_matches`] writes each row back with its
//! best match in an index.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use std::collections::HashMap;

use super::data::Field;
use super::file::{
    build, check_columns, countries_of, finish_written, keys_of, more_rows_than, Cells, FileError,
    FileRows, FileSpec,
};
use super::index::Index;
use crate::normalize::phone::PhoneRegion;
use crate::CoreError;

/// Lines per chunk read and parsed at once.
const CHUNK_LINES: usize = 1 << 15;

/// A key or string, borrowed from the line when it holds no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top-level members of an object, in order, values left unparsed.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The members of an object line: `(key, raw value)` in order.
type MemberList<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// The members of a line holding a JSON object; `None` for any other line.
fn members(line: &str) -> Option<MemberList<'_>> {
    serde_json::from_str::<Members<'_>>(line).ok().map(|m| m.0)
}

/// A member's value as text (see the module docs), trimmed; `None` when
/// missing or empty.
fn text_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let t: Cow<'_, str> = match s.as_bytes().first()? {
        b'"' => serde_json::from_str::<Text<'_>>(s).ok()?.0,
        b't' => Cow::Borrowed("True"),
        b'f' => Cow::Borrowed("False"),
        b'n' | b'{' | b'[' => return None,
        _ => Cow::Borrowed(s),
    };
    match t {
        Cow::Borrowed(b) => Some(Cow::Borrowed(b.trim())).filter(|c| !c.is_empty()),
        Cow::Owned(o) => {
            let trimmed = o.trim();
            (!trimmed.is_empty()).then(|| Cow::Owned(trimmed.to_owned()))
        }
    }
}

/// One chunk of a file's lines, as read (UTF-8 is checked per line).
struct Lines {
    lines: Vec<Vec<u8>>,
}

/// Read the file's lines in chunks of [`CHUNK_LINES`]; a UTF-8 byte-order
/// mark at the start is dropped.
fn chunks(path: &Path) -> Result<impl Iterator<Item = Result<Lines, FileError>>, FileError> {
    let file = File::open(path).map_err(read_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut first = true;
    let path = path.to_path_buf();
    Ok(std::iter::from_fn(move || {
        let mut lines = Vec::with_capacity(CHUNK_LINES);
        while lines.len() < CHUNK_LINES {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if first {
                        first = false;
                        if line.starts_with(b"\xef\xbb\xbf") {
                            line.drain(..3);
                        }
                    }
                    lines.push(line);
                }
                Err(e) => return Some(Err(read_err(&path)(e))),
            }
        }
        (!lines.is_empty()).then_some(Ok(Lines { lines }))
    }))
}

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> FileError + '_ {
    move |e| {
        FileError::Core(CoreError::InvalidInput(format!(
            "{}: cannot read: {e}",
            path.display()
        )))
    }
}

/// How a line reads: `None` when blank (skipped); else its text (trailing
/// white space dropped) and members when it holds a JSON object, `None` when
/// it does not (rejected).
fn parse_line(line: &[u8]) -> Option<Option<(&str, MemberList<'_>)>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(
        std::str::from_utf8(line)
            .ok()
            .map(str::trim_end)
            .and_then(|s| members(s).map(|m| (s, m))),
    )
}

/// `f` of each object line of a chunk, parsed once and in parallel, in line
/// order; with the count of rejected lines.
fn per_object<'c, T: Send>(
    chunk: &'c Lines,
    f: impl Fn(&'c str, MemberList<'c>) -> T + Sync,
) -> (Vec<T>, usize) {
    let parsed: Vec<Option<Option<T>>> = chunk
        .lines
        .par_iter()
        .map(|l| parse_line(l).map(|o| o.map(|(s, m)| f(s, m))))
        .collect();
    let mut rejected = 0;
    let objects = parsed
        .into_iter()
        .flatten()
        .filter_map(|o| {
            rejected += usize::from(o.is_none());
            o
        })
        .collect();
    (objects, rejected)
}

/// What [`keys`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlKeys {
    /// The members' keys, in the order they first appear.
    pub keys: Vec<String>,
    /// Rows (lines holding an object).
    pub rows: usize,
    /// Lines that hold something else.
    pub rejected: usize,
}

/// The keys of the objects of a JSON Lines file.
pub fn keys(path: &Path) -> Result<JsonlKeys, FileError> {
    let mut out = JsonlKeys {
        keys: Vec::new(),
        rows: 0,
        rejected: 0,
    };
    let mut seen: ahash::AHashSet<String> = ahash::AHashSet::new();
    for chunk in chunks(path)? {
        let chunk = chunk?;
        let (objects, rejected) = per_object(&chunk, |_, m| {
            m.into_iter()
                .map(|(k, _)| k.into_owned())
                .collect::<Vec<_>>()
        });
        out.rows += objects.len();
        out.rejected += rejected;
        for k in objects.into_iter().flatten() {
            if !seen.contains(&k) {
                seen.insert(k.clone());
                out.keys.push(k);
            }
        }
    }
    Ok(out)
}

/// A chunk of rows: the text of each wanted member, row-major.
struct Table {
    ncols: usize,
    cells: Vec<Option<String>>,
    rejected: usize,
}

impl Cells for Table {
    fn rows(&self) -> usize {
        self.cells.len().checked_div(self.ncols).unwrap_or(0)
    }
    fn cell(&self, r: usize, c: usize) -> Option<&str> {
        self.cells[r * self.ncols + c].as_deref()
    }
    fn rejected(&self) -> usize {
        self.rejected
    }
}

/// Read a JSON Lines file into match keys: `names` are the member keys the
/// columns of `spec` (and its country) index.
pub fn read(path: &Path, names: &[String], spec: &FileSpec) -> Result<FileRows, FileError> {
    check_columns(spec, names.len())?;
    check_country(spec, names.len())?;
    let ncols = names.len();
    let index = member_index(names);
    let tables = chunks(path)?.map(|chunk| {
        let chunk = chunk?;
        let (rows, rejected) = per_object(&chunk, |_, m| row_of(&m, &index, ncols));
        let table = Table {
            ncols,
            cells: rows.into_iter().flatten().collect(),
            rejected,
        };
        Ok(table)
    });
    build(spec, tables)
}

/// An error when the country column of `spec` is not among `ncols` keys.
fn check_country(spec: &FileSpec, ncols: usize) -> Result<(), FileError> {
    if spec.country.is_some_and(|c| c >= ncols) {
        return Err(
            CoreError::InvalidInput("the country column is not among the keys".into()).into(),
        );
    }
    Ok(())
}

/// The column of each member key in `names`.
fn member_index(names: &[String]) -> ahash::AHashMap<&str, usize> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect()
}

/// The text of the members of `m` that `index` names, by column.
fn row_of(
    m: &MemberList<'_>,
    index: &ahash::AHashMap<&str, usize>,
    ncols: usize,
) -> Vec<Option<String>> {
    let mut row = vec![None; ncols];
    for (k, v) in m {
        if let Some(&c) = index.get(k.as_ref()) {
            row[c] = text_of(v).map(Cow::into_owned);
        }
    }
    row
}

/// Object line `line`, whose members are `ms`, with each member of `set`
/// (`(name, name as JSON text, value as JSON text)`) set: replaced in place
/// when the object has it, else appended, in order.
fn with_members(line: &str, ms: &MemberList<'_>, set: &[(&str, &str, &str)]) -> String {
    let mut replaced: Vec<(usize, usize, &str)> = Vec::new();
    let mut appended = String::new();
    let mut any = !ms.is_empty();
    for &(name, name_json, value) in set {
        if let Some((_, raw)) = ms.iter().rev().find(|(k, _)| k.as_ref() == name) {
            let start = raw.get().as_ptr() as usize - line.as_ptr() as usize;
            replaced.push((start, start + raw.get().len(), value));
        } else {
            if any {
                appended.push(',');
            }
            any = true;
            appended.push_str(name_json);
            appended.push(':');
            appended.push_str(value);
        }
    }
    replaced.sort_unstable();
    // A parsed object ends with its closing brace.
    let close = line.len() - 1;
    let mut out = String::with_capacity(line.len() + appended.len() + 24);
    let mut at = 0;
    for (start, end, value) in replaced {
        out.push_str(&line[at..start]);
        out.push_str(value);
        at = end;
    }
    out.push_str(&line[at..close]);
    out.push_str(&appended);
    out.push('}');
    out
}

/// Write every row of JSON Lines file `src` to `dst` with member `name` set
/// to `values[row]` (replacing a member of that name, else appended at the
/// end of the object), each line otherwise as it was; returns the rows
/// written. `values` must have one entry per row.
pub fn write_with_member(
    src: &Path,
    dst: &Path,
    name: &str,
    values: &[i64],
) -> Result<usize, FileError> {
    let name_json = serde_json::to_string(name).expect("a string serializes");
    let file = File::create(dst).map_err(FileError::Write)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut row = 0usize;
    for chunk in chunks(src)? {
        let chunk = chunk?;
        let (objects, _) = per_object(&chunk, |s, m| (s, m));
        let n = objects.len();
        if row + n > values.len() {
            return Err(more_rows_than(values.len()));
        }
        let out: Vec<String> = objects
            .par_iter()
            .enumerate()
            .map(|(i, (s, m))| {
                with_members(s, m, &[(name, &name_json, &values[row + i].to_string())])
            })
            .collect();
        for line in out {
            w.write_all(line.as_bytes()).map_err(FileError::Write)?;
            w.write_all(b"\n").map_err(FileError::Write)?;
        }
        row += n;
    }
    finish_written(w, row, values.len())
}

/// What [`write_matches`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchedRows {
    /// Rows written (object lines).
    pub rows: usize,
    /// Rows with a match at or above the threshold.
    pub matched: usize,
    /// Lines that hold something other than an object (left out).
    pub rejected: usize,
}

/// Match every object line of JSON Lines file `src` against `index` and
/// write it to `dst` as it was, with members `match_id` (the best match's
/// row id, `null` when none reaches `threshold`) and `match_probability`
/// (rounded to four places) set; `names` are the member keys the columns of
/// `spec` (and its country) index. One chunk of lines is held at a time.
pub fn write_matches(
    index: &Index,
    src: &Path,
    dst: &Path,
    names: &[String],
    spec: &FileSpec,
    threshold: Option<f64>,
) -> Result<MatchedRows, FileError> {
    check_columns(spec, names.len())?;
    check_country(spec, names.len())?;
    let default_region = PhoneRegion::new(&spec.default_region)?;
    let mut regions: HashMap<&'static str, Option<PhoneRegion>> = HashMap::new();
    let ncols = names.len();
    let at = member_index(names);
    let (id_json, p_json) = (r#""match_id""#, r#""match_probability""#);
    let file = File::create(dst).map_err(FileError::Write)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut out = MatchedRows::default();
    for chunk in chunks(src)? {
        let chunk = chunk?;
        let (objects, rejected) = per_object(&chunk, |s, m| {
            let row = row_of(&m, &at, ncols);
            (s, m, row)
        });
        let rows = objects.len();
        let mut cells = Vec::with_capacity(rows * ncols);
        let lines: Vec<(&str, MemberList<'_>)> = objects
            .into_iter()
            .map(|(s, m, row)| {
                cells.extend(row);
                (s, m)
            })
            .collect();
        let cell = |r: usize, c: usize| cells[r * ncols + c].as_deref();
        let countries = countries_of(rows, &cell, spec.country, &mut regions);
        let keys = keys_of(rows, &cell, spec, &countries, &regions, &default_region);
        let cols: Vec<(Field, Vec<Option<&str>>)> = keys
            .iter()
            .map(|k| (k.field, (0..rows).map(|r| k.get(r)).collect()))
            .collect();
        let hits = index.match_many(&cols, threshold, 1)?;
        let text: Vec<String> = lines
            .par_iter()
            .zip(&hits)
            .map(|((s, m), hit)| {
                let (id, p) = match hit.first() {
                    Some(&(id, p)) => (id.to_string(), probability_json(p)),
                    None => ("null".to_string(), "null".to_string()),
                };
                with_members(
                    s,
                    m,
                    &[
                        ("match_id", id_json, &id),
                        ("match_probability", p_json, &p),
                    ],
                )
            })
            .collect();
        for line in text {
            w.write_all(line.as_bytes()).map_err(FileError::Write)?;
            w.write_all(b"\n").map_err(FileError::Write)?;
        }
        out.rows += rows;
        out.matched += hits.iter().filter(|h| !h.is_empty()).count();
        out.rejected += rejected;
    }
    w.flush().map_err(FileError::Write)?;
    Ok(out)
}

/// A probability as JSON, rounded to four places (`0.9731`, `1.0`).
fn probability_json(p: f64) -> String {
    let mut s = format!("{}", (p * 1e4).round() / 1e4);
    if !s.contains(['.', 'e']) {
        s.push_str(".0");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::data::Field;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("crmkit-jsonl-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn members_read_as_text() {
        let line = r#"{"a": " x ", "b": 12, "c": true, "d": null, "e": {"f": 1}, "g": [1], "h": "caf\u00e9", "a": "last"}"#;
        let m = members(line).unwrap();
        let got: Vec<(String, Option<String>)> = m
            .iter()
            .map(|(k, v)| (k.to_string(), text_of(v).map(|c| c.into_owned())))
            .collect();
        assert_eq!(got[0], ("a".into(), Some("x".into())));
        assert_eq!(got[1], ("b".into(), Some("12".into())));
        assert_eq!(got[2], ("c".into(), Some("True".into())));
        assert_eq!(got[3].1, None);
        assert_eq!(got[4].1, None);
        assert_eq!(got[5].1, None);
        assert_eq!(got[6].1.as_deref(), Some("café"));
        assert_eq!(got[7].1.as_deref(), Some("last"));
        assert!(members("[1, 2]").is_none());
        assert!(members("{\"a\": 1} trailing").is_none());
        assert!(members("{\"a\": ").is_none());
        assert!(parse_line(b"  \r\n").is_none());
        assert!(matches!(parse_line(b"\xff{}"), Some(None)));
        assert!(matches!(parse_line(b"[1]"), Some(None)));
    }

    #[test]
    fn a_member_is_appended_or_replaced_in_place() {
        let n = serde_json::to_string("cluster_id").unwrap();
        let set = |line: &str, v: i64| -> Option<String> {
            let (s, m) = parse_line(line.as_bytes())??;
            Some(with_members(s, &m, &[("cluster_id", &n, &v.to_string())]))
        };
        assert_eq!(set("{}", 3).unwrap(), r#"{"cluster_id":3}"#);
        assert_eq!(
            set("{\"a\": 1 }  ", 3).unwrap(),
            r#"{"a": 1 ,"cluster_id":3}"#
        );
        assert_eq!(
            set(r#"{"cluster_id": "old", "b": [1, {"cluster_id": 2}]}"#, 7).unwrap(),
            r#"{"cluster_id": 7, "b": [1, {"cluster_id": 2}]}"#
        );
        assert!(set("not json", 1).is_none());
        let (s, m) = parse_line(br#"{"b": 1, "a": "x"}"#).unwrap().unwrap();
        let two = [
            ("a", r#""a""#, "2"),
            ("c", r#""c""#, "null"),
            ("b", r#""b""#, "0.5"),
        ];
        assert_eq!(with_members(s, &m, &two), r#"{"b": 0.5, "a": 2,"c":null}"#);
        assert_eq!(probability_json(1.0), "1.0");
        assert_eq!(probability_json(0.973_149), "0.9731");
        assert_eq!(probability_json(0.000_04), "0.0");
    }

    #[test]
    fn files_round_trip() {
        let d = tmpdir("rt");
        let src = write(
            &d,
            "in.jsonl",
            "\u{feff}{\"First\": \"Ann\", \"Email\": \"ann@x.org\"}\n\n[1]\n{\"Email\": \"ANN@x.org \", \"Phone\": 5551234}\r\nnot json\n{\"cluster_id\": 9}",
        );
        let k = keys(&src).unwrap();
        assert_eq!(k.keys, vec!["First", "Email", "Phone", "cluster_id"]);
        assert_eq!((k.rows, k.rejected), (3, 2));
        let spec = FileSpec {
            columns: vec![(Field::FirstName, 0), (Field::Email, 1)],
            country: None,
            default_region: "US".into(),
        };
        let got = read(&src, &k.keys, &spec).unwrap();
        assert_eq!(got.dataset.len(), 3);
        assert_eq!(got.rejected, 2);
        let dst = d.join("out.jsonl");
        assert_eq!(
            write_with_member(&src, &dst, "cluster_id", &[1, 1, 3]).unwrap(),
            3
        );
        let out = std::fs::read_to_string(&dst).unwrap();
        assert_eq!(
            out,
            "{\"First\": \"Ann\", \"Email\": \"ann@x.org\",\"cluster_id\":1}\n\
             {\"Email\": \"ANN@x.org \", \"Phone\": 5551234,\"cluster_id\":1}\n\
             {\"cluster_id\": 3}\n"
        );
        assert!(write_with_member(&src, &dst, "cluster_id", &[1, 1]).is_err());
        assert!(write_with_member(&src, &dst, "cluster_id", &[1, 1, 3, 4]).is_err());
        std::fs::remove_dir_all(&d).ok();
    }
}
