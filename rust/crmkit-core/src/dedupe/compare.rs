//! Field comparisons with graded levels.
//!
//! Every field compares to a level index: 0 is always `null` (one side
//! missing), the last is always `different`, and the levels in between run
//! from the strongest agreement to the weakest. The first level whose test
//! passes wins. [`level_names`] lists them per field.

use super::metric::{jaro_winkler, jaro_winkler_bag_bound, jaro_winkler_bound, within_edits};

use super::data::{Dataset, Field, Value, NULL, N_FIELDS, UNSEEN};
use super::nicknames;

/// Level index of a missing value.
pub const L_NULL: u8 = 0;
/// Level index of an exact match.
pub const L_EXACT: u8 = 1;

/// The level names of a field, strongest first; index 0 is `null`.
pub fn level_names(field: Field) -> &'static [&'static str] {
    match field {
        Field::FirstName => &[
            "null",
            "exact",
            "nickname",
            "fuzzy_high",
            "phonetic",
            "initial",
            "fuzzy_low",
            "different",
        ],
        Field::LastName => &[
            "null",
            "exact",
            "fuzzy_high",
            "phonetic",
            "fuzzy_low",
            "different",
        ],
        Field::Email => &[
            "null",
            "exact",
            "domain_typo",
            "local_same",
            "local_fuzzy",
            "restates_name",
            "different",
        ],
        Field::Phone => &["null", "exact", "one_edit", "different"],
        Field::Postcode => &["null", "exact", "same_district", "different"],
        Field::City | Field::Street | Field::Company => &["null", "exact", "fuzzy", "different"],
        Field::Country | Field::Region => &["null", "exact", "different"],
        Field::BirthDate => &[
            "null",
            "exact",
            "day_month_swapped",
            "one_edit",
            "same_year",
            "different",
        ],
    }
}

/// Number of levels of a field.
pub fn n_levels(field: Field) -> usize {
    level_names(field).len()
}

/// The `different` level of a field.
pub fn l_different(field: Field) -> u8 {
    (n_levels(field) - 1) as u8
}

/// Whether a level carries no evidence by design (its weight is fixed at 0).
///
/// `email/restates_name`: the two email local parts agree (or nearly) but
/// each merely restates its record's own name (`john.smith@...`). That
/// agreement follows from the names agreeing, which the name fields already
/// count; counting it again is what makes naive Fellegi-Sunter models chain
/// namesakes into giant clusters.
///
/// `country/exact` and `region/exact`: names, phones and postcodes are
/// already specific to a country and often to a region (a namesake is
/// likelier in the same state than in a random one), so two records agreeing
/// on them adds little to what those fields say; only a disagreement is
/// evidence (against a match).
pub fn is_neutral(field: Field, level: u8) -> bool {
    level == L_NULL
        || (field == Field::Email && level == 5)
        || (matches!(field, Field::Country | Field::Region) && level == L_EXACT)
}

/// Whether exact matches of a field get a term-frequency adjustment.
pub fn has_tf(field: Field) -> bool {
    matches!(
        field,
        Field::FirstName | Field::LastName | Field::City | Field::Postcode | Field::Company
    )
}

fn same(ca: u32, a: &Value, cb: u32, b: &Value) -> bool {
    if ca < UNSEEN && cb < UNSEEN {
        ca == cb
    } else {
        a.text == b.text
    }
}

fn close_edit(a: &str, b: &str, max: usize) -> bool {
    within_edits(a, b, max)
}

fn word_hash(w: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = ahash::RandomState::with_seeds(0x5851_f42d, 0x4c95_7f2d, 0x1405_7b7e, 0xf767_814f)
        .build_hasher();
    h.write(w.as_bytes());
    h.finish()
}

/// The hash of a whole string (as [`token_hashes`] hashes one word).
pub fn text_hash(s: &str) -> u64 {
    word_hash(s)
}

/// The sorted, distinct hashes of the lowercase words of a string, company
/// suffixes (`inc`, `ltd`, ...) left out.
pub fn token_hashes(s: &str) -> Vec<u64> {
    let mut t: Vec<u64> = s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !COMPANY_STOP.contains(&w.as_str()))
        .map(|w| word_hash(&w))
        .collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// Overlap coefficient of two sorted, distinct hash sets.
pub fn overlap_sorted(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / a.len().min(b.len()) as f64
}

/// Hash of a postcode's district: the part before the space, or the first
/// three characters of a postcode of four or more; 0 when there is none.
pub fn district_hash(s: &str) -> u64 {
    match s.split_once(' ') {
        Some((d, _)) => word_hash(d) | 1,
        None if s.chars().count() >= 4 => {
            let end = s.char_indices().nth(3).map_or(s.len(), |(k, _)| k);
            word_hash(&s[..end]) | 1
        }
        None => 0,
    }
}

/// Whether the Jaro-Winkler similarity of two strings reaches `t` (skips
/// the metric when the lengths alone rule it out).
pub fn jw_at_least(a: &str, b: &str, t: f64) -> bool {
    if a.is_ascii() && b.is_ascii() && jaro_winkler_bound(a.len(), b.len()) < t {
        return false;
    }
    jaro_winkler_bag_bound(a, b) >= t && jaro_winkler(a, b) >= t
}

/// Jaro-Winkler similarity, or 0 when it cannot reach `floor`.
fn jw_from(a: &str, b: &str, floor: f64) -> f64 {
    if a.is_ascii()
        && b.is_ascii()
        && (jaro_winkler_bound(a.len(), b.len()) < floor || jaro_winkler_bag_bound(a, b) < floor)
    {
        return 0.0;
    }
    jaro_winkler(a, b)
}

const COMPANY_STOP: &[&str] = &[
    "inc",
    "ltd",
    "llc",
    "plc",
    "gmbh",
    "co",
    "corp",
    "corporation",
    "company",
    "the",
    "and",
    "sa",
    "ag",
    "bv",
    "limited",
    "group",
];

/// Overlap coefficient of the word sets of two strings (ignoring company
/// suffixes such as `inc`, `ltd`): |A ∩ B| / min(|A|, |B|).
pub fn token_overlap(a: &str, b: &str) -> f64 {
    overlap_sorted(&token_hashes(a), &token_hashes(b))
}

fn is_initial_of(short: &str, long: &str) -> bool {
    let s = short.trim_end_matches('.');
    s.chars().count() == 1 && long.chars().count() > 1 && long.starts_with(s)
}

/// Compare two present values of one field (no `null` handling, no
/// row-level context such as [`is_neutral`] email levels).
pub fn compare_values(field: Field, ca: u32, a: &Value, cb: u32, b: &Value) -> u8 {
    if same(ca, a, cb, b) {
        return L_EXACT;
    }
    let (x, y) = (&*a.text, &*b.text);
    match field {
        Field::FirstName => {
            if nicknames::share_group(&a.nick, &b.nick) {
                2
            } else if is_initial_of(x, y) || is_initial_of(y, x) {
                5
            } else {
                let jw = jw_from(x, y, 0.80);
                if jw >= 0.92 {
                    3
                } else if !a.code.is_empty() && a.code == b.code {
                    4
                } else if jw >= 0.80 {
                    6
                } else {
                    7
                }
            }
        }
        Field::LastName => {
            let jw = jw_from(x, y, 0.80);
            if jw >= 0.92 || (x.len() >= 5 && close_edit(x, y, 1)) {
                2
            } else if !a.code.is_empty() && a.code == b.code {
                3
            } else if jw >= 0.80 || overlap_sorted(&a.tokens, &b.tokens) >= 1.0 {
                4
            } else {
                5
            }
        }
        Field::Email => {
            let (la, lb) = (a.local(), b.local());
            if la == lb {
                if close_edit(a.domain(), b.domain(), 2) {
                    2
                } else {
                    3
                }
            } else if la.len() >= 4 && (close_edit(la, lb, 1) || jw_at_least(la, lb, 0.92)) {
                4
            } else {
                6
            }
        }
        Field::Phone => {
            if a.code.len() >= 6 && close_edit(&a.code, &b.code, 1) {
                2
            } else {
                3
            }
        }
        Field::Postcode => {
            if a.district != 0 && a.district == b.district {
                2
            } else {
                3
            }
        }
        Field::City => {
            if (!a.code.is_empty() && a.code == b.code) || jw_at_least(x, y, 0.9) {
                2
            } else {
                3
            }
        }
        Field::Street | Field::Company => {
            if overlap_sorted(&a.tokens, &b.tokens) >= 0.8 || jw_at_least(x, y, 0.9) {
                2
            } else {
                3
            }
        }
        Field::Country | Field::Region => 2,
        Field::BirthDate => {
            let (p, q) = (a.date, b.date);
            if p != 0 && q != 0 {
                let (ya, ma, da) = (p / 10000, (p / 100) % 100, p % 100);
                let (yb, mb, db) = (q / 10000, (q / 100) % 100, q % 100);
                if ya == yb && ma == db && da == mb {
                    2
                } else if close_edit(x, y, 1) {
                    3
                } else if ya == yb {
                    4
                } else {
                    5
                }
            } else if close_edit(x, y, 1) {
                3
            } else {
                5
            }
        }
    }
}

/// Whether an email local part restates the record's own name: it contains
/// the surname and the first name (or starts with the first initial), or it
/// is made of the name alone: the first name or surname, with nothing left
/// but the other name's initial (`ashleyj`, `davidg`, `emma`).
pub fn email_restates_name(local: &str, first: Option<&str>, last: Option<&str>) -> bool {
    restates_letters(
        &name_letters(local),
        first.map(name_letters).as_deref(),
        last.map(name_letters).as_deref(),
    )
}

/// The letters of a name or local part, lowercase.
pub fn name_letters(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect()
}

/// `letters` with German transliterations folded (`mueller` → `muller`, as
/// `müller` is normalized), or `None` when it holds none.
fn fold_digraphs(letters: &str) -> Option<String> {
    (letters.contains("ae") || letters.contains("oe") || letters.contains("ue")).then(|| {
        letters
            .replace("ae", "a")
            .replace("oe", "o")
            .replace("ue", "u")
    })
}

/// [`email_restates_name`] over [`name_letters`] of the local part and names.
///
/// The letters are compared as written first, then with German
/// transliterations folded on every side: folding only would break names
/// that meet across a digraph (`linda` + `evans` → `lindaevans` → `lindavans`).
pub fn restates_letters(l: &str, first: Option<&str>, last: Option<&str>) -> bool {
    if restates_exact(l, first, last) {
        return true;
    }
    let (fl, ff, fa) = (
        fold_digraphs(l),
        first.and_then(fold_digraphs),
        last.and_then(fold_digraphs),
    );
    if fl.is_none() && ff.is_none() && fa.is_none() {
        return false;
    }
    restates_exact(
        fl.as_deref().unwrap_or(l),
        ff.as_deref().or(first),
        fa.as_deref().or(last),
    )
}

fn restates_exact(l: &str, first: Option<&str>, last: Option<&str>) -> bool {
    let first = first.filter(|s| !s.is_empty());
    let last = last.filter(|s| s.len() >= 2);
    if let Some(last) = last {
        if l.contains(last) {
            if let Some(f) = first {
                if l.contains(f) || l.starts_with(&f[..f.chars().next().map_or(0, char::len_utf8)])
                {
                    return true;
                }
            }
        }
    }
    // The name alone, plus at most the other name's initial.
    let initial = |s: Option<&str>| s.and_then(|s| s.chars().next());
    let alone = |name: Option<&str>, other: Option<&str>| -> bool {
        let Some(n) = name.filter(|n| n.chars().count() >= 3) else {
            return false;
        };
        let Some(rest) = l.strip_prefix(n) else {
            return false;
        };
        let mut cs = rest.chars();
        match (cs.next(), cs.next()) {
            (None, _) => true,
            (Some(c), None) => initial(other) == Some(c),
            _ => false,
        }
    };
    alone(first, last) || alone(last, first)
}

/// Whether two email local parts carry different numbers: both have digits
/// and they differ, or one has digits and their letters are the same.
pub fn digits_conflict(a: &str, b: &str) -> bool {
    let (da, db) = (
        local_digits(a).next().is_some(),
        local_digits(b).next().is_some(),
    );
    match (da, db) {
        (true, true) => !local_digits(a).eq(local_digits(b)),
        (false, false) => false,
        _ => {
            let letters = |s: &str| {
                s.bytes()
                    .filter(|c| !c.is_ascii_digit())
                    .collect::<Vec<u8>>()
            };
            letters(a) == letters(b)
        }
    }
}

/// The digits of an email local part (`ann.lee84` → `84`), compared as-is.
fn local_digits(local: &str) -> impl Iterator<Item = u8> + '_ {
    local.bytes().filter(u8::is_ascii_digit)
}

/// One side of a comparison: a value and its dictionary code per field, plus
/// row-level context.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// `(code, value)` per field in [`Field::ALL`] order.
    pub values: [Option<(u32, &'a Value)>; N_FIELDS],
    /// Whether the email local part restates the row's name.
    pub email_restates: bool,
    /// [`Dataset::uid`] of the dictionaries the codes index (0: no caching).
    pub uid: u64,
}

impl<'a> Side<'a> {
    /// The side of row `row` of a dataset whose codes (in [`Field::ALL`]
    /// order) are `codes`.
    pub fn of_codes(
        ds: &'a Dataset,
        restates: &[bool],
        row: usize,
        codes: &[u32; N_FIELDS],
    ) -> Side<'a> {
        let mut values = [None; N_FIELDS];
        for (k, col) in ds.columns.iter().enumerate() {
            if let Some(col) = col {
                let c = codes[k];
                if c != NULL {
                    values[k] = Some((c, &col.values[c as usize]));
                }
            }
        }
        Side {
            values,
            email_restates: restates.get(row).copied().unwrap_or(false),
            uid: ds.uid,
        }
    }

    /// The side of row `row` of a dataset.
    pub fn of_row(ds: &'a Dataset, restates: &[bool], row: usize) -> Side<'a> {
        let mut codes = [NULL; N_FIELDS];
        for (k, col) in ds.columns.iter().enumerate() {
            if let Some(col) = col {
                codes[k] = col.codes[row];
            }
        }
        Side::of_codes(ds, restates, row, &codes)
    }
}

/// Fields whose levels are cached per pair of dictionary codes: few distinct
/// values (given names, surnames), so the same pair of values comes up again
/// and again.
fn cached(f: Field) -> bool {
    matches!(f, Field::FirstName | Field::LastName)
}

/// Entries a thread's level cache may hold before it is cleared.
const CACHE_CAP: usize = 1 << 20;

struct LevelCache {
    uid: u64,
    maps: Vec<ahash::AHashMap<u64, u8>>,
}

thread_local! {
    static CACHE: std::cell::RefCell<LevelCache> = std::cell::RefCell::new(LevelCache {
        uid: 0,
        maps: (0..N_FIELDS).map(|_| ahash::AHashMap::new()).collect(),
    });
}

/// [`compare_values`], through a per-thread cache keyed by dictionary codes
/// when both values come from the dataset `uid` (levels are a pure function
/// of the two values, so the cache cannot change a result).
pub(crate) fn compare_cached(f: Field, uid: u64, ca: u32, a: &Value, cb: u32, b: &Value) -> u8 {
    if uid == 0 || ca >= UNSEEN || cb >= UNSEEN || ca == cb || !cached(f) {
        return compare_values(f, ca, a, cb, b);
    }
    let key = (u64::from(ca) << 32) | u64::from(cb);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.uid != uid {
            c.uid = uid;
            c.maps.iter_mut().for_each(|m| m.clear());
        }
        let map = &mut c.maps[f.index()];
        if let Some(&l) = map.get(&key) {
            return l;
        }
        let l = compare_values(f, ca, a, cb, b);
        if map.len() >= CACHE_CAP {
            map.clear();
        }
        map.insert(key, l);
        l
    })
}

/// Whether two sides carry the same first name and a surname that agrees
/// on its first three letters (`burworth` / `burorth`): when one email local
/// part restates its name, the other agreeing with it adds nothing then.
fn same_person_name(a: &Side<'_>, b: &Side<'_>) -> bool {
    fn text<'s>(s: &Side<'s>, f: Field) -> Option<&'s str> {
        s.values[f.index()].map(|(_, v)| &*v.text)
    }
    let (Some(fa), Some(fb), Some(la), Some(lb)) = (
        text(a, Field::FirstName),
        text(b, Field::FirstName),
        text(a, Field::LastName),
        text(b, Field::LastName),
    ) else {
        return false;
    };
    let head = |s: &str| s.chars().take(3).collect::<String>();
    fa == fb && la.chars().count() >= 3 && head(la) == head(lb)
}

/// Whether two sides' names agree closely: the first names at `exact`,
/// `nickname` or `fuzzy_high` and the surnames at `exact` or `fuzzy_high`
/// (`linda chen` / `linda chne`). An email local part that restates one of
/// them then restates the other too: its agreement is the names' agreement
/// again, which the name fields already count. (A missing first name is not
/// agreement: the local part may be the only place it is written.)
fn names_agree(a: &Side<'_>, b: &Side<'_>) -> bool {
    let level = |f: Field| -> Option<u8> {
        let k = f.index();
        match (a.values[k], b.values[k]) {
            (Some((ca, va)), Some((cb, vb))) => {
                let uid = if a.uid == b.uid { a.uid } else { 0 };
                Some(compare_cached(f, uid, ca, va, cb, vb))
            }
            _ => None,
        }
    };
    matches!(level(Field::FirstName), Some(1..=3)) && matches!(level(Field::LastName), Some(1..=2))
}

/// Compute the level of every present field for a pair; returns whether the
/// first and last names were compared swapped (`ann lee` vs `lee ann`).
pub fn compare_sides(
    fields: &[Field],
    a: &Side<'_>,
    b: &Side<'_>,
    out: &mut [u8; N_FIELDS],
) -> bool {
    compare_sides_with(fields, a, b, out, |_, _, _| None)
}

/// [`compare_sides`] where `known(field, code_a, code_b)` may give a
/// field's raw level (as [`compare_values`] would) for two present values
/// with different codes, so their values are not read.
pub fn compare_sides_with<K>(
    fields: &[Field],
    a: &Side<'_>,
    b: &Side<'_>,
    out: &mut [u8; N_FIELDS],
    known: K,
) -> bool
where
    K: Fn(Field, u32, u32) -> Option<u8>,
{
    for &f in fields {
        let k = f.index();
        out[k] = match (a.values[k], b.values[k]) {
            (Some((ca, va)), Some((cb, vb))) => {
                let uid = if a.uid == b.uid { a.uid } else { 0 };
                let mut l = if ca != cb && uid != 0 {
                    known(f, ca, cb)
                } else {
                    None
                }
                .unwrap_or_else(|| compare_cached(f, uid, ca, va, cb, vb));
                if f == Field::Email && l == 4 && digits_conflict(va.local(), vb.local()) {
                    // `thomaspena74` / `thomaspen73`, `maryward` / `maryward99`:
                    // name-like locals told apart by their numbers.
                    l = 5;
                }
                if f == Field::Email
                    && (3..=4).contains(&l)
                    && (a.email_restates && b.email_restates
                        || (a.email_restates || b.email_restates)
                            && (same_person_name(a, b) || names_agree(a, b)))
                {
                    // Equal non-empty digits (`annlee84`, `ann.lee84`) are
                    // evidence of their own, beyond the restated names.
                    let (la, lb) = (va.local(), vb.local());
                    let digits =
                        local_digits(la).next().is_some() && local_digits(la).eq(local_digits(lb));
                    if !(l == 4 && digits) {
                        l = 5;
                    }
                }
                l
            }
            _ => L_NULL,
        };
    }
    // A shared postcode (or postcode district) already says the city is the
    // same: counting the city too would weigh one address twice (households,
    // neighbours).
    let (pi, ci) = (Field::Postcode.index(), Field::City.index());
    let ri = Field::Region.index();
    let same_place = |l: u8| l == L_EXACT || l == 2;
    if fields.contains(&Field::Region)
        && out[ri] == L_EXACT
        && (same_place(out[pi]) || same_place(out[ci]))
    {
        // Likewise the region of a shared postcode or city.
        out[ri] = L_NULL;
    }
    if fields.contains(&Field::City) && same_place(out[pi]) && out[ci] == L_EXACT {
        out[ci] = L_NULL;
    }
    let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
    if let (Some(af), Some(al), Some(bf), Some(bl)) =
        (a.values[fi], a.values[li], b.values[fi], b.values[li])
    {
        if let Some((f, l)) = swapped_names(af.1, al.1, bf.1, bl.1, out[fi], out[li]) {
            out[fi] = f;
            out[li] = l;
            return true;
        }
    }
    false
}

/// The first- and last-name levels of two records whose names were written
/// the other way round (`ann lee` / `lee ann`), given the levels `first`
/// and `last` of the names compared as written; `None` when they agree well
/// as written or do not agree swapped.
pub fn swapped_names(
    af: &Value,
    al: &Value,
    bf: &Value,
    bl: &Value,
    first: u8,
    last: u8,
) -> Option<(u8, u8)> {
    let good_first = first == L_EXACT || first == 3;
    let good_last = last == L_EXACT || last == 2;
    if good_first && good_last {
        return None;
    }
    let cross = |x: &Value, y: &Value| -> Option<u8> {
        if x.text == y.text {
            Some(L_EXACT)
        } else if x.text.len() >= 3 && jw_at_least(&x.text, &y.text, 0.92) {
            Some(2)
        } else {
            None
        }
    };
    let s1 = cross(af, bl)?;
    let s2 = cross(al, bf)?;
    Some((if s1 == L_EXACT { L_EXACT } else { 3 }, s2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(field: Field, a: &str, b: &str) -> &'static str {
        let (va, vb) = (Value::new(field, a), Value::new(field, b));
        level_names(field)[compare_values(field, UNSEEN, &va, UNSEEN, &vb) as usize]
    }

    #[test]
    fn country_levels_and_only_a_disagreement_counts() {
        assert_eq!(lv(Field::Country, "us", "us"), "exact");
        assert_eq!(lv(Field::Country, "us", "gb"), "different");
        assert!(is_neutral(Field::Country, L_EXACT));
        assert!(!is_neutral(Field::Country, l_different(Field::Country)));
        assert!(!has_tf(Field::Country));
    }

    #[test]
    fn a_shared_postcode_or_city_makes_the_region_null() {
        fn side(vals: &[(Field, &str)]) -> Vec<(Field, Value)> {
            vals.iter().map(|&(f, t)| (f, Value::new(f, t))).collect()
        }
        fn of(v: &[(Field, Value)]) -> Side<'_> {
            let mut values = [None; N_FIELDS];
            for (f, val) in v {
                values[f.index()] = Some((UNSEEN, val));
            }
            Side {
                values,
                email_restates: false,
                uid: 0,
            }
        }
        fn region(x: &[(Field, Value)], y: &[(Field, Value)]) -> u8 {
            let mut out = [0u8; N_FIELDS];
            let fields = [Field::Region, Field::City, Field::Postcode];
            compare_sides(&fields, &of(x), &of(y), &mut out);
            out[Field::Region.index()]
        }
        let a = side(&[
            (Field::Region, "ny"),
            (Field::City, "albany"),
            (Field::Postcode, "12207"),
        ]);
        let same_city = side(&[(Field::Region, "ny"), (Field::City, "albany")]);
        let same_region = side(&[(Field::Region, "ny"), (Field::City, "buffalo")]);
        let other = side(&[(Field::Region, "nj"), (Field::City, "newark")]);
        assert_eq!(region(&a, &same_city), L_NULL);
        assert_eq!(region(&a, &same_region), L_EXACT);
        assert_eq!(region(&a, &other), l_different(Field::Region));
        assert!(!has_tf(Field::Region) && is_neutral(Field::Region, L_EXACT));
    }

    #[test]
    fn first_name_levels() {
        assert_eq!(lv(Field::FirstName, "william", "william"), "exact");
        assert_eq!(lv(Field::FirstName, "william", "bill"), "nickname");
        assert_eq!(lv(Field::FirstName, "jonathon", "jonathan"), "fuzzy_high");
        assert_eq!(lv(Field::FirstName, "catherine", "kathryn"), "nickname");
        assert_eq!(lv(Field::FirstName, "j", "james"), "initial");
        assert_eq!(lv(Field::FirstName, "zoe", "mark"), "different");
    }

    #[test]
    fn last_name_levels() {
        assert_eq!(lv(Field::LastName, "smith", "smiht"), "fuzzy_high");
        assert_eq!(lv(Field::LastName, "philips", "fillips"), "phonetic");
        assert_eq!(lv(Field::LastName, "smith", "jones"), "different");
    }

    #[test]
    fn email_levels() {
        assert_eq!(lv(Field::Email, "ann@x.com", "ann@x.com"), "exact");
        assert_eq!(
            lv(Field::Email, "ann@gmail.com", "ann@gmial.com"),
            "domain_typo"
        );
        assert_eq!(
            lv(Field::Email, "ann@gmail.com", "ann@yahoo.co.uk"),
            "local_same"
        );
        assert_eq!(
            lv(Field::Email, "annlee@x.com", "anlee@y.org"),
            "local_fuzzy"
        );
        assert_eq!(lv(Field::Email, "ann@x.com", "bob@x.com"), "different");
    }

    #[test]
    fn date_phone_postcode_company_levels() {
        assert_eq!(
            lv(Field::BirthDate, "1980-03-04", "1980-04-03"),
            "day_month_swapped"
        );
        assert_eq!(lv(Field::BirthDate, "1980-03-04", "1980-03-14"), "one_edit");
        assert_eq!(
            lv(Field::BirthDate, "1980-03-04", "1980-11-22"),
            "same_year"
        );
        assert_eq!(
            lv(Field::BirthDate, "1980-03-04", "1990-11-22"),
            "different"
        );
        assert_eq!(
            lv(Field::Phone, "+447700900123", "+447700900132"),
            "one_edit"
        );
        assert_eq!(
            lv(Field::Phone, "+447700900123", "+447700811111"),
            "different"
        );
        assert_eq!(lv(Field::Postcode, "sw1a 1aa", "sw1a 2bb"), "same_district");
        assert_eq!(lv(Field::Company, "acme inc", "acme"), "fuzzy");
    }

    #[test]
    fn restated_names_are_detected() {
        assert!(email_restates_name(
            "john.smith",
            Some("john"),
            Some("smith")
        ));
        assert!(email_restates_name("jsmith", Some("john"), Some("smith")));
        assert!(email_restates_name(
            "christiane.mueller",
            Some("christiane"),
            Some("muller")
        ));
        assert!(!email_restates_name("jsmith", Some("ann"), Some("smith")));
        // Names meeting across a digraph (`linda` + `evans`) are not folded away.
        assert!(email_restates_name(
            "linda.evans",
            Some("linda"),
            Some("evans")
        ));
        assert!(email_restates_name(
            "linda.evans",
            Some("lina"),
            Some("evans")
        ));
        assert!(email_restates_name(
            "ashleyj",
            Some("ashley"),
            Some("jones")
        ));
        assert!(email_restates_name("emma", Some("emma"), Some("anderson")));
        assert!(!email_restates_name(
            "emmaz",
            Some("emma"),
            Some("anderson")
        ));
        assert!(!email_restates_name(
            "moondragon60",
            Some("susan"),
            Some("gladling")
        ));
        assert!(!email_restates_name(
            "cooldude",
            Some("john"),
            Some("smith")
        ));
        assert!(digits_conflict("thomaspena74", "thomaspen73"));
        assert!(digits_conflict("maryward", "maryward99"));
        assert!(!digits_conflict("helenkelly27", "helenelly27"));
        assert!(!digits_conflict("annlee", "anlee"));
    }

    fn sides_of(rows: &[[&str; 3]]) -> Vec<[Value; 3]> {
        rows.iter()
            .map(|r| {
                [
                    Value::new(Field::FirstName, r[0]),
                    Value::new(Field::LastName, r[1]),
                    Value::new(Field::Email, r[2]),
                ]
            })
            .collect()
    }

    fn email_level_of(a: &[Value; 3], b: &[Value; 3]) -> &'static str {
        fn side(v: &[Value; 3]) -> Side<'_> {
            let mut values = [None; N_FIELDS];
            for (k, f) in [Field::FirstName, Field::LastName, Field::Email]
                .iter()
                .enumerate()
            {
                if !v[k].text.is_empty() {
                    values[f.index()] = Some((UNSEEN, &v[k]));
                }
            }
            Side {
                values,
                email_restates: email_restates_name(
                    v[2].local(),
                    Some(&name_letters(&v[0].text)),
                    Some(&name_letters(&v[1].text)),
                ),
                uid: 0,
            }
        }
        let mut out = [0u8; N_FIELDS];
        let fields = [Field::FirstName, Field::LastName, Field::Email];
        compare_sides(&fields, &side(a), &side(b), &mut out);
        level_names(Field::Email)[out[Field::Email.index()] as usize]
    }

    #[test]
    fn a_restated_local_part_adds_nothing_to_closely_agreeing_names() {
        let v = sides_of(&[
            ["linda", "chen", "lindachen@gmail.com"],
            ["linda", "chne", "linda_chen@gmail.com"],
            ["lisa", "hart", "linda.chen@yahoo.com"],
            ["linda", "chen", "moonfox@gmail.com"],
            ["linda", "chne", "moonfox@yahoo.com"],
            ["", "chen", "lindachen@yahoo.com"],
        ]);
        // The surname's typo stops the second local part restating its own
        // name, but the names agree closely: the local parts repeat them.
        assert_eq!(email_level_of(&v[0], &v[1]), "restates_name");
        // Names that disagree leave the local parts' agreement as evidence.
        assert_eq!(email_level_of(&v[0], &v[2]), "local_fuzzy");
        // Local parts that restate no name keep their weight.
        assert_eq!(email_level_of(&v[3], &v[4]), "local_same");
        // A missing first name: the local part is the only place it shows.
        assert_eq!(email_level_of(&v[0], &v[5]), "local_same");
    }

    #[test]
    fn swapped_names_are_aligned() {
        let f = [
            Value::new(Field::FirstName, "ann"),
            Value::new(Field::LastName, "lee"),
        ];
        let g = [
            Value::new(Field::FirstName, "lee"),
            Value::new(Field::LastName, "ann"),
        ];
        let mk = |v: &'static [Value; 2]| {
            let mut values = [None; N_FIELDS];
            values[0] = Some((UNSEEN, &v[0]));
            values[1] = Some((UNSEEN, &v[1]));
            Side {
                values,
                email_restates: false,
                uid: 0,
            }
        };
        let f: &'static [Value; 2] = Box::leak(Box::new(f));
        let g: &'static [Value; 2] = Box::leak(Box::new(g));
        let mut out = [0u8; N_FIELDS];
        let swapped = compare_sides(
            &[Field::FirstName, Field::LastName],
            &mk(f),
            &mk(g),
            &mut out,
        );
        assert!(swapped);
        assert_eq!((out[0], out[1]), (L_EXACT, L_EXACT));
    }
}
