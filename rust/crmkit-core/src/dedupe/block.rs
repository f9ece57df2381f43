//! Blocking: which pairs of rows are compared at all.
//!
//! A [`Rule`] is a list of key parts (`"last_name:phonetic"`, `"postcode"`);
//! two rows are a candidate pair when some rule gives them the same key. The
//! candidate pairs of every rule are unioned and each pair is kept once, as
//! `(i, j)` with `i < j` packed into a `u64` (`i << 32 | j`), sorted.
//!
//! Blocks larger than `max_block` rows are not expanded to all their pairs:
//! their rows are sorted by name and birth date and each row is paired with
//! the next `window` rows (sorted neighbourhood), with a warning. The pair
//! budget caps the union: over it, the pairs of the largest blocks are
//! dropped first, with a warning naming the rules that lost pairs.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};

use ahash::RandomState;
use rayon::prelude::*;

use super::compare::Side;
use super::data::{Column, Dataset, Field, Value, NULL};
use super::nicknames;
use crate::{CoreError, CoreResult};

/// How a field's value becomes part of a blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// The whole value.
    Exact,
    /// The first `n` characters.
    Prefix(usize),
    /// The last `n` characters.
    Suffix(usize),
    /// The letters only (of an email: of its local part), so
    /// `mary.garcia@x` and `marygarcia27@y` share a key.
    Letters,
    /// The Double Metaphone code (names, city).
    Phonetic,
    /// The first character.
    Initial,
    /// The first four characters of a date (the year).
    Year,
    /// The local part of an email.
    Local,
    /// The domain of an email.
    Domain,
    /// A first name's formal name (`bill` → `william`), else the name.
    Nick,
    /// The first letter of [`Transform::Nick`] (`jack` → `j`, `larry` → `l`).
    NickInitial,
    /// The characters in sorted order, so values with two characters typed
    /// swapped (`jhon@x.org`, `john@x.org`) share a key.
    Sorted,
}

/// One part of a blocking key: one field, or two fields taken as an
/// unordered pair (`first_name+last_name:phonetic` also groups swapped names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    /// One or two fields.
    pub fields: Vec<Field>,
    /// How their values are reduced.
    pub transform: Transform,
}

/// A blocking rule: rows agreeing on every part share a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule as written (`"last_name:phonetic & postcode"`), for messages.
    pub name: String,
    /// Its key parts.
    pub parts: Vec<KeyPart>,
}

impl Rule {
    /// Parse a rule from its parts, each `field[+field][:transform]` where
    /// transform is one of `exact`, `prefixN`, `suffixN`, `phonetic`,
    /// `initial`, `year`, `local`, `domain`, `nick`, `nickinitial`, `letters`,
    /// `sorted`.
    pub fn parse(parts: &[&str]) -> CoreResult<Rule> {
        if parts.is_empty() {
            return Err(CoreError::Config(
                "a blocking rule needs at least one part".into(),
            ));
        }
        let mut out = Vec::new();
        for p in parts {
            let (fields, tr) = p.split_once(':').unwrap_or((p, "exact"));
            let fields = fields
                .split('+')
                .map(|f| {
                    Field::parse(f.trim()).ok_or_else(|| {
                        CoreError::Config(format!("unknown field '{f}' in blocking rule '{p}'"))
                    })
                })
                .collect::<CoreResult<Vec<Field>>>()?;
            if fields.len() > 2 {
                return Err(CoreError::Config(format!(
                    "blocking rule part '{p}' joins more than two fields"
                )));
            }
            let tr = tr.trim();
            let transform = match tr {
                "exact" => Transform::Exact,
                "phonetic" => Transform::Phonetic,
                "initial" => Transform::Initial,
                "year" => Transform::Year,
                "local" => Transform::Local,
                "domain" => Transform::Domain,
                "nick" => Transform::Nick,
                "nickinitial" => Transform::NickInitial,
                "letters" => Transform::Letters,
                "sorted" => Transform::Sorted,
                _ => match (
                    tr.strip_prefix("prefix")
                        .and_then(|n| n.parse::<usize>().ok()),
                    tr.strip_prefix("suffix")
                        .and_then(|n| n.parse::<usize>().ok()),
                ) {
                    (Some(n), _) if n > 0 => Transform::Prefix(n),
                    (_, Some(n)) if n > 0 => Transform::Suffix(n),
                    _ => {
                        return Err(CoreError::Config(format!(
                            "unknown transform '{tr}' in blocking rule '{p}'"
                        )))
                    }
                },
            };
            out.push(KeyPart { fields, transform });
        }
        Ok(Rule {
            name: parts.join(" & "),
            parts: out,
        })
    }

    /// The fields this rule reads.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.parts.iter().flat_map(|p| p.fields.iter().copied())
    }
}

/// The default rules: they need no tuning for contact data.
///
/// Strong identifiers first, then an address or birth date with a name,
/// then names alone and email local parts; under the pair budget the rules
/// yielding the fewest pairs go in first (see [`candidate_pairs`]).
pub fn default_rules() -> Vec<Rule> {
    [
        &["email"][..],
        &["phone"],
        &["street", "postcode"],
        &["postcode", "birth_date"],
        &["last_name", "street"],
        &["last_name", "birth_date"],
        &["first_name:nick", "street"],
        &["first_name:nick", "birth_date"],
        &["first_name:phonetic", "birth_date"],
        &["company", "last_name:phonetic"],
        &["company", "first_name:nick"],
        &["last_name:phonetic", "postcode"],
        &["first_name:nick", "postcode"],
        &["last_name", "first_name:initial", "city"],
        &["first_name:nick", "city", "last_name:initial"],
        &["first_name:initial", "last_name:prefix4", "birth_date:year"],
        &["first_name+last_name:phonetic", "birth_date:year"],
        &["first_name:nick", "last_name:phonetic"],
        &["first_name+last_name:phonetic"],
        &["last_name:phonetic", "first_name:nickinitial"],
        &["email:local"],
        &["email:letters"],
        &["email:sorted"],
    ]
    .iter()
    .map(|p| Rule::parse(p).expect("default rules parse"))
    .collect()
}

/// Limits on blocking.
#[derive(Debug, Clone, Copy)]
pub struct BlockLimits {
    /// Blocks with more rows than this are windowed instead of fully paired.
    pub max_block: usize,
    /// Window of the sorted neighbourhood in oversized blocks.
    pub window: usize,
    /// Global budget of candidate pairs (before the union removes repeats).
    pub max_pairs: usize,
}

/// The first `n` characters of `s`.
fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(k, _)| &s[..k])
}

fn piece(v: &Value, f: Field, t: Transform) -> Option<Cow<'_, str>> {
    let s: &str = &v.text;
    let out: Cow<'_, str> = match t {
        Transform::Exact => Cow::Borrowed(s),
        Transform::Prefix(n) => Cow::Borrowed(prefix(s, n)),
        Transform::Suffix(n) => {
            let k = s.chars().count();
            if k < n {
                return None;
            }
            let start = s.char_indices().nth(k - n).map_or(s.len(), |(b, _)| b);
            Cow::Borrowed(&s[start..])
        }
        Transform::Letters => {
            let src = if f == Field::Email { v.local() } else { s };
            if src.chars().all(char::is_alphabetic) {
                Cow::Borrowed(src)
            } else {
                Cow::Owned(src.chars().filter(|c| c.is_alphabetic()).collect())
            }
        }
        Transform::Phonetic => {
            if v.code.is_empty() {
                return None;
            }
            Cow::Borrowed(&v.code)
        }
        Transform::Initial => Cow::Borrowed(prefix(s, 1)),
        Transform::Year => Cow::Borrowed(prefix(s, 4)),
        Transform::Local => Cow::Borrowed(v.local()),
        Transform::Domain => Cow::Borrowed(v.domain()),
        Transform::Nick => Cow::Borrowed(formal(v)),
        Transform::NickInitial => Cow::Borrowed(prefix(formal(v), 1)),
        Transform::Sorted => {
            let mut cs: Vec<char> = s.chars().collect();
            cs.sort_unstable();
            Cow::Owned(cs.into_iter().collect())
        }
    };
    (!out.is_empty()).then_some(out)
}

fn formal(v: &Value) -> &str {
    match v.nick.first() {
        Some(&g) => nicknames::GROUPS[g as usize][0],
        None => &v.text,
    }
}

fn hasher() -> impl Hasher {
    RandomState::with_seeds(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344).build_hasher()
}

/// The hash of one value's key piece under a transform; 0 when the piece
/// is missing (never 0 otherwise).
pub fn piece_hash(v: &Value, f: Field, t: Transform) -> u64 {
    piece(v, f, t).map_or(0, |p| {
        let mut h = hasher();
        p.hash(&mut h);
        h.finish() | 1
    })
}

/// Mix a piece hash into a key (a folded 64x64->128 multiply).
#[inline]
fn mix(h: u64, x: u64) -> u64 {
    let p = u128::from(h ^ x).wrapping_mul(0x5851_f42d_4c95_7f2d_u128 | 1 << 64);
    (p as u64) ^ ((p >> 64) as u64)
}

const KEY_SEED: u64 = 0x243f_6a88_85a3_08d3;

/// A key from its parts' piece hashes (`(a, 0)` for a one-field part, the
/// two hashes of a two-field part in either order); `None` if one is 0.
fn combine(parts: impl Iterator<Item = (u64, u64, bool)>) -> Option<u64> {
    let mut h = KEY_SEED;
    for (a, b, two) in parts {
        if a == 0 || (two && b == 0) {
            return None;
        }
        if two {
            h = mix(mix(h, a.min(b)), a.max(b));
        } else {
            h = mix(h, a);
        }
        h = mix(h, 0xff);
    }
    Some(h)
}

/// The key of a row (or a new record) under a rule; `None` if a part is missing.
///
/// Equal to the key [`blocks_of`] gives a row of the dataset with the same values.
pub fn key_of(rule: &Rule, side: &Side<'_>) -> Option<u64> {
    let ph = |f: Field, t: Transform| -> u64 {
        side.values[f.index()].map_or(0, |(_, v)| piece_hash(v, f, t))
    };
    combine(rule.parts.iter().map(|p| {
        let a = ph(p.fields[0], p.transform);
        match p.fields.get(1) {
            Some(&f2) => (a, ph(f2, p.transform), true),
            None => (a, 0, false),
        }
    }))
}

/// Piece hashes per distinct value for every `(field, transform)` the rules
/// use, so a row's key is a few table lookups.
pub struct KeyTables<'d> {
    ds: &'d Dataset,
    tables: ahash::AHashMap<(Field, Transform), Vec<u64>>,
}

impl<'d> KeyTables<'d> {
    /// The tables of `rules` over `ds` (missing fields give no table).
    pub fn new(ds: &'d Dataset, rules: &[Rule]) -> KeyTables<'d> {
        let mut wanted: Vec<(Field, Transform)> = rules
            .iter()
            .flat_map(|r| {
                r.parts
                    .iter()
                    .flat_map(|p| p.fields.iter().map(move |&f| (f, p.transform)))
            })
            .filter(|(f, _)| ds.column(*f).is_some())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let tables = wanted
            .into_par_iter()
            .map(|(f, t)| {
                let col = ds.column(f).expect("filtered above");
                let h: Vec<u64> = col.values.par_iter().map(|v| piece_hash(v, f, t)).collect();
                ((f, t), h)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        KeyTables { ds, tables }
    }

    fn slot(&self, f: Field, t: Transform) -> Option<(&'d [u32], &[u64])> {
        let col = self.ds.column(f)?;
        Some((&col.codes[..], self.tables.get(&(f, t))?.as_slice()))
    }

    /// The tables of `rule`'s parts, looked up once for all rows.
    pub fn rule(&self, rule: &Rule) -> RuleKeys<'_> {
        RuleKeys {
            parts: rule
                .parts
                .iter()
                .map(|p| {
                    (
                        self.slot(p.fields[0], p.transform),
                        p.fields.get(1).map(|&f| self.slot(f, p.transform)),
                    )
                })
                .collect(),
        }
    }

    /// The key of dataset row `row` under `rule` (as [`key_of`] gives it).
    pub fn key(&self, rule: &Rule, row: usize) -> Option<u64> {
        self.rule(rule).key(row)
    }
}

type Slot<'a> = Option<(&'a [u32], &'a [u64])>;

/// One rule's piece tables, resolved (see [`KeyTables::rule`]).
pub struct RuleKeys<'a> {
    parts: Vec<(Slot<'a>, Option<Slot<'a>>)>,
}

impl RuleKeys<'_> {
    #[inline]
    fn piece(slot: &Slot<'_>, row: usize) -> u64 {
        match slot {
            Some((codes, h)) => match codes[row] {
                NULL => 0,
                c => h[c as usize],
            },
            None => 0,
        }
    }

    /// The key of dataset row `row`.
    #[inline]
    pub fn key(&self, row: usize) -> Option<u64> {
        combine(self.parts.iter().map(|(a, b)| {
            let x = Self::piece(a, row);
            match b {
                Some(b) => (x, Self::piece(b, row), true),
                None => (x, 0, false),
            }
        }))
    }
}

/// Sort `v` by its first element's top bits into buckets, then each bucket
/// in parallel: the same order as a plain sort, with a cache-friendly
/// second step. `top(x)` must be monotone in `x`'s order and below `buckets`.
fn bucket_sort<T, F>(v: Vec<T>, buckets: usize, top: F) -> Vec<T>
where
    T: Ord + Copy + Send + Default,
    F: Fn(&T) -> usize + Sync,
{
    if v.len() < 1 << 14 {
        let mut v = v;
        v.sort_unstable();
        return v;
    }
    let mut start = vec![0usize; buckets + 1];
    for x in &v {
        start[top(x) + 1] += 1;
    }
    for b in 1..=buckets {
        start[b] += start[b - 1];
    }
    let mut out = vec![T::default(); v.len()];
    let mut fill = start.clone();
    for x in v {
        let b = top(&x);
        out[fill[b]] = x;
        fill[b] += 1;
    }
    let mut parts: Vec<&mut [T]> = Vec::with_capacity(buckets);
    let mut rest: &mut [T] = &mut out;
    for b in 0..buckets {
        let (head, tail) = rest.split_at_mut(start[b + 1] - start[b]);
        parts.push(head);
        rest = tail;
    }
    parts.into_par_iter().for_each(|p| p.sort_unstable());
    out
}

/// The sort key of the sorted neighbourhood: surname, first name, birth date.
pub fn sort_key<'a>(side: &Side<'a>) -> (&'a str, &'a str, &'a str) {
    let t = |f: Field| side.values[f.index()].map_or("", |(_, v)| &*v.text);
    (t(Field::LastName), t(Field::FirstName), t(Field::BirthDate))
}

/// The rank of every distinct value of a column in text order (from 1; the
/// text of a missing value, empty, sorts first).
fn value_ranks(col: &Column) -> Vec<u32> {
    let mut order: Vec<u32> = (0..col.values.len() as u32).collect();
    order.par_sort_unstable_by(|&a, &b| {
        col.values[a as usize]
            .text
            .cmp(&col.values[b as usize].text)
    });
    let mut rank = vec![0u32; order.len()];
    for (k, &c) in order.iter().enumerate() {
        rank[c as usize] = k as u32 + 1;
    }
    rank
}

/// The rank of every row in [`sort_key`] order (ties broken by row); the
/// text is compared once per distinct value, rows by integer ranks.
pub fn ranks(ds: &Dataset) -> Vec<u32> {
    let n = ds.len();
    let per_col: Vec<Option<(Vec<u32>, &[u32])>> =
        [Field::LastName, Field::FirstName, Field::BirthDate]
            .par_iter()
            .map(|&f| ds.column(f).map(|c| (value_ranks(c), &c.codes[..])))
            .collect();
    let at = |k: usize, r: usize| -> u32 {
        per_col[k].as_ref().map_or(0, |(vr, codes)| match codes[r] {
            NULL => 0,
            c => vr[c as usize],
        })
    };
    let mut keys: Vec<(u32, u32, u32, u32)> = (0..n)
        .into_par_iter()
        .map(|r| (at(0, r), at(1, r), at(2, r), r as u32))
        .collect();
    keys.par_sort_unstable();
    let mut rank = vec![0u32; n];
    for (k, key) in keys.iter().enumerate() {
        rank[key.3 as usize] = k as u32;
    }
    rank
}

/// The blocks of one rule: `(key, row)` sorted by key then rank, and the
/// `(start, end)` range of each block of `min_size` rows or more.
pub fn blocks_of(
    rule: &Rule,
    tables: &KeyTables<'_>,
    rank: &[u32],
    min_size: usize,
) -> (Vec<(u64, u32)>, Vec<(usize, usize)>) {
    let n = rank.len();
    let keys = tables.rule(rule);
    // Sort plain (key, rank, row) triples: no rank lookups in comparisons.
    let triples: Vec<(u64, u32, u32)> = (0..n)
        .into_par_iter()
        .with_min_len(4096)
        .filter_map(|r| keys.key(r).map(|k| (k, rank[r], r as u32)))
        .collect();
    let bits = (triples.len() / 512).max(2).ilog2().min(16);
    let triples = bucket_sort(triples, 1 << bits, |t| (t.0 >> (64 - bits)) as usize);
    let keyed: Vec<(u64, u32)> = triples.into_iter().map(|(k, _, r)| (k, r)).collect();
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 1..=keyed.len() {
        if i == keyed.len() || keyed[i].0 != keyed[start].0 {
            if i - start >= min_size {
                ranges.push((start, i));
            }
            start = i;
        }
    }
    (keyed, ranges)
}

#[cfg(test)]
fn block_pair_count(size: usize, lim: &BlockLimits) -> usize {
    if size <= lim.max_block {
        size * (size - 1) / 2
    } else {
        let w = lim.window.min(size - 1);
        // Each of the first size-w rows has w successors; the tail fewer.
        (size - w) * w + w * (w - 1) / 2
    }
}

/// Packs a pair of rows (any order) into the `i << 32 | j` form with `i < j`.
pub fn pack(a: u32, b: u32) -> u64 {
    let (i, j) = if a < b { (a, b) } else { (b, a) };
    ((i as u64) << 32) | j as u64
}

/// Unpacks a pair.
pub fn unpack(p: u64) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// Counts reported by blocking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockStats {
    /// Pairs generated by each rule before the union and the budget.
    pub pairs_per_rule: Vec<(String, usize)>,
    /// Number of oversized blocks that were windowed.
    pub blocks_windowed: usize,
    /// Rules that lost pairs to the pair budget.
    pub rules_skipped: usize,
}

/// The pairs of one block of `rows` (fully paired, or windowed when oversized).
fn block_pairs<'r>(rows: &'r [(u64, u32)], lim: &BlockLimits) -> impl Iterator<Item = u64> + 'r {
    let w = if rows.len() <= lim.max_block {
        rows.len()
    } else {
        lim.window + 1
    };
    (0..rows.len())
        .flat_map(move |a| (a + 1..rows.len().min(a + w)).map(move |b| pack(rows[a].1, rows[b].1)))
}

/// The union of candidate pairs of all rules, sorted, each pair once;
/// `rank` is [`ranks`] of the rows.
///
/// The pair budget `lim.max_pairs` holds for the union: each pair counts
/// as coming from the smallest block that proposes it, and when the union
/// is over budget the pairs of the largest blocks (the least selective keys,
/// windowed blocks last) are dropped first, with a warning naming the rules
/// that lost pairs.
pub fn candidate_pairs(
    ds: &Dataset,
    rank: &[u32],
    rules: &[Rule],
    lim: &BlockLimits,
    warnings: &mut Vec<String>,
) -> (Vec<u64>, BlockStats) {
    let mut stats = BlockStats::default();
    let tables = KeyTables::new(ds, rules);
    // (pair, block size << 8 | rule): sorting puts each pair's smallest block first.
    let one = |k: usize, rule: &Rule| {
        let (keyed, ranges) = blocks_of(rule, &tables, rank, 2);
        let (windowed, largest) = ranges
            .iter()
            .map(|&(s, e)| e - s)
            .filter(|&n| n > lim.max_block)
            .fold((0, 0), |(k, m), n| (k + 1, m.max(n)));
        let rule_tag = k.min(255) as u32;
        let pairs: Vec<(u64, u32)> = ranges
            .par_iter()
            .flat_map_iter(|&(s, e)| {
                let tag = ((e - s).min(0xff_ffff) as u32) << 8 | rule_tag;
                block_pairs(&keyed[s..e], lim).map(move |p| (p, tag))
            })
            .collect();
        (pairs, windowed, largest)
    };
    // Two rules at a time, so that the serial parts of one overlap the other.
    let mut per_rule: Vec<Vec<(u64, u32)>> = Vec::with_capacity(rules.len());
    // Windowed blocks: one warning for all rules, naming the largest block's.
    let (mut windowing_rules, mut largest) = (0, (0, ""));
    for (c, two) in rules.chunks(2).enumerate() {
        let done: Vec<_> = two
            .par_iter()
            .enumerate()
            .map(|(k, rule)| one(2 * c + k, rule))
            .collect();
        for ((pairs, windowed, big), rule) in done.into_iter().zip(two) {
            stats.blocks_windowed += windowed;
            if windowed > 0 {
                windowing_rules += 1;
                if big > largest.0 {
                    largest = (big, rule.name.as_str());
                }
            }
            stats.pairs_per_rule.push((rule.name.clone(), pairs.len()));
            per_rule.push(pairs);
        }
    }
    if windowing_rules > 0 {
        warnings.push(format!(
            "blocking: {} blocks larger than {} rows, in {} of {} rules, were searched with a sorted window of {} (largest: {} rows, rule '{}')",
            stats.blocks_windowed,
            lim.max_block,
            windowing_rules,
            rules.len(),
            lim.window,
            largest.0,
            largest.1
        ));
    }
    drop(tables);
    // One allocation for the union, each rule's pairs freed once moved.
    let mut tagged: Vec<(u64, u32)> = Vec::with_capacity(per_rule.iter().map(Vec::len).sum());
    for pairs in per_rule {
        tagged.extend_from_slice(&pairs);
    }
    // Sorted in place: the union is the largest array of the whole fit.
    tagged.par_sort_unstable();
    tagged.dedup_by_key(|t| t.0);
    if tagged.len() > lim.max_pairs {
        // Keep the `max_pairs` smallest (block size, rule, pair): find the
        // first one dropped, then filter in place (pair order is kept).
        let mut by_size: Vec<(u32, u64)> = tagged.par_iter().map(|&(p, t)| (t, p)).collect();
        let (_, &mut first_out, _) = by_size.select_nth_unstable(lim.max_pairs);
        drop(by_size);
        let cut = first_out.0 >> 8;
        let mut lost = vec![false; rules.len()];
        for &(p, t) in &tagged {
            if (t, p) >= first_out {
                lost[(t & 0xff) as usize] = true;
            }
        }
        tagged.retain(|&(p, t)| (t, p) < first_out);
        let names: Vec<&str> = rules
            .iter()
            .zip(&lost)
            .filter(|(_, &l)| l)
            .map(|(r, _)| r.name.as_str())
            .collect();
        stats.rules_skipped = names.len();
        warnings.push(format!(
            "the pair budget of {} is spent: pairs from blocks of {} rows or more were dropped (rules {})",
            lim.max_pairs,
            cut,
            names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        ));
    }
    (tagged.into_iter().map(|(p, _)| p).collect(), stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedupe::compare::Side;
    use crate::dedupe::Dataset;

    fn ds(rows: &[(&str, &str, &str)]) -> Dataset {
        let col = |k: usize| -> Vec<Option<String>> {
            rows.iter()
                .map(|r| {
                    let s = [r.0, r.1, r.2][k];
                    (!s.is_empty()).then(|| s.to_string())
                })
                .collect()
        };
        Dataset::from_columns(
            (0..rows.len() as i64).collect(),
            vec![
                (Field::FirstName, col(0)),
                (Field::LastName, col(1)),
                (Field::Postcode, col(2)),
            ],
        )
        .unwrap()
        .0
    }

    fn run(
        d: &Dataset,
        rules: &[Rule],
        lim: &BlockLimits,
        w: &mut Vec<String>,
    ) -> (Vec<u64>, BlockStats) {
        candidate_pairs(d, &ranks(d), rules, lim, w)
    }

    #[test]
    fn rules_parse_and_reject_typos() {
        let r = Rule::parse(&["first_name+last_name:phonetic", "postcode:prefix3"]).unwrap();
        assert_eq!(r.parts[1].transform, Transform::Prefix(3));
        assert!(Rule::parse(&["frist_name"]).is_err());
        assert!(Rule::parse(&["email:soundex"]).is_err());
        assert!(Rule::parse(&[]).is_err());
        assert!(Rule::parse(&["last_name:suffix0"]).is_err());
        assert!(default_rules().len() >= 8);
    }

    #[test]
    fn suffix_and_letters_keys() {
        let (d, _) = Dataset::from_columns(
            vec![1, 2, 3],
            vec![
                (
                    Field::LastName,
                    vec![
                        Some("kelley".into()),
                        Some("kekley".into()),
                        Some("ley".into()),
                    ],
                ),
                (
                    Field::Email,
                    vec![
                        Some("mary.garcia@x.org".into()),
                        Some("marygarcia27@y.com".into()),
                        Some("mary@x.org".into()),
                    ],
                ),
            ],
        )
        .unwrap();
        let key = |rule: &[&str], r: usize| {
            key_of(&Rule::parse(rule).unwrap(), &Side::of_row(&d, &[], r))
        };
        assert_eq!(
            key(&["last_name:suffix3"], 0),
            key(&["last_name:suffix3"], 1)
        );
        assert_eq!(key(&["last_name:suffix4"], 2), None);
        assert_ne!(
            key(&["last_name:suffix4"], 0),
            key(&["last_name:suffix4"], 1)
        );
        assert_eq!(key(&["email:letters"], 0), key(&["email:letters"], 1));
        assert_ne!(key(&["email:letters"], 0), key(&["email:letters"], 2));
    }

    #[test]
    fn union_keeps_each_pair_once() {
        let d = ds(&[
            ("ann", "lee", "a1"),
            ("ann", "lee", "a1"),
            ("lee", "ann", "b2"),
            ("bob", "ray", "a1"),
        ]);
        let rules = vec![
            Rule::parse(&["postcode"]).unwrap(),
            Rule::parse(&["first_name+last_name:phonetic"]).unwrap(),
        ];
        let lim = BlockLimits {
            max_block: 10,
            window: 2,
            max_pairs: 100,
        };
        let mut w = vec![];
        let (pairs, stats) = run(&d, &rules, &lim, &mut w);
        let got: Vec<(u32, u32)> = pairs.iter().map(|&p| unpack(p)).collect();
        assert_eq!(got, vec![(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]);
        assert_eq!(stats.pairs_per_rule[0].1, 3);
        assert!(w.is_empty());
    }

    #[test]
    fn giant_blocks_are_windowed_with_a_warning() {
        let rows: Vec<(String, String, String)> = (0..50)
            .map(|i| (format!("n{i:02}"), format!("s{i:02}"), "same".to_string()))
            .collect();
        let refs: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
            .collect();
        let d = ds(&refs);
        let lim = BlockLimits {
            max_block: 10,
            window: 3,
            max_pairs: 10_000,
        };
        let mut w = vec![];
        let (pairs, stats) = run(&d, &[Rule::parse(&["postcode"]).unwrap()], &lim, &mut w);
        assert_eq!(pairs.len(), block_pair_count(50, &lim));
        assert_eq!(pairs.len(), 47 * 3 + 3);
        assert_eq!(stats.blocks_windowed, 1);
        assert_eq!(w.len(), 1);
        // Neighbours in sort order (surname) are paired.
        assert!(pairs.contains(&pack(0, 1)) && pairs.contains(&pack(0, 3)));
        assert!(!pairs.contains(&pack(0, 4)));
        // Two rules windowing: one warning, naming the rule of the largest block.
        let rows: Vec<(String, String, String)> = (0..50)
            .map(|i| {
                let last = if i < 20 { "same" } else { "other" };
                (format!("n{i:02}"), last.to_string(), "pc".to_string())
            })
            .collect();
        let refs: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str()))
            .collect();
        let rules = [
            Rule::parse(&["last_name"]).unwrap(),
            Rule::parse(&["postcode"]).unwrap(),
        ];
        let mut w = vec![];
        let (_, stats) = run(&ds(&refs), &rules, &lim, &mut w);
        assert_eq!(stats.blocks_windowed, 3);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("3 blocks larger than 10 rows, in 2 of 2 rules"));
        assert!(
            w[0].contains("largest: 50 rows, rule 'postcode'"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn the_budget_holds_for_the_union_and_drops_the_largest_blocks_first() {
        // Postcode blocks: {0,1} and {2,3,4,5}; first-name blocks: every row.
        let d = ds(&[
            ("ann", "a", "x"),
            ("ann", "b", "x"),
            ("ann", "c", "y"),
            ("ann", "d", "y"),
            ("ann", "e", "y"),
            ("ann", "f", "y"),
        ]);
        let rules = vec![
            Rule::parse(&["first_name"]).unwrap(),
            Rule::parse(&["postcode"]).unwrap(),
        ];
        for budget in 0..=16 {
            let lim = BlockLimits {
                max_block: 10,
                window: 3,
                max_pairs: budget,
            };
            let mut w = vec![];
            let (pairs, stats) = run(&d, &rules, &lim, &mut w);
            assert!(pairs.len() <= budget, "budget {budget}: {}", pairs.len());
            assert!(pairs.windows(2).all(|p| p[0] < p[1]));
            assert_eq!(pairs.len(), budget.min(15));
            // The smallest blocks go in first: postcode {0,1}, then {2..5}.
            assert_eq!(pairs.first() == Some(&pack(0, 1)), budget > 0);
            if budget <= 7 {
                let post = [
                    pack(2, 3),
                    pack(2, 4),
                    pack(2, 5),
                    pack(3, 4),
                    pack(3, 5),
                    pack(4, 5),
                ];
                assert!(pairs.iter().skip(1).all(|p| post.contains(p)));
            }
            if budget < 15 {
                assert_eq!(stats.rules_skipped, 1 + usize::from(budget < 7));
                assert!(w
                    .iter()
                    .any(|m| m.contains("'first_name'") && m.contains("budget")));
            } else {
                assert!(w.is_empty());
            }
        }
    }

    #[test]
    fn table_keys_equal_the_keys_of_sides() {
        let rows = [
            ("ann", "lee", "a1"),
            ("bill", "smith", ""),
            ("lee", "ann", "a1"),
            ("", "o'neil", "b 2"),
            ("william", "smith", "b 2"),
            ("zoë", "", "a1"),
        ];
        let d = ds(&rows);
        let mut rules = default_rules();
        rules.extend(
            [
                &["first_name:sorted", "postcode:suffix2"][..],
                &["last_name:letters", "first_name:prefix2"],
                &["first_name+last_name:exact"],
            ]
            .iter()
            .map(|p| Rule::parse(p).unwrap()),
        );
        let present = d.fields();
        rules.retain(|r| r.fields().all(|f| present.contains(&f)));
        let tables = KeyTables::new(&d, &rules);
        let mut some = 0;
        for rule in &rules {
            for r in 0..d.len() {
                let k = tables.key(rule, r);
                assert_eq!(
                    k,
                    key_of(rule, &Side::of_row(&d, &[], r)),
                    "{} row {r}",
                    rule.name
                );
                some += usize::from(k.is_some());
            }
        }
        assert!(some > 10);
        let swapped = Rule::parse(&["first_name+last_name:exact"]).unwrap();
        assert_eq!(tables.key(&swapped, 0), tables.key(&swapped, 2));
        assert_ne!(tables.key(&swapped, 0), tables.key(&swapped, 1));
    }

    #[test]
    fn sorted_keys_group_swapped_characters() {
        let d = ds(&[("jhon", "x", ""), ("john", "y", ""), ("joan", "z", "")]);
        let key = |r: usize| {
            key_of(
                &Rule::parse(&["first_name:sorted"]).unwrap(),
                &Side::of_row(&d, &[], r),
            )
        };
        assert_eq!(key(0), key(1));
        assert_ne!(key(0), key(2));
    }

    #[test]
    fn the_pair_budget_cuts_a_block_it_cannot_hold() {
        let d = ds(&[("a", "b", "x"), ("a", "b", "x"), ("a", "b", "x")]);
        let lim = BlockLimits {
            max_block: 10,
            window: 3,
            max_pairs: 2,
        };
        let mut w = vec![];
        let (pairs, stats) = run(&d, &[Rule::parse(&["postcode"]).unwrap()], &lim, &mut w);
        assert_eq!(pairs.len(), 2);
        assert_eq!(stats.rules_skipped, 1);
        assert!(w[0].contains("budget"));
    }
}
