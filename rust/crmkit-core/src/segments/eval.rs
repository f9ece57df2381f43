//! Evaluate a [`Plan`] over a [`Snapshot`]: one roaring bitmap per segment,
//! computed over blocks of 65 536 contacts in parallel (deterministic: each
//! block's result depends only on its rows). Also: diffs, single-contact
//! updates, explanations and exclusive segment sets.

use std::collections::HashMap;

use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::{CoreError, CoreResult};

use super::ast::{Expr, Operand};
use super::compile::{Node, Plan};
use super::snapshot::{bit, AggAcc, AggIndex, AggValue, Column, Snapshot, Store, Value};
use super::typecheck::{FPred, IPred, Leaf, Src, TExpr};
use super::{FieldType, DAY};

const BLOCK: usize = 1 << 16;
const SUB: usize = 1024;
const SW: usize = SUB / 64;

/// The memberships of every segment at one as-of time.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// Segment names, in plan order.
    pub names: Vec<String>,
    /// Members of each segment, as snapshot row indices.
    pub bitmaps: Vec<RoaringBitmap>,
    /// The as-of time of the evaluation (epoch seconds).
    pub as_of: i64,
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
        codes: &'a [u32],
        valid: &'a [u64],
        bits: Vec<u64>,
    },
    List {
        col: &'a Column,
        bits: Vec<u64>,
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

fn code_bits(dict: &[String], test: impl Fn(&str) -> bool) -> Vec<u64> {
    let mut bits = vec![0u64; dict.len().div_ceil(64).max(1)];
    for (i, s) in dict.iter().enumerate() {
        if test(s) {
            bits[i >> 6] |= 1 << (i & 63);
        }
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

fn bind<'a>(plan: &Plan, snap: &'a Snapshot, li: usize, as_of: i64) -> CoreResult<Bound<'a>> {
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
                codes,
                valid: &c.valid,
                bits: code_bits(&dict.values, |s| pred.test(s)),
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
            Store::List { dict, .. } => Bound::List {
                col: c,
                bits: code_bits(&dict.values, |s| {
                    values.binary_search_by(|v| v.as_str().cmp(s)).is_ok()
                }),
                negated: *negated,
            },
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
fn fill<T: Copy>(out: &mut [u64], vals: &[T], valid: &[u64], f: impl Fn(T) -> bool) {
    for (w, o) in out.iter_mut().enumerate() {
        let vw = valid[w];
        if vw == 0 {
            *o = 0;
            continue;
        }
        let chunk = &vals[w * 64..w * 64 + 64];
        // Test into bytes (vectorizes), then pack 8 bytes of 0/1 into 8 bits
        // with one multiply each.
        let mut t = [0u8; 64];
        for (b, &v) in t.iter_mut().zip(chunk) {
            *b = f(v) as u8;
        }
        let mut m = 0u64;
        for (g, bytes) in t.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            m |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * g);
        }
        *o = m & vw;
    }
}

#[inline(always)]
fn fill_i(out: &mut [u64], vals: &[i64], valid: &[u64], p: &IPred) {
    match p {
        IPred::Range(lo, hi) => {
            let (lo, hi) = (*lo, *hi);
            fill(out, vals, valid, |v| (lo <= v) & (v <= hi))
        }
        IPred::NotIn(vs) if vs.len() == 1 => {
            let x = vs[0];
            fill(out, vals, valid, |v| v != x)
        }
        p => fill(out, vals, valid, |v| p.test(v, 0)),
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
        } => {
            let (lo, hi) = (*lo, *hi);
            match (*lo_incl, *hi_incl) {
                (true, true) => fill(out, vals, valid, |v| (lo <= v) & (v <= hi)),
                (false, true) => fill(out, vals, valid, |v| (lo < v) & (v <= hi)),
                (true, false) => fill(out, vals, valid, |v| (lo <= v) & (v < hi)),
                (false, false) => fill(out, vals, valid, |v| (lo < v) & (v < hi)),
            }
        }
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

/// A leaf on a small-dictionary column, answered from the column's
/// per-code row bitmaps: the OR of `codes`, or (`invert`) the valid rows
/// outside that OR.
struct CodeSet {
    tid: usize,
    codes: Vec<u32>,
    invert: bool,
}

/// Dictionary-coded columns small enough to transpose per sub-block.
const MAX_TRANSPOSED_DICT: usize = 512;

fn dict_len(c: &Column) -> usize {
    match &c.store {
        Store::Str { dict, .. } | Store::List { dict, .. } => dict.values.len(),
        _ => usize::MAX,
    }
}

/// Fill `buf` (dict_len x SW words) with one row bitmap per code for rows
/// `sub..sub + 64*nw`.
fn transpose(c: &Column, buf: &mut [u64], sub: usize, nw: usize) {
    buf.iter_mut().for_each(|x| *x = 0);
    let w0 = sub / 64;
    for w in 0..nw {
        let mut m = c.valid[w0 + w];
        while m != 0 {
            let j = m.trailing_zeros() as usize;
            m &= m - 1;
            let r = sub + w * 64 + j;
            match &c.store {
                Store::Str { codes, .. } => buf[codes[r] as usize * SW + w] |= 1 << j,
                Store::List {
                    start, len, codes, ..
                } => {
                    let s0 = start[r] as usize;
                    for &code in &codes[s0..s0 + len[r] as usize] {
                        buf[code as usize * SW + w] |= 1 << j;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Aggregate columns for one block of rows.
struct BlockAggs {
    ints: Vec<Vec<i64>>,
    floats: Vec<Vec<f64>>,
    valid: Vec<Vec<u64>>,
}

#[inline(never)]
fn block_aggs(
    plan: &Plan,
    snap: &Snapshot,
    idx: &AggIndex,
    start: usize,
    end: usize,
    as_of: i64,
) -> BlockAggs {
    let len = end - start;
    let k = plan.aggs.len();
    let mut ints = vec![Vec::new(); k];
    let mut floats = vec![Vec::new(); k];
    let mut valid = vec![vec![0u64; len / 64]; k];
    for (a, key) in plan.aggs.iter().enumerate() {
        if key.func.reads_amount() {
            floats[a] = vec![0.0; len];
        } else {
            ints[a] = vec![0; len];
        }
    }
    let mut acc = vec![AggAcc::default(); k];
    let n = snap.len();
    for r in start..end.min(n) {
        idx.row(&snap.events, r, as_of, &mut acc);
        let i = r - start;
        for (a, key) in plan.aggs.iter().enumerate() {
            let present = match acc[a].value(key.func) {
                AggValue::Int(Some(v)) => {
                    ints[a][i] = v;
                    true
                }
                AggValue::Float(Some(v)) => {
                    floats[a][i] = v;
                    true
                }
                _ => false,
            };
            if present {
                valid[a][i >> 6] |= 1 << (i & 63);
            }
        }
    }
    BlockAggs {
        ints,
        floats,
        valid,
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
        } => fill(out, &codes[sub..], &valid[w0..], |c| {
            bits[(c >> 6) as usize] >> (c & 63) & 1 == 1
        }),
        Bound::List { col, bits, negated } => {
            let Store::List {
                start, len, codes, ..
            } = &col.store
            else {
                return;
            };
            for (w, o) in out.iter_mut().enumerate() {
                let vw = col.valid[w0 + w];
                let mut m = 0u64;
                for j in 0..64 {
                    if vw >> j & 1 == 0 {
                        continue;
                    }
                    let r = sub + w * 64 + j;
                    let s = start[r] as usize;
                    let any = codes[s..s + len[r] as usize]
                        .iter()
                        .any(|&c| bits[(c >> 6) as usize] >> (c & 63) & 1 == 1);
                    m |= ((any != *negated) as u64) << j;
                }
                *o = m;
            }
        }
        Bound::Bool { bits, valid, value } => {
            for (w, o) in out.iter_mut().enumerate() {
                let v = bits[w0 + w];
                *o = if *value { v } else { !v } & valid[w0 + w];
            }
        }
        Bound::IntCol { vals, valid, pred } => fill_i(out, &vals[sub..], &valid[w0..], pred),
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
    if prev.names != plan.names {
        return Err(CoreError::InvalidInput(
            "the previous result belongs to another plan".into(),
        ));
    }
    let clocked: Vec<usize> = (0..plan.names.len())
        .filter(|&i| plan.uses_clock[i])
        .collect();
    let fresh = evaluate_segments(plan, snap, as_of, &clocked)?;
    let mut bitmaps = prev.bitmaps.clone();
    for (s, bm) in clocked.into_iter().zip(fresh) {
        bitmaps[s] = bm;
    }
    Ok(EvalResult {
        names: plan.names.clone(),
        bitmaps,
        as_of,
    })
}

/// Evaluate the given segments; returns their bitmaps in the same order.
pub fn evaluate_segments(
    plan: &Plan,
    snap: &Snapshot,
    as_of: i64,
    segs: &[usize],
) -> CoreResult<Vec<RoaringBitmap>> {
    let n = snap.len();
    let np = snap.padded_len();
    let sel_nodes = plan.nodes_for(segs);
    let mut slot = vec![usize::MAX; plan.nodes.len()];
    for (k, &i) in sel_nodes.iter().enumerate() {
        slot[i] = k;
    }
    let mut leaf_ids: Vec<usize> = sel_nodes
        .iter()
        .filter_map(|&i| match plan.nodes[i] {
            Node::Leaf(l) => Some(l),
            _ => None,
        })
        .collect();
    leaf_ids.sort_unstable();
    let bound: Vec<(usize, Bound<'_>)> = leaf_ids
        .par_iter()
        .map(|&l| bind(plan, snap, l, as_of).map(|b| (l, b)))
        .collect::<CoreResult<_>>()?;
    let mut bound_of = vec![usize::MAX; plan.leaves.len()];
    for (k, (l, _)) in bound.iter().enumerate() {
        bound_of[*l] = k;
    }
    // Small-dictionary columns read by several leaves are transposed per
    // sub-block into one row bitmap per code; their leaves become ORs.
    let mut readers: HashMap<usize, (usize, &Column)> = HashMap::new();
    for (_, b) in &bound {
        let c = match b {
            Bound::Codes { col, .. } | Bound::List { col, .. } => *col,
            _ => continue,
        };
        if dict_len(c) <= MAX_TRANSPOSED_DICT {
            readers
                .entry(std::ptr::from_ref(c) as usize)
                .or_insert((0, c))
                .0 += 1;
        }
    }
    let mut tcols: Vec<(usize, &Column)> = readers
        .into_iter()
        .filter(|(_, (count, _))| *count >= 2)
        .map(|(key, (_, c))| (key, c))
        .collect();
    tcols.sort_by_key(|(key, _)| *key);
    let tid_of: HashMap<usize, usize> = tcols
        .iter()
        .enumerate()
        .map(|(t, (key, _))| (*key, t))
        .collect();
    let codesets: Vec<Option<CodeSet>> = bound
        .iter()
        .map(|(_, b)| {
            let (col, bits, list_negated) = match b {
                Bound::Codes { col, bits, .. } => (*col, bits, None),
                Bound::List { col, bits, negated } => (*col, bits, Some(*negated)),
                _ => return None,
            };
            let tid = *tid_of.get(&(std::ptr::from_ref(col) as usize))?;
            let n = dict_len(col);
            let set: Vec<u32> = (0..n as u32)
                .filter(|&c| bits[(c >> 6) as usize] >> (c & 63) & 1 == 1)
                .collect();
            Some(match list_negated {
                Some(invert) => CodeSet {
                    tid,
                    codes: set,
                    invert,
                },
                None if set.len() * 2 <= n => CodeSet {
                    tid,
                    codes: set,
                    invert: false,
                },
                None => {
                    let comp = (0..n as u32)
                        .filter(|&c| bits[(c >> 6) as usize] >> (c & 63) & 1 == 0)
                        .collect();
                    CodeSet {
                        tid,
                        codes: comp,
                        invert: true,
                    }
                }
            })
        })
        .collect();
    let needs_aggs = bound.iter().any(|(_, b)| {
        matches!(
            b,
            Bound::IntAgg { .. } | Bound::FloatAgg { .. } | Bound::NullAgg { .. }
        )
    });
    let idx = if needs_aggs {
        AggIndex::new(&plan.aggs, &snap.events, as_of)
    } else {
        AggIndex::default()
    };
    let root_slots: Vec<usize> = segs.iter().map(|&s| slot[plan.roots[s]]).collect();
    let nblocks = np.div_ceil(BLOCK);
    let per_block: Vec<Vec<RoaringBitmap>> = (0..nblocks)
        .into_par_iter()
        .map(|bi| {
            let start = bi * BLOCK;
            let end = (start + BLOCK).min(np);
            let aggs = if needs_aggs {
                block_aggs(plan, snap, &idx, start, end, as_of)
            } else {
                BlockAggs {
                    ints: vec![],
                    floats: vec![],
                    valid: vec![],
                }
            };
            let bw = (end - start) / 64;
            let mut arena = vec![0u64; sel_nodes.len() * SW];
            let mut trans: Vec<Vec<u64>> = tcols
                .iter()
                .map(|(_, c)| vec![0u64; dict_len(c) * SW])
                .collect();
            let mut segbuf = vec![0u64; segs.len() * bw];
            let mut sub = start;
            while sub < end {
                let nw = SW.min((end - sub) / 64);
                for ((_, c), buf) in tcols.iter().zip(trans.iter_mut()) {
                    transpose(c, buf, sub, nw);
                }
                for (k, &ni) in sel_nodes.iter().enumerate() {
                    let (lower, upper) = arena.split_at_mut(k * SW);
                    let out = &mut upper[..nw];
                    match &plan.nodes[ni] {
                        Node::Leaf(l) => {
                            let k = bound_of[*l];
                            match &codesets[k] {
                                Some(cs) => {
                                    out.iter_mut().for_each(|o| *o = 0);
                                    let t = &trans[cs.tid];
                                    for &c in &cs.codes {
                                        let src = &t[c as usize * SW..c as usize * SW + nw];
                                        for (o, x) in out.iter_mut().zip(src) {
                                            *o |= x;
                                        }
                                    }
                                    if cs.invert {
                                        let valid = &tcols[cs.tid].1.valid[sub / 64..];
                                        for (o, v) in out.iter_mut().zip(valid) {
                                            *o = v & !*o;
                                        }
                                    }
                                }
                                None => eval_leaf(&bound[k].1, out, sub, start, &aggs),
                            }
                        }
                        Node::And(cs) => {
                            let c0 = slot[cs[0]] * SW;
                            out.copy_from_slice(&lower[c0..c0 + nw]);
                            for c in &cs[1..] {
                                let ci = slot[*c] * SW;
                                for (o, x) in out.iter_mut().zip(&lower[ci..ci + nw]) {
                                    *o &= x;
                                }
                            }
                        }
                        Node::Or(cs) => {
                            let c0 = slot[cs[0]] * SW;
                            out.copy_from_slice(&lower[c0..c0 + nw]);
                            for c in &cs[1..] {
                                let ci = slot[*c] * SW;
                                for (o, x) in out.iter_mut().zip(&lower[ci..ci + nw]) {
                                    *o |= x;
                                }
                            }
                        }
                        Node::Not(c) => {
                            let ci = slot[*c] * SW;
                            for (o, x) in out.iter_mut().zip(&lower[ci..ci + nw]) {
                                *o = !x;
                            }
                        }
                    }
                }
                let w = (sub - start) / 64;
                for (s, &rs) in root_slots.iter().enumerate() {
                    segbuf[s * bw + w..s * bw + w + nw]
                        .copy_from_slice(&arena[rs * SW..rs * SW + nw]);
                }
                sub += SUB;
            }
            // Rows past the last contact are padding.
            let live = n.saturating_sub(start).min(bw * 64);
            (0..segs.len())
                .map(|s| {
                    let words = &mut segbuf[s * bw..(s + 1) * bw];
                    for (w, x) in words.iter_mut().enumerate() {
                        let lo = w * 64;
                        if lo >= live {
                            *x = 0;
                        } else if live - lo < 64 {
                            *x &= (1u64 << (live - lo)) - 1;
                        }
                    }
                    if words.iter().all(|&x| x == 0) {
                        return RoaringBitmap::new();
                    }
                    let bytes: Vec<u8> = words.iter().flat_map(|x| x.to_le_bytes()).collect();
                    RoaringBitmap::from_lsb0_bytes(start as u32, &bytes)
                })
                .collect()
        })
        .collect();
    let mut out = vec![RoaringBitmap::new(); segs.len()];
    for block in per_block {
        for (o, b) in out.iter_mut().zip(block) {
            *o |= b;
        }
    }
    Ok(out)
}

/// Evaluates nodes for a single row, memoized.
struct RowEval<'a> {
    plan: &'a Plan,
    snap: &'a Snapshot,
    row: usize,
    as_of: i64,
    memo: Vec<u8>,
    aggs: Option<Vec<AggAcc>>,
    /// Snapshot column of each plan column, resolved on first use.
    cols: Vec<Option<Option<&'a Column>>>,
}

impl<'a> RowEval<'a> {
    fn new(plan: &'a Plan, snap: &'a Snapshot, row: usize, as_of: i64) -> Self {
        RowEval {
            plan,
            snap,
            row,
            as_of,
            memo: vec![0; plan.nodes.len()],
            aggs: None,
            cols: vec![None; plan.schema.len()],
        }
    }

    fn agg(&mut self, a: usize) -> AggValue {
        if self.aggs.is_none() {
            let idx = AggIndex::new(&self.plan.aggs, &self.snap.events, self.as_of);
            let mut acc = vec![AggAcc::default(); self.plan.aggs.len()];
            idx.row(&self.snap.events, self.row, self.as_of, &mut acc);
            self.aggs = Some(acc);
        }
        let acc = self.aggs.as_ref().expect("computed above");
        acc[a].value(self.plan.aggs[a].func)
    }

    /// (value, false-because-null) of a leaf.
    fn leaf(&mut self, li: usize) -> (bool, bool) {
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
        let resolved = match self.cols[c] {
            Some(r) => r,
            None => {
                let r = snap_column(self.plan, self.snap, c).ok().flatten();
                self.cols[c] = Some(r);
                r
            }
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
                pred.test(&dict.values[codes[r] as usize])
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
                let s = start[r] as usize;
                let any = codes[s..s + len[r] as usize].iter().any(|&c| {
                    values
                        .binary_search_by(|v| v.as_str().cmp(&dict.values[c as usize]))
                        .is_ok()
                });
                any != *negated
            }
            (Leaf::Bool { value, .. }, Store::Bool(bits)) => bit(bits, r) == *value,
            (Leaf::Int { pred, .. }, Store::Int(vals)) => pred.test(vals[r], self.as_of),
            (Leaf::Float { pred, .. }, Store::Float(vals)) => pred.test(vals[r]),
            _ => false,
        };
        (v, false)
    }

    fn node(&mut self, i: usize) -> bool {
        match self.memo[i] {
            1 => return false,
            2 => return true,
            _ => {}
        }
        let v = match &self.plan.nodes[i] {
            Node::Leaf(l) => self.leaf(*l).0,
            Node::And(cs) => cs.iter().all(|&c| self.node(c)),
            Node::Or(cs) => cs.iter().any(|&c| self.node(c)),
            Node::Not(c) => !self.node(*c),
        };
        self.memo[i] = if v { 2 } else { 1 };
        v
    }
}

/// Whether row `row` is in segment `seg` at `as_of` (single-row evaluation).
pub fn row_member(plan: &Plan, snap: &Snapshot, row: usize, seg: usize, as_of: i64) -> bool {
    RowEval::new(plan, snap, row, as_of).node(plan.roots[seg])
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
    if result.names != plan.names {
        return Err(CoreError::InvalidInput(
            "the result belongs to another plan".into(),
        ));
    }
    for (f, _) in &upd.values {
        if snap.column(f).is_none() {
            return Err(CoreError::InvalidInput(format!("unknown field '{f}'")));
        }
    }
    for (f, v) in &upd.values {
        snap.check_value(f, v)?;
    }
    let as_of = result.as_of;
    let (row, created) = match snap.row_of(id) {
        Some(r) => (r, false),
        None => (snap.push_contact(id)?, true),
    };
    // The leaves reading what changes: only segments holding a leaf whose
    // value flips for this contact can change.
    let mut cand: Vec<usize> = Vec::new();
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
    cand.sort_unstable();
    cand.dedup();
    let before: Vec<bool> = if created {
        Vec::new()
    } else {
        let mut ev = RowEval::new(plan, snap, row, as_of);
        cand.iter().map(|&l| ev.leaf(l).0).collect()
    };
    for (f, v) in &upd.values {
        snap.set_value(row, f, v)?;
    }
    for (k, t, a) in &upd.interactions {
        snap.add_event(row, k, *t, *a);
    }
    let mut affected: Vec<usize> = Vec::new();
    let mut ev = RowEval::new(plan, snap, row, as_of);
    if created {
        affected = (0..plan.names.len()).collect();
    } else {
        for (k, &l) in cand.iter().enumerate() {
            if ev.leaf(l).0 != before[k] {
                affected.extend_from_slice(&plan.leaf_segments[l]);
            }
        }
        affected.sort_unstable();
        affected.dedup();
    }
    let (mut entered, mut exited) = (Vec::new(), Vec::new());
    let r = row as u32;
    for s in affected {
        let now = ev.node(plan.roots[s]);
        let was = result.bitmaps[s].contains(r);
        if now && !was {
            result.bitmaps[s].insert(r);
            entered.push(s);
        } else if !now && was {
            result.bitmaps[s].remove(r);
            exited.push(s);
        }
    }
    Ok((entered, exited))
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
            let key = l.key();
            let li = ev
                .plan
                .leaves
                .iter()
                .position(|x| x.key() == key)
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
