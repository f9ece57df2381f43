//! Evaluate a [`Plan`] over a [`Snapshot`]: one roaring bitmap per segment,
//! computed over blocks of 65 536 contacts in parallel (deterministic: each
//! block's result depends only on its rows). Also: diffs, single-contact
//! updates, explanations and exclusive segment sets.

use std::collections::HashMap;

use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::{CoreError, CoreResult};

use super::ast::{AggFunc, Expr, Operand};
use super::compile::{FlatGraph, Node, Plan};
use super::events::{TimeSlice, EVENT_BLOCK};
use super::packed::{each, wide, PackedSlice};
use super::simd::{self, portable as fill};
use super::snapshot::{
    bit, list_items, AggAcc, AggIndex, AggValue, Column, Dict, LeafCodes, Snapshot, Store, Value,
};
use super::strindex;
use super::typecheck::{FPred, IPred, Leaf, Src, StrPred, TExpr};
use super::{FieldType, DAY};

const BLOCK: usize = 1 << 16;
const _: () = assert!(BLOCK == EVENT_BLOCK);
const SUB: usize = 1024;
const SW: usize = SUB / 64;

/// The memberships of every segment at one as-of time.
#[derive(Debug, Clone)]
pub struct EvalResult {
    /// Segment names, in plan order.
    pub names: Vec<String>,
    /// Members of each segment, as snapshot row indices.
    pub bitmaps: Vec<RoaringBitmap>,
    /// The as-of time of the evaluation (epoch seconds).
    pub as_of: i64,
    /// The id of the plan that computed it ([`Plan::id`]).
    pub plan: u64,
}

impl PartialEq for EvalResult {
    /// Same names, members and as-of time (whichever plan computed them).
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && self.bitmaps == other.bitmaps && self.as_of == other.as_of
    }
}

impl EvalResult {
    /// Number of members of each segment.
    pub fn counts(&self) -> Vec<u64> {
        self.bitmaps.iter().map(RoaringBitmap::len).collect()
    }

    /// The bitmap of a segment by name.
    pub fn get(&self, name: &str) -> Option<&RoaringBitmap> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.bitmaps[i])
    }

    /// Entered and exited rows of each segment since `prev` (a segment
    /// missing from `prev` counts as empty there).
    pub fn diff(&self, prev: &EvalResult) -> Vec<(String, RoaringBitmap, RoaringBitmap)> {
        let empty = RoaringBitmap::new();
        self.names
            .iter()
            .zip(&self.bitmaps)
            .map(|(n, cur)| {
                let old = prev.get(n).unwrap_or(&empty);
                (n.clone(), cur - old, old - cur)
            })
            .collect()
    }
}

/// A change to one contact: new values for some fields and/or new interactions.
#[derive(Debug, Clone, Default)]
pub struct RowUpdate {
    /// (field, new value).
    pub values: Vec<(String, Value)>,
    /// (kind, time, amount).
    pub interactions: Vec<(String, i64, Option<f64>)>,
}

/// Why a contact is or is not in a segment, clause by clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    /// The clause's text.
    pub text: String,
    /// Its value for the contact.
    pub value: bool,
    /// True when the clause is false because the value it reads is missing.
    pub null: bool,
    /// Sub-clauses (and / or / not / in_segment).
    pub children: Vec<Explain>,
}

enum Bound<'a> {
    Codes {
        col: &'a Column,
        codes: PackedSlice<'a>,
        valid: &'a [u64],
        bits: Vec<u64>,
    },
    List {
        col: &'a Column,
        bits: Vec<u64>,
        negated: bool,
    },
    /// A list leaf answered from the column's postings: the rows holding an
    /// accepted item (`negated`: the valid rows holding none).
    Rows {
        rows: Vec<u64>,
        valid: &'a [u64],
        negated: bool,
    },
    Bool {
        bits: &'a [u64],
        valid: &'a [u64],
        value: bool,
    },
    IntCol {
        vals: &'a [i64],
        valid: &'a [u64],
        pred: IPred,
    },
    IntCol32 {
        vals: &'a [i32],
        valid: &'a [u64],
        pred: IPred,
    },
    FloatCol {
        vals: &'a [f64],
        valid: &'a [u64],
        pred: FPred,
    },
    IntAgg {
        agg: usize,
        pred: IPred,
    },
    FloatAgg {
        agg: usize,
        pred: FPred,
    },
    NullCol {
        valid: &'a [u64],
        negated: bool,
    },
    NullAgg {
        agg: usize,
        negated: bool,
    },
    Const(bool),
}

/// True when a dictionary is much larger than the rows reading it (a
/// snapshot gathered from a bigger one): test only the codes in use.
fn sparse_dict(dict_len: usize, rows: usize) -> bool {
    dict_len > 2 * rows + 1024
}

/// A literal that every string matching `pattern` starts with, when the
/// pattern is anchored (`^abc...`) and has no alternation; None otherwise
/// (a conservative reading: it may miss a prefix, never invent one).
pub(crate) fn literal_prefix(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('^')?;
    if pattern.contains('|') {
        return None;
    }
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-' | ',' | ':' | '/' | '=')) {
            break;
        }
        out.push(c);
        chars.next();
    }
    // A quantifier makes the last character optional or repeated.
    if matches!(chars.peek(), Some('*' | '?' | '{' | '+')) {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

/// The key a string or list leaf's code test is kept under in its
/// dictionary (see [`Dict::tested`]): the same key, the same test.
fn test_key(leaf: &Leaf) -> Option<String> {
    match leaf {
        Leaf::Str { pred, .. } => Some(format!("{pred:?}")),
        Leaf::List { values, .. } => Some(format!("list {values:?}")),
        _ => None,
    }
}

/// The codes of `dict` that pass the test `make` makes, as bits. Over a
/// dictionary much larger than the column's rows only the codes the rows use
/// are tested. Each worker makes its own test (a regex clone keeps its own
/// match cache instead of contending for a shared one). Bits the dictionary
/// keeps for `key` are read instead of testing again; a test over the whole
/// dictionary is kept there.
fn code_bits<F: Fn(&str) -> bool>(
    col: &Column,
    dict: &Dict,
    key: Option<&str>,
    rows: usize,
    make: impl Fn() -> F + Sync,
) -> Vec<u64> {
    let n = dict.values.len();
    let mut bits = vec![0u64; n.div_ceil(64).max(1)];
    // Codes below `done` are known from the kept bits.
    let mut done = 0;
    if let Some(kept) = key.and_then(|k| dict.tested(k)) {
        bits[..kept.bits.len()].copy_from_slice(&kept.bits);
        done = kept.n;
        if done == n {
            return bits;
        }
    }
    if sparse_dict(n - done, rows) {
        let test = make();
        let mut seen = vec![0u64; bits.len()];
        let mut visit = |c: usize| {
            if c >= done && seen[c >> 6] >> (c & 63) & 1 == 0 {
                seen[c >> 6] |= 1 << (c & 63);
                if test(&dict.values[c]) {
                    bits[c >> 6] |= 1 << (c & 63);
                }
            }
        };
        for r in (0..rows).filter(|&r| col.is_valid(r)) {
            match &col.store {
                Store::Str { codes, .. } => visit(codes.get(r) as usize),
                Store::List {
                    start, len, codes, ..
                } => list_items(start, len, codes, r)
                    .iter()
                    .for_each(|c| visit(c as usize)),
                _ => {}
            }
        }
        return bits;
    }
    // Large dictionaries are tested in parallel, 64 codes per word (from
    // the word holding the first code not yet known).
    const WORDS: usize = 1024;
    let w0 = done / 64;
    bits[w0..]
        .par_chunks_mut(WORDS)
        .enumerate()
        .for_each_init(&make, |test, (ci, out)| {
            let base = (w0 + ci * WORDS) * 64;
            let end = (base + out.len() * 64).min(n);
            for c in base.max(done).min(end)..end {
                if test(&dict.values[c]) {
                    let i = c - base;
                    out[i >> 6] |= 1 << (i & 63);
                }
            }
        });
    if let Some(k) = key {
        dict.keep_tested(k, n, &bits);
    }
    bits
}

fn resolve_within(p: &IPred, as_of: i64) -> IPred {
    match p {
        IPred::Within(d) => {
            IPred::Range(as_of.saturating_sub((*d as i64).saturating_mul(DAY)), as_of)
        }
        other => other.clone(),
    }
}

/// The snapshot column a plan column reads (None: not supplied, all null).
fn snap_column<'a>(plan: &Plan, snap: &'a Snapshot, col: usize) -> CoreResult<Option<&'a Column>> {
    let (name, ty) = &plan.schema.fields()[col];
    match snap.column(name) {
        Some((ci, sty)) if sty == *ty => Ok(snap.columns[ci].as_ref()),
        Some((_, sty)) => Err(CoreError::InvalidInput(format!(
            "field '{name}' is a {} in the plan but a {} in the snapshot",
            ty.name(),
            sty.name()
        ))),
        None => Ok(None),
    }
}

/// Code bitmaps of the `matches` leaves that share a string column, found in
/// one pass over the column's dictionary with a `RegexSet` (instead of one
/// pass per pattern). Keyed by leaf index.
fn regex_set_bits(plan: &Plan, snap: &Snapshot, leaf_ids: &[usize]) -> HashMap<usize, Vec<u64>> {
    let mut by_col: HashMap<usize, Vec<(usize, &str)>> = HashMap::new();
    for &l in leaf_ids {
        if let Leaf::Str {
            col,
            pred: StrPred::Matches(r),
        } = &plan.leaves[l]
        {
            by_col.entry(*col).or_default().push((l, r.as_str()));
        }
    }
    let mut out = HashMap::new();
    let mut cols: Vec<_> = by_col.into_iter().filter(|(_, v)| v.len() >= 2).collect();
    cols.sort_by_key(|(c, _)| *c);
    for (c, leaves) in cols {
        let Ok(Some(col)) = snap_column(plan, snap, c) else {
            continue;
        };
        let Store::Str { dict, .. } = &col.store else {
            continue;
        };
        // Bits the dictionary kept from an earlier run over all of it.
        let keys: Vec<Option<String>> = leaves
            .iter()
            .map(|&(l, _)| test_key(&plan.leaves[l]))
            .collect();
        let kept: Option<Vec<_>> = keys
            .iter()
            .map(|k| {
                k.as_deref()
                    .and_then(|k| dict.tested(k))
                    .filter(|t| t.n == dict.values.len())
            })
            .collect();
        if let Some(kept) = kept {
            for ((l, _), t) in leaves.iter().zip(kept) {
                out.insert(*l, t.bits.clone());
            }
            continue;
        }
        let Ok(set) = regex::RegexSet::new(leaves.iter().map(|(_, p)| *p)) else {
            continue;
        };
        let k = leaves.len();
        let words = dict.values.len().div_ceil(64).max(1);
        // When every pattern has a literal prefix, a string starting with
        // none of them matches none.
        let prefixes: Option<Vec<String>> = leaves.iter().map(|(_, p)| literal_prefix(p)).collect();
        let maybe = |s: &str| {
            prefixes
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| s.starts_with(p.as_str())))
        };
        if sparse_dict(dict.values.len(), snap.len()) {
            // Test only the codes the rows use.
            let Store::Str { codes, .. } = &col.store else {
                continue;
            };
            // The distinct codes in use, then tested in parallel (each worker
            // with its own copy of the set).
            let mut seen = vec![0u64; words];
            let mut used = Vec::new();
            for r in (0..snap.len()).filter(|&r| col.is_valid(r)) {
                let c = codes.get(r) as usize;
                if seen[c >> 6] >> (c & 63) & 1 == 0 {
                    seen[c >> 6] |= 1 << (c & 63);
                    used.push(c as u32);
                }
            }
            let found: Vec<Vec<(u32, usize)>> = used
                .par_chunks(1 << 12)
                .map_init(
                    || (set.clone(), vec![false; k]),
                    |(set, hit), part| {
                        let mut out = Vec::new();
                        for &c in part {
                            let s = &dict.values[c as usize];
                            hit.iter_mut().for_each(|h| *h = false);
                            if maybe(s) && set.matches_read_at(hit, s, 0) {
                                out.extend(
                                    hit.iter()
                                        .enumerate()
                                        .filter(|(_, h)| **h)
                                        .map(|(p, _)| (c, p)),
                                );
                            }
                        }
                        out
                    },
                )
                .collect();
            let mut per_leaf = vec![vec![0u64; words]; k];
            for &(c, p) in found.iter().flatten() {
                per_leaf[p][(c >> 6) as usize] |= 1 << (c & 63);
            }
            for ((l, _), bits) in leaves.into_iter().zip(per_leaf) {
                out.insert(l, bits);
            }
            continue;
        }
        const CHUNK: usize = 64 * 64;
        let nv = dict.values.len();
        let parts: Vec<Vec<u64>> = (0..nv.div_ceil(CHUNK))
            .into_par_iter()
            .map_init(
                || set.clone(),
                |set, ci| {
                    let (a, z) = (ci * CHUNK, ((ci + 1) * CHUNK).min(nv));
                    let cw = (z - a).div_ceil(64);
                    let mut bits = vec![0u64; k * cw];
                    let mut hit = vec![false; k];
                    for (i, s) in (a..z).map(|c| &dict.values[c]).enumerate() {
                        hit.iter_mut().for_each(|h| *h = false);
                        if maybe(s) && set.matches_read_at(&mut hit, s, 0) {
                            for (p, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
                                bits[p * cw + (i >> 6)] |= 1 << (i & 63);
                            }
                        }
                    }
                    bits
                },
            )
            .collect();
        let mut per_leaf = vec![vec![0u64; words]; k];
        for (ci, part) in parts.iter().enumerate() {
            let cw = part.len() / k;
            for (p, dst) in per_leaf.iter_mut().enumerate() {
                let base = ci * (CHUNK / 64);
                dst[base..base + cw].copy_from_slice(&part[p * cw..(p + 1) * cw]);
            }
        }
        for (((l, _), bits), key) in leaves.into_iter().zip(per_leaf).zip(&keys) {
            if let Some(k) = key {
                dict.keep_tested(k, nv, &bits);
            }
            out.insert(l, bits);
        }
    }
    out
}

fn bind<'a>(
    plan: &Plan,
    snap: &'a Snapshot,
    li: usize,
    as_of: i64,
    pre: &HashMap<usize, Vec<u64>>,
    index_strings: bool,
) -> CoreResult<Bound<'a>> {
    let leaf = &plan.leaves[li];
    let agg = plan.leaf_agg[li];
    let col = match leaf.src() {
        Src::Col(c) => snap_column(plan, snap, c)?,
        Src::Agg(_) => None,
    };
    Ok(match (leaf, agg, col) {
        (Leaf::IsNull { negated, .. }, Some(a), _) => Bound::NullAgg {
            agg: a,
            negated: *negated,
        },
        (Leaf::IsNull { negated, .. }, None, Some(c)) => Bound::NullCol {
            valid: &c.valid,
            negated: *negated,
        },
        (Leaf::IsNull { negated, .. }, None, None) => Bound::Const(!*negated),
        (Leaf::Int { pred, .. }, Some(a), _) => Bound::IntAgg {
            agg: a,
            pred: resolve_within(pred, as_of),
        },
        (Leaf::Float { pred, .. }, Some(a), _) => Bound::FloatAgg {
            agg: a,
            pred: pred.clone(),
        },
        (_, None, None) => Bound::Const(false),
        (Leaf::Str { pred, .. }, None, Some(c)) => match &c.store {
            Store::Str { codes, dict } => Bound::Codes {
                col: c,
                codes: codes.as_slice(),
                valid: &c.valid,
                bits: match (pre.get(&li), test_key(leaf)) {
                    (Some(bits), _) => bits.clone(),
                    (None, key)
                        if dict.values.len() >= strindex::MIN_INDEXED
                            && !sparse_dict(dict.values.len(), snap.len())
                            && key.as_deref().and_then(|k| dict.tested(k)).is_none()
                            && strindex::plan_lookup(pred).is_some_and(|(rev, _)| {
                                index_strings || dict.sorted_if_built(rev).is_some()
                            }) =>
                    {
                        // A large dictionary: prefixes, suffixes, values and
                        // ranges are runs of its sorted orders.
                        let (rev, lookup) = strindex::plan_lookup(pred).expect("checked");
                        let bits =
                            strindex::indexed_bits(pred, &lookup, &dict.values, dict.sorted(rev));
                        if let Some(k) = &key {
                            dict.keep_tested(k, dict.values.len(), &bits);
                        }
                        bits
                    }
                    (None, key) => match pred {
                        StrPred::Matches(re) => {
                            // A literal every match starts with rules most
                            // strings out before the regex runs.
                            let prefix = literal_prefix(re.as_str());
                            code_bits(c, dict, key.as_deref(), snap.len(), || {
                                let re = re.clone();
                                let prefix = prefix.clone();
                                move |s: &str| {
                                    prefix.as_deref().is_none_or(|p| s.starts_with(p))
                                        && re.is_match(s)
                                }
                            })
                        }
                        _ => code_bits(c, dict, key.as_deref(), snap.len(), || {
                            |s: &str| pred.test(s)
                        }),
                    },
                },
            },
            _ => Bound::Const(false),
        },
        (
            Leaf::List {
                values, negated, ..
            },
            None,
            Some(c),
        ) => match &c.store {
            Store::List { dict, .. } => {
                let bits = match pre.get(&li) {
                    Some(bits) => bits.clone(),
                    None => code_bits(c, dict, test_key(leaf).as_deref(), snap.len(), || {
                        |s: &str| values.binary_search_by(|v| v.as_str().cmp(s)).is_ok()
                    }),
                };
                // A preview reads the rows of the accepted items from the
                // column's postings instead of every row's list.
                match index_strings
                    .then(|| c.postings(MAX_TRANSPOSED_DICT))
                    .flatten()
                {
                    Some(post) => {
                        let mut rows = vec![0u64; c.valid.len()];
                        for (code, p) in post.iter().enumerate() {
                            if bits
                                .get(code >> 6)
                                .is_some_and(|w| w >> (code & 63) & 1 == 1)
                            {
                                for r in p {
                                    rows[(r >> 6) as usize] |= 1 << (r & 63);
                                }
                            }
                        }
                        Bound::Rows {
                            rows,
                            valid: &c.valid,
                            negated: *negated,
                        }
                    }
                    None => Bound::List {
                        col: c,
                        bits,
                        negated: *negated,
                    },
                }
            }
            _ => Bound::Const(false),
        },
        (Leaf::Bool { value, .. }, None, Some(c)) => match &c.store {
            Store::Bool(bits) => Bound::Bool {
                bits,
                valid: &c.valid,
                value: *value,
            },
            _ => Bound::Const(false),
        },
        (Leaf::Int { pred, .. }, None, Some(c)) => match &c.store {
            Store::Int(vals) => Bound::IntCol {
                vals,
                valid: &c.valid,
                pred: resolve_within(pred, as_of),
            },
            Store::Int32(vals) => Bound::IntCol32 {
                vals,
                valid: &c.valid,
                pred: resolve_within(pred, as_of),
            },
            _ => Bound::Const(false),
        },
        (Leaf::Float { pred, .. }, None, Some(c)) => match &c.store {
            Store::Float(vals) => Bound::FloatCol {
                vals,
                valid: &c.valid,
                pred: pred.clone(),
            },
            _ => Bound::Const(false),
        },
        _ => Bound::Const(false),
    })
}

#[inline(always)]
fn fill_i(out: &mut [u64], vals: &[i64], valid: &[u64], p: &IPred) {
    match p {
        IPred::Range(lo, hi) => simd::range_i64(out, vals, valid, *lo, *hi),
        IPred::NotIn(vs) if vs.len() == 1 => {
            let x = vs[0];
            fill(out, vals, valid, |v| v != x)
        }
        p => fill(out, vals, valid, |v| p.test(v, 0)),
    }
}

fn fill_i32(out: &mut [u64], vals: &[i32], valid: &[u64], p: &IPred) {
    match p {
        IPred::Range(lo, hi) => simd::range_i32(out, vals, valid, *lo, *hi),
        p => fill(out, vals, valid, |v| p.test(v as i64, 0)),
    }
}

#[inline(always)]
fn fill_f(out: &mut [u64], vals: &[f64], valid: &[u64], p: &FPred) {
    match p {
        FPred::Range {
            lo,
            lo_incl,
            hi,
            hi_incl,
        } => simd::range_f64(out, vals, valid, (*lo, *lo_incl), (*hi, *hi_incl)),
        FPred::NotIn(vs) if vs.len() == 1 => {
            let x = vs[0];
            fill(out, vals, valid, |v| v != x)
        }
        FPred::In(vs) if vs.len() == 1 => {
            let x = vs[0];
            fill(out, vals, valid, |v| v == x)
        }
        p => fill(out, vals, valid, |v| p.test(v)),
    }
}

/// A leaf on a dictionary-coded column answered from per-code row bitmaps:
/// the OR of the bitmaps of `slots`, or (`invert`) the valid rows outside
/// that OR.
struct CodeSet {
    tid: usize,
    slots: Vec<u32>,
    invert: bool,
}

/// Dictionaries up to this size may be transposed (their code -> slot table
/// stays in cache).
const MAX_TRANSPOSED_DICT: usize = 1 << 16;
/// Single-row evaluation resolves the satisfying codes of string and list
/// leaves over dictionaries up to this size (a bit per code: 256 KiB at
/// most per leaf), so that a row is tested by reading one bit instead of
/// its string.
const MAX_ROW_DICT: usize = 1 << 21;
/// A leaf is answered by ORing at most this many code bitmaps.
const MAX_CODESET: usize = 64;
/// No slot: the code is read by no transposed leaf.
const NO_SLOT: u32 = u32::MAX;

fn dict_len(c: &Column) -> usize {
    match &c.store {
        Store::Str { dict, .. } | Store::List { dict, .. } => dict.values.len(),
        _ => usize::MAX,
    }
}

/// A transposed column: only the codes some leaf reads get a row bitmap.
struct Transposed<'a> {
    col: &'a Column,
    /// Slot of each code (`NO_SLOT`: not read).
    slot: Vec<u32>,
    nslots: usize,
}

/// Fill `buf` (nslots x SW words) with one row bitmap per read code for rows
/// `sub..sub + 64*nw`.
fn transpose(t: &Transposed<'_>, buf: &mut [u64], sub: usize, nw: usize) {
    buf.iter_mut().for_each(|x| *x = 0);
    let w0 = sub / 64;
    let slot = &t.slot;
    let c = t.col;
    for w in 0..nw {
        let mut m = c.valid[w0 + w];
        while m != 0 {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            let r = sub + w * 64 + j;
            match &c.store {
                Store::Str { codes, .. } => {
                    let s = slot[codes.get(r) as usize];
                    if s != NO_SLOT {
                        buf[s as usize * SW + w] |= 1 << j;
                    }
                }
                Store::List {
                    start, len, codes, ..
                } => {
                    for code in list_items(start, len, codes, r).iter() {
                        let s = slot[code as usize];
                        if s != NO_SLOT {
                            buf[s as usize * SW + w] |= 1 << j;
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Aggregate columns for one block of rows.
#[derive(Default)]
struct BlockAggs {
    ints: Vec<Vec<i64>>,
    floats: Vec<Vec<f64>>,
    valid: Vec<Vec<u64>>,
    seen: Vec<Vec<u32>>,
}

/// Buffers one worker reuses from block to block.
#[derive(Default)]
struct Scratch {
    aggs: Vec<BlockAggs>,
    arena: Vec<u64>,
    trans: Vec<Vec<u64>>,
    segbuf: Vec<u64>,
}

/// Reset `v` to `len` copies of `x`, reusing its allocation.
fn reset<T: Copy>(v: &mut Vec<T>, len: usize, x: T) {
    v.clear();
    v.resize(len, x);
}

#[inline(never)]
fn block_aggs(
    snap: &Snapshot,
    idx: &AggIndex,
    start: usize,
    end: usize,
    as_of: i64,
    out: &mut BlockAggs,
) {
    let len = end - start;
    let k = idx.len();
    let funcs: Vec<AggFunc> = idx.funcs().to_vec();
    let BlockAggs {
        ints,
        floats,
        valid,
        seen,
    } = out;
    ints.resize_with(k, Vec::new);
    floats.resize_with(k, Vec::new);
    valid.resize_with(k, Vec::new);
    // How many values each row's aggregate saw (for the ones null over nothing).
    seen.resize_with(k, Vec::new);
    for (a, f) in funcs.iter().enumerate() {
        if !idx.used(a) {
            continue;
        }
        reset(&mut valid[a], len / 64, 0);
        match f {
            AggFunc::Count | AggFunc::Sum => seen[a].clear(),
            _ => reset(&mut seen[a], len, 0),
        }
        if f.reads_amount() {
            reset(&mut floats[a], len, 0.0);
        } else {
            reset(&mut ints[a], len, 0);
        }
    }
    let n = snap.len();
    let live = end.min(n).saturating_sub(start);
    let bi = start / EVENT_BLOCK;
    #[inline(always)]
    fn apply(
        f: AggFunc,
        (int, float, seen): (&mut i64, &mut f64, Option<&mut u32>),
        time: i64,
        amount: f64,
    ) {
        let has = !amount.is_nan();
        match f {
            AggFunc::Count => *int += 1,
            AggFunc::Sum => {
                if has {
                    *float += amount;
                }
            }
            AggFunc::Avg => {
                if has {
                    *float += amount;
                    *seen.expect("avg counts") += 1;
                }
            }
            AggFunc::Min | AggFunc::Max => {
                if has {
                    let seen = seen.expect("min/max count");
                    *float = if *seen == 0 {
                        amount
                    } else if f == AggFunc::Min {
                        float.min(amount)
                    } else {
                        float.max(amount)
                    };
                    *seen += 1;
                }
            }
            AggFunc::First | AggFunc::Last => {
                let seen = seen.expect("first/last count");
                *int = if *seen == 0 {
                    time
                } else if f == AggFunc::First {
                    (*int).min(time)
                } else {
                    (*int).max(time)
                };
                *seen += 1;
            }
        }
    }
    // Stored events: per key, only those inside its window (a binary-searched
    // range of the kind's time-sorted events in this block).
    if live > 0 {
        for code in 0..idx.kinds() {
            let Some(ke) = snap.events.kind(code as u32) else {
                continue;
            };
            for &(a, lo) in idx.keys_of(code as u32) {
                let (times, rs, am) = ke.slices(ke.window(bi, lo, as_of));
                // Always true for a time-sorted block (the window was cut
                // by binary search); tested for gathered ones.
                let inw = |t: i64| lo <= t && t <= as_of;
                // One copy of the loops per time width.
                macro_rules! accumulate {
                    ($ts:expr) => {{
                        let ts = $ts;
                        let f = funcs[a];
                        match f {
                            AggFunc::Count => {
                                let v = &mut ints[a];
                                for (&r, &t) in rs.iter().zip(ts) {
                                    let t = i64::from(t);
                                    v[r as usize] += inw(t) as i64;
                                }
                            }
                            AggFunc::Sum => {
                                let v = &mut floats[a];
                                for ((&r, &x), &t) in rs.iter().zip(am).zip(ts) {
                                    let t = i64::from(t);
                                    if !x.is_nan() && inw(t) {
                                        v[r as usize] += x;
                                    }
                                }
                            }
                            AggFunc::Avg | AggFunc::Min | AggFunc::Max => {
                                let (v, c) = (&mut floats[a], &mut seen[a]);
                                for ((&r, &x), &t) in rs.iter().zip(am).zip(ts) {
                                    let t = i64::from(t);
                                    if inw(t) {
                                        let r = r as usize;
                                        let mut dummy = 0i64;
                                        apply(f, (&mut dummy, &mut v[r], Some(&mut c[r])), 0, x);
                                    }
                                }
                            }
                            AggFunc::First | AggFunc::Last => {
                                let (v, c) = (&mut ints[a], &mut seen[a]);
                                for (&r, &t) in rs.iter().zip(ts) {
                                    let t = i64::from(t);
                                    if inw(t) {
                                        let r = r as usize;
                                        let mut dummy = 0f64;
                                        apply(
                                            f,
                                            (&mut v[r], &mut dummy, Some(&mut c[r])),
                                            t,
                                            f64::NAN,
                                        );
                                    }
                                }
                            }
                        }
                    }};
                }
                match times {
                    TimeSlice::W32(ts) => accumulate!(ts),
                    TimeSlice::W64(ts) => accumulate!(ts),
                }
            }
        }
    }
    // Events appended by single-contact updates.
    for (r, evs) in snap.events.extra_in(start, start + live) {
        let i = r - start;
        for e in evs {
            if e.time > as_of {
                continue;
            }
            for &(a, lo) in idx.keys_of(e.kind) {
                if e.time < lo {
                    continue;
                }
                let f = funcs[a];
                let (mut di, mut df) = (0i64, 0f64);
                let int = if f.reads_amount() {
                    &mut di
                } else {
                    &mut ints[a][i]
                };
                let float = if f.reads_amount() {
                    &mut floats[a][i]
                } else {
                    &mut df
                };
                let sn = match f {
                    AggFunc::Count | AggFunc::Sum => None,
                    _ => Some(&mut seen[a][i]),
                };
                apply(f, (int, float, sn), e.time, e.amount);
            }
        }
    }
    for a in (0..k).filter(|&a| idx.used(a)) {
        let vw = &mut valid[a];
        match funcs[a] {
            AggFunc::Count | AggFunc::Sum => {
                for (w, x) in vw.iter_mut().enumerate() {
                    let lo = w * 64;
                    *x = if lo + 64 <= live {
                        !0
                    } else if lo < live {
                        (1u64 << (live - lo)) - 1
                    } else {
                        0
                    };
                }
            }
            f => {
                let cnt = &seen[a];
                for (i, &c) in cnt.iter().enumerate().take(live) {
                    if c > 0 {
                        vw[i >> 6] |= 1 << (i & 63);
                    }
                }
                if f == AggFunc::Avg {
                    for (v, &c) in floats[a].iter_mut().zip(cnt) {
                        if c > 0 {
                            *v /= c as f64;
                        }
                    }
                }
            }
        }
    }
}

/// A list leaf over rows whose starts, lengths and validity words begin
/// the slices given: a row is in when one of its items' codes has its bit
/// set in `bits` (`negated`: a valid row with none).
#[inline(always)]
fn list_leaf<L: Copy + Into<u32>, C: Copy + Into<u32>>(
    out: &mut [u64],
    start: &[u32],
    len: &[L],
    codes: &[C],
    valid: &[u64],
    bits: &[u64],
    negated: bool,
) {
    // Null and padding rows hold empty lists: no branch on validity.
    // The first few items of every row are read without a branch on
    // the list's length (masked past it); longer lists loop.
    const HEAD: usize = 4;
    let last = codes.len().saturating_sub(1);
    let hit = |c: C| {
        let c: u32 = c.into();
        bits[(c >> 6) as usize] >> (c & 63) & 1
    };
    for (w, o) in out.iter_mut().enumerate() {
        let vw = valid[w];
        let (st, ln) = (&start[w * 64..w * 64 + 64], &len[w * 64..w * 64 + 64]);
        let mut m = 0u64;
        if codes.is_empty() {
            *o = if negated { vw } else { 0 };
            continue;
        }
        for (j, (&s, &l)) in st.iter().zip(ln).enumerate() {
            let (s, l) = (s as usize, l.into() as usize);
            let mut any = 0u64;
            for k in 0..HEAD {
                any |= hit(codes[(s + k).min(last)]) & u64::from(k < l);
            }
            if l > HEAD {
                for &c in &codes[s + HEAD..s + l] {
                    any |= hit(c);
                }
            }
            m |= any << j;
        }
        *o = if negated { vw & !m } else { vw & m };
    }
}

/// Evaluate a leaf for rows `sub..sub + 64*out.len()` (`sub` relative to
/// the snapshot; `bstart` is the block start for aggregate columns).
#[inline(never)]
fn eval_leaf(b: &Bound<'_>, out: &mut [u64], sub: usize, bstart: usize, aggs: &BlockAggs) {
    let w0 = sub / 64;
    let nw = out.len();
    let (rel, rw0) = (sub - bstart, (sub - bstart) / 64);
    match b {
        Bound::Codes {
            codes, valid, bits, ..
        } => each!(PackedSlice, codes.from(sub), cs => fill(out, cs, &valid[w0..], |c| {
            let c = wide(c);
            bits[(c >> 6) as usize] >> (c & 63) & 1 == 1
        })),
        Bound::List { col, bits, negated } => {
            let Store::List {
                start, len, codes, ..
            } = &col.store
            else {
                return;
            };
            let valid = &col.valid[w0..];
            let start = &start[sub..];
            each!(PackedSlice, codes.as_slice(), cs => {
                each!(PackedSlice, len.as_slice().from(sub), ls => {
                    list_leaf(out, start, ls, cs, valid, bits, *negated)
                })
            })
        }
        Bound::Rows {
            rows,
            valid,
            negated,
        } => {
            for (w, o) in out.iter_mut().enumerate() {
                let (x, v) = (rows[w0 + w], valid[w0 + w]);
                *o = if *negated { v & !x } else { x & v };
            }
        }
        Bound::Bool { bits, valid, value } => {
            for (w, o) in out.iter_mut().enumerate() {
                let v = bits[w0 + w];
                *o = if *value { v } else { !v } & valid[w0 + w];
            }
        }
        Bound::IntCol { vals, valid, pred } => fill_i(out, &vals[sub..], &valid[w0..], pred),
        Bound::IntCol32 { vals, valid, pred } => fill_i32(out, &vals[sub..], &valid[w0..], pred),
        Bound::FloatCol { vals, valid, pred } => fill_f(out, &vals[sub..], &valid[w0..], pred),
        Bound::IntAgg { agg, pred } => {
            fill_i(out, &aggs.ints[*agg][rel..], &aggs.valid[*agg][rw0..], pred)
        }
        Bound::FloatAgg { agg, pred } => fill_f(
            out,
            &aggs.floats[*agg][rel..],
            &aggs.valid[*agg][rw0..],
            pred,
        ),
        Bound::NullCol { valid, negated } => {
            for (w, o) in out.iter_mut().enumerate() {
                *o = if *negated {
                    valid[w0 + w]
                } else {
                    !valid[w0 + w]
                };
            }
        }
        Bound::NullAgg { agg, negated } => {
            for (w, o) in out.iter_mut().enumerate() {
                let v = aggs.valid[*agg][rw0 + w];
                *o = if *negated { v } else { !v };
            }
        }
        Bound::Const(c) => out.iter_mut().for_each(|o| *o = if *c { !0 } else { 0 }),
    }
    let _ = nw;
}

/// Evaluate every segment of the plan at `as_of`.
pub fn evaluate(plan: &Plan, snap: &Snapshot, as_of: i64) -> CoreResult<EvalResult> {
    let all: Vec<usize> = (0..plan.names.len()).collect();
    let bms = evaluate_segments(plan, snap, as_of, &all)?;
    Ok(EvalResult {
        names: plan.names.clone(),
        bitmaps: bms,
        as_of,
        plan: plan.id,
    })
}

/// Evaluate only the named segments (and what they read through
/// `in_segment`): a preview. The result holds just those segments, in the
/// order given, and cannot be updated in place or moved in time. The first
/// preview with a prefix, suffix, value or range leaf on a large string
/// dictionary (from [`strindex::MIN_INDEXED`] strings) sorts that dictionary
/// once, forward or by reversed bytes; later evaluations read the order.
pub fn evaluate_named(
    plan: &Plan,
    snap: &Snapshot,
    as_of: i64,
    names: &[String],
) -> CoreResult<EvalResult> {
    let segs = names
        .iter()
        .map(|n| {
            plan.segment(n)
                .ok_or_else(|| CoreError::InvalidInput(format!("no segment named '{n}'")))
        })
        .collect::<CoreResult<Vec<_>>>()?;
    // A preview: the sorted orders of large dictionaries are worth building
    // (prefix and suffix leaves then read runs, not every string).
    let bitmaps = evaluate_segments_with(plan, snap, &[as_of], &segs, true)?
        .pop()
        .expect("one time");
    Ok(EvalResult {
        names: names.to_vec(),
        bitmaps,
        as_of,
        // No plan computed all of it: updates and clock moves refuse it.
        plan: 0,
    })
}

/// Re-evaluate at a new as-of time, recomputing only the segments that depend
/// on the clock and keeping the others from `prev` (which must be this plan's
/// result on this snapshot).
pub fn advance_clock(
    plan: &Plan,
    snap: &Snapshot,
    prev: &EvalResult,
    as_of: i64,
) -> CoreResult<EvalResult> {
    let mut next = prev.clone();
    advance_clock_in_place(plan, snap, &mut next, as_of)?;
    Ok(next)
}

/// Move `result` (this plan's result on this snapshot) to a new as-of time
/// in place, recomputing only the segments that depend on the clock. Returns
/// the segments whose members changed, each with the rows that entered and
/// the rows that exited.
pub fn advance_clock_in_place(
    plan: &Plan,
    snap: &Snapshot,
    result: &mut EvalResult,
    as_of: i64,
) -> CoreResult<Vec<(usize, RoaringBitmap, RoaringBitmap)>> {
    if result.names != plan.names {
        return Err(CoreError::InvalidInput(
            "the previous result belongs to another plan".into(),
        ));
    }
    let clocked: Vec<usize> = (0..plan.names.len())
        .filter(|&i| plan.uses_clock[i])
        .collect();
    let t0 = result.as_of;
    // The clocked segments' bitmaps are taken out, updated in parallel and
    // put back; the others are not touched.
    let mut taken: Vec<RoaringBitmap> = clocked
        .iter()
        .map(|&s| std::mem::take(&mut result.bitmaps[s]))
        .collect();
    // Only rows holding a time that sits between an old and a new window
    // edge can change; re-evaluate the clocked segments on those rows alone.
    let cand = clock_candidates(plan, snap, t0, as_of, &clocked);
    let changes: Vec<(RoaringBitmap, RoaringBitmap)> = if cand.len() * 4 > snap.len() {
        let fresh = evaluate_segments(plan, snap, as_of, &clocked)?;
        taken
            .par_iter_mut()
            .zip(fresh)
            .map(|(bm, new)| {
                let (entered, exited) = (&new - &*bm, &*bm - &new);
                *bm = new;
                (entered, exited)
            })
            .collect()
    } else if !cand.is_empty() {
        // Evaluate the gathered rows (only the columns and interaction
        // kinds the clocked segments read) at both times: what differs is
        // what moved, mapped back to rows.
        let (cols, kinds) = clock_inputs(plan, snap, &clocked);
        let sub = snap.gather_some(&cand, Some(&cols), Some(&kinds));
        let moved = evaluate_segments_moved(plan, &sub, t0, as_of, &clocked, Some(&cand))?;
        taken
            .par_iter_mut()
            .zip(moved)
            .map(|(bm, (entered, exited))| {
                *bm |= &entered;
                *bm -= &exited;
                (entered, exited)
            })
            .collect()
    } else {
        vec![(RoaringBitmap::new(), RoaringBitmap::new()); clocked.len()]
    };
    for (&s, bm) in clocked.iter().zip(taken) {
        result.bitmaps[s] = bm;
    }
    result.as_of = as_of;
    Ok(clocked
        .into_iter()
        .zip(changes)
        .filter(|(_, (e, x))| !e.is_empty() || !x.is_empty())
        .map(|(s, (e, x))| (s, e, x))
        .collect())
}

/// The snapshot columns and interaction kind codes the clock-dependent
/// evaluation of `segs` reads, as flags.
fn clock_inputs(plan: &Plan, snap: &Snapshot, segs: &[usize]) -> (Vec<bool>, Vec<bool>) {
    let mut cols = vec![false; snap.columns.len()];
    let mut kinds = vec![false; snap.events.kinds.values.len()];
    for ni in plan.nodes_for(segs) {
        let Node::Leaf(l) = plan.nodes[ni] else {
            continue;
        };
        match plan.leaves[l].src() {
            Src::Col(c) => {
                if let Some((ci, _)) = snap.column(&plan.schema.fields()[c].0) {
                    cols[ci] = true;
                }
            }
            Src::Agg(k) => {
                if let Some(code) = snap.events.kinds.code(&k.kind) {
                    kinds[code as usize] = true;
                }
            }
        }
    }
    (cols, kinds)
}

/// Rows whose clock-dependent leaves (in the given segments) may change value
/// when the as-of time moves from `t0` to `t1`: a `within` column value, or an
/// interaction of an aggregated kind, lying between an old and a new window
/// edge (a superset; sorted).
fn clock_candidates(plan: &Plan, snap: &Snapshot, t0: i64, t1: i64, segs: &[usize]) -> Vec<u32> {
    if t0 == t1 {
        return Vec::new();
    }
    let (lo, hi) = (t0.min(t1), t0.max(t1));
    let shift = |days: u32| {
        let d = (days as i64).saturating_mul(DAY);
        (lo.saturating_sub(d), hi.saturating_sub(d))
    };
    let mut col_bands: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    let mut kind_bands: HashMap<u32, Vec<(i64, i64)>> = HashMap::new();
    for ni in plan.nodes_for(segs) {
        let Node::Leaf(l) = plan.nodes[ni] else {
            continue;
        };
        let leaf = &plan.leaves[l];
        if !leaf.uses_clock() {
            continue;
        }
        let within = match leaf {
            Leaf::Int {
                pred: IPred::Within(d),
                ..
            } => Some(*d),
            _ => None,
        };
        match leaf.src() {
            Src::Col(c) => {
                let Ok(Some(_)) = snap_column(plan, snap, c) else {
                    continue;
                };
                let (ci, _) = snap
                    .column(&plan.schema.fields()[c].0)
                    .expect("resolved above");
                let b = col_bands.entry(ci).or_default();
                b.push((lo, hi));
                if let Some(d) = within {
                    b.push(shift(d));
                }
            }
            Src::Agg(k) => {
                let Some(code) = snap.events.kinds.code(&k.kind) else {
                    continue;
                };
                let b = kind_bands.entry(code).or_default();
                b.push((lo, hi));
                if let Some(w) = k.days {
                    b.push(shift(w));
                }
                if let Some(d) = within {
                    b.push(shift(d));
                }
            }
        }
    }
    // Sorted, overlapping bands merged: a value is tested by binary search.
    for b in col_bands.values_mut().chain(kind_bands.values_mut()) {
        b.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(b.len());
        for &(lo, hi) in b.iter() {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        *b = merged;
    }
    let cols: Vec<(&Column, Vec<(i64, i64)>)> = col_bands
        .into_iter()
        .filter_map(|(ci, b)| snap.columns[ci].as_ref().map(|c| (c, b)))
        .collect();
    let nk = snap.events.kinds.values.len();
    let mut by_kind: Vec<Vec<(i64, i64)>> = vec![Vec::new(); nk];
    for (k, b) in kind_bands {
        by_kind[k as usize] = b;
    }
    let inside = |b: &[(i64, i64)], t: i64| {
        let i = b.partition_point(|&(a, _)| a <= t);
        i > 0 && t <= b[i - 1].1
    };
    let n = snap.len();
    // One block of rows per task: column values are tested row by row; the
    // events near an edge are binary-searched ranges of each kind's index.
    (0..n.div_ceil(EVENT_BLOCK))
        .into_par_iter()
        .flat_map_iter(|bi| {
            let (a, z) = (bi * EVENT_BLOCK, ((bi + 1) * EVENT_BLOCK).min(n));
            let words = (z - a).div_ceil(64);
            let mut hit = vec![0u64; words];
            // Column values: one range kernel pass per (merged) band.
            let mut band = vec![0u64; words];
            for (c, b) in &cols {
                let valid = &c.valid[a / 64..];
                for &(lo, hi) in b {
                    match &c.store {
                        Store::Int(vals) => simd::range_i64(&mut band, &vals[a..], valid, lo, hi),
                        Store::Int32(vals) => simd::range_i32(&mut band, &vals[a..], valid, lo, hi),
                        _ => continue,
                    }
                    for (h, x) in hit.iter_mut().zip(&band) {
                        *h |= x;
                    }
                }
            }
            for (code, bands) in by_kind.iter().enumerate() {
                let Some(ke) = snap.events.kind(code as u32) else {
                    continue;
                };
                for &(lo, hi) in bands {
                    let (times, rs, _) = ke.slices(ke.window(bi, lo, hi));
                    macro_rules! mark {
                        ($ts:expr) => {
                            for (&r, &t) in rs.iter().zip($ts) {
                                let t = i64::from(t);
                                if lo <= t && t <= hi {
                                    hit[r as usize >> 6] |= 1 << (r & 63);
                                }
                            }
                        };
                    }
                    match times {
                        TimeSlice::W32(ts) => mark!(ts),
                        TimeSlice::W64(ts) => mark!(ts),
                    }
                }
            }
            for (r, evs) in snap.events.extra_in(a, z) {
                if evs.iter().any(|e| {
                    by_kind
                        .get(e.kind as usize)
                        .is_some_and(|b| inside(b, e.time))
                }) {
                    hit[(r - a) >> 6] |= 1 << ((r - a) & 63);
                }
            }
            hit.into_iter().enumerate().flat_map(move |(w, mut x)| {
                std::iter::from_fn(move || {
                    (x != 0).then(|| {
                        let j = x.trailing_zeros() as usize;
                        x &= x - 1;
                        (a + w * 64 + j) as u32
                    })
                })
            })
        })
        .collect()
}

/// `out` = the words of the children `cs` (distinct, at least two after
/// flattening) folded with `op`.
#[inline(always)]
fn combine(
    out: &mut [u64],
    lower: &[u64],
    slot: &[usize],
    cs: &[usize],
    nw: usize,
    op: impl Fn(u64, u64) -> u64,
) {
    let (c0, c1) = (slot[cs[0]] * SW, slot[cs[1]] * SW);
    let (a, b) = (&lower[c0..c0 + nw], &lower[c1..c1 + nw]);
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = op(*x, *y);
    }
    for c in &cs[2..] {
        let ci = slot[*c] * SW;
        for (o, x) in out.iter_mut().zip(&lower[ci..ci + nw]) {
            *o = op(*o, *x);
        }
    }
}

/// Evaluate the given segments; returns their bitmaps in the same order.
pub fn evaluate_segments(
    plan: &Plan,
    snap: &Snapshot,
    as_of: i64,
    segs: &[usize],
) -> CoreResult<Vec<RoaringBitmap>> {
    let mut at = evaluate_segments_with(plan, snap, &[as_of], segs, false)?;
    Ok(at.pop().expect("one time"))
}

/// Evaluate the given segments at each of `times`; returns, per time, their
/// bitmaps in the same order. What does not depend on the time (the
/// dictionary codes that `matches` leaves accept, transposed columns, every
/// sub-expression without a time window) is worked out once.
pub fn evaluate_segments_at(
    plan: &Plan,
    snap: &Snapshot,
    times: &[i64],
    segs: &[usize],
) -> CoreResult<Vec<Vec<RoaringBitmap>>> {
    evaluate_segments_with(plan, snap, times, segs, false)
}

/// [`evaluate_segments_at`]; with `index_strings`, the sorted orders of
/// large string dictionaries are built when a leaf can read them (a one-off
/// cost that makes later prefix, suffix and value lookups on them runs
/// instead of scans; orders already built are read either way).
fn evaluate_segments_with(
    plan: &Plan,
    snap: &Snapshot,
    times: &[i64],
    segs: &[usize],
    index_strings: bool,
) -> CoreResult<Vec<Vec<RoaringBitmap>>> {
    let (nt, ns) = (times.len(), segs.len());
    let per_block = eval_times(plan, snap, times, segs, index_strings, |start, buf, bw| {
        (0..nt * ns)
            .map(|j| words_bitmap(start, &buf[j * bw..(j + 1) * bw]))
            .collect::<Vec<_>>()
    })?;
    let mut out = vec![vec![RoaringBitmap::new(); ns]; nt];
    for block in per_block {
        for (j, b) in block.into_iter().enumerate() {
            out[j / ns][j % ns] |= b;
        }
    }
    Ok(out)
}

/// The rows that enter and that exit each of the given segments when the
/// as-of time moves from `t0` to `t1`, in the order of `segs`: rows of
/// `snap`, or `rows[i]` for its row `i` when `rows` is given (`snap` then
/// being those rows gathered, in ascending order).
pub fn evaluate_segments_moved(
    plan: &Plan,
    snap: &Snapshot,
    t0: i64,
    t1: i64,
    segs: &[usize],
    rows: Option<&[u32]>,
) -> CoreResult<Vec<(RoaringBitmap, RoaringBitmap)>> {
    let ns = segs.len();
    let row_of = |i: usize| rows.map_or(i as u32, |r| r[i]);
    let ones = |start: usize, words: &[u64], out: &mut Vec<u32>| {
        for (w, &x) in words.iter().enumerate() {
            let mut x = x;
            while x != 0 {
                out.push(row_of(start + w * 64 + x.trailing_zeros() as usize));
                x &= x - 1;
            }
        }
    };
    let per_block = eval_times(plan, snap, &[t0, t1], segs, false, |start, buf, bw| {
        let (before, after) = buf.split_at(ns * bw);
        (0..ns)
            .map(|s| {
                let (b, a) = (&before[s * bw..(s + 1) * bw], &after[s * bw..(s + 1) * bw]);
                let (ne, nx) = b.iter().zip(a).fold((0, 0), |(e, x), (&old, &new)| {
                    (
                        e + (new & !old).count_ones() as usize,
                        x + (old & !new).count_ones() as usize,
                    )
                });
                let (mut entered, mut exited) = (Vec::with_capacity(ne), Vec::with_capacity(nx));
                for (w, (&old, &new)) in b.iter().zip(a).enumerate() {
                    if old != new {
                        ones(start + w * 64, &[new & !old], &mut entered);
                        ones(start + w * 64, &[old & !new], &mut exited);
                    }
                }
                (entered, exited)
            })
            .collect::<Vec<_>>()
    })?;
    // Blocks hold ascending rows: one bitmap per segment from the runs.
    Ok((0..ns)
        .into_par_iter()
        .map(|s| {
            let bm = |exited: bool| {
                RoaringBitmap::from_sorted_iter(per_block.iter().flat_map(|b| {
                    let (e, x) = &b[s];
                    if exited { x } else { e }.iter().copied()
                }))
                .expect("ascending rows")
            };
            (bm(false), bm(true))
        })
        .collect())
}

/// The rows set in `words` (row `start` first) as a bitmap.
fn words_bitmap(start: usize, words: &[u64]) -> RoaringBitmap {
    if words.iter().all(|&x| x == 0) {
        return RoaringBitmap::new();
    }
    RoaringBitmap::from_lsb0_bytes(start as u32, &lsb0_bytes(words))
}

/// The leaves of one evaluation time, bound.
struct TimeBound<'a> {
    bound: Vec<(usize, Bound<'a>)>,
    idx: AggIndex,
    needs_aggs: bool,
}

/// Evaluate `segs` at each of `times` block by block; `finish` turns each
/// block's words (`times × segs` runs of `bw` words, rows past the last
/// contact cleared) into that block's output, which is returned in block
/// order.
fn eval_times<R: Send>(
    plan: &Plan,
    snap: &Snapshot,
    times: &[i64],
    segs: &[usize],
    index_strings: bool,
    finish: impl Fn(usize, &mut [u64], usize) -> R + Sync,
) -> CoreResult<Vec<R>> {
    let n = snap.len();
    let np = snap.padded_len();
    let nt = times.len();
    let sel_nodes = plan.nodes_for(segs);
    let mut slot = vec![usize::MAX; plan.nodes.len()];
    for (k, &i) in sel_nodes.iter().enumerate() {
        slot[i] = k;
    }
    // The nodes that depend on the time (children come first): only they
    // are evaluated again at the later times, into slots of their own.
    let mut clocked = vec![false; sel_nodes.len()];
    for (k, &i) in sel_nodes.iter().enumerate() {
        clocked[k] = match &plan.nodes[i] {
            Node::Leaf(l) => plan.leaves[*l].uses_clock(),
            Node::And(cs) | Node::Or(cs) => cs.iter().any(|&c| clocked[slot[c]]),
            Node::Not(c) => clocked[slot[*c]],
        };
    }
    let ncl = clocked.iter().filter(|&&c| c).count();
    let mut slots: Vec<Vec<usize>> = Vec::with_capacity(nt);
    for t in 0..nt {
        let mut st = slot.clone();
        if t > 0 {
            let mut e = sel_nodes.len() + (t - 1) * ncl;
            for (k, &i) in sel_nodes.iter().enumerate() {
                if clocked[k] {
                    st[i] = e;
                    e += 1;
                }
            }
        }
        slots.push(st);
    }
    let nslots = sel_nodes.len() + nt.saturating_sub(1) * ncl;
    let mut leaf_ids: Vec<usize> = sel_nodes
        .iter()
        .filter_map(|&i| match plan.nodes[i] {
            Node::Leaf(l) => Some(l),
            _ => None,
        })
        .collect();
    leaf_ids.sort_unstable();
    let pre = regex_set_bits(plan, snap, &leaf_ids);
    let bind_at = |as_of: i64, pre: &HashMap<usize, Vec<u64>>| -> CoreResult<TimeBound<'_>> {
        let mut bound: Vec<(usize, Bound<'_>)> = leaf_ids
            .par_iter()
            .map(|&l| bind(plan, snap, l, as_of, pre, index_strings).map(|b| (l, b)))
            .collect::<CoreResult<_>>()?;
        // `last(kind)` tested against a range reaching the as-of time (`within`,
        // `after`) is true exactly when an event lies in the range: a count over
        // that window, which reads only the events inside it.
        let mut counts: Vec<(u32, i64)> = Vec::new();
        for (_, b) in bound.iter_mut() {
            let Bound::IntAgg {
                agg,
                pred: IPred::Range(lo, hi),
            } = b
            else {
                continue;
            };
            let key = &plan.aggs[*agg];
            if key.func != AggFunc::Last || key.days.is_some() || *hi < as_of {
                continue;
            }
            let Some(code) = snap.events.kinds.code(&key.kind) else {
                continue;
            };
            let j = match counts.iter().position(|&c| c == (code, *lo)) {
                Some(j) => j,
                None => {
                    counts.push((code, *lo));
                    counts.len() - 1
                }
            };
            *b = Bound::IntAgg {
                agg: plan.aggs.len() + j,
                pred: IPred::Range(1, i64::MAX),
            };
        }
        // Only the aggregates the selected segments read are computed.
        let mut used_aggs = vec![false; plan.aggs.len() + counts.len()];
        for (_, b) in &bound {
            if let Bound::IntAgg { agg, .. }
            | Bound::FloatAgg { agg, .. }
            | Bound::NullAgg { agg, .. } = b
            {
                used_aggs[*agg] = true;
            }
        }
        let needs_aggs = used_aggs.iter().any(|&u| u);
        let idx = if needs_aggs {
            let mut idx = AggIndex::new_for(
                &plan.aggs,
                &used_aggs[..plan.aggs.len()],
                &snap.events,
                as_of,
            );
            for &(code, lo) in &counts {
                idx.add_count(code, lo);
            }
            idx
        } else {
            AggIndex::default()
        };
        Ok(TimeBound {
            bound,
            idx,
            needs_aggs,
        })
    };
    let mut tb: Vec<TimeBound<'_>> = Vec::with_capacity(nt);
    let mut pre = pre;
    for (ti, &t) in times.iter().enumerate() {
        tb.push(bind_at(t, &pre)?);
        if ti == 0 && nt > 1 {
            // The codes a string or list leaf accepts do not depend on the
            // time: found once, read at every time.
            for (l, b) in &tb[0].bound {
                if let Bound::Codes { bits, .. } | Bound::List { bits, .. } = b {
                    pre.entry(*l).or_insert_with(|| bits.clone());
                }
            }
        }
    }
    let Some(first) = tb.first() else {
        return Ok(Vec::new());
    };
    let mut bound_of = vec![usize::MAX; plan.leaves.len()];
    for (k, (l, _)) in first.bound.iter().enumerate() {
        bound_of[*l] = k;
    }
    // Dictionary-coded columns read by several leaves that each test a few
    // codes are transposed per sub-block into one row bitmap per read code;
    // their leaves become ORs of those bitmaps (the same at every time).
    let chosen: Vec<Option<(&Column, Vec<u32>, bool)>> = first
        .bound
        .iter()
        .map(|(_, b)| {
            let (col, bits, list_negated) = match b {
                Bound::Codes { col, bits, .. } => (*col, bits, None),
                Bound::List { col, bits, negated } => (*col, bits, Some(*negated)),
                _ => return None,
            };
            let n = dict_len(col);
            if n > MAX_TRANSPOSED_DICT {
                return None;
            }
            let hit = |c: u32| bits[(c >> 6) as usize] >> (c & 63) & 1 == 1;
            let ones = bits.iter().map(|w| w.count_ones() as usize).sum::<usize>();
            let (set, invert) = match list_negated {
                Some(neg) => ((0..n as u32).filter(|&c| hit(c)).collect::<Vec<_>>(), neg),
                None if ones * 2 <= n => ((0..n as u32).filter(|&c| hit(c)).collect(), false),
                None => ((0..n as u32).filter(|&c| !hit(c)).collect(), true),
            };
            (set.len() <= MAX_CODESET).then_some((col, set, invert))
        })
        .collect();
    let mut readers: HashMap<usize, usize> = HashMap::new();
    for (col, _, _) in chosen.iter().flatten() {
        *readers
            .entry(std::ptr::from_ref(*col) as usize)
            .or_default() += 1;
    }
    let mut tcols: Vec<Transposed<'_>> = Vec::new();
    let mut tid_of: HashMap<usize, usize> = HashMap::new();
    let codesets: Vec<Option<CodeSet>> = chosen
        .into_iter()
        .map(|c| {
            let (col, set, invert) = c?;
            let key = std::ptr::from_ref(col) as usize;
            if readers[&key] < 2 {
                return None;
            }
            let tid = *tid_of.entry(key).or_insert_with(|| {
                tcols.push(Transposed {
                    col,
                    slot: vec![NO_SLOT; dict_len(col)],
                    nslots: 0,
                });
                tcols.len() - 1
            });
            let t = &mut tcols[tid];
            let slots = set
                .into_iter()
                .map(|code| {
                    let s = &mut t.slot[code as usize];
                    if *s == NO_SLOT {
                        *s = t.nslots as u32;
                        t.nslots += 1;
                    }
                    *s
                })
                .collect();
            Some(CodeSet { tid, slots, invert })
        })
        .collect();
    let ns = segs.len();
    let nblocks = np.div_ceil(BLOCK);
    let per_block: Vec<R> = (0..nblocks)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, bi| {
            let start = bi * BLOCK;
            let end = (start + BLOCK).min(np);
            let Scratch {
                aggs,
                arena,
                trans,
                segbuf,
            } = scratch;
            aggs.resize_with(nt, BlockAggs::default);
            for ((t, b), a) in times.iter().zip(&tb).zip(aggs.iter_mut()) {
                if b.needs_aggs {
                    block_aggs(snap, &b.idx, start, end, *t, a);
                }
            }
            let aggs = &*aggs;
            let bw = (end - start) / 64;
            // Every word read is written first in each sub-block: no zeroing.
            arena.resize(nslots * SW, 0);
            trans.resize_with(tcols.len(), Vec::new);
            for (t, buf) in tcols.iter().zip(trans.iter_mut()) {
                buf.resize(t.nslots * SW, 0);
            }
            segbuf.resize(nt * ns * bw, 0);
            let mut sub = start;
            while sub < end {
                let nw = SW.min((end - sub) / 64);
                for (t, buf) in tcols.iter().zip(trans.iter_mut()) {
                    transpose(t, buf, sub, nw);
                }
                for (ti, st) in slots.iter().enumerate() {
                    let bound = &tb[ti].bound;
                    for (k, &ni) in sel_nodes.iter().enumerate() {
                        if ti > 0 && !clocked[k] {
                            continue;
                        }
                        let (lower, upper) = arena.split_at_mut(st[ni] * SW);
                        let out = &mut upper[..nw];
                        match &plan.nodes[ni] {
                            Node::Leaf(l) => {
                                let k = bound_of[*l];
                                match &codesets[k] {
                                    Some(cs) => {
                                        out.iter_mut().for_each(|o| *o = 0);
                                        let t = &trans[cs.tid];
                                        for &c in &cs.slots {
                                            let src = &t[c as usize * SW..c as usize * SW + nw];
                                            for (o, x) in out.iter_mut().zip(src) {
                                                *o |= x;
                                            }
                                        }
                                        if cs.invert {
                                            let valid = &tcols[cs.tid].col.valid[sub / 64..];
                                            for (o, v) in out.iter_mut().zip(valid) {
                                                *o = v & !*o;
                                            }
                                        }
                                    }
                                    None => eval_leaf(&bound[k].1, out, sub, start, &aggs[ti]),
                                }
                            }
                            Node::And(cs) => combine(out, lower, st, cs, nw, |x, y| x & y),
                            Node::Or(cs) => combine(out, lower, st, cs, nw, |x, y| x | y),
                            Node::Not(c) => {
                                let ci = st[*c] * SW;
                                for (o, x) in out.iter_mut().zip(&lower[ci..ci + nw]) {
                                    *o = !x;
                                }
                            }
                        }
                    }
                    let w = (sub - start) / 64;
                    for (s, &seg) in segs.iter().enumerate() {
                        let rs = st[plan.roots[seg]] * SW;
                        let o = (ti * ns + s) * bw + w;
                        segbuf[o..o + nw].copy_from_slice(&arena[rs..rs + nw]);
                    }
                }
                sub += SUB;
            }
            // Rows past the last contact are padding.
            let live = n.saturating_sub(start).min(bw * 64);
            for j in 0..nt * ns {
                let words = &mut segbuf[j * bw..(j + 1) * bw];
                for (w, x) in words.iter_mut().enumerate() {
                    let lo = w * 64;
                    if lo >= live {
                        *x = 0;
                    } else if live - lo < 64 {
                        *x &= (1u64 << (live - lo)) - 1;
                    }
                }
            }
            finish(start, &mut segbuf[..nt * ns * bw], bw)
        })
        .collect();
    Ok(per_block)
}

/// The bytes of row-bitmap words in lsb0 order (least significant bit of the
/// first byte is the first row).
#[cfg(target_endian = "little")]
fn lsb0_bytes(words: &[u64]) -> std::borrow::Cow<'_, [u8]> {
    // SAFETY: u64 has no padding and u8 has alignment 1; on a little-endian
    // target the in-memory bytes of each word are already in lsb0 order.
    std::borrow::Cow::Borrowed(unsafe {
        std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words))
    })
}

/// The bytes of row-bitmap words in lsb0 order.
#[cfg(not(target_endian = "little"))]
fn lsb0_bytes(words: &[u64]) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Owned(words.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Reusable buffers of single-row evaluation, kept with a plan's leaf codes
/// so that an update allocates nothing in the common case.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowScratch {
    /// Node memo: `(stamp << 2) | current value | previous value << 1`.
    memo: Vec<u32>,
    /// Leaf value cache: `(stamp << 2) | 1 + value + 2 × null`.
    leafv: Vec<u32>,
    /// Previous values of the changed leaves: `(stamp << 1) | value`
    /// (other leaves had their current value).
    leaf_was: Vec<u32>,
    /// The stamp of the current pass (entries with another stamp are unset).
    stamp: u32,
    /// Aggregate accumulators of the row.
    acc: Vec<AggAcc>,
    /// Aggregate keys resolved at (as-of time, number of kinds).
    agg_index: Option<(i64, usize, AggIndex)>,
    cand: Vec<usize>,
    before: Vec<bool>,
    affected: Vec<usize>,
    /// Per plan column, its clauses transposed by code (built when first needed).
    masks: Vec<Option<ColMasks>>,
    /// The mask clauses' values of the row before and after an update.
    mask_before: Vec<u64>,
    mask_after: Vec<u64>,
    /// Per plan column, its number, boolean and null clauses side by side
    /// (built when first needed).
    scalars: Vec<Option<ColScalars>>,
}

/// One row's value of a number, date or boolean column.
#[derive(Debug, Clone, Copy)]
enum Scalar {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The clauses of one number, date or boolean column compiled for
/// single-row reading, side by side: an update of the column reads the old
/// and the new value once and tests every clause on both in one loop.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColScalars {
    /// Snapshot column.
    col: usize,
    /// The clauses and their compiled records.
    recs: Vec<(usize, RowLeaf)>,
    /// The column's other clauses (read one by one).
    rest: Vec<usize>,
}

impl ColScalars {
    /// The compiled clauses of plan column `pc`; None when the column holds
    /// no numbers, dates or booleans or no clause qualifies.
    fn build(plan: &Plan, snap: &Snapshot, lc: &LeafCodes, pc: usize) -> Option<ColScalars> {
        let ci = lc.cols.get(pc).copied().flatten()?;
        let col = snap.columns.get(ci)?.as_ref()?;
        let tags: &[u8] = match &col.store {
            Store::Int(_) | Store::Int32(_) => &[RowLeaf::INT, RowLeaf::WITHIN, RowLeaf::NULL],
            Store::Float(_) => &[RowLeaf::FLOAT, RowLeaf::NULL],
            Store::Bool(_) => &[RowLeaf::BOOL, RowLeaf::NULL],
            _ => return None,
        };
        let (mut recs, mut rest) = (Vec::new(), Vec::new());
        for &l in plan.col_leaves.get(&pc)? {
            let rl = *lc.prog.get(l)?;
            if tags.contains(&rl.tag) && rl.col as usize == ci {
                recs.push((l, rl));
            } else {
                rest.push(l);
            }
        }
        (!recs.is_empty()).then_some(ColScalars {
            col: ci,
            recs,
            rest,
        })
    }

    /// Row `r`'s value; None when the column is gone or changed kind.
    fn read(&self, snap: &Snapshot, r: usize) -> Option<Scalar> {
        let col = snap.columns.get(self.col)?.as_ref()?;
        if !col.is_valid(r) {
            return Some(Scalar::Null);
        }
        Some(match &col.store {
            Store::Int(v) => Scalar::Int(v[r]),
            Store::Int32(v) => Scalar::Int(i64::from(v[r])),
            Store::Float(v) => Scalar::Float(v[r]),
            Store::Bool(bits) => Scalar::Bool(bit(bits, r)),
            _ => return None,
        })
    }

    /// The value of a compiled clause on `v` (as [`RowEval::leaf_compiled`]
    /// reads it).
    #[inline]
    fn test(rl: &RowLeaf, v: Scalar, as_of: i64) -> bool {
        match (rl.tag, v) {
            (RowLeaf::NULL, v) => matches!(v, Scalar::Null) != (rl.flag & 1 == 1),
            (_, Scalar::Null) => false,
            (RowLeaf::INT, Scalar::Int(v)) => rl.a as i64 <= v && v <= rl.b as i64,
            (RowLeaf::WITHIN, Scalar::Int(v)) => {
                as_of.saturating_sub(rl.a as i64) <= v && v <= as_of
            }
            (RowLeaf::FLOAT, Scalar::Float(v)) => {
                let (lo, hi) = (f64::from_bits(rl.a), f64::from_bits(rl.b));
                (if rl.flag & 1 == 1 { v >= lo } else { v > lo })
                    && (if rl.flag & 2 == 2 { v <= hi } else { v < hi })
            }
            (RowLeaf::BOOL, Scalar::Bool(b)) => b == (rl.flag & 1 == 1),
            _ => false,
        }
    }
}

/// Dictionaries up to this many codes get their clauses transposed by code.
const MAX_MASK_DICT: usize = 1 << 12;

/// The string or list clauses of one column that answer from code bits,
/// transposed: for each code of the dictionary, one bit per clause telling
/// whether the clause accepts it. An update of the column then reads every
/// such clause's old and new value in a few word operations, instead of
/// testing each clause twice.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColMasks {
    /// Snapshot column.
    col: usize,
    /// The clauses, by bit position.
    leaves: Vec<usize>,
    /// Words per code.
    words: usize,
    /// Codes covered (the dictionary's size when built).
    n: usize,
    /// `n × words` bits: the clauses accepting each code.
    bits: Vec<u64>,
    /// The bits of the negated list clauses (`not in`).
    neg: Vec<u64>,
    /// The column's other clauses (read one by one).
    rest: Vec<usize>,
}

impl ColMasks {
    /// Transpose the clauses of plan column `pc` whose code bits are resolved
    /// over the whole dictionary; None when the column is not dictionary
    /// coded, its dictionary is large, or no clause qualifies.
    fn build(plan: &Plan, snap: &Snapshot, lc: &LeafCodes, pc: usize) -> Option<ColMasks> {
        let ci = lc.cols.get(pc).copied().flatten()?;
        let col = snap.columns.get(ci)?.as_ref()?;
        let (n, list) = match &col.store {
            Store::Str { dict, .. } => (dict.values.len(), false),
            Store::List { dict, .. } => (dict.values.len(), true),
            _ => return None,
        };
        if n > MAX_MASK_DICT {
            return None;
        }
        let (mut leaves, mut rest) = (Vec::new(), Vec::new());
        for &l in plan.col_leaves.get(&pc)? {
            let rl = lc.prog.get(l)?;
            let tag = if list { RowLeaf::LIST } else { RowLeaf::STR };
            if rl.tag == tag && rl.col as usize == ci && rl.n as usize == n {
                leaves.push(l);
            } else {
                rest.push(l);
            }
        }
        if leaves.is_empty() {
            return None;
        }
        let words = leaves.len().div_ceil(64);
        let mut neg = vec![0u64; words];
        for (j, &l) in leaves.iter().enumerate() {
            let rl = lc.prog[l];
            if rl.tag == RowLeaf::LIST && rl.flag & 1 == 1 {
                neg[j >> 6] |= 1 << (j & 63);
            }
        }
        let mut m = ColMasks {
            col: ci,
            leaves,
            words,
            n: 0,
            bits: Vec::new(),
            neg,
            rest,
        };
        m.transpose(lc, n);
        Some(m)
    }

    /// Transpose the clauses' bits of codes `self.n..n` (a dictionary grown
    /// to `n` codes).
    fn transpose(&mut self, lc: &LeafCodes, n: usize) {
        let w = self.words;
        self.bits.resize(n * w, 0);
        for (j, &l) in self.leaves.iter().enumerate() {
            let rl = lc.prog[l];
            let own = &lc.arena[rl.off as usize..rl.off as usize + n.div_ceil(64)];
            for c in self.n..n {
                if own[c >> 6] >> (c & 63) & 1 == 1 {
                    self.bits[c * w + (j >> 6)] |= 1 << (j & 63);
                }
            }
        }
        self.n = n;
    }

    /// Take in the codes added to a dictionary of `n` codes since the masks
    /// were built; false when a clause no longer answers from code bits
    /// over the whole dictionary (the masks must be built again).
    fn extend(&mut self, lc: &LeafCodes, n: usize) -> bool {
        let ok = self.leaves.iter().all(|&l| {
            lc.prog.get(l).is_some_and(|rl| {
                matches!(rl.tag, RowLeaf::STR | RowLeaf::LIST) && rl.n as usize == n
            })
        });
        if !ok || n < self.n {
            return false;
        }
        self.transpose(lc, n);
        true
    }

    /// Debug builds: each of `bits` (from [`ColMasks::row`] for `row`)
    /// equals its clause's own row test.
    #[cfg(debug_assertions)]
    fn check(
        &self,
        plan: &Plan,
        snap: &Snapshot,
        row: usize,
        as_of: i64,
        lc: &LeafCodes,
        bits: &[u64],
    ) {
        let mut check = RowEval::new(plan, snap, row, as_of).with_codes(lc);
        for (j, &l) in self.leaves.iter().enumerate() {
            let bit = bits[j >> 6] >> (j & 63) & 1 == 1;
            debug_assert_eq!(bit, check.leaf(l).0, "transposed clause {l}");
        }
    }

    /// The values of the clauses for row `r` of `snap`, as bits in `out`;
    /// false when the row holds a code past the transposed ones.
    fn row(&self, snap: &Snapshot, r: usize, out: &mut Vec<u64>) -> bool {
        out.clear();
        out.resize(self.words, 0);
        let Some(col) = snap.columns.get(self.col).and_then(Option::as_ref) else {
            return false;
        };
        if !col.is_valid(r) {
            // Every string and list clause is false on a missing value.
            return true;
        }
        let w = self.words;
        match &col.store {
            Store::Str { codes, .. } => {
                let c = codes.get(r) as usize;
                if c >= self.n {
                    return false;
                }
                out.copy_from_slice(&self.bits[c * w..(c + 1) * w]);
            }
            Store::List {
                start, len, codes, ..
            } => {
                for c in list_items(start, len, codes, r).iter() {
                    let c = c as usize;
                    if c >= self.n {
                        return false;
                    }
                    for (o, b) in out.iter_mut().zip(&self.bits[c * w..(c + 1) * w]) {
                        *o |= b;
                    }
                }
                for (o, x) in out.iter_mut().zip(&self.neg) {
                    *o ^= x;
                }
            }
            _ => return false,
        }
        true
    }
}

impl RowScratch {
    /// Size the buffers for `plan` and start a new pass (every memo unset).
    fn next_pass(&mut self, plan: &Plan) {
        if self.memo.len() != plan.nodes.len() || self.leafv.len() != plan.leaves.len() {
            self.memo = vec![0; plan.nodes.len()];
            self.leafv = vec![0; plan.leaves.len()];
            self.leaf_was = vec![0; plan.leaves.len()];
            self.stamp = 0;
        }
        self.stamp += 1;
        if self.stamp >= 1 << 29 {
            self.memo.fill(0);
            self.leafv.fill(0);
            self.leaf_was.fill(0);
            self.stamp = 1;
        }
    }
}

/// Evaluates nodes for a single row, memoized.
struct RowEval<'a> {
    plan: &'a Plan,
    snap: &'a Snapshot,
    row: usize,
    as_of: i64,
    sc: RowScratch,
    aggs_done: bool,
    /// Snapshot column of each plan column, resolved on first use.
    cols: Vec<Option<Option<&'a Column>>>,
    /// Satisfying codes of string and list leaves, when resolved.
    codes: Option<&'a LeafCodes>,
}

/// One leaf compiled for single-row evaluation: the test, its operands and
/// where its column and code bits are, in one record, so that evaluating it
/// reads one small record instead of following the plan's leaf tree.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowLeaf {
    /// What the leaf tests ([`RowLeaf::GENERIC`]: read the plan's leaf).
    tag: u8,
    /// `negated` / `value` (bit 0); inclusive bounds of a float range (bits 0, 1).
    flag: u8,
    /// Snapshot column.
    col: u16,
    /// Offset of the code bits in [`LeafCodes::arena`].
    off: u32,
    /// Codes resolved (a code from here on is tested on its string).
    n: u32,
    /// Words reserved in the arena.
    cap: u32,
    /// First operand (integer, or float bits).
    a: u64,
    /// Second operand (integer, or float bits).
    b: u64,
}

impl RowLeaf {
    const GENERIC: u8 = 0;
    const STR: u8 = 1;
    const LIST: u8 = 2;
    const BOOL: u8 = 3;
    const INT: u8 = 4;
    const WITHIN: u8 = 5;
    const FLOAT: u8 = 6;
    const NULL: u8 = 7;

    /// Compile leaf `l` against the resolved columns of `lc` (no code bits yet).
    fn new(plan: &Plan, lc: &LeafCodes, l: usize) -> RowLeaf {
        let mut r = RowLeaf::default();
        let col = match plan.leaves[l].src() {
            Src::Col(c) => lc.cols[c],
            Src::Agg(_) => None,
        };
        let Some(ci) = col.and_then(|ci| u16::try_from(ci).ok()) else {
            return r;
        };
        r.col = ci;
        r.tag = match &plan.leaves[l] {
            Leaf::Str { .. } => RowLeaf::STR,
            Leaf::List { negated, .. } => {
                r.flag = u8::from(*negated);
                RowLeaf::LIST
            }
            Leaf::Bool { value, .. } => {
                r.flag = u8::from(*value);
                RowLeaf::BOOL
            }
            Leaf::Int {
                pred: IPred::Range(lo, hi),
                ..
            } => {
                (r.a, r.b) = (*lo as u64, *hi as u64);
                RowLeaf::INT
            }
            Leaf::Int {
                pred: IPred::Within(d),
                ..
            } => {
                r.a = (i64::from(*d)).saturating_mul(DAY) as u64;
                RowLeaf::WITHIN
            }
            Leaf::Float {
                pred:
                    FPred::Range {
                        lo,
                        lo_incl,
                        hi,
                        hi_incl,
                    },
                ..
            } => {
                (r.a, r.b) = (lo.to_bits(), hi.to_bits());
                r.flag = u8::from(*lo_incl) | u8::from(*hi_incl) << 1;
                RowLeaf::FLOAT
            }
            Leaf::IsNull { negated, .. } => {
                r.flag = u8::from(*negated);
                RowLeaf::NULL
            }
            _ => RowLeaf::GENERIC,
        };
        r
    }
}

/// Compile every leaf of `plan` for single-row evaluation into `lc`.
fn build_row_program(plan: &Plan, lc: &mut LeafCodes) {
    lc.prog = (0..plan.leaves.len())
        .map(|l| RowLeaf::new(plan, lc, l))
        .collect();
    lc.arena.clear();
    for l in 0..plan.leaves.len() {
        sync_arena(lc, l);
    }
}

/// Copy the resolved code bits of leaf `l` into the arena (a string or list
/// leaf whose dictionary is too large to resolve stays on the generic path).
fn sync_arena(lc: &mut LeafCodes, l: usize) {
    let Some(rl) = lc.prog.get(l).copied() else {
        return;
    };
    if rl.tag != RowLeaf::STR && rl.tag != RowLeaf::LIST {
        return;
    }
    let (n, bits) = match &lc.leaves[l] {
        Some((n, bits)) => (*n, bits),
        None => {
            lc.prog[l].tag = RowLeaf::GENERIC;
            return;
        }
    };
    let (Ok(n32), Ok(words)) = (u32::try_from(n), u32::try_from(bits.len())) else {
        lc.prog[l].tag = RowLeaf::GENERIC;
        return;
    };
    let off = if words <= rl.cap {
        rl.off as usize
    } else {
        let off = lc.arena.len();
        lc.arena.resize(off + bits.len(), 0);
        lc.prog[l].cap = words;
        off
    };
    let Ok(off32) = u32::try_from(off) else {
        lc.prog[l].tag = RowLeaf::GENERIC;
        return;
    };
    lc.arena[off..off + bits.len()].copy_from_slice(bits);
    lc.prog[l].off = off32;
    lc.prog[l].n = n32;
}

/// Make sure `cache` holds the satisfying codes of string or list leaf `l`
/// (dictionaries up to [`MAX_ROW_DICT`] codes), testing only the codes
/// added since it was last resolved. Codes past the resolved size are tested
/// on their strings, so a stale entry is never wrong. With `parallel`, a
/// large dictionary resolved for the first time is tested on every core.
fn resolve_codes(plan: &Plan, snap: &Snapshot, cache: &mut LeafCodes, l: usize, parallel: bool) {
    let col = match &plan.leaves[l] {
        Leaf::Str { col, .. } | Leaf::List { col, .. } => *col,
        _ => return,
    };
    let column = cache.cols[col].and_then(|ci| snap.columns[ci].as_ref());
    let dict = match column.map(|c| &c.store) {
        Some(Store::Str { dict, .. } | Store::List { dict, .. }) => dict,
        _ => {
            cache.leaves[l] = None;
            return;
        }
    };
    let n = dict.values.len();
    if n > MAX_ROW_DICT {
        cache.leaves[l] = None;
        return;
    }
    let (done, bits) = cache.leaves[l].get_or_insert_with(|| (0, Vec::new()));
    if *done == n {
        return;
    }
    bits.resize(n.div_ceil(64).max(1), 0);
    let leaf = &plan.leaves[l];
    let test = |v: &str| match leaf {
        Leaf::Str { pred, .. } => pred.test(v),
        Leaf::List { values, .. } => values.binary_search_by(|x| x.as_str().cmp(v)).is_ok(),
        _ => false,
    };
    if parallel && *done == 0 && n > MAX_TRANSPOSED_DICT {
        // A large dictionary seen for the first time, when preparing: 64
        // codes per word, words in parallel (every code is tested: a row may
        // take any code later).
        bits.par_iter_mut().enumerate().for_each(|(w, out)| {
            for c in w * 64..((w + 1) * 64).min(n) {
                if test(&dict.values[c]) {
                    *out |= 1 << (c & 63);
                }
            }
        });
    } else {
        // Only the codes added since the last resolution.
        for c in *done..n {
            if test(&dict.values[c]) {
                bits[c >> 6] |= 1 << (c & 63);
            }
        }
    }
    *done = n;
    sync_arena(cache, l);
}

/// True when leaf `l` needs no code resolution before a row is read: it is
/// compiled for a number, boolean or null test, or its code bits cover the
/// whole dictionary of its column.
#[inline]
fn codes_current(lc: &LeafCodes, snap: &Snapshot, l: usize) -> bool {
    let Some(rl) = lc.prog.get(l) else {
        return false;
    };
    match rl.tag {
        RowLeaf::GENERIC => false,
        RowLeaf::STR | RowLeaf::LIST => match snap.columns.get(rl.col as usize) {
            Some(Some(Column {
                store: Store::Str { dict, .. } | Store::List { dict, .. },
                ..
            })) => dict.values.len() == rl.n as usize,
            _ => false,
        },
        _ => true,
    }
}

/// Hint the CPU to load the cache line holding `p` (no effect elsewhere).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing architecturally.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Start loading every value of row `r` the plan's columns hold, so that the
/// cache misses of a single-row evaluation overlap instead of queueing.
fn prefetch_row(snap: &Snapshot, cols: &[Option<usize>], r: usize) {
    fn at<T>(v: &[T], i: usize) {
        if let Some(x) = v.get(i) {
            prefetch(x);
        }
    }
    for c in cols.iter().flatten() {
        let Some(col) = snap.columns[*c].as_ref() else {
            continue;
        };
        at(&col.valid, r >> 6);
        match &col.store {
            Store::Str { codes, .. } => codes.prefetch(r),
            Store::Int(v) => at(v, r),
            Store::Int32(v) => at(v, r),
            Store::Float(v) => at(v, r),
            Store::Bool(v) => at(v, r >> 6),
            Store::List { start, len, .. } => {
                at(start, r);
                len.prefetch(r);
            }
        }
    }
}

/// Second step of [`prefetch_row`] for list columns (once a row's start
/// has arrived): start loading the row's items.
fn prefetch_list_items(snap: &Snapshot, cols: &[Option<usize>], r: usize) {
    for c in cols.iter().flatten() {
        if let Some(Column {
            store: Store::List { start, codes, .. },
            ..
        }) = snap.columns[*c].as_ref()
        {
            if let Some(&s) = start.get(r) {
                codes.prefetch(s as usize);
            }
        }
    }
}

impl<'a> RowEval<'a> {
    fn new(plan: &'a Plan, snap: &'a Snapshot, row: usize, as_of: i64) -> Self {
        Self::with_scratch(plan, snap, row, as_of, RowScratch::default())
    }

    /// An evaluator using (and starting a new pass of) reusable buffers.
    fn with_scratch(
        plan: &'a Plan,
        snap: &'a Snapshot,
        row: usize,
        as_of: i64,
        mut sc: RowScratch,
    ) -> Self {
        sc.next_pass(plan);
        RowEval {
            plan,
            snap,
            row,
            as_of,
            sc,
            aggs_done: false,
            cols: vec![None; plan.schema.len()],
            codes: None,
        }
    }

    /// Answer string and list leaves from resolved codes where possible.
    fn with_codes(mut self, codes: &'a LeafCodes) -> Self {
        self.codes = Some(codes);
        self
    }

    /// The buffers back, for the next evaluation.
    fn into_scratch(self) -> RowScratch {
        self.sc
    }

    /// The resolved satisfying-code bits of leaf `li`, valid for codes below the size returned.
    #[inline]
    fn code_bits(&self, li: usize) -> Option<(usize, &'a [u64])> {
        let c = self.codes?;
        c.leaves.get(li)?.as_ref().map(|(n, b)| (*n, b.as_slice()))
    }

    fn agg(&mut self, a: usize) -> AggValue {
        if !self.aggs_done {
            let kinds = self.snap.events.kinds.values.len();
            let fresh =
                !matches!(&self.sc.agg_index, Some((t, k, _)) if *t == self.as_of && *k == kinds);
            if fresh {
                let idx = AggIndex::new(&self.plan.aggs, &self.snap.events, self.as_of);
                self.sc.agg_index = Some((self.as_of, kinds, idx));
            }
            let (_, _, idx) = self.sc.agg_index.as_ref().expect("set above");
            self.sc.acc.resize(self.plan.aggs.len(), AggAcc::default());
            idx.row(&self.snap.events, self.row, self.as_of, &mut self.sc.acc);
            self.aggs_done = true;
        }
        self.sc.acc[a].value(self.plan.aggs[a].func)
    }

    /// (value, false-because-null) of a leaf, cached for the pass.
    fn leaf(&mut self, li: usize) -> (bool, bool) {
        let m = self.sc.leafv[li];
        if m >> 2 == self.sc.stamp {
            let v = (m & 3) - 1;
            return (v & 1 == 1, v & 2 == 2);
        }
        let (v, null) = self.leaf_uncached(li);
        self.sc.leafv[li] = self.sc.stamp << 2 | (1 + v as u32 + 2 * null as u32);
        (v, null)
    }

    /// A leaf from its compiled record; None when it needs the generic path.
    #[inline]
    fn leaf_compiled(&self, li: usize) -> Option<(bool, bool)> {
        let lc = self.codes?;
        let rl = lc.prog.get(li)?;
        if rl.tag == RowLeaf::GENERIC {
            return None;
        }
        let col = self.snap.columns.get(rl.col as usize)?.as_ref()?;
        let r = self.row;
        let valid = col.is_valid(r);
        if rl.tag == RowLeaf::NULL {
            return Some((valid == (rl.flag & 1 == 1), false));
        }
        if !valid {
            return Some((false, true));
        }
        let hit = |c: u32| -> Option<bool> {
            if c >= rl.n {
                return None;
            }
            let w = lc.arena[rl.off as usize + (c >> 6) as usize];
            Some(w >> (c & 63) & 1 == 1)
        };
        let int = |v: i64| match rl.tag {
            RowLeaf::INT => Some(rl.a as i64 <= v && v <= rl.b as i64),
            RowLeaf::WITHIN => Some(self.as_of.saturating_sub(rl.a as i64) <= v && v <= self.as_of),
            _ => None,
        };
        let v = match &col.store {
            Store::Str { codes, .. } if rl.tag == RowLeaf::STR => hit(codes.get(r))?,
            Store::List {
                start, len, codes, ..
            } if rl.tag == RowLeaf::LIST => {
                let mut any = false;
                for c in list_items(start, len, codes, r).iter() {
                    any |= hit(c)?;
                }
                any != (rl.flag & 1 == 1)
            }
            Store::Bool(bits) if rl.tag == RowLeaf::BOOL => bit(bits, r) == (rl.flag & 1 == 1),
            Store::Int(vals) => int(vals[r])?,
            Store::Int32(vals) => int(i64::from(vals[r]))?,
            Store::Float(vals) if rl.tag == RowLeaf::FLOAT => {
                let (v, lo, hi) = (vals[r], f64::from_bits(rl.a), f64::from_bits(rl.b));
                (if rl.flag & 1 == 1 { v >= lo } else { v > lo })
                    && (if rl.flag & 2 == 2 { v <= hi } else { v < hi })
            }
            _ => return None,
        };
        Some((v, false))
    }

    fn leaf_uncached(&mut self, li: usize) -> (bool, bool) {
        if let Some(v) = self.leaf_compiled(li) {
            return v;
        }
        let leaf = &self.plan.leaves[li];
        let r = self.row;
        if let Some(a) = self.plan.leaf_agg[li] {
            let v = self.agg(a);
            return match (leaf, v) {
                (Leaf::IsNull { negated, .. }, AggValue::Int(x)) => {
                    (x.is_none() != *negated, false)
                }
                (Leaf::IsNull { negated, .. }, AggValue::Float(x)) => {
                    (x.is_none() != *negated, false)
                }
                (Leaf::Int { pred, .. }, AggValue::Int(Some(x))) => {
                    (pred.test(x, self.as_of), false)
                }
                (Leaf::Float { pred, .. }, AggValue::Float(Some(x))) => (pred.test(x), false),
                _ => (false, true),
            };
        }
        let Src::Col(c) = leaf.src() else {
            return (false, true);
        };
        let resolved = match self.codes {
            Some(lc) => lc.cols[c].and_then(|ci| self.snap.columns[ci].as_ref()),
            None => match self.cols[c] {
                Some(r) => r,
                None => {
                    let r = snap_column(self.plan, self.snap, c).ok().flatten();
                    self.cols[c] = Some(r);
                    r
                }
            },
        };
        let col = match resolved {
            Some(col) => col,
            _ => {
                return match leaf {
                    Leaf::IsNull { negated, .. } => (!*negated, false),
                    _ => (false, true),
                }
            }
        };
        let valid = col.is_valid(r);
        if let Leaf::IsNull { negated, .. } = leaf {
            return (valid == *negated, false);
        }
        if !valid {
            return (false, true);
        }
        let v = match (leaf, &col.store) {
            (Leaf::Str { pred, .. }, Store::Str { codes, dict }) => {
                let c = codes.get(r) as usize;
                match self.code_bits(li) {
                    Some((n, bits)) if c < n => bits[c >> 6] >> (c & 63) & 1 == 1,
                    _ => pred.test(&dict.values[c]),
                }
            }
            (
                Leaf::List {
                    values, negated, ..
                },
                Store::List {
                    start,
                    len,
                    codes,
                    dict,
                },
            ) => {
                let items = list_items(start, len, codes, r);
                let resolved = self.code_bits(li);
                let any = items.iter().any(|c| {
                    let c = c as usize;
                    match resolved {
                        Some((n, bits)) if c < n => bits[c >> 6] >> (c & 63) & 1 == 1,
                        _ => values
                            .binary_search_by(|v| v.as_str().cmp(&dict.values[c]))
                            .is_ok(),
                    }
                });
                any != *negated
            }
            (Leaf::Bool { value, .. }, Store::Bool(bits)) => bit(bits, r) == *value,
            (Leaf::Int { pred, .. }, Store::Int(vals)) => pred.test(vals[r], self.as_of),
            (Leaf::Int { pred, .. }, Store::Int32(vals)) => pred.test(vals[r] as i64, self.as_of),
            (Leaf::Float { pred, .. }, Store::Float(vals)) => pred.test(vals[r]),
            _ => false,
        };
        (v, false)
    }

    /// Give leaf `li` the previous value `v` for this pass (its current
    /// value is read from the row).
    fn set_was(&mut self, li: usize, v: bool) {
        self.sc.leaf_was[li] = self.sc.stamp << 1 | v as u32;
    }

    /// The current value of node `i` (bit 0) and its previous value (bit 1:
    /// the leaves given by [`RowEval::set_was`] at their previous values),
    /// both in one walk: a sub-graph without a changed leaf is read once.
    fn node(&mut self, i: usize) -> u32 {
        let stamp = self.sc.stamp;
        let m = self.sc.memo[i];
        if m >> 2 == stamp {
            return m & 3;
        }
        let g = &self.plan.flat;
        let (tag, a, b) = g.nodes[i];
        let v = match tag {
            FlatGraph::LEAF => {
                let li = a as usize;
                let now = self.leaf(li).0 as u32;
                let w = self.sc.leaf_was[li];
                let was = if w >> 1 == stamp { w & 1 } else { now };
                now | was << 1
            }
            FlatGraph::AND => {
                let mut acc = 3;
                for &c in &g.kids[a as usize..(a + b) as usize] {
                    acc &= self.node(c as usize);
                    if acc == 0 {
                        break;
                    }
                }
                acc
            }
            FlatGraph::OR => {
                let mut acc = 0;
                for &c in &g.kids[a as usize..(a + b) as usize] {
                    acc |= self.node(c as usize);
                    if acc == 3 {
                        break;
                    }
                }
                acc
            }
            _ => !self.node(a as usize) & 3,
        };
        self.sc.memo[i] = stamp << 2 | v;
        v
    }
}

/// Whether row `row` is in segment `seg` at `as_of` (single-row evaluation).
pub fn row_member(plan: &Plan, snap: &Snapshot, row: usize, seg: usize, as_of: i64) -> bool {
    RowEval::new(plan, snap, row, as_of).node(plan.roots[seg]) & 1 == 1
}

/// Membership flips made by single-contact updates and not yet applied to
/// the result's bitmaps: an update records what moved here (no bitmap
/// work), and [`Journal::apply`] folds every recorded flip into the bitmaps
/// in one batch, in segment and row order, when the members are read.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// `(segment << 32 | row, entered)` in arrival order.
    flips: Vec<(u64, bool)>,
    /// Segments the last update made its contact enter, in plan order.
    pub entered: Vec<usize>,
    /// Segments the last update made its contact exit, in plan order.
    pub exited: Vec<usize>,
}

impl Journal {
    /// Number of flips waiting to be applied.
    pub fn len(&self) -> usize {
        self.flips.len()
    }

    /// True when no flip waits.
    pub fn is_empty(&self) -> bool {
        self.flips.is_empty()
    }

    /// Apply every recorded flip to `result` (the result the updates were
    /// made against) and empty the journal. A row that flips several times
    /// in a segment ends as its last flip left it.
    pub fn apply(&mut self, result: &mut EvalResult) {
        if self.flips.is_empty() {
            return;
        }
        // Stable: the flips of one (segment, row) keep their arrival order.
        self.flips.sort_by_key(|&(k, _)| k);
        let mut i = 0;
        let n = self.flips.len();
        while i < n {
            let seg = (self.flips[i].0 >> 32) as usize;
            let bm = &mut result.bitmaps[seg];
            while i < n && (self.flips[i].0 >> 32) as usize == seg {
                let key = self.flips[i].0;
                // The last flip of this (segment, row) is its final state.
                while i + 1 < n && self.flips[i + 1].0 == key {
                    i += 1;
                }
                let row = key as u32;
                if self.flips[i].1 {
                    bm.insert(row);
                } else {
                    bm.remove(row);
                }
                i += 1;
            }
        }
        self.flips.clear();
    }
}

/// True when `snap` holds what single-contact updates with `plan` read
/// (see [`prepare_updates`]).
pub fn updates_prepared(plan: &Plan, snap: &Snapshot) -> bool {
    snap.leaf_codes.plan == plan.id && snap.leaf_codes.leaves.len() == plan.leaves.len()
}

/// Get `snap` ready for single-contact updates with `plan`: resolve the
/// codes every string and list clause accepts (large dictionaries in
/// parallel) and compile each clause into its row record. The first update
/// does it when needed; a caller holding a lock that must not be held over a
/// parallel fan-out (Python's GIL) calls it first, without the lock.
pub fn prepare_updates(plan: &Plan, snap: &mut Snapshot) {
    if updates_prepared(plan, snap) {
        return;
    }
    let mut leaf_codes = LeafCodes {
        plan: plan.id,
        leaves: vec![None; plan.leaves.len()],
        cols: (0..plan.schema.len())
            .map(|c| {
                let (name, ty) = &plan.schema.fields()[c];
                snap.column(name).filter(|(_, t)| t == ty).map(|(ci, _)| ci)
            })
            .collect(),
        prog: Vec::new(),
        arena: Vec::new(),
        scratch: RowScratch::default(),
    };
    // Every string leaf answers from codes, not only the changed ones.
    for l in 0..plan.leaves.len() {
        resolve_codes(plan, snap, &mut leaf_codes, l, true);
    }
    build_row_program(plan, &mut leaf_codes);
    snap.leaf_codes = leaf_codes;
}

/// Apply a change to one contact (created when the id is new) and update
/// `result` in place, re-evaluating only the segments that read a changed
/// field or interaction kind. Returns the (entered, exited) segment indices.
pub fn update_contact(
    plan: &Plan,
    snap: &mut Snapshot,
    result: &mut EvalResult,
    id: i64,
    upd: &RowUpdate,
) -> CoreResult<(Vec<usize>, Vec<usize>)> {
    let mut journal = Journal::default();
    let out = update_contact_journaled(plan, snap, result, &mut journal, id, upd);
    journal.apply(result);
    out?;
    Ok((journal.entered, journal.exited))
}

/// [`update_contact`] without touching `result`'s bitmaps: the flips are
/// recorded in `journal` (apply it before reading the bitmaps), and the
/// segments the contact entered and exited are left in `journal.entered`
/// and `journal.exited`. Nothing is allocated once the buffers have grown.
pub fn update_contact_journaled(
    plan: &Plan,
    snap: &mut Snapshot,
    result: &EvalResult,
    journal: &mut Journal,
    id: i64,
    upd: &RowUpdate,
) -> CoreResult<()> {
    journal.entered.clear();
    journal.exited.clear();
    if result.plan != plan.id && result.names != plan.names {
        return Err(CoreError::InvalidInput(
            "the result belongs to another plan".into(),
        ));
    }
    for (f, v) in &upd.values {
        snap.check_value(f, v)?;
    }
    let as_of = result.as_of;
    let (row, created) = match snap.row_of(id) {
        Some(r) => (r, false),
        None => (snap.push_contact(id)?, true),
    };
    prepare_updates(plan, snap);
    let mut leaf_codes = std::mem::take(&mut snap.leaf_codes);
    if !created {
        prefetch_row(snap, &leaf_codes.cols, row);
        if !plan.aggs.is_empty() {
            snap.events.prefetch_row(row);
        }
    }
    let mut sc = std::mem::take(&mut leaf_codes.scratch);
    // The leaves reading what changes: only segments holding a leaf whose
    // value flips for this contact can change.
    let mut cand = std::mem::take(&mut sc.cand);
    cand.clear();
    for (f, _) in &upd.values {
        if let Some((pc, _)) = plan.schema.get(f) {
            if let Some(ls) = plan.col_leaves.get(&pc) {
                cand.extend_from_slice(ls);
            }
        }
    }
    for (k, _, _) in &upd.interactions {
        if let Some(ls) = plan.kind_leaves.get(k) {
            cand.extend_from_slice(ls);
        }
    }
    if upd.values.len() + upd.interactions.len() > 1 {
        cand.sort_unstable();
        cand.dedup();
    }
    for &l in &cand {
        if !codes_current(&leaf_codes, snap, l) {
            resolve_codes(plan, snap, &mut leaf_codes, l, false);
        }
    }
    // One field changing: its number, date, boolean and null clauses are
    // tested side by side on the old and the new value, its string and list
    // clauses read as transposed words; its other clauses one by one.
    let mut masks = std::mem::take(&mut sc.masks);
    let mut mask_col = None;
    let mut scalars = std::mem::take(&mut sc.scalars);
    let mut scalar_was = None;
    if !created && upd.values.len() == 1 && upd.interactions.is_empty() {
        if let Some((pc, _)) = plan.schema.get(&upd.values[0].0) {
            if scalars.len() != plan.schema.len() {
                scalars = (0..plan.schema.len())
                    .map(|c| ColScalars::build(plan, snap, &leaf_codes, c))
                    .collect();
            }
            if let Some(cs) = &scalars[pc] {
                if let Some(v) = cs.read(snap, row) {
                    cand.clear();
                    cand.extend_from_slice(&cs.rest);
                    scalar_was = Some((pc, v));
                }
            }
        }
        if let Some((pc, _)) = plan
            .schema
            .get(&upd.values[0].0)
            .filter(|_| scalar_was.is_none())
        {
            if masks.len() != plan.schema.len() {
                masks = vec![None; plan.schema.len()];
            }
            // Codes added to the dictionary since the masks were built are
            // taken in (the masks are built again past its size limit).
            let n = match &masks[pc] {
                Some(m) => match snap
                    .columns
                    .get(m.col)
                    .and_then(Option::as_ref)
                    .map(|c| &c.store)
                {
                    Some(Store::Str { dict, .. } | Store::List { dict, .. }) => {
                        Some(dict.values.len())
                    }
                    _ => None,
                },
                None => None,
            };
            let fresh = match (&mut masks[pc], n) {
                (Some(m), Some(n)) => n == m.n || (n <= MAX_MASK_DICT && m.extend(&leaf_codes, n)),
                _ => false,
            };
            if !fresh {
                masks[pc] = ColMasks::build(plan, snap, &leaf_codes, pc);
            }
            if let Some(m) = &masks[pc] {
                if m.row(snap, row, &mut sc.mask_before) {
                    #[cfg(debug_assertions)]
                    m.check(plan, snap, row, as_of, &leaf_codes, &sc.mask_before);
                    cand.clear();
                    cand.extend_from_slice(&m.rest);
                    mask_col = Some(pc);
                }
            }
        }
    }
    // The row's events are three loads deep (where its list starts, the
    // list, the events): each step is started while other work is done, so
    // that they are in cache when an aggregate is read.
    let events_ahead = !created && !plan.aggs.is_empty();
    if events_ahead {
        snap.events.prefetch_positions(row);
    }
    if !created {
        prefetch_list_items(snap, &leaf_codes.cols, row);
    }
    let mut before = std::mem::take(&mut sc.before);
    before.clear();
    if !created {
        let mut ev = RowEval::with_scratch(plan, snap, row, as_of, sc).with_codes(&leaf_codes);
        before.extend(cand.iter().map(|&l| ev.leaf(l).0));
        sc = ev.into_scratch();
    }
    if events_ahead {
        snap.events.prefetch_events(row);
    }
    let mut applied = Ok(());
    for (f, v) in &upd.values {
        if let Err(e) = snap.set_value(row, f, v) {
            applied = Err(e);
            break;
        }
    }
    if applied.is_ok() {
        for (k, t, a) in &upd.interactions {
            snap.add_event(row, k, *t, *a);
        }
    }
    if let Some(m) = mask_col.and_then(|pc| masks[pc].as_ref()) {
        // The transposed clauses that flipped join the others, with their
        // old values (all of them when the row took a code past the masks).
        let all = !m.row(snap, row, &mut sc.mask_after);
        #[cfg(debug_assertions)]
        if !all {
            m.check(plan, snap, row, as_of, &leaf_codes, &sc.mask_after);
        }
        for (j, &l) in m.leaves.iter().enumerate() {
            let (w, b) = (j >> 6, j & 63);
            let was = sc.mask_before[w] >> b & 1 == 1;
            if all || (sc.mask_after[w] >> b & 1 == 1) != was {
                cand.push(l);
                before.push(was);
            }
        }
    }
    sc.masks = masks;
    if let Some((pc, was)) = scalar_was {
        let cs = scalars[pc].as_ref().expect("read above");
        // The clauses that flipped join the others, with their old values
        // (all of them when the column can no longer be read so).
        let now = cs.read(snap, row);
        for (l, rl) in &cs.recs {
            let old = ColScalars::test(rl, was, as_of);
            #[cfg(debug_assertions)]
            if let Some(v) = now {
                let mut check = RowEval::new(plan, snap, row, as_of).with_codes(&leaf_codes);
                debug_assert_eq!(
                    ColScalars::test(rl, v, as_of),
                    check.leaf(*l).0,
                    "clause {l}"
                );
            }
            if now.is_none_or(|v| ColScalars::test(rl, v, as_of) != old) {
                cand.push(*l);
                before.push(old);
            }
        }
    }
    sc.scalars = scalars;
    // Values set before a failure stay set: re-evaluate what was read either way.
    let mut affected = std::mem::take(&mut sc.affected);
    affected.clear();
    let mut ev = RowEval::with_scratch(plan, snap, row, as_of, sc).with_codes(&leaf_codes);
    if created {
        affected.extend(0..plan.names.len());
    } else {
        for (k, &l) in cand.iter().enumerate() {
            if ev.leaf(l).0 != before[k] {
                affected.extend_from_slice(&plan.leaf_segments[l]);
            }
        }
        affected.sort_unstable();
        affected.dedup();
    }
    // What each affected segment was: the same tree with the changed
    // leaves at their old values (every other leaf reads what did not
    // change, and is read once for both), so the bitmaps are only touched
    // where membership moves.
    if !created {
        for (k, &l) in cand.iter().enumerate() {
            ev.set_was(l, before[k]);
        }
    }
    let r = u64::from(row as u32);
    for &s in &affected {
        let v = ev.node(plan.roots[s]);
        let now = v & 1 == 1;
        let was = !created && v & 2 == 2;
        if now != was {
            journal.flips.push(((s as u64) << 32 | r, now));
            if now {
                journal.entered.push(s);
            } else {
                journal.exited.push(s);
            }
        }
    }
    let mut sc = ev.into_scratch();
    sc.cand = cand;
    sc.before = before;
    sc.affected = affected;
    leaf_codes.scratch = sc;
    snap.leaf_codes = leaf_codes;
    applied
}

/// Explain, clause by clause, whether row `row` is in segment `seg` at `as_of`.
pub fn explain(plan: &Plan, snap: &Snapshot, row: usize, seg: usize, as_of: i64) -> Explain {
    let mut ev = RowEval::new(plan, snap, row, as_of);
    explain_at(&mut ev, &plan.exprs[seg], &plan.texprs[seg])
}

fn explain_at(ev: &mut RowEval<'_>, e: &Expr, t: &TExpr) -> Explain {
    let text = e.to_text();
    match (e, t) {
        (Expr::And(es), TExpr::And(ts)) | (Expr::Or(es), TExpr::Or(ts)) => {
            let children: Vec<Explain> = es
                .iter()
                .zip(ts)
                .map(|(e, t)| explain_at(ev, e, t))
                .collect();
            let value = if matches!(e, Expr::And(_)) {
                children.iter().all(|c| c.value)
            } else {
                children.iter().any(|c| c.value)
            };
            Explain {
                text,
                value,
                null: false,
                children,
            }
        }
        (Expr::Not(e1), TExpr::Not(t1)) => {
            let c = explain_at(ev, e1, t1);
            Explain {
                text,
                value: !c.value,
                null: false,
                children: vec![c],
            }
        }
        (Expr::InSegment(name), _) => {
            let plan = ev.plan;
            let s = plan.segment(name).expect("checked at compile time");
            let c = explain_at(ev, &plan.exprs[s], &plan.texprs[s]);
            Explain {
                text,
                value: c.value,
                null: false,
                children: vec![c],
            }
        }
        (Expr::Cond(..), TExpr::Leaf(l)) => {
            let li = ev
                .plan
                .leaves
                .iter()
                .position(|x| x == l)
                .expect("leaf interned at compile time");
            let (value, null) = ev.leaf(li);
            Explain {
                text,
                value,
                null,
                children: vec![],
            }
        }
        _ => Explain {
            text,
            value: false,
            null: false,
            children: vec![],
        },
    }
}

/// Label each contact with the first segment (in plan order, i.e. priority)
/// that contains it; `None` is the "other" bucket.
pub fn exclusive(plan: &Plan, snap: &Snapshot, as_of: i64) -> CoreResult<Vec<Option<u32>>> {
    let res = evaluate(plan, snap, as_of)?;
    let mut labels: Vec<Option<u32>> = vec![None; snap.len()];
    for (s, bm) in res.bitmaps.iter().enumerate() {
        for r in bm {
            let l = &mut labels[r as usize];
            if l.is_none() {
                *l = Some(s as u32);
            }
        }
    }
    Ok(labels)
}

/// The fields (schema names) and interaction kinds a rule reads; handy for callers.
pub fn operands(e: &Expr, fields: &mut Vec<String>, kinds: &mut Vec<String>) {
    match e {
        Expr::And(cs) | Expr::Or(cs) => cs.iter().for_each(|c| operands(c, fields, kinds)),
        Expr::Not(c) => operands(c, fields, kinds),
        Expr::InSegment(_) => {}
        Expr::Cond(Operand::Field(f), _) => fields.push(f.clone()),
        Expr::Cond(Operand::Agg { kind, .. }, _) => kinds.push(kind.clone()),
    }
}

/// A value's type name, for error messages.
pub fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Str(_) => FieldType::String.name(),
        Value::Int(_) => FieldType::Integer.name(),
        Value::Float(_) => FieldType::Number.name(),
        Value::Bool(_) => FieldType::Boolean.name(),
        Value::List(_) => FieldType::List.name(),
    }
}
