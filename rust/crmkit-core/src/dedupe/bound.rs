//! Early rejection of candidate pairs that cannot reach the threshold.
//!
//! Most candidate pairs are non-matches, and most of a pair's cost is in the
//! fuzzy string comparisons. [`Bounds::may_reach`] first bounds a pair's
//! match weight from its dictionary codes alone (null: 0; equal codes: the
//! exact weight and term-frequency adjustment; different codes: the best
//! weight of any other level), then tightens that bound field by field,
//! cheapest first, computing one field's raw level at a time, and gives up as
//! soon as the bound falls below the threshold. Only pairs that may reach it
//! are scored in full, so the result is exactly that of scoring every pair.
//!
//! The bound allows for everything [`compare_sides`](super::compare::compare_sides)
//! does after the raw levels: an email level made neutral (weight 0), a city
//! level nulled by a shared postcode, and swapped first and last names
//! (first name `exact` or `fuzzy_high`, last name `exact` or `fuzzy_high`,
//! without term-frequency adjustments).

use super::compare::{compare_cached, swapped_names, L_EXACT, L_NULL};
use super::data::{Dataset, Field, Value, NULL, N_FIELDS};
use super::score::Weights;

/// A row's dictionary codes and the features [`Bounds::may_reach`] reads
/// before any text: one cache line per row, so most pairs are rejected after
/// two memory loads and integer work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct RowFeat {
    /// Code per field in [`Field::ALL`] order ([`NULL`] when missing or absent).
    pub codes: [u32; N_FIELDS],
    /// A birth date written `YYYY-MM-DD`: [`STD_DATE`] | its eight digits as a
    /// number; 0 otherwise.
    date: u32,
    /// Phone digits, four bits each (first digit lowest), when 1 to 15.
    phone: u64,
    /// Low half of the postcode district hash (see [`Value::district`]).
    district: u32,
    /// Hash of the email local part.
    local_hash: u32,
    /// Number of phone digits (0: not packed).
    phone_len: u8,
    /// Byte length of the email local part (255: unknown).
    local_len: u8,
    /// Whether the email local part is ASCII.
    local_ascii: bool,
}

/// A raw level not computed (see [`Bounds::may_reach_with`]).
pub const UNKNOWN: u8 = u8::MAX;

/// Flag of a [`RowFeat`] date in the standard layout.
const STD_DATE: u32 = 1 << 31;

impl Default for RowFeat {
    fn default() -> Self {
        RowFeat {
            codes: [NULL; N_FIELDS],
            date: 0,
            phone: 0,
            district: 0,
            local_hash: 0,
            phone_len: 0,
            local_len: 255,
            local_ascii: false,
        }
    }
}

/// The features of one distinct value, by field.
fn value_feat(f: Field, v: &Value, out: &mut RowFeat) {
    match f {
        Field::BirthDate => {
            let t = v.text.as_bytes();
            let std = t.len() == 10
                && t[4] == b'-'
                && t[7] == b'-'
                && t.iter()
                    .enumerate()
                    .all(|(k, c)| k == 4 || k == 7 || c.is_ascii_digit());
            if std {
                let n = t
                    .iter()
                    .filter(|c| c.is_ascii_digit())
                    .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'));
                out.date = STD_DATE | n;
            }
        }
        Field::Phone => {
            let d = v.code.as_bytes();
            if (1..=15).contains(&d.len()) {
                out.phone = d
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (k, c)| acc | u64::from(c - b'0') << (4 * k));
                out.phone_len = d.len() as u8;
            }
        }
        Field::Postcode => out.district = v.district as u32,
        Field::Email => {
            let l = v.local();
            out.local_len = l.len().min(255) as u8;
            out.local_ascii = l.is_ascii();
            out.local_hash = super::compare::text_hash(l) as u32;
        }
        _ => {}
    }
}

/// The [`RowFeat`] of every row of a dataset.
pub fn row_feats(ds: &Dataset) -> Vec<RowFeat> {
    use rayon::prelude::*;
    // Features per distinct value first, then one pass over the rows.
    let per_value: Vec<Option<Vec<RowFeat>>> = ds
        .columns
        .par_iter()
        .map(|col| {
            let col = col.as_ref()?;
            if !matches!(
                col.field,
                Field::BirthDate | Field::Phone | Field::Postcode | Field::Email
            ) {
                return None;
            }
            Some(
                col.values
                    .par_iter()
                    .map(|v| {
                        let mut f = RowFeat::default();
                        value_feat(col.field, v, &mut f);
                        f
                    })
                    .collect(),
            )
        })
        .collect();
    (0..ds.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|r| {
            let mut out = RowFeat::default();
            for (k, col) in ds.columns.iter().enumerate() {
                let Some(col) = col else { continue };
                let c = col.codes[r];
                out.codes[k] = c;
                if c == NULL {
                    continue;
                }
                if let Some(pv) = &per_value[k] {
                    let v = &pv[c as usize];
                    match Field::ALL[k] {
                        Field::BirthDate => out.date = v.date,
                        Field::Phone => (out.phone, out.phone_len) = (v.phone, v.phone_len),
                        Field::Postcode => out.district = v.district,
                        Field::Email => {
                            out.local_hash = v.local_hash;
                            out.local_len = v.local_len;
                            out.local_ascii = v.local_ascii;
                        }
                        _ => {}
                    }
                }
            }
            out
        })
        .collect()
}

/// Compact features of one distinct text value, for bounds on its fuzzy
/// comparisons without reading the text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFeat {
    /// Character counts by class (`byte & 15`), four bits each; 0 when
    /// unknown (not ASCII, or a class counted 16 times or more).
    bag: u64,
    /// One bit per word (`word hash & 63`).
    bloom: u64,
    /// Hash of the phonetic code (0: none).
    phonetic: u32,
    /// Byte length.
    len: u16,
    /// Number of words when each has its own bloom bit, else 0.
    words: u8,
}

impl TextFeat {
    fn of(text: &str, tokens: &[u64], code: &str) -> TextFeat {
        let mut bag = 0u64;
        let mut ok = text.is_ascii() && !text.is_empty();
        let mut counts = [0u8; 16];
        for b in text.bytes() {
            let c = &mut counts[usize::from(b & 15)];
            *c += 1;
            ok &= *c < 16;
        }
        if ok {
            for (k, &c) in counts.iter().enumerate() {
                bag |= u64::from(c) << (4 * k);
            }
        }
        let bloom = tokens.iter().fold(0u64, |m, h| m | 1 << (h & 63));
        let distinct = bloom.count_ones() as usize == tokens.len() && tokens.len() < 256;
        TextFeat {
            bag,
            bloom,
            words: if distinct { tokens.len() as u8 } else { 0 },
            phonetic: if code.is_empty() {
                0
            } else {
                super::compare::text_hash(code) as u32 | 1
            },
            len: text.len().min(usize::from(u16::MAX)) as u16,
        }
    }

    /// An upper bound on the characters two texts have in common (by
    /// class); `None` when unknown.
    fn common(&self, other: &TextFeat) -> Option<usize> {
        if self.bag == 0 || other.bag == 0 {
            return None;
        }
        Some(
            (0..16)
                .map(|k| ((self.bag >> (4 * k)) & 15).min((other.bag >> (4 * k)) & 15) as usize)
                .sum(),
        )
    }

    /// Whether `jw_at_least(a, b, t)` certainly fails: the bag bound of
    /// Jaro-Winkler, with an upper bound on the common characters, is below `t`.
    fn jw_below(&self, other: &TextFeat, t: f64) -> bool {
        let Some(m) = self.common(other) else {
            return false;
        };
        let (la, lb) = (usize::from(self.len), usize::from(other.len));
        if m == 0 {
            return true;
        }
        let m = m.min(la).min(lb) as f64;
        let j = (m / la as f64 + m / lb as f64 + 1.0) / 3.0;
        let bound = if j > 0.7 { j + 0.4 * (1.0 - j) } else { j };
        // A hair of slack: the text's own bound rounds the same way.
        bound < t - 1e-12
    }
}

/// Row features and text features of a dataset (see [`RowFeat`], [`TextFeat`]).
#[derive(Debug, Clone)]
pub struct Feats {
    /// One per row.
    pub rows: Vec<RowFeat>,
    /// Per field index, one per distinct value: email local parts, city,
    /// street and company.
    text: Vec<Option<Vec<TextFeat>>>,
}

impl Feats {
    /// The features of `ds`.
    pub fn new(ds: &Dataset) -> Feats {
        use rayon::prelude::*;
        let text = ds
            .columns
            .par_iter()
            .map(|col| {
                let col = col.as_ref()?;
                match col.field {
                    Field::Email | Field::City | Field::Street | Field::Company => {}
                    _ => return None,
                }
                Some(
                    col.values
                        .par_iter()
                        .map(|v| match col.field {
                            Field::Email => TextFeat::of(v.local(), &[], ""),
                            _ => TextFeat::of(&v.text, &v.tokens, &v.code),
                        })
                        .collect(),
                )
            })
            .collect();
        Feats {
            rows: row_feats(ds),
            text,
        }
    }

    /// Prefetch row `j`'s text features (its row features should be loaded).
    #[inline]
    pub fn prefetch_text(&self, j: usize) {
        let codes = &self.rows[j].codes;
        for f in [Field::Email, Field::City, Field::Street, Field::Company] {
            if let Some(t) = self.text(f, codes[f.index()]) {
                prefetch(t);
            }
        }
    }

    /// The raw level of field `f` for rows `i` and `j` whose codes `ca`,
    /// `cb` differ (both present), when the features decide it.
    pub fn known_level(&self, f: Field, i: usize, j: usize, ca: u32, cb: u32) -> Option<u8> {
        match feat_level(f, &self.rows[i], &self.rows[j]) {
            FeatLevel::Level(l) => Some(l),
            FeatLevel::Either(..) => self.text_level(f, ca, cb),
            FeatLevel::Unknown => None,
        }
    }

    /// [`Feats::levels`] reusing the raw levels `raw` (from
    /// [`Bounds::may_reach_with`]; [`UNKNOWN`] where not computed).
    #[allow(clippy::too_many_arguments)]
    pub fn levels_with(
        &self,
        ds: &Dataset,
        restates: &[bool],
        fields: &[Field],
        i: usize,
        j: usize,
        out: &mut [u8; N_FIELDS],
        raw: &[u8; N_FIELDS],
    ) -> bool {
        let a = super::compare::Side::of_codes(ds, restates, i, &self.rows[i].codes);
        let b = super::compare::Side::of_codes(ds, restates, j, &self.rows[j].codes);
        super::compare::compare_sides_with(fields, &a, &b, out, |f, ca, cb| match raw[f.index()] {
            UNKNOWN => self.known_level(f, i, j, ca, cb),
            l => Some(l),
        })
    }

    /// The comparison levels of rows `i` and `j` (as
    /// [`compare_sides`](super::compare::compare_sides) gives them, reading
    /// values only where the features do not decide).
    pub fn levels(
        &self,
        ds: &Dataset,
        restates: &[bool],
        fields: &[Field],
        i: usize,
        j: usize,
        out: &mut [u8; N_FIELDS],
    ) -> bool {
        let a = super::compare::Side::of_codes(ds, restates, i, &self.rows[i].codes);
        let b = super::compare::Side::of_codes(ds, restates, j, &self.rows[j].codes);
        super::compare::compare_sides_with(fields, &a, &b, out, |f, ca, cb| {
            self.known_level(f, i, j, ca, cb)
        })
    }

    fn text(&self, f: Field, code: u32) -> Option<&TextFeat> {
        self.text[f.index()].as_ref()?.get(code as usize)
    }

    /// The raw level of a text field for codes `ca != cb`, when the text
    /// features decide it.
    fn text_level(&self, f: Field, ca: u32, cb: u32) -> Option<u8> {
        let (a, b) = (self.text(f, ca)?, self.text(f, cb)?);
        match f {
            Field::Email => {
                // Local parts known to differ, `a`'s of 4 bytes or more.
                let (la, lb) = (usize::from(a.len), usize::from(b.len));
                let m = a.common(b)?;
                let close = la.abs_diff(lb) <= 1 && m + 1 >= la.max(lb);
                (!close && a.jw_below(b, 0.92)).then_some(6)
            }
            Field::City => {
                let phon = a.phonetic != 0 && a.phonetic == b.phonetic;
                (!phon && a.jw_below(b, 0.9)).then_some(3)
            }
            Field::Street | Field::Company => {
                // Words shared: none when the blooms do not meet; at most
                // the common bits when one side's words have a bit each.
                let shared = (a.bloom & b.bloom).count_ones() as usize;
                let min = a.words.min(b.words) as usize;
                let overlap_below = shared == 0
                    || (a.words != 0 && b.words != 0 && (shared as f64) / (min as f64) < 0.8);
                (overlap_below && a.jw_below(b, 0.9)).then_some(3)
            }
            _ => None,
        }
    }
}

/// Whether two equal-length digit strings are within one edit: one
/// substitution, or one swap of neighbours that are `adjacent`.
fn one_edit_same_len(a: &[u8], b: &[u8], adjacent: impl Fn(usize) -> bool) -> bool {
    let mut diff = [0usize; 2];
    let mut n = 0;
    for k in 0..a.len() {
        if a[k] != b[k] {
            if n == 2 {
                return false;
            }
            diff[n] = k;
            n += 1;
        }
    }
    match n {
        0 | 1 => true,
        _ => {
            let (p, q) = (diff[0], diff[1]);
            q == p + 1 && adjacent(p) && a[p] == b[q] && a[q] == b[p]
        }
    }
}

fn digits8(n: u32) -> [u8; 8] {
    let mut d = [0u8; 8];
    let mut x = n;
    for k in (0..8).rev() {
        d[k] = (x % 10) as u8;
        x /= 10;
    }
    d
}

/// `parse_date` of a standard-layout date from its digits.
fn parsed(n: u32) -> u32 {
    let (m, d) = ((n / 100) % 100, n % 100);
    if m == 0 || d == 0 || m > 31 || d > 31 {
        0
    } else {
        n
    }
}

/// What the features say of a field's level for a pair with different codes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FeatLevel {
    /// The raw level, exactly.
    Level(u8),
    /// Only a bound: the raw level is one of these two.
    Either(u8, u8),
    /// Nothing: read the values.
    Unknown,
}

/// The raw level of field `f` for rows with features `a`, `b` whose codes
/// differ, as [`compare_values`](super::compare::compare_values) gives it,
/// when the features decide it.
fn feat_level(f: Field, a: &RowFeat, b: &RowFeat) -> FeatLevel {
    use FeatLevel::*;
    match f {
        Field::BirthDate => {
            if a.date & b.date & STD_DATE == 0 {
                return Unknown;
            }
            let (na, nb) = (a.date & !STD_DATE, b.date & !STD_DATE);
            // Digits 0-3, 4-5, 6-7 are the year, month and day: neighbours
            // in the text only within a group.
            let edit = one_edit_same_len(&digits8(na), &digits8(nb), |p| p != 3 && p != 5);
            let (p, q) = (parsed(na), parsed(nb));
            Level(if p != 0 && q != 0 {
                let (ya, ma, da) = (p / 10000, (p / 100) % 100, p % 100);
                let (yb, mb, db) = (q / 10000, (q / 100) % 100, q % 100);
                if ya == yb && ma == db && da == mb {
                    2
                } else if edit {
                    3
                } else if ya == yb {
                    4
                } else {
                    5
                }
            } else if edit {
                3
            } else {
                5
            })
        }
        Field::Phone => {
            if a.phone_len == 0 || b.phone_len == 0 {
                return Unknown;
            }
            if a.phone_len < 6 {
                return Level(3);
            }
            let unpack = |x: &RowFeat| {
                let mut d = [0u8; 15];
                for (k, v) in d.iter_mut().enumerate().take(x.phone_len as usize) {
                    *v = ((x.phone >> (4 * k)) & 0xf) as u8;
                }
                d
            };
            let (da, db) = (unpack(a), unpack(b));
            let (x, y) = (&da[..a.phone_len as usize], &db[..b.phone_len as usize]);
            Level(if within_one_digits(x, y) { 2 } else { 3 })
        }
        Field::Postcode => {
            if a.district == 0 || a.district != b.district {
                // A different low half means a different hash.
                Level(3)
            } else {
                Unknown
            }
        }
        Field::Email => {
            if a.local_len == 255 || b.local_len == 255 {
                return Unknown;
            }
            if a.local_hash != b.local_hash {
                // Different local parts.
                let (la, lb) = (a.local_len as usize, b.local_len as usize);
                if la < 4 {
                    return Level(6);
                }
                let far = la.abs_diff(lb) > 1
                    && a.local_ascii
                    && b.local_ascii
                    && super::metric::jaro_winkler_bound(la, lb) < 0.92;
                if far {
                    Level(6)
                } else {
                    Either(4, 6)
                }
            } else {
                Unknown
            }
        }
        Field::City | Field::Street | Field::Company => Either(2, 3),
        _ => Unknown,
    }
}

/// Whether two digit strings are within one edit (as `within_edits(_, _, 1)`).
fn within_one_digits(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if a.len() == b.len() {
        return one_edit_same_len(a, b, |_| true);
    }
    if b.len() != a.len() + 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    a[p..] == b[p + 1..]
}

/// Fields whose levels the row features may decide without reading values.
const FEATURED: [Field; 7] = [
    Field::BirthDate,
    Field::Phone,
    Field::Postcode,
    Field::Email,
    Field::City,
    Field::Street,
    Field::Company,
];

/// Tightening order: cheap comparisons first, names (which can be swapped) last.
const ORDER: [Field; 7] = [
    Field::BirthDate,
    Field::Phone,
    Field::Postcode,
    Field::Email,
    Field::City,
    Field::Street,
    Field::Company,
];

/// Weight bounds of a fitted model.
#[derive(Debug, Clone)]
pub struct Bounds {
    present: [bool; N_FIELDS],
    /// Best weight of a level other than `exact` (and 0 for email, whose
    /// levels may be made neutral).
    best_other: [f64; N_FIELDS],
    /// Best weight of any level.
    best_any: [f64; N_FIELDS],
    /// Best weight of a name under a swap (`exact` or `fuzzy_high`).
    best_swapped: [f64; N_FIELDS],
}

impl Bounds {
    /// Bounds of the weights `w`.
    pub fn new(w: &Weights) -> Bounds {
        let mut b = Bounds {
            present: [false; N_FIELDS],
            best_other: [0.0; N_FIELDS],
            best_any: [0.0; N_FIELDS],
            best_swapped: [0.0; N_FIELDS],
        };
        for &f in &w.fields {
            let k = f.index();
            let n = super::compare::n_levels(f);
            let lv = &w.level[k];
            b.present[k] = true;
            b.best_other[k] = lv[2..n].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            b.best_any[k] = lv[1..n].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if f == Field::Email {
                b.best_other[k] = b.best_other[k].max(0.0);
            }
            b.best_swapped[k] = match f {
                Field::FirstName => lv[L_EXACT as usize].max(lv[3]),
                Field::LastName => lv[L_EXACT as usize].max(lv[2]),
                _ => 0.0,
            };
        }
        b
    }

    /// Whether the pair of rows `i`, `j` may have a match weight of at least
    /// `target`; `false` only when it certainly has not.
    pub fn may_reach(
        &self,
        w: &Weights,
        ds: &Dataset,
        feats: &Feats,
        i: usize,
        j: usize,
        target: f64,
    ) -> bool {
        self.may_reach_with(w, ds, feats, i, j, target, &mut [UNKNOWN; N_FIELDS])
    }

    /// [`Bounds::may_reach`], also setting `raw[k]` to each raw level it
    /// computed (fields with different codes; others stay [`UNKNOWN`]), for
    /// [`Feats::levels_with`] to reuse.
    #[allow(clippy::too_many_arguments)]
    pub fn may_reach_with(
        &self,
        w: &Weights,
        ds: &Dataset,
        feats: &Feats,
        i: usize,
        j: usize,
        target: f64,
        raw: &mut [u8; N_FIELDS],
    ) -> bool {
        let (fa, fb) = (&feats.rows[i], &feats.rows[j]);
        let (a, b) = (&fa.codes, &fb.codes);
        let mut ub = [0.0f64; N_FIELDS];
        let mut total = w.prior;
        let mut pending = 0u16;
        for &f in &w.fields {
            let k = f.index();
            let (ca, cb) = (a[k], b[k]);
            let u = if ca == NULL || cb == NULL {
                0.0
            } else if ca == cb {
                let e = w.level[k][L_EXACT as usize] + w.tf_adjustment(k, ca);
                match f {
                    Field::FirstName | Field::LastName => e.max(self.best_any[k]),
                    // Made null when a postcode or a city agrees too.
                    Field::City | Field::Region => e.max(0.0),
                    _ => e,
                }
            } else {
                pending |= 1 << k;
                match f {
                    Field::FirstName | Field::LastName => self.best_any[k],
                    _ => self.best_other[k],
                }
            };
            ub[k] = u;
            total += u;
        }
        if total < target {
            return false;
        }
        // Levels (or bounds) from the features alone, then from the values.
        for f in FEATURED {
            let k = f.index();
            if pending & (1 << k) == 0 || !self.present[k] {
                continue;
            }
            let lv = &w.level[k];
            let mut u = match feat_level(f, fa, fb) {
                FeatLevel::Level(l) => {
                    pending &= !(1 << k);
                    raw[k] = l;
                    lv[l as usize]
                }
                FeatLevel::Either(l, m) => match feats.text_level(f, a[k], b[k]) {
                    Some(t) => {
                        pending &= !(1 << k);
                        raw[k] = t;
                        lv[t as usize]
                    }
                    None => lv[l as usize].max(lv[m as usize]),
                },
                FeatLevel::Unknown => continue,
            };
            if f == Field::Email {
                u = u.max(0.0);
            }
            if u < ub[k] {
                total += u - ub[k];
                ub[k] = u;
                if total < target {
                    return false;
                }
            }
        }
        for f in ORDER {
            let k = f.index();
            if pending & (1 << k) == 0 {
                continue;
            }
            let l = self.raw_level(ds, f, a[k], b[k]);
            raw[k] = l;
            let mut u = w.level[k][l as usize] + w.level_adjustment(k, l, a[k]);
            if f == Field::Email {
                u = u.max(0.0);
            }
            total += u - ub[k];
            if total < target {
                return false;
            }
        }
        let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
        if pending & ((1 << fi) | (1 << li)) != 0 {
            // The names' weight exactly, as compare_sides and Weights::total
            // give it, swaps included.
            let mut level = |k: usize| -> u8 {
                if !self.present[k] || a[k] == NULL || b[k] == NULL {
                    L_NULL
                } else if pending & (1 << k) != 0 {
                    raw[k] = self.raw_level(ds, Field::ALL[k], a[k], b[k]);
                    raw[k]
                } else {
                    L_EXACT
                }
            };
            let (lf, ll) = (level(fi), level(li));
            let value =
                |k: usize, c: u32| &ds.columns[k].as_ref().expect("present").values[c as usize];
            let all_four = self.present[fi]
                && self.present[li]
                && [a[fi], a[li], b[fi], b[li]].iter().all(|&c| c != NULL);
            let swapped = if all_four {
                swapped_names(
                    value(fi, a[fi]),
                    value(li, a[li]),
                    value(fi, b[fi]),
                    value(li, b[li]),
                    lf,
                    ll,
                )
            } else {
                None
            };
            let names = match swapped {
                Some((f, l)) => w.level[fi][f as usize] + w.level[li][l as usize],
                None => [(fi, lf), (li, ll)]
                    .iter()
                    .filter(|(k, _)| self.present[*k])
                    .map(|&(k, l)| w.level[k][l as usize] + w.level_adjustment(k, l, a[k]))
                    .sum(),
            };
            total += names - ub[fi] - ub[li];
            if total < target {
                return false;
            }
        }
        true
    }

    fn raw_level(&self, ds: &Dataset, f: Field, ca: u32, cb: u32) -> u8 {
        let col = ds.column(f).expect("a compared field has a column");
        compare_cached(
            f,
            ds.uid,
            ca,
            &col.values[ca as usize],
            cb,
            &col.values[cb as usize],
        )
    }
}

/// The smallest match weight whose probability reaches `t`, less a margin
/// for rounding; `None` when no pair can be rejected early (`t` of 0 or 1:
/// a large enough weight rounds to probability 1).
pub fn target_weight(t: f64) -> Option<f64> {
    (t > 0.0 && t < 1.0).then(|| (t / (1.0 - t)).log2() - 1e-6)
}

/// Ask the CPU to start loading `x` into cache (a hint; no effect elsewhere
/// than x86-64).
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that never faults, and SSE is part
        // of the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// The fields whose values [`Bounds::may_reach`] reads when the features
/// leave a pair undecided.
const PREFETCHED: [Field; 2] = [Field::FirstName, Field::LastName];

/// Prefetch the right-hand row's values of the fields [`Bounds::may_reach`]
/// reads first (`text`: their text instead, once the values are cached).
#[inline]
pub fn prefetch_values(ds: &Dataset, rows: &[RowFeat], j: usize, text: bool) {
    let codes = &rows[j].codes;
    for f in PREFETCHED {
        let k = f.index();
        if let Some(v) = ds.columns[k]
            .as_ref()
            .and_then(|col| col.values.get(codes[k] as usize))
        {
            if text {
                if let Some(b) = v.text.as_bytes().first() {
                    prefetch(b);
                }
            } else {
                prefetch(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::compare::compare_values;

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random string over a small alphabet, often a near copy of `base`.
    fn word(s: &mut u64, alphabet: &[u8], base: &[u8], max_len: usize) -> String {
        let mut w: Vec<u8> = if splitmix(s) % 2 == 0 && !base.is_empty() {
            base.to_vec()
        } else {
            let n = (splitmix(s) % max_len as u64) as usize;
            (0..n)
                .map(|_| alphabet[(splitmix(s) % alphabet.len() as u64) as usize])
                .collect()
        };
        for _ in 0..splitmix(s) % 3 {
            let k = (splitmix(s) % (w.len() as u64 + 1)) as usize;
            match splitmix(s) % 4 {
                0 if k < w.len() => w[k] = alphabet[(splitmix(s) % alphabet.len() as u64) as usize],
                1 if k + 1 < w.len() => w.swap(k, k + 1),
                2 if k < w.len() => {
                    w.remove(k);
                }
                _ => w.insert(k, alphabet[(splitmix(s) % alphabet.len() as u64) as usize]),
            }
        }
        String::from_utf8(w).unwrap()
    }

    #[test]
    fn feature_levels_agree_with_the_value_comparisons() {
        let mut s = 42u64;
        let cases: [(Field, &[u8], &[u8], usize); 5] = [
            (Field::BirthDate, b"0123456789-", b"1980-02-03", 12),
            (Field::BirthDate, b"0123-", b"2001-12-01", 11),
            (Field::Phone, b"0123456789+", b"447700900123", 18),
            (Field::Postcode, b"ab1 2c", b"sw1a 1aa", 9),
            (Field::Email, b"abn.1@xy", b"ann.lee1@x.org", 16),
        ];
        let mut decided = 0;
        for (f, alphabet, base, max_len) in cases {
            for _ in 0..20_000 {
                let (x, y) = (
                    word(&mut s, alphabet, base, max_len),
                    word(&mut s, alphabet, base, max_len),
                );
                if x == y || x.trim().is_empty() || y.trim().is_empty() {
                    continue;
                }
                let (va, vb) = (Value::new(f, &x), Value::new(f, &y));
                let (mut fa, mut fb) = (RowFeat::default(), RowFeat::default());
                value_feat(f, &va, &mut fa);
                value_feat(f, &vb, &mut fb);
                let l = compare_values(f, 0, &va, 1, &vb);
                match feat_level(f, &fa, &fb) {
                    FeatLevel::Level(m) => {
                        assert_eq!(m, l, "{f:?} {x:?} {y:?}");
                        decided += 1;
                    }
                    FeatLevel::Either(m, n) => {
                        assert!(l == m || l == n, "{f:?} {x:?} {y:?}: {l}");
                    }
                    FeatLevel::Unknown => {}
                }
            }
        }
        assert!(decided > 20_000, "{decided}");
    }

    #[test]
    fn text_features_decide_only_what_the_text_decides() {
        let mut s = 7u64;
        let cases: [(Field, &[u8], &[u8], usize); 4] = [
            (Field::Email, b"abnle.1@xy", b"annlee84@x.org", 16),
            (Field::City, b"abnlst ", b"new london", 14),
            (Field::Street, b"12 abnlst", b"12 lee st", 14),
            (Field::Company, b"acmeincl ", b"acme inc", 14),
        ];
        let mut decided = 0;
        for (f, alphabet, base, max_len) in cases {
            for _ in 0..20_000 {
                let (x, y) = (
                    word(&mut s, alphabet, base, max_len),
                    word(&mut s, alphabet, base, max_len),
                );
                if x == y || x.trim().is_empty() || y.trim().is_empty() {
                    continue;
                }
                let (va, vb) = (Value::new(f, &x), Value::new(f, &y));
                if f == Field::Email && (va.local() == vb.local() || va.local().len() < 4) {
                    continue;
                }
                let mut text = vec![None; N_FIELDS];
                let tf = |v: &Value| match f {
                    Field::Email => TextFeat::of(v.local(), &[], ""),
                    _ => TextFeat::of(&v.text, &v.tokens, &v.code),
                };
                text[f.index()] = Some(vec![tf(&va), tf(&vb)]);
                let feats = Feats { rows: vec![], text };
                if let Some(l) = feats.text_level(f, 0, 1) {
                    assert_eq!(l, compare_values(f, 0, &va, 1, &vb), "{f:?} {x:?} {y:?}");
                    decided += 1;
                }
            }
        }
        assert!(decided > 10_000, "{decided}");
    }
}
