//! The columnar input of the matcher: one interned column per contact field.
//!
//! Each column stores a dictionary of distinct values (with features computed
//! once per distinct value: phonetic code, nickname groups, parsed date, ...)
//! and one `u32` code per row, so an exact comparison is an integer compare
//! and a term frequency is a table lookup.

use ahash::AHashMap;
use rayon::prelude::*;
use rphonetic::DoubleMetaphone;

use super::nicknames;
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
}

impl Field {
    /// Every field, in column order.
    pub const ALL: [Field; 9] = [
        Field::FirstName,
        Field::LastName,
        Field::Email,
        Field::Phone,
        Field::Postcode,
        Field::City,
        Field::Street,
        Field::BirthDate,
        Field::Company,
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
        let mut v = Value {
            text: text.into(),
            ..Value::default()
        };
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
            Field::BirthDate => v.date = parse_date(text),
            Field::Email => v.at = text.rfind('@').unwrap_or(text.len()) as u32,
            Field::Postcode => v.district = super::compare::district_hash(text),
            _ => {}
        }
        if matches!(field, Field::LastName | Field::Street | Field::Company) {
            v.tokens = super::compare::token_hashes(text).into();
        }
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

/// A full name typed into the first-name field with no last name
/// (`"dorothy smith"`, last name missing) is split: its last word becomes the
/// last name.
fn repair_names(slots: &mut [Option<Vec<Option<&str>>>]) {
    let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
    let Some(mut first) = slots[fi].take() else {
        return;
    };
    let n = first.len();
    let mut last = slots[li].take().unwrap_or_else(|| vec![None; n]);
    for (f, l) in first.iter_mut().zip(last.iter_mut()) {
        let blank = l.is_none_or(|s| s.trim().is_empty());
        if let (true, Some(full)) = (blank, *f) {
            if let Some((given, family)) = full.trim().rsplit_once(' ') {
                let given = given.trim();
                if !given.is_empty() {
                    *l = Some(family);
                    *f = Some(given);
                }
            }
        }
    }
    slots[fi] = Some(first);
    if last.iter().any(Option::is_some) {
        slots[li] = Some(last);
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
        let mut map: AHashMap<&str, u32> = AHashMap::with_capacity(raw.len() / 2 + 1);
        let mut codes = Vec::with_capacity(raw.len());
        let mut firsts: Vec<&str> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        for v in raw {
            match v
                .as_ref()
                .map(|s| s.as_ref().trim())
                .filter(|s| !s.is_empty())
            {
                None => codes.push(NULL),
                Some(s) => {
                    let code = *map.entry(s).or_insert_with(|| {
                        firsts.push(s);
                        counts.push(0);
                        (firsts.len() - 1) as u32
                    });
                    counts[code as usize] += 1;
                    codes.push(code);
                }
            }
        }
        let values: Vec<Value> = firsts.par_iter().map(|s| Value::new(field, s)).collect();
        let non_null = raw.len() - codes.iter().filter(|&&c| c == NULL).count();
        Column {
            field,
            codes,
            values,
            counts,
            non_null,
        }
    }

    /// The value at a row, if any.
    pub fn get(&self, row: usize) -> Option<&Value> {
        match self.codes[row] {
            NULL => None,
            c => Some(&self.values[c as usize]),
        }
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
        if n >= (UNSEEN as usize) {
            return Err(CoreError::InvalidInput("too many rows".into()));
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        for id in &ids {
            if !seen.insert(*id) {
                return Err(CoreError::InvalidInput("row ids must be unique".into()));
            }
        }
        let mut slots: Vec<Option<Vec<Option<&str>>>> = vec![None; Field::ALL.len()];
        for (field, col) in columns {
            if col.len() != n {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' has {} values for {} ids",
                    field.name(),
                    col.len(),
                    n
                )));
            }
            if slots[field.index()].is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "column '{}' given twice",
                    field.name()
                )));
            }
            slots[field.index()] = Some(col);
        }
        repair_names(&mut slots);
        let built: Vec<Option<Column>> = slots
            .par_iter()
            .enumerate()
            .map(|(k, slot)| slot.as_ref().map(|raw| Column::build(Field::ALL[k], raw)))
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
