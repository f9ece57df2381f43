//! The columnar contact snapshot: dictionary-encoded strings, typed i64/f64
//! columns (dates and datetimes as epoch seconds), null masks, list columns,
//! and each contact's interactions, with per-contact aggregates.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::{CoreError, CoreResult};

use roaring::RoaringBitmap;

use super::ast::AggFunc;
use super::codec::{Reader, Writer};
pub use super::events::{Event, Events};
use super::packed::{Packed, PackedSlice};
pub use super::strindex::SortedCodes;
use super::typecheck::AggKey;
use super::{FieldType, Schema, DAY};

/// Column values as they arrive from the caller (one entry per contact).
/// Dates and datetimes arrive as `Int` epoch seconds; booleans as `Bool`.
#[derive(Debug, Clone)]
pub enum ColumnData {
    /// Strings.
    Str(Vec<Option<String>>),
    /// Integers, dates and datetimes.
    Int(Vec<Option<i64>>),
    /// Numbers (NaN is treated as null).
    Float(Vec<Option<f64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
    /// Lists of strings.
    List(Vec<Option<Vec<String>>>),
}

impl ColumnData {
    /// The value at row `i` (in range).
    fn value(&self, i: usize) -> Value {
        let v = match self {
            ColumnData::Str(v) => v[i].clone().map(Value::Str),
            ColumnData::Int(v) => v[i].map(Value::Int),
            ColumnData::Float(v) => v[i].map(Value::Float),
            ColumnData::Bool(v) => v[i].map(Value::Bool),
            ColumnData::List(v) => v[i].clone().map(Value::List),
        };
        v.unwrap_or(Value::Null)
    }

    fn len(&self) -> usize {
        match self {
            ColumnData::Str(v) => v.len(),
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::List(v) => v.len(),
        }
    }
}

/// One value for a single-contact update.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Missing.
    Null,
    /// A string.
    Str(String),
    /// An integer, date or datetime (epoch seconds).
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings.
    List(Vec<String>),
}

/// End offsets of strings stored end to end: in 32 bits while the text is
/// under 4 GiB, else in 64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ends {
    /// Offsets below 2^32.
    W32(Vec<u32>),
    /// Any offsets.
    W64(Vec<u64>),
}

impl Default for Ends {
    fn default() -> Ends {
        Ends::W32(Vec::new())
    }
}

impl Ends {
    /// Number of offsets.
    pub fn len(&self) -> usize {
        match self {
            Ends::W32(v) => v.len(),
            Ends::W64(v) => v.len(),
        }
    }

    /// True when there is no offset.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset `i` (in range).
    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        match self {
            Ends::W32(v) => v[i] as u64,
            Ends::W64(v) => v[i],
        }
    }

    /// Append an offset, widening every offset first if it needs 64 bits.
    pub fn push(&mut self, e: u64) {
        match self {
            Ends::W32(v) => match u32::try_from(e) {
                Ok(e) => v.push(e),
                Err(_) => {
                    let mut w: Vec<u64> = v.iter().map(|&x| x as u64).collect();
                    w.push(e);
                    *self = Ends::W64(w);
                }
            },
            Ends::W64(v) => v.push(e),
        }
    }
}

/// Strings stored end to end in one buffer: a dictionary of millions of
/// values costs their bytes and one offset each, not an allocation each.
#[derive(Clone, Default)]
pub struct Strs {
    /// End offset of each string in `bytes`.
    ends: Ends,
    /// UTF-8 text of every string, in order.
    bytes: Vec<u8>,
}

impl Strs {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no string.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `i` (panics when out of range, like a slice).
    #[inline]
    pub fn get(&self, i: usize) -> &str {
        let a = if i == 0 {
            0
        } else {
            self.ends.get(i - 1) as usize
        };
        let b = self.ends.get(i) as usize;
        // SAFETY: `bytes` only ever receives whole `&str`s (push) or text
        // checked to be UTF-8 with every end on a character boundary
        // (from_parts), so each range is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[a..b]) }
    }

    /// Append a string.
    pub fn push(&mut self, s: &str) {
        self.bytes.extend_from_slice(s.as_bytes());
        self.ends.push(self.bytes.len() as u64);
    }

    /// The strings in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The end offsets and the text (the file layout).
    pub fn parts(&self) -> (&Ends, &[u8]) {
        (&self.ends, &self.bytes)
    }

    /// From end offsets and text; None unless the text is UTF-8 and the ends
    /// ascend to its length on character boundaries.
    pub fn from_parts(ends: Ends, bytes: Vec<u8>) -> Option<Strs> {
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut prev = 0u64;
        for i in 0..ends.len() {
            let e = ends.get(i);
            if e < prev || !text.is_char_boundary(usize::try_from(e).ok()?) {
                return None;
            }
            prev = e;
        }
        (prev as usize == bytes.len()).then_some(Strs { ends, bytes })
    }
}

impl std::ops::Index<usize> for Strs {
    type Output = str;
    fn index(&self, i: usize) -> &str {
        self.get(i)
    }
}

impl From<Vec<String>> for Strs {
    fn from(v: Vec<String>) -> Strs {
        let mut out = Strs::default();
        for s in &v {
            out.push(s);
        }
        out
    }
}

/// A string dictionary: code -> string and string -> code. The index holds
/// codes only (hashed through their strings), so each string is stored once;
/// it is built on first use, so a dictionary read from a file that is only
/// scanned (the usual case) never hashes its strings.
#[derive(Clone, Default)]
pub struct Dict {
    /// The strings, by code.
    pub values: Strs,
    index: std::sync::OnceLock<hashbrown::HashTable<u32>>,
    hasher: ahash::RandomState,
    /// The codes in byte order of their strings (0) and of their reversed
    /// bytes (1), each built on first use.
    sorted: [std::sync::OnceLock<SortedCodes>; 2],
    /// Code bits of string tests already run over the whole dictionary.
    tested: TestedBits,
}

/// The code bits of string tests run over a whole dictionary, by the test's
/// key (see [`Dict::tested`]): each entry holds how many codes it covers (a
/// dictionary only grows) and one bit per code. Cloned with its dictionary.
#[derive(Default)]
struct TestedBits(std::sync::Mutex<HashMap<String, Arc<TestedCodes>>>);

impl Clone for TestedBits {
    fn clone(&self) -> Self {
        TestedBits(std::sync::Mutex::new(self.lock().clone()))
    }
}

impl TestedBits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TestedCodes>>> {
        // A panic while the map was held leaves a map that is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One test's bits over the first `n` codes of a dictionary.
#[derive(Debug)]
pub struct TestedCodes {
    /// Codes covered: those below `n`.
    pub n: usize,
    /// One bit per code (code `c` is bit `c & 63` of word `c >> 6`).
    pub bits: Vec<u64>,
}

/// What the kept test bits of one dictionary may take, in 64-bit words
/// (64 MiB): past it, further tests are run again when needed.
const MAX_TESTED_WORDS: usize = 1 << 23;

/// Dictionaries smaller than this are tested again rather than kept.
pub const MIN_TESTED_DICT: usize = 1 << 14;

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dict")
            .field("len", &self.values.len())
            .finish()
    }
}

impl Dict {
    fn index(&self) -> &hashbrown::HashTable<u32> {
        self.index.get_or_init(|| {
            let mut index = hashbrown::HashTable::with_capacity(self.values.len());
            for (c, v) in self.values.iter().enumerate() {
                let h = self.hasher.hash_one(v);
                if index
                    .find(h, |&o: &u32| &self.values[o as usize] == v)
                    .is_none()
                {
                    index.insert_unique(h, c as u32, |&o| {
                        self.hasher.hash_one(&self.values[o as usize])
                    });
                }
            }
            index
        })
    }

    /// The codes sorted by the bytes of their strings, or by their reversed
    /// bytes; built on first use (in parallel). It covers the codes below its
    /// length: codes added since are not in it.
    pub fn sorted(&self, reversed: bool) -> &SortedCodes {
        self.sorted[reversed as usize].get_or_init(|| SortedCodes::build(&self.values, reversed))
    }

    /// [`Dict::sorted`] when it has been built.
    pub fn sorted_if_built(&self, reversed: bool) -> Option<&SortedCodes> {
        self.sorted[reversed as usize].get()
    }

    /// The bits a test (named by `key`: the same key, the same test) gave
    /// when last run over this dictionary, if kept. They cover the codes
    /// below their `n`; codes added since are for the caller to test.
    pub fn tested(&self, key: &str) -> Option<Arc<TestedCodes>> {
        self.tested.lock().get(key).cloned()
    }

    /// Drop every kept test's bits (tests read the other paths again).
    #[cfg(test)]
    pub(crate) fn forget_tested(&self) {
        self.tested.lock().clear();
    }

    /// Keep the bits of test `key` over the codes below `n` (see
    /// [`Dict::tested`]), unless the dictionary is small (cheap to test
    /// again) or its kept bits would pass their bound.
    pub fn keep_tested(&self, key: &str, n: usize, bits: &[u64]) {
        if self.values.len() < MIN_TESTED_DICT || n > self.values.len() {
            return;
        }
        let mut map = self.tested.lock();
        let held: usize = map.values().map(|t| t.bits.len()).sum();
        let replaced = map.get(key).map_or(0, |t| t.bits.len());
        if held - replaced + bits.len() > MAX_TESTED_WORDS {
            return;
        }
        let words = n.div_ceil(64).min(bits.len());
        map.insert(
            key.to_owned(),
            Arc::new(TestedCodes {
                n,
                bits: bits[..words].to_vec(),
            }),
        );
    }

    /// The code of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        self.index();
        let Dict {
            values,
            index,
            hasher,
            ..
        } = self;
        let index = index.get_mut().expect("index built above");
        let h = hasher.hash_one(s);
        if let Some(&c) = index.find(h, |&c| &values[c as usize] == s) {
            return c;
        }
        let c = values.len() as u32;
        values.push(s);
        index.insert_unique(h, c, |&c| hasher.hash_one(&values[c as usize]));
        c
    }

    /// A dictionary of the given strings, coded in order (the strings of a
    /// dictionary written by this one: distinct).
    pub fn from_strs(values: Strs) -> Dict {
        Dict {
            values,
            ..Default::default()
        }
    }

    /// The code of `s`, if present.
    pub fn code(&self, s: &str) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.index()
            .find(h, |&c| &self.values[c as usize] == s)
            .copied()
    }
}

/// The typed storage of one column, padded to a multiple of 64 rows.
#[derive(Debug, Clone)]
pub enum Store {
    /// Dictionary codes (0 on null rows).
    Str {
        /// Codes, in the narrowest width that holds the dictionary's.
        codes: Packed,
        /// Dictionary (shared with snapshots gathered from this one).
        dict: Arc<Dict>,
    },
    /// i64 values (0 on null rows).
    Int(Vec<i64>),
    /// Integer values that all fit in 32 bits, in half the space (0 on null
    /// rows): dates and times from 1901 to 2038, counts, ages. A value that
    /// does not fit turns the column into [`Store::Int`].
    Int32(Vec<i32>),
    /// f64 values (0.0 on null rows).
    Float(Vec<f64>),
    /// Boolean values as bits.
    Bool(Vec<u64>),
    /// Lists: each row is `codes[start..start + len]`.
    List {
        /// Start of each row's codes.
        start: Vec<u32>,
        /// Length of each row's list.
        len: Packed,
        /// Element codes.
        codes: Packed,
        /// Dictionary (shared with snapshots gathered from this one).
        dict: Arc<Dict>,
    },
}

/// Row `r`'s items in a list column's storage (none on null rows).
#[inline]
pub(crate) fn list_items<'a>(
    start: &[u32],
    len: &Packed,
    codes: &'a Packed,
    r: usize,
) -> PackedSlice<'a> {
    let a = start[r] as usize;
    codes.slice(a, a + len.get(r) as usize)
}

/// A column: storage plus a validity bitmap (bit set = value present).
#[derive(Debug, Clone)]
pub struct Column {
    /// The declared type.
    pub ty: FieldType,
    /// Values.
    pub store: Store,
    /// Validity bits, one per (padded) row.
    pub valid: Vec<u64>,
    /// For a list column: the rows (with a value) holding each code, built
    /// on first use and kept up to date by [`Column::set`].
    postings: std::sync::OnceLock<Vec<RoaringBitmap>>,
}

#[inline]
pub(crate) fn bit(words: &[u64], i: usize) -> bool {
    words[i >> 6] >> (i & 63) & 1 == 1
}

#[inline]
fn set_bit(words: &mut [u64], i: usize, v: bool) {
    if v {
        words[i >> 6] |= 1 << (i & 63);
    } else {
        words[i >> 6] &= !(1 << (i & 63));
    }
}

/// Ids in increasing order (the usual case: the store sorts them) are found
/// by binary search; only the rest go into a hash map. Returns the length of
/// the sorted prefix and the map; a repeated id is an error.
fn index_ids(ids: &[i64]) -> CoreResult<(usize, HashMap<i64, usize>)> {
    let n = ids.len();
    let sorted_prefix = (1 + ids.windows(2).take_while(|w| w[0] < w[1]).count()).min(n);
    let mut id_index = HashMap::new();
    for (i, id) in ids.iter().enumerate().skip(sorted_prefix) {
        if ids[..sorted_prefix].binary_search(id).is_ok() || id_index.insert(*id, i).is_some() {
            return Err(CoreError::InvalidInput(format!(
                "duplicate contact id at row {i}"
            )));
        }
    }
    Ok((sorted_prefix, id_index))
}

fn padded(n: usize) -> usize {
    n.div_ceil(64).max(1) * 64
}

impl Column {
    fn build(ty: FieldType, data: ColumnData, name: &str) -> CoreResult<Column> {
        let n = data.len();
        let np = padded(n);
        let mut valid = vec![0u64; np / 64];
        let wrong = || {
            CoreError::InvalidInput(format!(
                "column '{name}' does not hold {} values",
                ty.name()
            ))
        };
        let store = match (ty, data) {
            (FieldType::String, ColumnData::Str(v)) => {
                let mut dict = Dict::default();
                let mut codes = vec![0u32; np];
                for (i, s) in v.iter().enumerate() {
                    if let Some(s) = s {
                        codes[i] = dict.intern(s);
                        set_bit(&mut valid, i, true);
                    }
                }
                Store::Str {
                    codes: Packed::from_u32(codes),
                    dict: Arc::new(dict),
                }
            }
            (FieldType::Integer | FieldType::Date | FieldType::Datetime, ColumnData::Int(v))
                if v.iter().flatten().all(|x| i32::try_from(*x).is_ok()) =>
            {
                let mut vals = vec![0i32; np];
                for (i, x) in v.iter().enumerate() {
                    if let Some(x) = x {
                        vals[i] = *x as i32;
                        set_bit(&mut valid, i, true);
                    }
                }
                Store::Int32(vals)
            }
            (FieldType::Integer | FieldType::Date | FieldType::Datetime, ColumnData::Int(v)) => {
                let mut vals = vec![0i64; np];
                for (i, x) in v.iter().enumerate() {
                    if let Some(x) = x {
                        vals[i] = *x;
                        set_bit(&mut valid, i, true);
                    }
                }
                Store::Int(vals)
            }
            (FieldType::Number, ColumnData::Float(v)) => {
                let mut vals = vec![0f64; np];
                for (i, x) in v.iter().enumerate() {
                    if let Some(x) = x.filter(|x| !x.is_nan()) {
                        vals[i] = x;
                        set_bit(&mut valid, i, true);
                    }
                }
                Store::Float(vals)
            }
            (FieldType::Number, ColumnData::Int(v)) => {
                return Column::build(
                    ty,
                    ColumnData::Float(v.into_iter().map(|x| x.map(|x| x as f64)).collect()),
                    name,
                )
            }
            (FieldType::Boolean, ColumnData::Bool(v)) => {
                let mut bits = vec![0u64; np / 64];
                for (i, x) in v.iter().enumerate() {
                    if let Some(x) = x {
                        set_bit(&mut bits, i, *x);
                        set_bit(&mut valid, i, true);
                    }
                }
                Store::Bool(bits)
            }
            (FieldType::List, ColumnData::List(v)) => {
                let mut dict = Dict::default();
                let mut start = vec![0u32; np];
                let mut len = vec![0u32; np];
                let mut codes = Vec::new();
                for (i, x) in v.iter().enumerate() {
                    start[i] = codes.len() as u32;
                    if let Some(items) = x {
                        for s in items {
                            codes.push(dict.intern(s));
                        }
                        len[i] = items.len() as u32;
                        set_bit(&mut valid, i, true);
                    }
                }
                if codes.len() > u32::MAX as usize {
                    return Err(CoreError::InvalidInput(format!(
                        "list column '{name}' is too large"
                    )));
                }
                Store::List {
                    start,
                    len: Packed::from_u32(len),
                    codes: Packed::from_u32(codes),
                    dict: Arc::new(dict),
                }
            }
            _ => return Err(wrong()),
        };
        Ok(Column::new(ty, store, valid))
    }

    fn grow(&mut self, np: usize) {
        self.valid.resize(np / 64, 0);
        match &mut self.store {
            Store::Str { codes, .. } => codes.resize(np),
            Store::Int(v) => v.resize(np, 0),
            Store::Int32(v) => v.resize(np, 0),
            Store::Float(v) => v.resize(np, 0.0),
            Store::Bool(v) => v.resize(np / 64, 0),
            Store::List { start, len, .. } => {
                start.resize(np, 0);
                len.resize(np);
            }
        }
    }

    /// A column of the given storage and validity bits.
    pub fn new(ty: FieldType, store: Store, valid: Vec<u64>) -> Column {
        Column {
            ty,
            store,
            valid,
            postings: std::sync::OnceLock::new(),
        }
    }

    /// The codes of row `r`'s list (empty for other columns and null rows).
    fn list_codes(&self, r: usize) -> PackedSlice<'_> {
        match &self.store {
            Store::List {
                start, len, codes, ..
            } if self.is_valid(r) => list_items(start, len, codes, r),
            _ => PackedSlice::W8(&[]),
        }
    }

    /// [`Column::postings`] when they have been built.
    pub fn postings_if_built(&self) -> Option<&[RoaringBitmap]> {
        self.postings.get().map(Vec::as_slice)
    }

    /// For a list column with at most `max_codes` distinct items: the rows
    /// holding each code (built on first use, in parallel); None otherwise.
    pub fn postings(&self, max_codes: usize) -> Option<&[RoaringBitmap]> {
        let Store::List { dict, .. } = &self.store else {
            return None;
        };
        if let Some(p) = self.postings.get() {
            return Some(p);
        }
        let k = dict.values.len();
        if k > max_codes {
            return None;
        }
        let n = self.valid.len() * 64;
        const CHUNK: usize = 1 << 18;
        let parts: Vec<Vec<RoaringBitmap>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ci| {
                let mut out = vec![RoaringBitmap::new(); k];
                for r in ci * CHUNK..((ci + 1) * CHUNK).min(n) {
                    for c in self.list_codes(r).iter() {
                        // Rows ascend: a repeated item of one list is refused.
                        let _ = out[c as usize].try_push(r as u32);
                    }
                }
                out
            })
            .collect();
        let mut all = vec![RoaringBitmap::new(); k];
        for part in parts {
            for (a, b) in all.iter_mut().zip(part) {
                *a |= b;
            }
        }
        Some(self.postings.get_or_init(|| all))
    }

    /// Set one row's value (type-checked against the column).
    pub fn set(&mut self, row: usize, v: &Value, name: &str) -> CoreResult<()> {
        // Postings of a list column follow the row out of its old items ...
        if let Some(mut p) = self.postings.take() {
            for c in self.list_codes(row).iter() {
                p[c as usize].remove(row as u32);
            }
            let r = self.set_value(row, v, name);
            // ... and into its new ones (the dictionary may have grown).
            if let Store::List { dict, .. } = &self.store {
                p.resize(dict.values.len(), RoaringBitmap::new());
            }
            for c in self.list_codes(row).iter() {
                p[c as usize].insert(row as u32);
            }
            let _ = self.postings.set(p);
            return r;
        }
        self.set_value(row, v, name)
    }

    fn set_value(&mut self, row: usize, v: &Value, name: &str) -> CoreResult<()> {
        let wrong =
            || CoreError::InvalidInput(format!("value for '{name}' is not a {}", self.ty.name()));
        let present = !matches!(v, Value::Null) && !matches!(v, Value::Float(f) if f.is_nan());
        if let (Store::Int32(vals), Value::Int(x)) = (&self.store, v) {
            if i32::try_from(*x).is_err() {
                self.store = Store::Int(vals.iter().map(|&v| v as i64).collect());
            }
        }
        match (&mut self.store, v) {
            (_, Value::Null) => {}
            (Store::Str { codes, dict }, Value::Str(s)) => {
                codes.set(row, Arc::make_mut(dict).intern(s))
            }
            (Store::Int(vals), Value::Int(x)) => vals[row] = *x,
            (Store::Int32(vals), Value::Int(x)) => vals[row] = *x as i32,
            (Store::Float(vals), Value::Float(x)) => vals[row] = if x.is_nan() { 0.0 } else { *x },
            (Store::Float(vals), Value::Int(x)) => vals[row] = *x as f64,
            (Store::Bool(bits), Value::Bool(b)) => set_bit(bits, row, *b),
            (
                Store::List {
                    start,
                    len,
                    codes,
                    dict,
                },
                Value::List(items),
            ) => {
                if codes.len() + items.len() > u32::MAX as usize {
                    return Err(CoreError::InvalidInput(format!(
                        "list column '{name}' is too large"
                    )));
                }
                start[row] = codes.len() as u32;
                len.set(row, items.len() as u32);
                let dict = Arc::make_mut(dict);
                for s in items {
                    let c = dict.intern(s);
                    codes.push(c);
                }
            }
            _ => return Err(wrong()),
        }
        set_bit(&mut self.valid, row, present);
        Ok(())
    }

    /// Whether row `r` has a value.
    #[inline]
    pub fn is_valid(&self, r: usize) -> bool {
        bit(&self.valid, r)
    }
}

/// Interactions as they arrive: parallel columns.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    /// Contact id of each interaction.
    pub contact: Vec<i64>,
    /// Kind of each interaction.
    pub kind: Vec<String>,
    /// Time of each interaction (epoch seconds).
    pub time: Vec<i64>,
    /// Amount of each interaction (None or NaN: missing).
    pub amount: Vec<Option<f64>>,
}

/// The per-contact statistics from which every aggregate is read.
#[derive(Debug, Clone, Copy)]
pub struct AggAcc {
    count: i64,
    sum: f64,
    n_amount: i64,
    min: f64,
    max: f64,
    first: i64,
    last: i64,
}

impl Default for AggAcc {
    fn default() -> Self {
        AggAcc {
            count: 0,
            sum: 0.0,
            n_amount: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

impl AggAcc {
    #[inline]
    fn add(&mut self, e: &Event) {
        self.count += 1;
        if !e.amount.is_nan() {
            self.sum += e.amount;
            self.n_amount += 1;
            self.min = self.min.min(e.amount);
            self.max = self.max.max(e.amount);
        }
        self.first = self.first.min(e.time);
        self.last = self.last.max(e.time);
    }

    /// The aggregate's value as i64 (count, first, last) or f64 (the others); None when null.
    pub fn value(&self, f: AggFunc) -> AggValue {
        match f {
            AggFunc::Count => AggValue::Int(Some(self.count)),
            AggFunc::First => AggValue::Int((self.count > 0).then_some(self.first)),
            AggFunc::Last => AggValue::Int((self.count > 0).then_some(self.last)),
            AggFunc::Sum => AggValue::Float(Some(self.sum)),
            AggFunc::Avg => {
                AggValue::Float((self.n_amount > 0).then(|| self.sum / self.n_amount as f64))
            }
            AggFunc::Min => AggValue::Float((self.n_amount > 0).then_some(self.min)),
            AggFunc::Max => AggValue::Float((self.n_amount > 0).then_some(self.max)),
        }
    }
}

/// An aggregate value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggValue {
    /// count / first / last.
    Int(Option<i64>),
    /// sum / avg / min / max.
    Float(Option<f64>),
}

/// Aggregate keys resolved against a snapshot's kind dictionary, grouped by kind code.
#[derive(Debug, Clone, Default)]
pub struct AggIndex {
    /// For each kind code, the (key index, window lower bound) pairs reading it.
    by_kind: Vec<Vec<(usize, i64)>>,
    n: usize,
    /// Keys resolved (the others are not computed).
    used: Vec<bool>,
    /// The function of each key.
    funcs: Vec<AggFunc>,
}

impl AggIndex {
    /// Resolve `keys` against the snapshot at `as_of`.
    pub fn new(keys: &[AggKey], events: &Events, as_of: i64) -> AggIndex {
        AggIndex::new_for(keys, &vec![true; keys.len()], events, as_of)
    }

    /// Resolve the keys marked in `used` (the others read nothing).
    pub fn new_for(keys: &[AggKey], used: &[bool], events: &Events, as_of: i64) -> AggIndex {
        let mut by_kind = vec![Vec::new(); events.kinds.values.len()];
        for (i, k) in keys.iter().enumerate().filter(|&(i, _)| used[i]) {
            if let Some(code) = events.kinds.code(&k.kind) {
                let lo = match k.days {
                    Some(d) => as_of.saturating_sub((d as i64).saturating_mul(DAY)),
                    None => i64::MIN,
                };
                by_kind[code as usize].push((i, lo));
            }
        }
        AggIndex {
            by_kind,
            n: keys.len(),
            used: used.to_vec(),
            funcs: keys.iter().map(|k| k.func).collect(),
        }
    }

    /// Accumulate a row's aggregates into `acc` (one entry per key; reset first).
    pub fn row(&self, events: &Events, row: usize, as_of: i64, acc: &mut [AggAcc]) {
        acc.iter_mut().for_each(|a| *a = AggAcc::default());
        events.for_each_of(row, |e| {
            if e.time > as_of {
                return;
            }
            if let Some(ks) = self.by_kind.get(e.kind as usize) {
                for &(k, lo) in ks {
                    if e.time >= lo {
                        acc[k].add(&e);
                    }
                }
            }
        });
    }

    /// The (key index, window lower bound) pairs reading a kind code.
    #[inline]
    pub fn keys_of(&self, kind: u32) -> &[(usize, i64)] {
        self.by_kind.get(kind as usize).map_or(&[], Vec::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Add a count of the events of kind `code` with a time in `lo..=as_of`;
    /// returns its key index.
    pub fn add_count(&mut self, code: u32, lo: i64) -> usize {
        let a = self.n;
        if let Some(ks) = self.by_kind.get_mut(code as usize) {
            ks.push((a, lo));
        }
        self.used.push(true);
        self.funcs.push(AggFunc::Count);
        self.n += 1;
        a
    }

    /// The function of each key.
    pub fn funcs(&self) -> &[AggFunc] {
        &self.funcs
    }

    /// True when key `a` is computed.
    #[inline]
    pub fn used(&self, a: usize) -> bool {
        self.used.get(a).copied().unwrap_or(false)
    }

    /// Number of kind codes indexed.
    pub fn kinds(&self) -> usize {
        self.by_kind.len()
    }

    /// True when no aggregate is needed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The columnar snapshot of contacts.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Contact id of each row.
    pub ids: Vec<i64>,
    /// Rows of the ids past the sorted prefix.
    id_index: HashMap<i64, usize>,
    /// `ids[..sorted_prefix]` is strictly increasing (found by binary search).
    sorted_prefix: usize,
    /// The snapshot's schema.
    pub schema: Schema,
    /// One column per schema field (None when not supplied: all null).
    pub columns: Vec<Option<Column>>,
    /// Interactions.
    pub events: Events,
    padded: usize,
    /// Dictionary codes of one plan's string leaves, for single-row updates.
    pub(crate) leaf_codes: LeafCodes,
}

/// The position of `id` in the strictly increasing `ids`: interpolation
/// first (ids are usually near-dense, so one or two probes find it), then a
/// binary search of what is left.
pub(crate) fn sorted_find(ids: &[i64], id: i64) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, ids.len());
    for _ in 0..3 {
        if hi - lo < 16 {
            break;
        }
        let (a, b) = (ids[lo], ids[hi - 1]);
        if id < a || id > b {
            return None;
        }
        // Strictly increasing ids: the id lies within `id - a` rows of `lo`.
        let span = (b as i128 - a as i128).max(1);
        let off = ((id as i128 - a as i128) * (hi - lo - 1) as i128 / span) as usize;
        let g = lo + off;
        match ids[g].cmp(&id) {
            std::cmp::Ordering::Equal => return Some(g),
            std::cmp::Ordering::Less => {
                let d = usize::try_from(id as i128 - ids[g] as i128).unwrap_or(usize::MAX);
                lo = g + 1;
                hi = hi.min(g.saturating_add(d).saturating_add(1));
            }
            std::cmp::Ordering::Greater => {
                let d = usize::try_from(ids[g] as i128 - id as i128).unwrap_or(usize::MAX);
                hi = g;
                lo = lo.max(g.saturating_sub(d));
            }
        }
    }
    ids[lo..hi].binary_search(&id).ok().map(|p| lo + p)
}

/// The codes that satisfy each string or list leaf of one plan, resolved
/// against the snapshot's dictionaries (rebuilt when a dictionary grows).
#[derive(Debug, Clone, Default)]
pub(crate) struct LeafCodes {
    /// The plan the entries belong to.
    pub plan: u64,
    /// Per leaf: (dictionary size when resolved, satisfying codes as bits).
    pub leaves: Vec<Option<(usize, Vec<u64>)>>,
    /// Snapshot column of each plan column (None: missing or of another type).
    pub cols: Vec<Option<usize>>,
    /// Each leaf compiled for single-row evaluation (one compact record).
    pub prog: Vec<super::eval::RowLeaf>,
    /// The satisfying-code bits of the string and list leaves, side by side.
    pub arena: Vec<u64>,
    /// Buffers reused by single-row evaluations.
    pub scratch: super::eval::RowScratch,
}

impl Snapshot {
    /// Build a snapshot. Every column must have one value per id; columns not
    /// supplied are all null; interactions of unknown contacts are an error.
    pub fn new(
        ids: Vec<i64>,
        schema: Schema,
        mut data: HashMap<String, ColumnData>,
        interactions: Option<Interactions>,
    ) -> CoreResult<Snapshot> {
        let n = ids.len();
        if n >= u32::MAX as usize {
            return Err(CoreError::InvalidInput(
                "too many contacts for one snapshot".into(),
            ));
        }
        let (sorted_prefix, id_index) = index_ids(&ids)?;
        for name in data.keys() {
            if schema.get(name).is_none() {
                return Err(CoreError::InvalidInput(format!(
                    "column '{name}' is not in the schema"
                )));
            }
        }
        let mut inputs = Vec::with_capacity(schema.len());
        for (name, ty) in schema.fields() {
            let d = data.remove(name);
            if let Some(d) = &d {
                if d.len() != n {
                    return Err(CoreError::InvalidInput(format!(
                        "column '{name}' has {} values for {n} contacts",
                        d.len()
                    )));
                }
            }
            inputs.push((name.clone(), *ty, d));
        }
        let columns = inputs
            .into_par_iter()
            .map(|(name, ty, d)| d.map(|d| Column::build(ty, d, &name)).transpose())
            .collect::<CoreResult<Vec<_>>>()?;
        let events = match interactions {
            None => Events::empty(n),
            Some(it) => Self::build_events(it, &ids, sorted_prefix, &id_index, n)?,
        };
        Ok(Snapshot {
            ids,
            id_index,
            sorted_prefix,
            schema,
            columns,
            events,
            padded: padded(n),
            leaf_codes: LeafCodes::default(),
        })
    }

    fn build_events(
        it: Interactions,
        ids: &[i64],
        sorted_prefix: usize,
        id_index: &HashMap<i64, usize>,
        n: usize,
    ) -> CoreResult<Events> {
        let m = it.contact.len();
        if it.kind.len() != m || it.time.len() != m || it.amount.len() != m {
            return Err(CoreError::InvalidInput(
                "interaction columns have different lengths".into(),
            ));
        }
        if m >= u32::MAX as usize {
            return Err(CoreError::InvalidInput(
                "too many interactions for one snapshot".into(),
            ));
        }
        let mut kinds = Dict::default();
        let mut rows = Vec::with_capacity(m);
        for (i, c) in it.contact.iter().enumerate() {
            let found = match ids[..sorted_prefix].binary_search(c) {
                Ok(r) => Some(r),
                Err(_) => id_index.get(c).copied(),
            };
            match found {
                Some(r) => rows.push(r as u32),
                None => {
                    return Err(CoreError::InvalidInput(format!(
                        "interaction {i} belongs to an unknown contact"
                    )))
                }
            }
        }
        let kcodes: Vec<u32> = it.kind.iter().map(|k| kinds.intern(k)).collect();
        let amount: Vec<f64> = it.amount.iter().map(|a| a.unwrap_or(f64::NAN)).collect();
        Ok(Events::build(kinds, n, &rows, &kcodes, &it.time, &amount))
    }

    /// A snapshot of the given rows only (sorted, distinct, in range), in that
    /// order: row `i` of the result is row `rows[i]` here. Dictionaries are
    /// shared, not copied. The result has no id index (`row_of` finds nothing);
    /// it is meant for evaluating a few rows with the bulk kernels.
    pub fn gather(&self, rows: &[u32]) -> Snapshot {
        self.gather_some(rows, None, None)
    }

    /// [`Snapshot::gather`] keeping only the columns flagged in `cols` and
    /// the interactions of the kinds flagged in `kinds` (None: all); the
    /// others are left out (all null, no events), which is all a caller
    /// reading only the flagged ones needs.
    pub fn gather_some(
        &self,
        rows: &[u32],
        cols: Option<&[bool]>,
        kinds: Option<&[bool]>,
    ) -> Snapshot {
        let m = rows.len();
        let np = padded(m);
        let gather_bits = |words: &[u64]| {
            let mut out = vec![0u64; np / 64];
            for (i, &r) in rows.iter().enumerate() {
                if bit(words, r as usize) {
                    out[i >> 6] |= 1 << (i & 63);
                }
            }
            out
        };
        fn pick<T: Copy + Default>(vals: &[T], rows: &[u32], np: usize) -> Vec<T> {
            let mut out: Vec<T> = Vec::with_capacity(np);
            out.extend(rows.iter().map(|&r| vals[r as usize]));
            out.resize(np, T::default());
            out
        }
        let columns: Vec<Option<Column>> = self
            .columns
            .par_iter()
            .enumerate()
            .map(|(ci, c)| {
                if cols.is_some_and(|k| !k.get(ci).copied().unwrap_or(false)) {
                    return None;
                }
                let c = c.as_ref()?;
                let store = match &c.store {
                    Store::Str { codes, dict } => Store::Str {
                        codes: codes.gather(rows, np),
                        dict: Arc::clone(dict),
                    },
                    Store::Int(v) => Store::Int(pick(v, rows, np)),
                    Store::Int32(v) => Store::Int32(pick(v, rows, np)),
                    Store::Float(v) => Store::Float(pick(v, rows, np)),
                    Store::Bool(bits) => Store::Bool(gather_bits(bits)),
                    Store::List {
                        start,
                        len,
                        codes,
                        dict,
                    } => {
                        let mut s2 = vec![0u32; np];
                        let mut c2 = Packed::zeros(0, dict.values.len() as u32);
                        for (i, &r) in rows.iter().enumerate() {
                            let (a, n) = (start[r as usize] as usize, len.get(r as usize) as usize);
                            s2[i] = c2.len() as u32;
                            c2.extend(codes.slice(a, a + n));
                        }
                        Store::List {
                            start: s2,
                            len: len.gather(rows, np),
                            codes: c2,
                            dict: Arc::clone(dict),
                        }
                    }
                };
                Some(Column::new(c.ty, store, gather_bits(&c.valid)))
            })
            .collect();
        Snapshot {
            ids: rows.iter().map(|&r| self.ids[r as usize]).collect(),
            id_index: HashMap::new(),
            sorted_prefix: 0,
            schema: self.schema.clone(),
            columns,
            events: self.events.gather(rows, kinds),
            padded: np,
            leaf_codes: LeafCodes::default(),
        }
    }

    /// Number of contacts.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the snapshot has no contact.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Rows padded to a multiple of 64.
    pub fn padded_len(&self) -> usize {
        self.padded
    }

    /// The row of a contact id.
    pub fn row_of(&self, id: i64) -> Option<usize> {
        match sorted_find(&self.ids[..self.sorted_prefix], id) {
            Some(r) => Some(r),
            None => self.id_index.get(&id).copied(),
        }
    }

    /// The column for a field name, with its type.
    pub fn column(&self, name: &str) -> Option<(usize, FieldType)> {
        self.schema.get(name)
    }

    /// Append a contact with all values null and no interactions; returns its row.
    pub fn push_contact(&mut self, id: i64) -> CoreResult<usize> {
        if self.row_of(id).is_some() {
            return Err(CoreError::InvalidInput("contact id already present".into()));
        }
        let row = self.ids.len();
        let extends = self.sorted_prefix == row && self.ids.last().is_none_or(|&last| last < id);
        self.ids.push(id);
        if extends {
            self.sorted_prefix += 1;
        } else {
            self.id_index.insert(id, row);
        }
        let np = padded(row + 1);
        if np != self.padded {
            self.padded = np;
        }
        for c in self.columns.iter_mut().flatten() {
            c.grow(np);
            c.valid[row >> 6] &= !(1 << (row & 63));
        }
        self.events.push_row();
        Ok(row)
    }

    /// Check that `v` fits the type of `field`.
    pub fn check_value(&self, field: &str, v: &Value) -> CoreResult<()> {
        let (_, ty) = self
            .schema
            .get(field)
            .ok_or_else(|| CoreError::InvalidInput(format!("unknown field '{field}'")))?;
        let ok = matches!(
            (ty, v),
            (_, Value::Null)
                | (FieldType::String, Value::Str(_))
                | (
                    FieldType::Integer | FieldType::Date | FieldType::Datetime,
                    Value::Int(_)
                )
                | (FieldType::Number, Value::Float(_) | Value::Int(_))
                | (FieldType::Boolean, Value::Bool(_))
                | (FieldType::List, Value::List(_))
        );
        if ok {
            Ok(())
        } else {
            Err(CoreError::InvalidInput(format!(
                "value for '{field}' is not a {}",
                ty.name()
            )))
        }
    }

    /// Set a field of one row; a column not supplied at build time is created (all null).
    pub fn set_value(&mut self, row: usize, field: &str, v: &Value) -> CoreResult<usize> {
        let (ci, ty) = self
            .schema
            .get(field)
            .ok_or_else(|| CoreError::InvalidInput(format!("unknown field '{field}'")))?;
        if self.columns[ci].is_none() {
            let n = self.ids.len();
            let empty = match ty {
                FieldType::String => ColumnData::Str(vec![None; n]),
                FieldType::Integer | FieldType::Date | FieldType::Datetime => {
                    ColumnData::Int(vec![None; n])
                }
                FieldType::Number => ColumnData::Float(vec![None; n]),
                FieldType::Boolean => ColumnData::Bool(vec![None; n]),
                FieldType::List => ColumnData::List(vec![None; n]),
            };
            self.columns[ci] = Some(Column::build(ty, empty, field)?);
        }
        let col = self.columns[ci].as_mut().expect("column just created");
        col.set(row, v, field)?;
        Ok(ci)
    }

    /// Append one interaction to a row; returns the kind's code.
    pub fn add_event(&mut self, row: usize, kind: &str, time: i64, amount: Option<f64>) -> u32 {
        let code = self.events.kinds.intern(kind);
        self.events.push(
            row,
            Event {
                kind: code,
                time,
                amount: amount.unwrap_or(f64::NAN),
            },
        );
        code
    }
}

/// The first bytes of a snapshot file (the number is the format version; 2:
/// codes and list lengths in 8, 16 or 32 bits). A file of another version is
/// refused, and the caller rebuilds it.
const MAGIC: &[u8; 8] = b"CRMKSNP2";

fn type_code(ty: FieldType) -> u8 {
    match ty {
        FieldType::String => 0,
        FieldType::Integer => 1,
        FieldType::Number => 2,
        FieldType::Boolean => 3,
        FieldType::Date => 4,
        FieldType::Datetime => 5,
        FieldType::List => 6,
    }
}

fn type_of(code: u8) -> Option<FieldType> {
    Some(match code {
        0 => FieldType::String,
        1 => FieldType::Integer,
        2 => FieldType::Number,
        3 => FieldType::Boolean,
        4 => FieldType::Date,
        5 => FieldType::Datetime,
        6 => FieldType::List,
        _ => return None,
    })
}

/// A vector of exactly `len` plain numbers from the file.
fn sized<T: bytemuck::Pod>(r: &mut Reader<'_>, len: usize, what: &str) -> CoreResult<Vec<T>> {
    let v: Vec<T> = r.vec()?;
    if v.len() == len {
        Ok(v)
    } else {
        Err(r.damaged(what))
    }
}

impl Column {
    fn encode(&self, w: &mut Writer<'_>) -> CoreResult<()> {
        w.u8(type_code(self.ty))?;
        w.slice(&self.valid)?;
        match &self.store {
            Store::Str { codes, dict } => {
                w.u8(0)?;
                w.strs(&dict.values)?;
                codes.encode(w)
            }
            Store::Int(v) => {
                w.u8(1)?;
                w.slice(v)
            }
            Store::Float(v) => {
                w.u8(2)?;
                w.slice(v)
            }
            Store::Bool(v) => {
                w.u8(3)?;
                w.slice(v)
            }
            Store::Int32(v) => {
                w.u8(5)?;
                w.slice(v)
            }
            Store::List {
                start,
                len,
                codes,
                dict,
            } => {
                w.u8(4)?;
                w.strs(&dict.values)?;
                w.slice(start)?;
                len.encode(w)?;
                codes.encode(w)
            }
        }
    }

    fn decode(r: &mut Reader<'_>, ty: FieldType, n: usize) -> CoreResult<Column> {
        let np = padded(n);
        if type_of(r.u8()?) != Some(ty) {
            return Err(r.damaged("column type"));
        }
        let valid: Vec<u64> = r.vec()?;
        let dict = |r: &mut Reader<'_>| -> CoreResult<Dict> { Ok(Dict::from_strs(r.strs()?)) };
        let in_dict = |codes: &Packed, d: &Dict| {
            codes
                .as_slice()
                .all_below(d.values.len().max(1).try_into().unwrap_or(u32::MAX))
        };
        let store = match (r.u8()?, ty) {
            (0, FieldType::String) => {
                let d = dict(r)?;
                let codes = Packed::decode(r)?;
                if codes.len() != np || !in_dict(&codes, &d) {
                    return Err(r.damaged("string column"));
                }
                Store::Str {
                    codes,
                    dict: Arc::new(d),
                }
            }
            (1, FieldType::Integer | FieldType::Date | FieldType::Datetime) => {
                Store::Int(sized(r, np, "integer column")?)
            }
            (5, FieldType::Integer | FieldType::Date | FieldType::Datetime) => {
                Store::Int32(sized(r, np, "integer column")?)
            }
            (2, FieldType::Number) => Store::Float(sized(r, np, "number column")?),
            (3, FieldType::Boolean) => Store::Bool(sized(r, np / 64, "boolean column")?),
            (4, FieldType::List) => {
                let d = dict(r)?;
                let start: Vec<u32> = r.vec()?;
                let (len, codes) = (Packed::decode(r)?, Packed::decode(r)?);
                let ok = start.len() == np
                    && len.len() == np
                    && in_dict(&codes, &d)
                    && start
                        .iter()
                        .zip(len.as_slice().iter())
                        .all(|(&a, l)| a as usize + l as usize <= codes.len());
                if !ok {
                    return Err(r.damaged("list column"));
                }
                Store::List {
                    start,
                    len,
                    codes,
                    dict: Arc::new(d),
                }
            }
            _ => return Err(r.damaged("column storage")),
        };
        if valid.len() != np / 64 {
            return Err(r.damaged("null mask"));
        }
        Ok(Column::new(ty, store, valid))
    }
}

impl Snapshot {
    /// Write the snapshot to `path` with the caller's `meta` text (for
    /// example where in the store's change log it stands). The file is
    /// written beside `path` under a temporary name and renamed over it, so a
    /// reader finds the old file or the new one, never part of one.
    pub fn save(&self, path: &Path, meta: &str) -> CoreResult<()> {
        super::codec::write_atomically(path, MAGIC, |w| {
            w.str(meta)?;
            w.u64(self.schema.len() as u64)?;
            for (name, ty) in self.schema.fields() {
                w.str(name)?;
                w.u8(type_code(*ty))?;
            }
            w.slice(&self.ids)?;
            for c in &self.columns {
                match c {
                    None => w.u8(0)?,
                    Some(c) => {
                        w.u8(1)?;
                        c.encode(w)?;
                    }
                }
            }
            self.events.encode(w)
        })
    }

    /// Read a snapshot written by [`Snapshot::save`], with its meta text. A
    /// file that is damaged, truncated or of another format version is an
    /// error (the caller rebuilds the snapshot).
    pub fn load(path: &Path) -> CoreResult<(Snapshot, String)> {
        let mut r = Reader::open(path, MAGIC)?;
        let meta = r.str()?;
        let nf = r.u64()? as usize;
        let mut fields = Vec::with_capacity(nf.min(1 << 16));
        for _ in 0..nf {
            let name = r.str()?;
            let ty = type_of(r.u8()?).ok_or_else(|| r.damaged("field type"))?;
            fields.push((name, ty));
        }
        let schema = Schema::new(fields).map_err(|_| r.damaged("schema"))?;
        let ids: Vec<i64> = r.vec()?;
        let n = ids.len();
        if n >= u32::MAX as usize {
            return Err(r.damaged("row count"));
        }
        let mut columns = Vec::with_capacity(schema.len());
        for (_, ty) in schema.fields() {
            columns.push(match r.u8()? {
                0 => None,
                1 => Some(Column::decode(&mut r, *ty, n)?),
                _ => return Err(r.damaged("column marker")),
            });
        }
        let events = Events::decode(&mut r, n)?;
        r.finish()?;
        let (sorted_prefix, id_index) = index_ids(&ids)?;
        Ok((
            Snapshot {
                ids,
                id_index,
                sorted_prefix,
                schema,
                columns,
                events,
                padded: padded(n),
                leaf_codes: LeafCodes::default(),
            },
            meta,
        ))
    }

    /// Bring rows up to date in place: each id's row (appended when the id
    /// is new) takes the values of the given columns (one value per id;
    /// columns not given keep their values), and each interaction is
    /// appended to its contact's row. Returns how many rows were appended.
    ///
    /// Errors (a column not in the schema or of the wrong type or length, an
    /// interaction of a contact not in the snapshot) leave the snapshot in an
    /// unspecified but safe state: the caller drops it and rebuilds.
    pub fn upsert(
        &mut self,
        ids: &[i64],
        data: HashMap<String, ColumnData>,
        interactions: Option<Interactions>,
    ) -> CoreResult<usize> {
        for (name, d) in &data {
            if self.schema.get(name).is_none() {
                return Err(CoreError::InvalidInput(format!(
                    "column '{name}' is not in the schema"
                )));
            }
            if d.len() != ids.len() {
                return Err(CoreError::InvalidInput(format!(
                    "column '{name}' has {} values for {} contacts",
                    d.len(),
                    ids.len()
                )));
            }
        }
        let mut added = 0;
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            rows.push(match self.row_of(id) {
                Some(r) => r,
                None => {
                    added += 1;
                    self.push_contact(id)?
                }
            });
        }
        for (name, d) in &data {
            for (i, &row) in rows.iter().enumerate() {
                self.set_value(row, name, &d.value(i))?;
            }
        }
        if let Some(it) = interactions {
            let m = it.contact.len();
            if it.kind.len() != m || it.time.len() != m || it.amount.len() != m {
                return Err(CoreError::InvalidInput(
                    "interaction columns have different lengths".into(),
                ));
            }
            for i in 0..m {
                let row = self.row_of(it.contact[i]).ok_or_else(|| {
                    CoreError::InvalidInput(format!(
                        "interaction {i} belongs to an unknown contact"
                    ))
                })?;
                self.add_event(row, &it.kind[i], it.time[i], it.amount[i]);
            }
            // Appended events are read through a slower side path: fold
            // them into the per-kind indexes once they are many.
            let extra = self.events.extra_len();
            if extra > 4096 && extra * 50 > self.events.indexed_len() {
                self.events = self.events.compacted();
            }
        }
        Ok(added)
    }
}
