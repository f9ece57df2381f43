//! Files in and out of the matcher with no per-row work outside Rust.
//!
//! [`read_csv`] streams a CSV file, normalizes the contact cells of each
//! chunk (as an import does: emails, E.164 phones read with the row's
//! country, clean names, postcodes with the row's country), turns them into
//! match keys and interns them into a [`Dataset`] while the next chunk is
//! read: only the distinct keys are kept, never a string per row.
//! [`write_csv_with_column`] writes the file back with one more column.
//!
//! The keys are those of `crmkit.dedupe.match_keys` over normalized
//! columns: ASCII-folded name keys, emails without `+tags` and Gmail dots,
//! the last nine digits of a phone, `YYYY-MM-DD` dates, other text lowercased
//! with its whitespace collapsed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

use super::data::{split_name, Dataset, DatasetBuilder, Field};
use crate::csvread::{Chunk, CsvError, CsvOptions, CsvReader};
use crate::normalize::{
    clean_name, name_key, normalize_country, normalize_email, normalize_phone, normalize_postcode,
    EmailOptions, PhoneRegion,
};
use crate::CoreError;

/// Which columns of a file hold which contact fields.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// `(field, 0-based column)` of each field matched on (each field once).
    pub columns: Vec<(Field, usize)>,
    /// The column of the country, used to read phones and postcodes.
    pub country: Option<usize>,
    /// Region (ISO alpha-2) of phones written without a country code when
    /// the row has no known country.
    pub default_region: String,
}

/// What [`read_csv`] read.
#[derive(Debug)]
pub struct FileRows {
    /// The match keys, interned; row ids are `0..rows`.
    pub dataset: Dataset,
    /// Warnings about the data (fields missing from every row).
    pub warnings: Vec<String>,
    /// Rows rejected by the CSV reader (wrong field count, bad bytes, ...).
    pub rejected: usize,
    /// A record boundary near the middle of the file (CSV only), where
    /// [`write_csv_with_column_split`] starts a second writer.
    pub split: Option<Split>,
    /// The rows as [`write_csv_with_column`] writes them, kept from the read
    /// (CSV only, files up to [`MAX_KEPT_TEXT`] bytes of cells): writing
    /// them back then parses nothing.
    pub formatted: Option<Formatted>,
}

/// Cell text kept from a read for the write, at most (larger files are
/// parsed again when written).
pub const MAX_KEPT_TEXT: usize = 512 << 20;

/// A CSV file's accepted rows as the writer formats them (cells trimmed,
/// quoted only when needed, each followed by a comma), kept from the read
/// with what the file was then.
pub struct Formatted {
    headers: Vec<String>,
    /// Per chunk: its rows' text and the end of each row in it.
    chunks: Vec<(Vec<u8>, Vec<u32>)>,
    rows: usize,
    stamp: FileStamp,
}

/// A file's path, length and modification time: when all three are the
/// same, the file is taken to hold what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: std::path::PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            path: std::fs::canonicalize(path).ok()?,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

impl std::fmt::Debug for Formatted {
    // Counts only: the rows are people's data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formatted")
            .field("rows", &self.rows)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Formatted {
    /// Whether these rows are those of `src` as it is now.
    pub fn is_of(&self, src: &Path) -> bool {
        FileStamp::of(src).is_some_and(|s| s == self.stamp)
    }

    /// Rows kept.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The rows of `chunk` formatted for the writer, with each row's end.
fn format_chunk(chunk: &Chunk) -> (Vec<u8>, Vec<u32>) {
    // The cells and a comma each, with room for some quoting: the text is
    // kept, so it should not sit in a buffer grown to twice its size.
    let size = chunk.data.len() + chunk.spans.len();
    let mut text = Vec::with_capacity(size + size / 16 + 64);
    let mut ends = Vec::with_capacity(chunk.rows());
    for r in 0..chunk.rows() {
        format_cells(&mut text, chunk, r);
        ends.push(text.len() as u32);
    }
    if text.capacity() > text.len() + text.len() / 8 {
        text.shrink_to_fit();
    }
    (text, ends)
}

/// A record boundary of a file: the byte offset just after an accepted
/// record and the number of accepted rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Byte offset just after the record (a `byte_ends` value of the reader).
    pub byte: u64,
    /// Accepted rows up to and including that record.
    pub rows: usize,
}

/// Why reading or writing a file failed.
#[derive(Debug)]
pub enum FileError {
    /// Reading the input.
    Read(CsvError),
    /// Writing the output.
    Write(std::io::Error),
    /// Bad arguments or data.
    Core(CoreError),
}

impl From<CoreError> for FileError {
    fn from(e: CoreError) -> Self {
        FileError::Core(e)
    }
}

impl From<CsvError> for FileError {
    fn from(e: CsvError) -> Self {
        FileError::Read(e)
    }
}

/// Whether Python's `str.isspace` holds for `c` (Unicode white space plus
/// the information separators U+001C to U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Lowercase with runs of white space collapsed to one space and the ends
/// trimmed; `None` when nothing is left (Python's
/// `" ".join(s.lower().split()) or None`).
pub fn lower_key(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for w in s.split(py_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.is_ascii() {
            out.extend(w.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            out.push_str(&w.to_lowercase());
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The last nine digits of a phone number (of seven digits or more).
pub fn phone_key(s: &str) -> Option<String> {
    let n = s.bytes().filter(u8::is_ascii_digit).count();
    if n < 7 {
        return None;
    }
    let skip = n.saturating_sub(9);
    let mut out = String::with_capacity(n - skip);
    out.extend(s.chars().filter(char::is_ascii_digit).skip(skip));
    Some(out)
}

/// The `YYYY-MM-DD` key of a date written with its day, month and year as
/// numbers: `d.m.yyyy`, or `d/m/yyyy` (`m/d/yyyy` when `us`); a first or second
/// number over 12 is read as the day whatever the order.
pub fn numeric_date_key(s: &str, us: bool) -> Option<String> {
    let s = s.trim_matches(py_space);
    let sep = if s.contains('/') { '/' } else { '.' };
    let mut parts = s.split(sep);
    let num = |p: Option<&str>, lo: usize, hi: usize| -> Option<u32> {
        let p = p?;
        let ok = (lo..=hi).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| p.parse().ok()).flatten()
    };
    let (a, b, y) = (
        num(parts.next(), 1, 2)?,
        num(parts.next(), 1, 2)?,
        num(parts.next(), 4, 4)?,
    );
    if parts.next().is_some() {
        return None;
    }
    let (mut m, mut d) = if sep == '/' && us { (a, b) } else { (b, a) };
    if m > 12 && d <= 12 {
        std::mem::swap(&mut m, &mut d);
    }
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// US states and Canadian provinces by name, with their two-letter codes.
const REGION_CODES: [(&str, &str); 65] = [
    ("alabama", "al"),
    ("alaska", "ak"),
    ("arizona", "az"),
    ("arkansas", "ar"),
    ("california", "ca"),
    ("colorado", "co"),
    ("connecticut", "ct"),
    ("delaware", "de"),
    ("district of columbia", "dc"),
    ("florida", "fl"),
    ("georgia", "ga"),
    ("hawaii", "hi"),
    ("idaho", "id"),
    ("illinois", "il"),
    ("indiana", "in"),
    ("iowa", "ia"),
    ("kansas", "ks"),
    ("kentucky", "ky"),
    ("louisiana", "la"),
    ("maine", "me"),
    ("maryland", "md"),
    ("massachusetts", "ma"),
    ("michigan", "mi"),
    ("minnesota", "mn"),
    ("mississippi", "ms"),
    ("missouri", "mo"),
    ("montana", "mt"),
    ("nebraska", "ne"),
    ("nevada", "nv"),
    ("new hampshire", "nh"),
    ("new jersey", "nj"),
    ("new mexico", "nm"),
    ("new york", "ny"),
    ("north carolina", "nc"),
    ("north dakota", "nd"),
    ("ohio", "oh"),
    ("oklahoma", "ok"),
    ("oregon", "or"),
    ("pennsylvania", "pa"),
    ("rhode island", "ri"),
    ("south carolina", "sc"),
    ("south dakota", "sd"),
    ("tennessee", "tn"),
    ("texas", "tx"),
    ("utah", "ut"),
    ("vermont", "vt"),
    ("virginia", "va"),
    ("washington", "wa"),
    ("west virginia", "wv"),
    ("wisconsin", "wi"),
    ("wyoming", "wy"),
    ("alberta", "ab"),
    ("british columbia", "bc"),
    ("manitoba", "mb"),
    ("new brunswick", "nb"),
    ("newfoundland and labrador", "nl"),
    ("northwest territories", "nt"),
    ("nova scotia", "ns"),
    ("nunavut", "nu"),
    ("ontario", "on"),
    ("prince edward island", "pe"),
    ("quebec", "qc"),
    ("québec", "qc"),
    ("saskatchewan", "sk"),
    ("yukon", "yt"),
];

/// The match key of a state, province or region: lowercase with whitespace
/// collapsed and dots dropped, a US state or Canadian province named in
/// full turned into its two-letter code (`New York`, `N.Y.`, `ny` → `ny`).
pub fn region_key(s: &str) -> Option<String> {
    let key = lower_key(&s.replace('.', ""))?;
    Some(
        REGION_CODES
            .iter()
            .find(|(name, _)| *name == key)
            .map_or(key, |(_, code)| (*code).to_string()),
    )
}

/// The first ten characters of a trimmed date when they are `YYYY-MM-DD`
/// in ASCII digits.
pub fn date_key(s: &str) -> Option<&str> {
    let s = s.trim_matches(py_space);
    let end = s.char_indices().nth(10).map_or(s.len(), |(k, _)| k);
    let d = &s.as_bytes()[..end];
    let ok = d.len() == 10
        && d[4] == b'-'
        && d[7] == b'-'
        && d.iter()
            .enumerate()
            .all(|(k, c)| k == 4 || k == 7 || c.is_ascii_digit());
    ok.then(|| &s[..end])
}

/// The match key of an email already normalized for display.
pub fn email_key(s: &str) -> Option<String> {
    normalize_email(
        s,
        EmailOptions {
            strip_plus: true,
            fold_gmail_dots: true,
        },
    )
}

/// [`email_key`] of an email normalized for display, reusing its text when
/// nothing changes (plain ASCII addresses: the usual case).
fn email_key_of(e: String) -> Option<String> {
    let plain = e.is_ascii()
        && !e.starts_with("mailto:")
        && !e.starts_with('<')
        && !e.ends_with('>')
        && !e.ends_with('.');
    if !plain {
        return email_key(&e);
    }
    // Already trimmed, lowercase, one `@` with a valid domain: only the
    // `+tag` and Gmail folding are left to do.
    let at = e.rfind('@')?;
    let (local, domain) = (&e[..at], &e[at + 1..]);
    let end = match local.find('+') {
        Some(i) if i > 0 => i,
        _ => at,
    };
    if domain == "gmail.com" || domain == "googlemail.com" {
        let l: String = local[..end].chars().filter(|&c| c != '.').collect();
        return (!l.is_empty()).then(|| l + "@gmail.com");
    }
    if end == at {
        return Some(e);
    }
    Some(format!("{}@{domain}", &local[..end]))
}

/// One field's match keys for a batch of rows: one key per row, or (fields
/// with few distinct values) one key per distinct cell and the cell of each row.
#[derive(Debug)]
pub struct KeyColumn {
    /// The field.
    pub field: Field,
    keys: Vec<Option<String>>,
    rows: Option<Vec<u32>>,
}

use super::data::{BatchColumn, NO_CELL};

impl KeyColumn {
    /// The key of row `r`.
    pub fn get(&self, r: usize) -> Option<&str> {
        match &self.rows {
            None => self.keys[r].as_deref(),
            Some(rows) => match rows[r] {
                NO_CELL => None,
                k => self.keys[k as usize].as_deref(),
            },
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.keys.len(), Vec::len)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys as a batch column for [`DatasetBuilder::push_batch`].
    pub fn batch(&self) -> BatchColumn<'_> {
        let keys = self.keys.iter().map(Option::as_deref).collect();
        match &self.rows {
            None => BatchColumn::Rows(keys),
            Some(rows) => BatchColumn::Cells(keys, rows.clone()),
        }
    }
}

/// Fields whose cells repeat a lot (given names, surnames, cities,
/// companies): keyed once per distinct cell of a batch.
fn by_distinct_cell(f: Field) -> bool {
    matches!(
        f,
        Field::FirstName
            | Field::LastName
            | Field::City
            | Field::Company
            | Field::Region
            | Field::Country
    )
}

/// Match keys of raw contact cells, one column per field of `spec` (in its
/// order); `cell(row, column)` gives a trimmed, non-empty cell or `None`.
/// `countries` holds each row's country code (see [`countries_of`]) and
/// `regions` the phone region of each of them.
pub fn keys_of<'a, C>(
    rows: usize,
    cell: &C,
    spec: &FileSpec,
    countries: &[Option<&'static str>],
    regions: &HashMap<&'static str, Option<PhoneRegion>>,
    default_region: &PhoneRegion,
) -> Vec<KeyColumn>
where
    C: Fn(usize, usize) -> Option<&'a str> + Sync,
{
    let country = |r: usize| countries.get(r).copied().flatten();
    // A whole name in one name field with the other empty ("Baker, James"
    // as the last name) is split before keying, while its comma is still
    // there (see `split_name`): the rows that split, in order.
    let column = |f: Field| spec.columns.iter().find(|p| p.0 == f).map(|p| p.1);
    let (first, last) = (column(Field::FirstName), column(Field::LastName));
    let splits: Vec<(usize, (&'a str, &'a str))> = match (first, last) {
        (Some(fc), Some(lc)) => (0..rows)
            .into_par_iter()
            .filter_map(|r| split_name(cell(r, fc), cell(r, lc)).map(|s| (r, s)))
            .collect(),
        _ => Vec::new(),
    };
    let cell = |r: usize, c: usize| -> Option<&'a str> {
        if !splits.is_empty() && (Some(c) == first || Some(c) == last) {
            if let Ok(k) = splits.binary_search_by_key(&r, |s| s.0) {
                let (given, family) = splits[k].1;
                return Some(if Some(c) == first { given } else { family });
            }
        }
        cell(r, c)
    };
    let display = EmailOptions {
        strip_plus: false,
        fold_gmail_dots: false,
    };
    spec.columns
        .par_iter()
        .map(|&(f, c)| {
            // The key of a cell; `r` is its row (phones and postcodes are
            // read with the row's country).
            let key = |raw: &str, r: usize| -> Option<String> {
                match f {
                    Field::FirstName | Field::LastName => name_key(&clean_name(raw)?),
                    Field::Email => email_key_of(normalize_email(raw, display)?),
                    Field::Phone => {
                        let region = country(r)
                            .and_then(|k| regions.get(k).and_then(Option::as_ref))
                            .unwrap_or(default_region);
                        // A number the normalizer rejects (not valid in the
                        // row's region, or no country to read it with) is
                        // still compared by its last digits.
                        match normalize_phone(raw, region) {
                            Some(p) => phone_key(&p),
                            None => phone_key(raw),
                        }
                    }
                    Field::Postcode => lower_key(&normalize_postcode(raw, country(r))?),
                    Field::BirthDate => date_key(raw).map(str::to_string).or_else(|| {
                        let us = country(r).map_or(spec.default_region == "US", |c| c == "US");
                        numeric_date_key(raw, us)
                    }),
                    Field::City | Field::Street | Field::Company => lower_key(raw),
                    // The country column is also `spec.country`: its key
                    // is the code `countries` holds, read from the cell.
                    Field::Country => normalize_country(raw).map(str::to_ascii_lowercase),
                    Field::Region => region_key(raw),
                }
            };
            if !by_distinct_cell(f) {
                let keys = (0..rows)
                    .into_par_iter()
                    .map(|r| cell(r, c).and_then(|raw| key(raw, r)))
                    .collect();
                return KeyColumn {
                    field: f,
                    keys,
                    rows: None,
                };
            }
            let mut index: ahash::AHashMap<&str, u32> = ahash::AHashMap::new();
            let mut distinct: Vec<&str> = Vec::new();
            let idx: Vec<u32> = (0..rows)
                .map(|r| match cell(r, c) {
                    None => NO_CELL,
                    Some(raw) => *index.entry(raw).or_insert_with(|| {
                        distinct.push(raw);
                        (distinct.len() - 1) as u32
                    }),
                })
                .collect();
            // These keys do not depend on the row.
            let keys = distinct.par_iter().map(|raw| key(raw, 0)).collect();
            KeyColumn {
                field: f,
                keys,
                rows: Some(idx),
            }
        })
        .collect()
}

/// Each row's country code (none without a country column), and the phone
/// regions of codes not yet in `regions`.
pub fn countries_of<'a, C>(
    rows: usize,
    cell: &C,
    column: Option<usize>,
    regions: &mut HashMap<&'static str, Option<PhoneRegion>>,
) -> Vec<Option<&'static str>>
where
    C: Fn(usize, usize) -> Option<&'a str> + Sync,
{
    let Some(c) = column else {
        return Vec::new();
    };
    // Few distinct countries: each cell is read once per worker.
    let codes: Vec<Option<&'static str>> = (0..rows)
        .into_par_iter()
        .with_min_len(1024)
        .map_init(
            ahash::AHashMap::<&str, Option<&'static str>>::new,
            |seen, r| {
                let raw = cell(r, c)?;
                *seen.entry(raw).or_insert_with(|| normalize_country(raw))
            },
        )
        .collect();
    let mut last = None;
    for code in codes.iter().flatten() {
        if last != Some(*code) {
            regions
                .entry(*code)
                .or_insert_with(|| PhoneRegion::new(code).ok());
            last = Some(*code);
        }
    }
    codes
}

/// Read `reader`'s chunks on a thread of the scope `s`, one chunk ahead of
/// the consumer (which stops it by dropping the receiver).
fn read_ahead<'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    reader: CsvReader,
) -> impl Iterator<Item = Result<Chunk, CsvError>> + 'scope {
    read_ahead_with(s, reader, |_| ())
        .into_iter()
        .map(|c| c.map(|(chunk, ())| chunk))
}

/// [`read_ahead`], with `also` run on each chunk on the reading thread.
fn read_ahead_with<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    mut reader: CsvReader,
    also: impl Fn(&Chunk) -> T + Send + 'scope,
) -> std::sync::mpsc::Receiver<Result<(Chunk, T), CsvError>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    s.spawn(move || loop {
        match reader.next_chunk() {
            Ok(Some(c)) => {
                let t = also(&c);
                if tx.send(Ok((c, t))).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Err(e));
                break;
            }
        }
    });
    rx
}

fn trimmed(chunk: &Chunk, r: usize, c: usize) -> Option<&str> {
    chunk.cell(r, c).map(str::trim).filter(|s| !s.is_empty())
}

/// A chunk of rows read from a file: trimmed, non-empty cells by row and
/// column.
pub trait Cells: Send + Sync {
    /// Rows in the chunk.
    fn rows(&self) -> usize;
    /// The cell of row `r`, column `c`, trimmed; `None` when empty.
    fn cell(&self, r: usize, c: usize) -> Option<&str>;
    /// Rows of the file rejected while reading this chunk.
    fn rejected(&self) -> usize;
}

impl Cells for Chunk {
    fn rows(&self) -> usize {
        Chunk::rows(self)
    }
    fn cell(&self, r: usize, c: usize) -> Option<&str> {
        trimmed(self, r, c)
    }
    fn rejected(&self) -> usize {
        self.rejects.len()
    }
}

/// Read a CSV file (encoding and delimiter detected as `crmkit._core.CsvReader`
/// does) into match keys. Chunks are read on a second thread while the
/// previous one is normalized and interned.
pub fn read_csv(path: &Path, spec: &FileSpec) -> Result<FileRows, FileError> {
    let stamp = FileStamp::of(path);
    let reader = CsvReader::open(path, &CsvOptions::default())?;
    let headers = reader.headers().to_vec();
    check_columns(spec, headers.len())?;
    let size = stamp.as_ref().map_or(0, |s| s.len);
    // The rows are formatted for the writer on the reading thread, while
    // the file is small enough for their text to be kept.
    let keep = stamp.is_some() && size <= MAX_KEPT_TEXT as u64;
    // The chunk ends: (byte after the chunk's last accepted record, rows so far).
    let mut ends: Vec<Split> = Vec::new();
    let mut kept: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
    let mut rows = 0;
    let mut got = std::thread::scope(|s| {
        let rx = read_ahead_with(s, reader, move |c| keep.then(|| format_chunk(c)));
        let chunks = rx.into_iter().map(|c| {
            let (c, text) = c?;
            rows += c.rows();
            if let Some(&byte) = c.byte_ends.last() {
                ends.push(Split { byte, rows });
            }
            kept.extend(text);
            Ok(c)
        });
        build(spec, chunks)
    })?;
    let total = got.dataset.len();
    got.split = ends
        .into_iter()
        .filter(|e| e.rows > 0 && e.rows < total)
        .min_by_key(|e| e.byte.abs_diff(size / 2));
    got.formatted = stamp.filter(|_| keep).map(|stamp| Formatted {
        headers,
        chunks: kept,
        rows: total,
        stamp,
    });
    Ok(got)
}

/// An error when a column of `spec` is not among the `ncols` of a file.
pub(crate) fn check_columns(spec: &FileSpec, ncols: usize) -> Result<(), FileError> {
    if let Some(&(f, c)) = spec.columns.iter().find(|(_, c)| *c >= ncols) {
        return Err(CoreError::InvalidInput(format!(
            "field '{}' names column {} of a file with {ncols}",
            f.name(),
            c + 1
        ))
        .into());
    }
    Ok(())
}

/// Normalize, key and intern the chunks of rows of a file (see [`read_csv`]):
/// the keys of one chunk are computed while the previous chunk's are interned.
pub(crate) fn build<C: Cells>(
    spec: &FileSpec,
    chunks: impl Iterator<Item = Result<C, FileError>>,
) -> Result<FileRows, FileError> {
    let default_region = PhoneRegion::new(&spec.default_region)?;
    let fields: Vec<Field> = spec.columns.iter().map(|c| c.0).collect();
    let mut builder = DatasetBuilder::new(&fields)?;
    let mut regions: HashMap<&'static str, Option<PhoneRegion>> = HashMap::new();
    let mut rejected = 0;
    type Keys = Vec<KeyColumn>;
    let push = |b: &mut DatasetBuilder, pending: Option<(usize, Keys)>| match pending {
        Some((rows, keys)) => {
            b.push_batch(rows, keys.iter().map(|k| (k.field, k.batch())).collect())
        }
        None => Ok(()),
    };
    let mut pending: Option<(usize, Keys)> = None;
    for chunk in chunks {
        let chunk = chunk?;
        rejected += chunk.rejected();
        let rows = chunk.rows();
        let cell = |r: usize, c: usize| chunk.cell(r, c);
        let countries = countries_of(rows, &cell, spec.country, &mut regions);
        let (countries, regions) = (&countries, &regions);
        let b = &mut builder;
        let prev = pending.take();
        let (pushed, keys) = rayon::join(
            move || push(b, prev),
            || keys_of(rows, &cell, spec, countries, regions, &default_region),
        );
        pushed?;
        pending = Some((rows, keys));
    }
    push(&mut builder, pending)?;
    let ids = (0..builder.rows() as i64).collect();
    let (dataset, warnings) = builder.finish(ids)?;
    Ok(FileRows {
        dataset,
        warnings,
        rejected,
        split: None,
        formatted: None,
    })
}

/// Append `cell` to `out` as a CSV field, quoted when it holds a comma, a
/// quote or a line break (quotes doubled).
fn push_field(out: &mut Vec<u8>, cell: &str) {
    if cell
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for b in cell.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell.as_bytes());
    }
}

/// The header line of the output: `src`'s headers and `name`.
fn header_line(headers: &[String], name: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(4096);
    for (k, h) in headers.iter().enumerate() {
        if k > 0 {
            line.push(b',');
        }
        push_field(&mut line, h);
    }
    line.push(b',');
    push_field(&mut line, name);
    line.push(b'\n');
    line
}

/// Append rows `rows` of `chunk` to `line`, row `r` with `values[r - first]`
/// (`first` is the file row of the chunk's first row).
fn format_rows(line: &mut Vec<u8>, chunk: &Chunk, rows: std::ops::Range<usize>, values: &[i64]) {
    let mut num = itoa_buf();
    for (r, &v) in rows.zip(values) {
        format_cells(line, chunk, r);
        line.extend_from_slice(fmt_int(&mut num, v));
        line.push(b'\n');
    }
}

/// Append the cells of row `r` of `chunk` to `line`, each followed by a comma.
fn format_cells(line: &mut Vec<u8>, chunk: &Chunk, r: usize) {
    for c in 0..chunk.ncols {
        if let Some(s) = trimmed(chunk, r, c) {
            push_field(line, s);
        }
        line.push(b',');
    }
}

/// Write `rows` (kept from the read of a CSV file, see [`Formatted`]) to
/// `dst` as [`write_csv_with_column`] writes that file, with one more
/// column, `name`, holding `values[row]`; returns the rows written.
pub fn write_formatted(
    rows: &Formatted,
    dst: &Path,
    name: &str,
    values: &[i64],
) -> Result<usize, FileError> {
    if rows.rows != values.len() {
        return Err(CoreError::InvalidInput(format!(
            "{} rows were read for {} values",
            rows.rows,
            values.len()
        ))
        .into());
    }
    let file = File::create(dst).map_err(FileError::Write)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header_line(&rows.headers, name))
        .map_err(FileError::Write)?;
    let mut num = itoa_buf();
    let mut line = Vec::with_capacity(1 << 16);
    let mut values = values.iter();
    for (text, ends) in &rows.chunks {
        let mut start = 0;
        line.clear();
        for (&end, &v) in ends.iter().zip(values.by_ref()) {
            line.extend_from_slice(&text[start..end as usize]);
            line.extend_from_slice(fmt_int(&mut num, v));
            line.push(b'\n');
            start = end as usize;
        }
        w.write_all(&line).map_err(FileError::Write)?;
    }
    w.flush().map_err(FileError::Write)?;
    Ok(rows.rows)
}

/// Write every row the CSV reader accepts from `src` to `dst` (UTF-8,
/// comma-separated, `\n` line ends, cells trimmed, quoted only when needed)
/// with one more column, `name`, holding `values[row]`; returns the rows
/// written. `values` must have one entry per accepted row.
pub fn write_csv_with_column(
    src: &Path,
    dst: &Path,
    name: &str,
    values: &[i64],
) -> Result<usize, FileError> {
    let reader = CsvReader::open(src, &CsvOptions::default())?;
    let file = File::create(dst).map_err(FileError::Write)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&header_line(reader.headers(), name))
        .map_err(FileError::Write)?;
    // Chunks are parsed on a second thread while the previous one is written.
    let row =
        std::thread::scope(|s| write_chunks(&mut w, read_ahead(s, reader), values, values.len()))?;
    finish_written(w, row, values.len())
}

/// Write every chunk of `chunks`, row *r* with `values[r]`; returns the rows
/// written. `total` (all the values of the file) names the count in errors.
fn write_chunks(
    w: &mut BufWriter<File>,
    chunks: impl IntoIterator<Item = Result<Chunk, CsvError>>,
    values: &[i64],
    total: usize,
) -> Result<usize, FileError> {
    let mut line = Vec::with_capacity(1 << 16);
    let mut row = 0usize;
    for chunk in chunks {
        let chunk = chunk?;
        let rows = chunk.rows();
        if row + rows > values.len() {
            return Err(more_rows_than(total));
        }
        line.clear();
        format_rows(&mut line, &chunk, 0..rows, &values[row..]);
        w.write_all(&line).map_err(FileError::Write)?;
        row += rows;
    }
    Ok(row)
}

/// [`write_csv_with_column`], with the rows after `split` (a record boundary
/// found by [`read_csv`] on the same file) parsed and formatted by a second
/// thread into a side file that is appended at the end. Falls back to one
/// writer when the file does not line up with `split` or anything fails on
/// the way (the one writer then reports the error).
pub fn write_csv_with_column_split(
    src: &Path,
    dst: &Path,
    name: &str,
    values: &[i64],
    split: Option<Split>,
) -> Result<usize, FileError> {
    if let Some(split) = split.filter(|s| s.rows > 0 && s.rows < values.len()) {
        if rayon::current_num_threads() > 1 {
            if let Ok(Some(n)) = write_in_two(src, dst, name, values, split) {
                return Ok(n);
            }
        }
    }
    write_csv_with_column(src, dst, name, values)
}

/// A side file removed when dropped.
struct SideFile(std::path::PathBuf);

impl Drop for SideFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The two-writer path of [`write_csv_with_column_split`]; `None` when the
/// file does not line up with `split`.
fn write_in_two(
    src: &Path,
    dst: &Path,
    name: &str,
    values: &[i64],
    split: Split,
) -> Result<Option<usize>, FileError> {
    let head = CsvReader::open(src, &CsvOptions::default())?;
    let tail = CsvReader::open(
        src,
        &CsvOptions {
            start_byte: split.byte,
            ..CsvOptions::default()
        },
    )?;
    let mut side_name = dst.as_os_str().to_owned();
    side_name.push(format!(".{}.part", std::process::id()));
    let side = SideFile(side_name.into());
    let (first, rest) = values.split_at(split.rows);
    let (head_ok, tail_rows) = std::thread::scope(|s| {
        let tail_job = s.spawn(|| -> Result<usize, FileError> {
            let file = File::create(&side.0).map_err(FileError::Write)?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let mut reader = tail;
            let chunks = std::iter::from_fn(|| reader.next_chunk().transpose());
            let row = write_chunks(&mut w, chunks, rest, values.len())?;
            w.flush().map_err(FileError::Write)?;
            Ok(row)
        });
        let head_ok = (|| -> Result<bool, FileError> {
            let file = File::create(dst).map_err(FileError::Write)?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            w.write_all(&header_line(head.headers(), name))
                .map_err(FileError::Write)?;
            let mut line = Vec::with_capacity(1 << 16);
            let mut reader = head;
            let mut row = 0;
            while row < first.len() {
                let Some(chunk) = reader.next_chunk()? else {
                    return Ok(false);
                };
                let take = chunk.rows().min(first.len() - row);
                line.clear();
                format_rows(&mut line, &chunk, 0..take, &first[row..]);
                w.write_all(&line).map_err(FileError::Write)?;
                row += take;
                if row == first.len() && take > 0 && chunk.byte_ends[take - 1] != split.byte {
                    return Ok(false);
                }
            }
            w.flush().map_err(FileError::Write)?;
            Ok(true)
        })();
        let tail_rows = tail_job.join().unwrap_or_else(|_| {
            Err(CoreError::InvalidInput("the second writer failed".into()).into())
        });
        (head_ok, tail_rows)
    });
    if !head_ok? {
        return Ok(None);
    }
    let tail_rows = tail_rows?;
    if tail_rows != rest.len() {
        return Ok(None);
    }
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(dst)
        .map_err(FileError::Write)?;
    let mut part = File::open(&side.0).map_err(FileError::Write)?;
    std::io::copy(&mut part, &mut out).map_err(FileError::Write)?;
    Ok(Some(values.len()))
}

/// The error of a file with more rows than values to write (it changed
/// since it was read).
pub(crate) fn more_rows_than(values: usize) -> FileError {
    CoreError::InvalidInput(format!(
        "the file has more rows than the {values} values given (did it change?)"
    ))
    .into()
}

/// Flush `w` once `rows` rows were written for `values` values; an error
/// when the file had fewer rows than values.
pub(crate) fn finish_written(
    mut w: BufWriter<File>,
    rows: usize,
    values: usize,
) -> Result<usize, FileError> {
    if rows != values {
        return Err(CoreError::InvalidInput(format!(
            "the file has {rows} rows for {values} values (did it change?)"
        ))
        .into());
    }
    w.flush().map_err(FileError::Write)?;
    Ok(rows)
}

fn itoa_buf() -> [u8; 24] {
    [0; 24]
}

fn fmt_int(buf: &mut [u8; 24], v: i64) -> &[u8] {
    let neg = v < 0;
    let mut x = v.unsigned_abs();
    let mut k = buf.len();
    loop {
        k -= 1;
        buf[k] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    if neg {
        k -= 1;
        buf[k] = b'-';
    }
    &buf[k..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn keys_follow_the_python_rules() {
        assert_eq!(
            lower_key("  New\u{1f}YORK  City "),
            Some("new york city".into())
        );
        assert_eq!(lower_key(" \t "), None);
        assert_eq!(phone_key("+447700900123"), Some("700900123".into()));
        assert_eq!(phone_key("+12345"), None);
        assert_eq!(date_key(" 1980-02-03T10:00"), Some("1980-02-03"));
        assert_eq!(date_key("1980/02/03"), None);
        assert_eq!(
            numeric_date_key("2/3/1980", true).as_deref(),
            Some("1980-02-03")
        );
        assert_eq!(
            numeric_date_key("02/03/1980", false).as_deref(),
            Some("1980-03-02")
        );
        assert_eq!(
            numeric_date_key(" 03.02.1980", true).as_deref(),
            Some("1980-02-03")
        );
        assert_eq!(
            numeric_date_key("25/12/1980", true).as_deref(),
            Some("1980-12-25")
        );
        assert_eq!(numeric_date_key("25/13/1980", true), None);
        assert_eq!(numeric_date_key("1/2/80", true), None);
        assert_eq!(numeric_date_key("1/2/1980/4", true), None);
        assert_eq!(numeric_date_key("1/٢/1980", true), None);
        assert_eq!(date_key("1980-0٢-03"), None);
        assert_eq!(
            email_key("ann.lee+x@googlemail.com"),
            Some("annlee@gmail.com".into())
        );
        let display = EmailOptions::default();
        for raw in [
            "Ann.Lee+x@GoogleMail.com",
            "ann+@x.org",
            "+ann@x.org",
            "a.b+c+d@x.co.uk",
            "<mailto:x@y.com>",
            "mailto:mailto:x+1@y.com",
            "a@b.c>.",
            "ÅSA@x.se",
            ".@gmail.com",
            "x@y.org",
        ] {
            let e = normalize_email(raw, display);
            assert_eq!(
                e.clone().and_then(email_key_of),
                e.as_deref().and_then(email_key),
                "{raw}"
            );
        }
        let mut b = itoa_buf();
        assert_eq!(fmt_int(&mut b, -120), b"-120");
        assert_eq!(fmt_int(&mut b, 0), b"0");
        let mut out = Vec::new();
        push_field(&mut out, "a \"b\", c");
        assert_eq!(out, b"\"a \"\"b\"\", c\"");
    }

    /// A CSV file `in.csv` in a fresh folder named for `tag`: `header`, then
    /// `rows` records of three cells (every `every`th with a quoted line break
    /// and a doubled quote, the third after it too short to be accepted, the
    /// others with padded and empty cells and CRLF ends). Returns the
    /// folder, the file and its text.
    fn messy_csv(tag: &str, header: &str, rows: usize, every: usize) -> (PathBuf, PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("crmkit-dedupe-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("in.csv");
        let mut text = format!("{header}\n");
        for r in 0..rows {
            match r % every {
                0 => text.push_str(&format!("\"x{r}\ny\",  {r} ,\"q,\"\"\"\n")),
                3 => text.push_str("bad,row\n"),
                _ => text.push_str(&format!(" n{r}@y.org ,,{}\r\n", r * 3)),
            }
        }
        std::fs::write(&src, &text).unwrap();
        (dir, src, text)
    }

    #[test]
    fn rows_kept_from_the_read_write_what_the_reader_writes() {
        let (dir, src, mut text) = messy_csv("kept", "\u{feff}Email, Name ,\"x,y\"", 70_000, 11);
        let spec = FileSpec {
            columns: vec![(Field::Email, 0)],
            country: None,
            default_region: "US".into(),
        };
        let got = read_csv(&src, &spec).unwrap();
        let kept = got.formatted.expect("a small file's rows are kept");
        let n = got.dataset.len();
        assert!(n > 60_000 && kept.rows() == n && kept.chunks.len() > 1);
        assert!(kept.is_of(&src));
        let values: Vec<i64> = (0..n as i64).map(|v| v * 5 - 2).collect();
        let (one, two) = (dir.join("one.csv"), dir.join("two.csv"));
        assert_eq!(write_csv_with_column(&src, &one, "id", &values).unwrap(), n);
        assert_eq!(write_formatted(&kept, &two, "id", &values).unwrap(), n);
        assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
        assert!(write_formatted(&kept, &two, "id", &values[1..]).is_err());
        // Another file, or the same file changed, is not what was kept.
        std::fs::copy(&src, dir.join("copy.csv")).unwrap();
        assert!(!kept.is_of(&dir.join("copy.csv")));
        text.push_str("c@z.org,,\n");
        std::fs::write(&src, &text).unwrap();
        assert!(!kept.is_of(&src));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_writers_write_what_one_writes() {
        let (dir, src, _) = messy_csv("split", "a,b,c", 300, 7);
        // Every record boundary, from a reader.
        let mut reader = CsvReader::open(&src, &CsvOptions::default()).unwrap();
        let mut ends = Vec::new();
        while let Some(c) = reader.next_chunk().unwrap() {
            ends.extend(c.byte_ends.iter().copied());
        }
        let n = ends.len();
        let values: Vec<i64> = (0..n as i64).map(|v| v * 7 - 3).collect();
        let one = dir.join("one.csv");
        assert_eq!(write_csv_with_column(&src, &one, "id", &values).unwrap(), n);
        let want = std::fs::read(&one).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let two = dir.join("two.csv");
        let mut splits: Vec<Option<Split>> = vec![None];
        for k in [0, 1, 5, n / 2, n - 2, n - 1] {
            let s = Split {
                byte: ends[k],
                rows: k + 1,
            };
            if k < n - 1 {
                let direct = write_in_two(&src, &two, "id", &values, s).unwrap();
                assert_eq!(direct, Some(n), "{s:?}");
                assert_eq!(std::fs::read(&two).unwrap(), want, "{s:?}");
                let off = Split {
                    byte: ends[k],
                    rows: k + 2,
                };
                assert_eq!(write_in_two(&src, &two, "id", &values, off).unwrap(), None);
            }
            splits.push(Some(Split {
                byte: ends[k],
                rows: k + 1,
            }));
            // Splits that do not line up fall back to one writer.
            splits.push(Some(Split {
                byte: ends[k] - 1,
                rows: k + 1,
            }));
            splits.push(Some(Split {
                byte: ends[k],
                rows: k + 2,
            }));
        }
        for split in splits {
            let got =
                pool.install(|| write_csv_with_column_split(&src, &two, "id", &values, split));
            assert_eq!(got.unwrap(), n, "{split:?}");
            assert_eq!(std::fs::read(&two).unwrap(), want, "{split:?}");
        }
        // A file that changed is still an error.
        let split = Some(Split {
            byte: ends[n / 2],
            rows: n / 2 + 1,
        });
        assert!(pool
            .install(|| write_csv_with_column_split(&src, &two, "id", &values[1..], split))
            .is_err());
        let mut more = values.clone();
        more.push(1);
        assert!(pool
            .install(|| write_csv_with_column_split(&src, &two, "id", &more, split))
            .is_err());
        // The split read_csv finds lines up with the file.
        let spec = FileSpec {
            columns: vec![(Field::FirstName, 0)],
            country: None,
            default_region: "US".into(),
        };
        let got = read_csv(&src, &spec).unwrap();
        assert_eq!(got.split, None, "one chunk has no inner boundary");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn region_keys_fold_names_into_codes() {
        assert_eq!(region_key(" New  York ").as_deref(), Some("ny"));
        assert_eq!(region_key("N.Y.").as_deref(), Some("ny"));
        assert_eq!(region_key("ny").as_deref(), Some("ny"));
        assert_eq!(region_key("Québec").as_deref(), Some("qc"));
        assert_eq!(
            region_key("Nordrhein-Westfalen").as_deref(),
            Some("nordrhein-westfalen")
        );
        assert_eq!(region_key("  "), None);
    }

    #[test]
    fn a_file_round_trips_with_its_new_column() {
        let dir = std::env::temp_dir().join(format!("crmkit-dedupe-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("in.csv");
        std::fs::write(
            &src,
            "First Name,Last Name,Email,Phone,Country\n\
             Ann,Lee,Ann.Lee+x@Gmail.com,020 7946 0958,UK\n\
             \"Lee, Ann\",,,,\n\
             bad,row\n\
             Bob,,,(202) 555-0143,\n",
        )
        .unwrap();
        let spec = FileSpec {
            columns: vec![
                (Field::FirstName, 0),
                (Field::LastName, 1),
                (Field::Email, 2),
                (Field::Phone, 3),
                (Field::Country, 4),
            ],
            country: Some(4),
            default_region: "US".into(),
        };
        let got = read_csv(&src, &spec).unwrap();
        assert_eq!(got.rejected, 1);
        let ds = &got.dataset;
        assert_eq!(ds.len(), 3);
        let text = |f: Field, r: usize| ds.column(f).unwrap().get(r).map(|v| v.text.to_string());
        assert_eq!(text(Field::Email, 0).as_deref(), Some("annlee@gmail.com"));
        assert_eq!(text(Field::Phone, 0).as_deref(), Some("079460958"));
        assert_eq!(text(Field::Phone, 2).as_deref(), Some("025550143"));
        // The country is keyed by its ISO code, whatever its spelling.
        assert_eq!(text(Field::Country, 0).as_deref(), Some("gb"));
        assert_eq!(text(Field::Country, 2), None);
        // A full name in the first-name field is split, family name first
        // before a comma.
        assert_eq!(text(Field::FirstName, 1).as_deref(), Some("ann"));
        assert_eq!(text(Field::LastName, 1).as_deref(), Some("lee"));
        let dst = dir.join("out.csv");
        let n = write_csv_with_column(&src, &dst, "cluster_id", &[1, 1, 3]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "First Name,Last Name,Email,Phone,Country,cluster_id\n\
             Ann,Lee,Ann.Lee+x@Gmail.com,020 7946 0958,UK,1\n\
             \"Lee, Ann\",,,,,1\n\
             Bob,,,(202) 555-0143,,3\n"
        );
        assert!(write_csv_with_column(&src, &dst, "c", &[1, 2]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
