//! The columnar input of the matcher: one interned column per contact field.
//!
//! Each column stores a dictionary of distinct values (with features computed
//! once per distinct value: phonetic code, nickname groups, parsed date, ...)
//! and one `u32` code per row, so an exact comparison is an integer compare
//! and a term frequency is a table lookup.

use rayon::prelude::*;
use rphonetic::DoubleMetaphone;

use super::nicknames;
use crate::normalize::name;
use crate::{CoreError, CoreResult};

/// The code of a missing value.
pub const NULL: u32 = u32::MAX;
/// The code of a value that is not in a column's dictionary (incremental matching).
pub const UNSEEN: u32 = u32::MAX - 1;

/// The contact fields the matcher knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Email address (normalized: lowercase).
    Email,
    /// Phone number (normalized, e.g. E.164).
    Phone,
    /// Postal code.
    Postcode,
    /// City or town.
    City,
    /// Street address line.
    Street,
    /// Date of birth, `YYYY-MM-DD`.
    BirthDate,
    /// Company or organisation name.
    Company,
    /// Country, as an ISO 3166 alpha-2 code (lowercase).
    Country,
    /// State, province or region (US states and Canadian provinces as their
    /// two-letter codes, see [`region_key`](super::file::region_key)).
    Region,
}

/// The number of fields ([`Field::ALL`]'s length).
pub const N_FIELDS: usize = 11;

impl Field {
    /// Every field, in column order.
    pub const ALL: [Field; N_FIELDS] = [
        Field::FirstName,
        Field::LastName,
        Field::Email,
        Field::Phone,
        Field::Postcode,
        Field::City,
        Field::Street,
        Field::BirthDate,
        Field::Company,
        Field::Country,
        Field::Region,
    ];

    /// The field's name as used in configs and column dicts.
    pub fn name(self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Postcode => "postcode",
            Field::City => "city",
            Field::Street => "street",
            Field::BirthDate => "birth_date",
            Field::Company => "company",
            Field::Country => "country",
            Field::Region => "region",
        }
    }

    /// Parse a field name.
    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The field's position in [`Field::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One distinct value of a column with its precomputed features.
#[derive(Debug, Clone, Default)]
pub struct Value {
    /// The value as given.
    pub text: Box<str>,
    /// Double Metaphone primary code (names, city) or the digits (phone).
    pub code: Box<str>,
    /// Nickname groups (first names only).
    pub nick: Box<[u16]>,
    /// `yyyymmdd` for a parsed date, else 0.
    pub date: u32,
    /// Byte offset of the `@` in an email, else 0.
    pub at: u32,
    /// Sorted, distinct hashes of the words (last name, street, company;
    /// company suffixes such as `inc` left out), for token overlap.
    pub tokens: Box<[u64]>,
    /// Hash of the postcode district (`sw1a` of `sw1a 1aa`), 0 if none.
    pub district: u64,
}

impl Value {
    /// Build a value of `field` with its features.
    pub fn new(field: Field, text: &str) -> Value {
        Value::from_text(field, text.into())
    }

    /// [`Value::new`] taking ownership of the text.
    pub fn from_text(field: Field, text: Box<str>) -> Value {
        let mut v = Value::default();
        match field {
            Field::FirstName | Field::LastName | Field::City => {
                let lower = text.to_lowercase();
                v.code = phonetic(&lower).into();
                if field == Field::FirstName {
                    v.nick = nicknames::groups_of(&lower).into();
                }
            }
            Field::Phone => {
                v.code = text
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
                    .into();
            }
            Field::BirthDate => v.date = parse_date(&text),
            Field::Email => v.at = text.rfind('@').unwrap_or(text.len()) as u32,
            Field::Postcode => v.district = super::compare::district_hash(&text),
            _ => {}
        }
        if matches!(field, Field::LastName | Field::Street | Field::Company) {
            v.tokens = super::compare::token_hashes(&text).into();
        }
        v.text = text;
        v
    }

    /// The local part of an email (the whole text if there is no `@`).
    pub fn local(&self) -> &str {
        &self.text[..self.at as usize]
    }

    /// The domain of an email (empty if there is no `@`).
    pub fn domain(&self) -> &str {
        self.text.get(self.at as usize + 1..).unwrap_or("")
    }
}

/// Double Metaphone primary code of a name (transliterated to ASCII, letters
/// only); empty if none.
pub fn phonetic(s: &str) -> String {
    thread_local! {
        static DM: DoubleMetaphone = DoubleMetaphone::default();
    }
    let letters: String = deunicode::deunicode(s)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if letters.is_empty() {
        return String::new();
    }
    DM.with(|dm| dm.double_metaphone(&letters).primary())
}

/// Parse `YYYY-MM-DD` (also `YYYY/MM/DD`, `YYYYMMDD`) into `yyyymmdd`; 0 when invalid.
pub fn parse_date(s: &str) -> u32 {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 8 {
        return 0;
    }
    let n = digits.iter().fold(0u32, |acc, d| acc * 10 + d);
    let (m, d) = ((n / 100) % 100, n % 100);
    if m == 0 || d == 0 || m > 31 || d > 31 {
        return 0;
    }
    n
}

/// Whether a name cell counts as blank for [`split_name`].
fn blank(l: Option<&str>) -> bool {
    l.is_none_or(name::is_blank)
}

/// A whole name typed into one name field while the other is empty is
/// split: `"dorothy smith"` or `"Smith, Dorothy"` in the first-name field
/// with no last name, or `"Smith, Dorothy"` in the last-name field with no
/// first name (see [`name::split_full_name`]). The `(given, family)` parts of
/// such a row, if any.
pub(crate) fn split_name<'a>(
    first: Option<&'a str>,
    last: Option<&'a str>,
) -> Option<(&'a str, &'a str)> {
    match (first, last) {
        (Some(f), l) if blank(l) => name::split_full_name(f),
        (f, Some(l)) if blank(f) => name::split_family_first(l),
        _ => None,
    }
}

/// Split whole names (see [`split_name`]); `first` and `last` are the same
/// rows of both columns.
fn repair_names<'a>(first: &mut [Option<&'a str>], last: &mut [Option<&'a str>]) {
    for (f, l) in first.iter_mut().zip(last.iter_mut()) {
        if let Some((given, family)) = split_name(*f, *l) {
            *f = Some(given);
            *l = Some(family);
        }
    }
}

/// [`repair_names`] over columns given as distinct cells (see
/// [`BatchColumn::Cells`]): the split parts are added as new cells, once per
/// distinct pair of cells that needs a split.
fn repair_cells<'a>(
    n: usize,
    first: (Vec<Option<&'a str>>, Vec<u32>),
    last: Option<(Vec<Option<&'a str>>, Vec<u32>)>,
) -> (
    (Vec<Option<&'a str>>, Vec<u32>),
    (Vec<Option<&'a str>>, Vec<u32>),
) {
    let (mut fk, mut fr) = first;
    let (mut lk, mut lr) = last.unwrap_or_else(|| (Vec::new(), vec![NO_CELL; n]));
    // Only a row with a blank side can need a split: memoize its other side.
    // The (first, last) cells of each distinct first name (blank last) and
    // each distinct last name (blank first), made on first use.
    let mut by_first: Vec<Option<Option<(u32, u32)>>> = vec![None; fk.len()];
    let mut by_last: Vec<Option<Option<(u32, u32)>>> = vec![None; lk.len()];
    for (f, l) in fr.iter_mut().zip(lr.iter_mut()) {
        let (fv, lv) = (cell_at(&fk, *f), cell_at(&lk, *l));
        let memo = if blank(lv) && *f != NO_CELL {
            &mut by_first[*f as usize]
        } else if blank(fv) && *l != NO_CELL {
            &mut by_last[*l as usize]
        } else {
            continue;
        };
        let cells = *memo.get_or_insert_with(|| {
            split_name(fv, lv).map(|(given, family)| {
                fk.push(Some(given));
                lk.push(Some(family));
                ((fk.len() - 1) as u32, (lk.len() - 1) as u32)
            })
        });
        if let Some((a, b)) = cells {
            *f = a;
            *l = b;
        }
    }
    ((fk, fr), (lk, lr))
}

/// The cell of a row in a [`BatchColumn::Cells`] column.
fn cell_at<'a>(keys: &[Option<&'a str>], cell: u32) -> Option<&'a str> {
    match cell {
        NO_CELL => None,
        k => keys[k as usize],
    }
}

/// The cell index of a missing value in [`BatchColumn::Cells`].
pub const NO_CELL: u32 = u32::MAX;

/// One column of a batch of rows given to [`DatasetBuilder::push_batch`].
#[derive(Debug, Clone)]
pub enum BatchColumn<'a> {
    /// One value per row.
    Rows(Vec<Option<&'a str>>),
    /// Distinct cells, and the cell of each row ([`NO_CELL`] when missing):
    /// each cell is interned once, not once per row.
    Cells(Vec<Option<&'a str>>, Vec<u32>),
}

impl BatchColumn<'_> {
    fn len(&self) -> usize {
        match self {
            BatchColumn::Rows(v) => v.len(),
            BatchColumn::Cells(_, rows) => rows.len(),
        }
    }

    fn any(&self) -> bool {
        match self {
            BatchColumn::Rows(v) => v.iter().any(Option::is_some),
            BatchColumn::Cells(keys, rows) => rows.iter().any(|&c| cell_at(keys, c).is_some()),
        }
    }
}

/// One interned column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Which field this column holds.
    pub field: Field,
    /// Code per row: an index into `values`, or [`NULL`].
    pub codes: Vec<u32>,
    /// Distinct values, in order of first appearance.
    pub values: Vec<Value>,
    /// Number of rows holding each distinct value.
    pub counts: Vec<u32>,
    /// Number of rows with a value.
    pub non_null: usize,
}

impl Column {
    /// Intern a column (empty strings count as missing).
    pub fn build<S: AsRef<str>>(field: Field, raw: &[Option<S>]) -> Column {
        let mut b = ColumnBuilder::new(field);
        b.extend(raw.iter().map(|v| v.as_ref().map(AsRef::as_ref)));
        b.finish()
    }

    /// The value at a row, if any.
    pub fn get(&self, row: usize) -> Option<&Value> {
        match self.codes[row] {
            NULL => None,
            c => Some(&self.values[c as usize]),
        }
    }
}

/// Interns a column a batch of rows at a time (distinct values kept once,
/// in order of first appearance); [`ColumnBuilder::finish`] computes each
/// distinct value's features.
#[derive(Debug)]
pub struct ColumnBuilder {
    field: Field,
    /// Codes, found by the hash of their text.
    index: hashbrown::HashTable<u32>,
    hasher: ahash::RandomState,
    texts: Vec<Box<str>>,
    /// The hash of each text (the table grows without hashing again).
    hashes: Vec<u64>,
    codes: Vec<u32>,
    counts: Vec<u32>,
    non_null: usize,
}

impl ColumnBuilder {
    /// An empty column of `field`.
    pub fn new(field: Field) -> ColumnBuilder {
        ColumnBuilder {
            field,
            index: hashbrown::HashTable::new(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            texts: Vec::new(),
            hashes: Vec::new(),
            codes: Vec::new(),
            counts: Vec::new(),
            non_null: 0,
        }
    }

    /// The code of a trimmed, non-empty value, added when new (not counted).
    #[inline]
    fn intern(&mut self, s: &str) -> u32 {
        let h = self.hasher.hash_one(s);
        let texts = &self.texts;
        if let Some(&c) = self.index.find(h, |&c| &*texts[c as usize] == s) {
            return c;
        }
        let c = self.texts.len() as u32;
        self.texts.push(s.into());
        self.hashes.push(h);
        self.counts.push(0);
        let hashes = &self.hashes;
        self.index.insert_unique(h, c, |&k| hashes[k as usize]);
        c
    }

    /// The code of a value (trimmed; [`NULL`] when empty), not counted.
    #[inline]
    fn code_of(&mut self, v: Option<&str>) -> u32 {
        match v.map(str::trim).filter(|s| !s.is_empty()) {
            None => NULL,
            Some(s) => self.intern(s),
        }
    }

    /// Append one row's code.
    #[inline]
    fn push_code(&mut self, code: u32) {
        if code != NULL {
            self.counts[code as usize] += 1;
            self.non_null += 1;
        }
        self.codes.push(code);
    }

    /// Append rows (values are trimmed; empty ones count as missing).
    pub fn extend<'s, I: IntoIterator<Item = Option<&'s str>>>(&mut self, rows: I) {
        for v in rows {
            let code = self.code_of(v);
            self.push_code(code);
        }
    }

    /// Append rows given as distinct cells and the cell of each row
    /// ([`NO_CELL`] when missing): each cell is interned once.
    /// Codes are given in order of first appearance by row, as
    /// [`ColumnBuilder::extend`] gives them.
    pub fn extend_cells(&mut self, cells: &[Option<&str>], rows: &[u32]) {
        const UNSET: u32 = NULL - 2;
        let mut codes = vec![UNSET; cells.len()];
        self.codes.reserve(rows.len());
        for &r in rows {
            let code = match r {
                NO_CELL => NULL,
                k => {
                    let c = &mut codes[k as usize];
                    if *c == UNSET {
                        *c = self.code_of(cells[k as usize]);
                    }
                    *c
                }
            };
            self.push_code(code);
        }
    }

    /// Append a batch column.
    pub fn extend_batch(&mut self, col: BatchColumn<'_>) {
        match col {
            BatchColumn::Rows(v) => self.extend(v),
            BatchColumn::Cells(cells, rows) => self.extend_cells(&cells, &rows),
        }
    }

    /// Append `n` missing values.
    pub fn extend_null(&mut self, n: usize) {
        self.codes.resize(self.codes.len() + n, NULL);
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The interned column, with the features of every distinct value.
    pub fn finish(self) -> Column {
        drop(self.index);
        drop(self.hashes);
        let field = self.field;
        let values: Vec<Value> = self
            .texts
            .into_par_iter()
            .map(|s| Value::from_text(field, s))
            .collect();
        Column {
            field,
            codes: self.codes,
            values,
            counts: self.counts,
            non_null: self.non_null,
        }
    }
}

/// One value per row of a batch column.
fn rows_of(col: BatchColumn<'_>) -> Vec<Option<&str>> {
    match col {
        BatchColumn::Rows(v) => v,
        BatchColumn::Cells(keys, rows) => rows.iter().map(|&c| cell_at(&keys, c)).collect(),
    }
}

/// Builds a [`Dataset`] a batch of rows at a time, so the caller never holds
/// every row's text: only distinct values are kept.
#[derive(Debug)]
pub struct DatasetBuilder {
    cols: Vec<Option<ColumnBuilder>>,
    given: [bool; N_FIELDS],
    /// Whether the last-name column (given or made by name repair) holds any
    /// value; without one it is left out silently.
    last_any: bool,
    rows: usize,
}

impl DatasetBuilder {
    /// A builder for columns of `fields` (each at most once).
    pub fn new(fields: &[Field]) -> CoreResult<DatasetBuilder> {
        let mut given = [false; N_FIELDS];
        for f in fields {
            if given[f.index()] {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' given twice",
                    f.name()
                )));
            }
            given[f.index()] = true;
        }
        let mut cols: Vec<Option<ColumnBuilder>> = Field::ALL
            .iter()
            .map(|&f| given[f.index()].then(|| ColumnBuilder::new(f)))
            .collect();
        if given[Field::FirstName.index()] && !given[Field::LastName.index()] {
            cols[Field::LastName.index()] = Some(ColumnBuilder::new(Field::LastName));
        }
        Ok(DatasetBuilder {
            cols,
            given,
            last_any: false,
            rows: 0,
        })
    }

    /// Append a batch of `n` rows: one column of `n` values per field given
    /// to [`DatasetBuilder::new`] (any order). Full names in the first-name
    /// field with no last name are split first (see `repair_names`).
    pub fn push(&mut self, n: usize, batch: Vec<(Field, Vec<Option<&str>>)>) -> CoreResult<()> {
        self.push_batch(
            n,
            batch
                .into_iter()
                .map(|(f, v)| (f, BatchColumn::Rows(v)))
                .collect(),
        )
    }

    /// [`DatasetBuilder::push`] with columns given per row or as distinct
    /// cells (see [`BatchColumn`]).
    pub fn push_batch(&mut self, n: usize, batch: Vec<(Field, BatchColumn<'_>)>) -> CoreResult<()> {
        let mut slots: Vec<Option<BatchColumn<'_>>> = vec![None; Field::ALL.len()];
        for (field, col) in batch {
            if col.len() != n {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' has {} values for {} rows",
                    field.name(),
                    col.len(),
                    n
                )));
            }
            if !self.given[field.index()] || slots[field.index()].is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' was not expected here",
                    field.name()
                )));
            }
            slots[field.index()] = Some(col);
        }
        if let Some(k) = (0..N_FIELDS).find(|&k| self.given[k] && slots[k].is_none()) {
            return Err(CoreError::InvalidInput(format!(
                "column '{}' is missing from a batch",
                Field::ALL[k].name()
            )));
        }
        let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
        if self.given[fi] {
            let first = slots[fi].take().expect("checked above");
            let last = slots[li].take();
            let (first, last) = match (first, last) {
                (BatchColumn::Cells(fk, fr), Some(BatchColumn::Cells(lk, lr))) => {
                    let (f, l) = repair_cells(n, (fk, fr), Some((lk, lr)));
                    (BatchColumn::Cells(f.0, f.1), BatchColumn::Cells(l.0, l.1))
                }
                (BatchColumn::Cells(fk, fr), None) => {
                    let (f, l) = repair_cells(n, (fk, fr), None);
                    (BatchColumn::Cells(f.0, f.1), BatchColumn::Cells(l.0, l.1))
                }
                (first, last) => {
                    let mut first = rows_of(first);
                    let mut last = last.map_or_else(|| vec![None; n], rows_of);
                    repair_names(&mut first, &mut last);
                    (BatchColumn::Rows(first), BatchColumn::Rows(last))
                }
            };
            self.last_any |= last.any();
            slots[fi] = Some(first);
            slots[li] = Some(last);
        } else if let Some(last) = &slots[li] {
            self.last_any |= last.any();
        }
        self.cols
            .par_iter_mut()
            .zip(slots.into_par_iter())
            .for_each(|(b, slot)| {
                if let (Some(b), Some(col)) = (b, slot) {
                    b.extend_batch(col);
                }
            });
        self.rows += n;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The dataset over rows named `ids` (one per row, unique), and warnings
    /// (a field with no value in any row is dropped).
    pub fn finish(self, ids: Vec<i64>) -> CoreResult<(Dataset, Vec<String>)> {
        let n = ids.len();
        if n != self.rows {
            return Err(CoreError::InvalidInput(format!(
                "{} ids for {} rows",
                n, self.rows
            )));
        }
        if n >= (UNSEEN as usize) {
            return Err(CoreError::InvalidInput("too many rows".into()));
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        for id in &ids {
            if !seen.insert(*id) {
                return Err(CoreError::InvalidInput("row ids must be unique".into()));
            }
        }
        drop(seen);
        let mut cols = self.cols;
        if !self.last_any && self.given[Field::FirstName.index()] {
            cols[Field::LastName.index()] = None;
        }
        let built: Vec<Option<Column>> = cols
            .into_par_iter()
            .map(|b| b.map(ColumnBuilder::finish))
            .collect();
        let mut warnings = Vec::new();
        let columns = built
            .into_iter()
            .map(|c| match c {
                Some(c) if c.non_null == 0 && n > 0 => {
                    warnings.push(format!(
                        "field '{}' is missing from every row and was dropped",
                        c.field.name()
                    ));
                    None
                }
                other => other,
            })
            .collect();
        let uid = NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((Dataset { ids, columns, uid }, warnings))
    }
}

/// The matcher's input: row ids and one optional column per field.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The caller's id of each row (unique).
    pub ids: Vec<i64>,
    /// One entry per [`Field::ALL`]; `None` when the field is absent.
    pub columns: Vec<Option<Column>>,
    /// A process-unique id of this dataset's dictionaries (never 0), which
    /// keys caches of comparison levels by dictionary code.
    pub uid: u64,
}

static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Dataset {
    /// Build a dataset from named columns and row ids.
    ///
    /// Every column must have one entry per id and ids must be unique. A field
    /// with no value in any row is dropped with a warning (returned).
    pub fn from_columns(
        ids: Vec<i64>,
        columns: Vec<(Field, Vec<Option<String>>)>,
    ) -> CoreResult<(Dataset, Vec<String>)> {
        let refs = columns
            .iter()
            .map(|(f, col)| (*f, col.iter().map(Option::as_deref).collect()))
            .collect();
        Dataset::from_refs(ids, refs)
    }

    /// [`Dataset::from_columns`] over borrowed text (no copy of the input;
    /// only distinct values are kept).
    pub fn from_refs(
        ids: Vec<i64>,
        columns: Vec<(Field, Vec<Option<&str>>)>,
    ) -> CoreResult<(Dataset, Vec<String>)> {
        let n = ids.len();
        for (field, col) in &columns {
            if col.len() != n {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' has {} values for {} ids",
                    field.name(),
                    col.len(),
                    n
                )));
            }
        }
        let fields: Vec<Field> = columns.iter().map(|c| c.0).collect();
        let mut b = DatasetBuilder::new(&fields)?;
        b.push(n, columns)?;
        b.finish(ids)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The column of a field, if present.
    pub fn column(&self, f: Field) -> Option<&Column> {
        self.columns[f.index()].as_ref()
    }

    /// The fields present, in column order.
    pub fn fields(&self) -> Vec<Field> {
        Field::ALL
            .into_iter()
            .filter(|f| self.column(*f).is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(String::from)).collect()
    }

    #[test]
    fn interning_counts_values_and_drops_empty_fields() {
        let (ds, warnings) = Dataset::from_columns(
            vec![10, 11, 12],
            vec![
                (
                    Field::LastName,
                    col(&[Some("smith"), Some("smith"), Some("")]),
                ),
                (Field::Company, col(&[None, None, None])),
            ],
        )
        .unwrap();
        let c = ds.column(Field::LastName).unwrap();
        assert_eq!(c.codes, vec![0, 0, NULL]);
        assert_eq!(c.counts, vec![2]);
        assert_eq!(c.non_null, 2);
        assert!(ds.column(Field::Company).is_none());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("company"));
    }

    #[test]
    fn full_names_in_the_first_name_field_are_split() {
        let (ds, _) = Dataset::from_columns(
            vec![1, 2],
            vec![(
                Field::FirstName,
                col(&[Some("dorothy ann smith"), Some("bob")]),
            )],
        )
        .unwrap();
        let f = ds.column(Field::FirstName).unwrap();
        let l = ds.column(Field::LastName).unwrap();
        assert_eq!(&*f.get(0).unwrap().text, "dorothy ann");
        assert_eq!(&*l.get(0).unwrap().text, "smith");
        assert!(l.get(1).is_none());
    }

    #[test]
    fn a_name_of_control_characters_counts_as_blank() {
        // The import turns such a cell into no name: the other field's whole
        // name is split as if the cell were empty.
        let (ds, _) = Dataset::from_columns(
            vec![1],
            vec![
                (Field::FirstName, col(&[Some("dorothy ann smith")])),
                (Field::LastName, col(&[Some("\u{1c}\t")])),
            ],
        )
        .unwrap();
        let f = ds.column(Field::FirstName).unwrap();
        let l = ds.column(Field::LastName).unwrap();
        assert_eq!(&*f.get(0).unwrap().text, "dorothy ann");
        assert_eq!(&*l.get(0).unwrap().text, "smith");
    }

    #[test]
    fn family_first_names_in_either_field_are_split() {
        let (ds, _) = Dataset::from_columns(
            vec![1, 2, 3, 4],
            vec![
                (
                    Field::FirstName,
                    col(&[None, Some("baker, james"), Some(" "), Some("ann")]),
                ),
                (
                    Field::LastName,
                    col(&[
                        Some("lockinglow, dan"),
                        None,
                        Some("van der berg"),
                        Some("lee, jr"),
                    ]),
                ),
            ],
        )
        .unwrap();
        let f = ds.column(Field::FirstName).unwrap();
        let l = ds.column(Field::LastName).unwrap();
        let text = |c: &Column, r: usize| c.get(r).map(|v| v.text.to_string());
        assert_eq!(text(f, 0).as_deref(), Some("dan"));
        assert_eq!(text(l, 0).as_deref(), Some("lockinglow"));
        assert_eq!(text(f, 1).as_deref(), Some("james"));
        assert_eq!(text(l, 1).as_deref(), Some("baker"));
        // A family name with spaces and no comma stays whole; both fields given: kept.
        assert!(f.get(2).is_none());
        assert_eq!(text(l, 2).as_deref(), Some("van der berg"));
        assert_eq!(text(f, 3).as_deref(), Some("ann"));
    }

    #[test]
    fn cells_and_rows_give_the_same_columns() {
        let pool = [
            None,
            Some(""),
            Some(" "),
            Some("ann"),
            Some("ann lee"),
            Some(" ann  lee "),
            Some("lee"),
            Some("a b c"),
            Some(" x"),
            Some("lee, ann"),
            Some("lee,"),
            Some("lee, jr."),
        ];
        let mut state = 5u64;
        let mut next = |k: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % k
        };
        for with_last in [true, false] {
            for _ in 0..50 {
                let n = 1 + next(30);
                // Per-row cells over a random subset of the pool.
                let pick = |next: &mut dyn FnMut(usize) -> usize| -> (Vec<Option<&str>>, Vec<u32>) {
                    let cells: Vec<Option<&str>> =
                        (0..1 + next(5)).map(|_| pool[next(pool.len())]).collect();
                    let rows = (0..n)
                        .map(|_| match next(cells.len() + 1) {
                            k if k == cells.len() => NO_CELL,
                            k => k as u32,
                        })
                        .collect();
                    (cells, rows)
                };
                let (fk, fr) = pick(&mut next);
                let (lk, lr) = pick(&mut next);
                let mut fields = vec![Field::FirstName];
                if with_last {
                    fields.push(Field::LastName);
                }
                let mut a = DatasetBuilder::new(&fields).unwrap();
                let mut b = DatasetBuilder::new(&fields).unwrap();
                let mut rows = vec![(
                    Field::FirstName,
                    fr.iter().map(|&c| cell_at(&fk, c)).collect(),
                )];
                let mut cells =
                    vec![(Field::FirstName, BatchColumn::Cells(fk.clone(), fr.clone()))];
                if with_last {
                    rows.push((
                        Field::LastName,
                        lr.iter().map(|&c| cell_at(&lk, c)).collect(),
                    ));
                    cells.push((Field::LastName, BatchColumn::Cells(lk.clone(), lr.clone())));
                }
                a.push(n, rows).unwrap();
                b.push_batch(n, cells).unwrap();
                let ids: Vec<i64> = (0..n as i64).collect();
                let (da, _) = a.finish(ids.clone()).unwrap();
                let (db, _) = b.finish(ids).unwrap();
                for f in [Field::FirstName, Field::LastName] {
                    let text = |d: &Dataset| -> Option<Vec<Option<String>>> {
                        let c = d.column(f)?;
                        Some(
                            (0..n)
                                .map(|r| c.get(r).map(|v| v.text.to_string()))
                                .collect(),
                        )
                    };
                    assert_eq!(text(&da), text(&db), "{f:?}");
                    assert_eq!(
                        da.column(f).map(|c| (&c.codes, &c.counts, c.non_null)),
                        db.column(f).map(|c| (&c.codes, &c.counts, c.non_null)),
                    );
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Dataset::from_columns(vec![1, 1], vec![]).is_err());
        assert!(
            Dataset::from_columns(vec![1, 2], vec![(Field::Email, col(&[Some("a@b.c")]))]).is_err()
        );
    }

    #[test]
    fn dates_and_emails_are_parsed() {
        assert_eq!(parse_date("1980-02-03"), 19800203);
        assert_eq!(parse_date("1980-2-3"), 0);
        let v = Value::new(Field::Email, "ann.lee@example.org");
        assert_eq!(v.local(), "ann.lee");
        assert_eq!(v.domain(), "example.org");
        assert_eq!(phonetic("smith"), phonetic("smyth"));
        assert_eq!(phonetic("MÜNCHEN"), phonetic("munchen"));
        assert_eq!(phonetic("李"), phonetic("li"));
    }
}
