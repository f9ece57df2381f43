//! Interactions stored column by column, one index per kind: each kind's
//! events are sorted by (block of [`EVENT_BLOCK`] rows, time), so a window
//! aggregate reads only the events inside its window and the rows with an
//! event near a window edge are found by binary search. A per-row index
//! answers single-contact questions (updates, explanations, gathers).

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::codec::{Reader, Writer};
use super::snapshot::Dict;
use crate::CoreResult;

/// Rows per event block (the evaluation block size).
pub const EVENT_BLOCK: usize = 1 << 16;

/// One interaction (kind code, epoch seconds, amount or NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Kind code.
    pub kind: u32,
    /// Epoch seconds.
    pub time: i64,
    /// Amount (NaN: missing).
    pub amount: f64,
}

/// Event times: in 32 bits when every time of the kind fits (1901 to 2038),
/// else in 64.
#[derive(Debug, Clone)]
pub(crate) enum Times {
    /// Times that fit in 32 bits.
    W32(Vec<i32>),
    /// Any times.
    W64(Vec<i64>),
}

impl Default for Times {
    fn default() -> Times {
        Times::W32(Vec::new())
    }
}

/// A range of [`Times`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeSlice<'a> {
    /// Times in 32 bits.
    W32(&'a [i32]),
    /// Times in 64 bits.
    W64(&'a [i64]),
}

impl Times {
    /// The narrowest storage for `v`.
    pub fn new(v: Vec<i64>) -> Times {
        if v.iter().all(|&t| i32::try_from(t).is_ok()) {
            Times::W32(v.into_iter().map(|t| t as i32).collect())
        } else {
            Times::W64(v)
        }
    }

    /// Number of times.
    pub fn len(&self) -> usize {
        match self {
            Times::W32(v) => v.len(),
            Times::W64(v) => v.len(),
        }
    }

    /// Time `i`.
    #[inline]
    pub fn get(&self, i: usize) -> i64 {
        match self {
            Times::W32(v) => v[i] as i64,
            Times::W64(v) => v[i],
        }
    }

    /// Times `r`.
    #[inline]
    pub fn slice(&self, r: std::ops::Range<usize>) -> TimeSlice<'_> {
        match self {
            Times::W32(v) => TimeSlice::W32(&v[r]),
            Times::W64(v) => TimeSlice::W64(&v[r]),
        }
    }

    /// Within sorted positions `a..z`: the positions whose time is in `lo..=hi`.
    fn sorted_range(&self, a: usize, z: usize, lo: i64, hi: i64) -> std::ops::Range<usize> {
        fn cut<T: Copy + Into<i64>>(t: &[T], lo: i64, hi: i64) -> (usize, usize) {
            let i0 = t.partition_point(|&x| x.into() < lo);
            (i0, i0 + t[i0..].partition_point(|&x| x.into() <= hi))
        }
        let (i0, i1) = match self {
            Times::W32(v) => cut(&v[a..z], lo, hi),
            Times::W64(v) => cut(&v[a..z], lo, hi),
        };
        a + i0..a + i1
    }

    fn bytes(&self) -> usize {
        match self {
            Times::W32(v) => v.len() * 4,
            Times::W64(v) => v.len() * 8,
        }
    }

    fn encode(&self, w: &mut Writer<'_>) -> CoreResult<()> {
        match self {
            Times::W32(v) => {
                w.u8(4)?;
                w.slice(v)
            }
            Times::W64(v) => {
                w.u8(8)?;
                w.slice(v)
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> CoreResult<Times> {
        match r.u8()? {
            4 => Ok(Times::W32(r.vec()?)),
            8 => Ok(Times::W64(r.vec()?)),
            _ => Err(r.damaged("event times")),
        }
    }
}

/// The events of one kind, grouped by block; within a block sorted by
/// (time, arrival), or (gathered from many rows) each row's events in their
/// source order, rows interleaved, the block not in time order.
#[derive(Debug, Clone, Default)]
pub struct KindEvents {
    /// True when each block's events are in time order.
    sorted: bool,
    /// Start of each block's events (`nblocks + 1` entries).
    block: Vec<u32>,
    /// Times.
    time: Times,
    /// Row within its block.
    row: Vec<u16>,
    /// Amounts (NaN: missing); empty when no event of the kind has one.
    amount: Vec<f64>,
}

impl KindEvents {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// True when the kind has no event.
    pub fn is_empty(&self) -> bool {
        self.time.len() == 0
    }

    /// The range of positions of block `b` whose time lies in `lo..=hi`
    /// (when the block is not in time order: all of its positions, and the
    /// caller tests each time).
    #[inline]
    pub fn window(&self, b: usize, lo: i64, hi: i64) -> std::ops::Range<usize> {
        if b + 1 >= self.block.len() || lo > hi {
            return 0..0;
        }
        let (a, z) = (self.block[b] as usize, self.block[b + 1] as usize);
        if !self.sorted {
            return a..z;
        }
        self.time.sorted_range(a, z, lo, hi)
    }

    /// Time at a position.
    #[inline]
    pub fn time(&self, i: usize) -> i64 {
        self.time.get(i)
    }

    /// Row within its block at a position.
    #[inline]
    pub fn row(&self, i: usize) -> usize {
        self.row[i] as usize
    }

    /// Amount at a position (NaN: missing).
    #[inline]
    pub fn amount(&self, i: usize) -> f64 {
        self.amount.get(i).copied().unwrap_or(f64::NAN)
    }

    /// Times, rows and amounts of a range (amounts empty when the kind has none).
    #[inline]
    pub(crate) fn slices(&self, r: std::ops::Range<usize>) -> (TimeSlice<'_>, &[u16], &[f64]) {
        let am = if self.amount.is_empty() {
            &[][..]
        } else {
            &self.amount[r.clone()]
        };
        (self.time.slice(r.clone()), &self.row[r], am)
    }

    fn bytes(&self) -> usize {
        self.block.len() * 4 + self.time.bytes() + self.row.len() * 2 + self.amount.len() * 8
    }
}

/// Interactions of a snapshot: per-kind indexes, a per-row index into them
/// (built on the first single-row question: bulk evaluation never needs it),
/// and events appended by single-contact updates.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// Kind dictionary.
    pub kinds: Dict,
    /// Events of each kind code.
    by_kind: Vec<KindEvents>,
    /// Global position of each kind's first event (`kinds + 1` entries).
    kind_base: Vec<u32>,
    /// Number of rows.
    n_rows: usize,
    /// Where each row's stored events are.
    row_index: std::sync::OnceLock<RowIndex>,
    /// Events appended after the build, by row, in arrival order.
    extra: BTreeMap<u32, Vec<Event>>,
}

/// Each row's stored events, as global positions (kind by kind, each in
/// time order).
#[derive(Debug, Clone, Default)]
struct RowIndex {
    /// Start of each row's entries in `pos` (`rows + 1` entries).
    start: Vec<u32>,
    /// Global positions of the events.
    pos: Vec<u32>,
}

impl Events {
    /// No events for `n` rows.
    pub fn empty(n: usize) -> Events {
        Events {
            kind_base: vec![0],
            n_rows: n,
            ..Default::default()
        }
    }

    /// Build from parallel columns: row of each event (`< n`), kind code
    /// (into `kinds`), time and amount (NaN: missing).
    pub fn build(
        kinds: Dict,
        n: usize,
        rows: &[u32],
        kind: &[u32],
        time: &[i64],
        amount: &[f64],
    ) -> Events {
        let nk = kinds.values.len();
        let nblocks = n.div_ceil(EVENT_BLOCK).max(1);
        // Per kind, positions sorted by (block, time, arrival).
        let mut per_kind: Vec<Vec<u32>> = vec![Vec::new(); nk];
        for (i, &k) in kind.iter().enumerate() {
            per_kind[k as usize].push(i as u32);
        }
        let by_kind: Vec<KindEvents> = per_kind
            .into_par_iter()
            .map(|mut idx| {
                idx.par_sort_unstable_by_key(|&i| {
                    let i = i as usize;
                    (rows[i] as usize / EVENT_BLOCK, time[i], i)
                });
                let mut block = vec![0u32; nblocks + 1];
                for &i in &idx {
                    block[rows[i as usize] as usize / EVENT_BLOCK + 1] += 1;
                }
                for b in 0..nblocks {
                    block[b + 1] += block[b];
                }
                let has_amount = idx.iter().any(|&i| !amount[i as usize].is_nan());
                KindEvents {
                    sorted: true,
                    block,
                    time: Times::new(idx.iter().map(|&i| time[i as usize]).collect()),
                    row: idx
                        .iter()
                        .map(|&i| (rows[i as usize] as usize % EVENT_BLOCK) as u16)
                        .collect(),
                    amount: if has_amount {
                        idx.iter().map(|&i| amount[i as usize]).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Events::finish(kinds, n, by_kind)
    }

    /// Events over `n` rows from per-kind indexes.
    fn finish(kinds: Dict, n: usize, by_kind: Vec<KindEvents>) -> Events {
        let mut kind_base = vec![0u32; by_kind.len() + 1];
        for (k, ke) in by_kind.iter().enumerate() {
            kind_base[k + 1] = kind_base[k] + ke.len() as u32;
        }
        Events {
            kinds,
            by_kind,
            kind_base,
            n_rows: n,
            row_index: std::sync::OnceLock::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The per-row index, built on first use.
    fn row_index(&self) -> &RowIndex {
        self.row_index.get_or_init(|| {
            let n = self.n_rows;
            let mut start = vec![0u32; n + 1];
            let blocks = |ke: &KindEvents| ke.block.len().saturating_sub(1);
            for ke in &self.by_kind {
                for b in 0..blocks(ke) {
                    for p in ke.block[b] as usize..ke.block[b + 1] as usize {
                        start[b * EVENT_BLOCK + ke.row[p] as usize + 1] += 1;
                    }
                }
            }
            for i in 0..n {
                start[i + 1] += start[i];
            }
            let mut fill = start.clone();
            let mut pos = vec![0u32; self.indexed_len()];
            for (k, ke) in self.by_kind.iter().enumerate() {
                for b in 0..blocks(ke) {
                    for p in ke.block[b] as usize..ke.block[b + 1] as usize {
                        let r = b * EVENT_BLOCK + ke.row[p] as usize;
                        pos[fill[r] as usize] = self.kind_base[k] + p as u32;
                        fill[r] += 1;
                    }
                }
            }
            RowIndex { start, pos }
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.n_rows
    }

    /// The index of a kind code (empty when the kind has no stored event).
    #[inline]
    pub fn kind(&self, code: u32) -> Option<&KindEvents> {
        self.by_kind.get(code as usize)
    }

    /// Call `f` on each event of a row: stored ones kind by kind, each kind
    /// in time order, then appended ones in arrival order.
    #[inline]
    pub fn for_each_of(&self, row: usize, mut f: impl FnMut(Event)) {
        self.for_each_stored(row, |k, ke, p| {
            f(Event {
                kind: k as u32,
                time: ke.time.get(p),
                amount: ke.amount(p),
            })
        });
        if let Some(more) = self.extra.get(&(row as u32)) {
            more.iter().for_each(|&e| f(e));
        }
    }

    /// Call `f(kind, its events, position)` on each stored event of a row.
    #[inline]
    fn for_each_stored(&self, row: usize, mut f: impl FnMut(usize, &KindEvents, usize)) {
        let ix = self.row_index();
        if let (Some(&a), Some(&b)) = (ix.start.get(row), ix.start.get(row + 1)) {
            for &g in &ix.pos[a as usize..b as usize] {
                let k = self.kind_base.partition_point(|&x| x <= g) - 1;
                f(k, &self.by_kind[k], (g - self.kind_base[k]) as usize);
            }
        }
    }

    /// Start loading where a row's events are listed, ahead of
    /// [`Events::for_each_of`] (a hint only).
    pub(crate) fn prefetch_row(&self, row: usize) {
        if let Some(x) = self.row_index().start.get(row) {
            super::eval::prefetch(x);
        }
    }

    /// Second step of [`Events::prefetch_row`] (once its line has arrived):
    /// start loading the row's list of event positions.
    pub(crate) fn prefetch_positions(&self, row: usize) {
        let ix = self.row_index();
        if let (Some(&a), Some(&b)) = (ix.start.get(row), ix.start.get(row + 1)) {
            let (a, b) = (a as usize, b as usize);
            // One hint per cache line of positions (16 per line).
            for i in (a..b).step_by(16) {
                super::eval::prefetch(&ix.pos[i]);
            }
        }
    }

    /// Last step: start loading the time and amount of each of the row's
    /// stored events.
    pub(crate) fn prefetch_events(&self, row: usize) {
        self.for_each_stored(row, |_, ke, p| {
            match &ke.time {
                Times::W32(v) => super::eval::prefetch(&v[p]),
                Times::W64(v) => super::eval::prefetch(&v[p]),
            }
            if let Some(x) = ke.amount.get(p) {
                super::eval::prefetch(x);
            }
        });
    }

    /// The events of a row, collected.
    pub fn of(&self, row: usize) -> Vec<Event> {
        let mut out = Vec::new();
        self.for_each_of(row, |e| out.push(e));
        out
    }

    /// Events appended after the build to rows `start..end`, by row.
    pub fn extra_in(
        &self,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (usize, &[Event])> + '_ {
        self.extra
            .range(start as u32..end.min(u32::MAX as usize) as u32)
            .map(|(&r, v)| (r as usize, v.as_slice()))
    }

    /// True when events were appended after the build.
    pub fn has_extra(&self) -> bool {
        !self.extra.is_empty()
    }

    /// Append an event to a row (any row index; rows past the build have
    /// no stored events).
    pub fn push(&mut self, row: usize, e: Event) {
        self.extra.entry(row as u32).or_default().push(e);
    }

    /// Add an empty row at the end.
    pub fn push_row(&mut self) {
        self.n_rows += 1;
        if let Some(ix) = self.row_index.get_mut() {
            let last = *ix.start.last().unwrap_or(&0);
            ix.start.push(last);
        }
    }

    /// The events of the given rows (in range), in that order, as a new
    /// index: row `i` of the result is row `rows[i]` here.
    /// With `kinds`, only the events of the flagged kind codes are kept.
    pub fn gather(&self, rows: &[u32], kinds: Option<&[bool]>) -> Events {
        let keep = |k: usize| kinds.is_none_or(|f| f.get(k).copied().unwrap_or(false));
        // A row's appended events of the kept kinds, under its new row.
        let keep_extra = |extra: &mut BTreeMap<u32, Vec<Event>>, i: u32, more: &[Event]| {
            let kept: Vec<Event> = more
                .iter()
                .copied()
                .filter(|e| keep(e.kind as usize))
                .collect();
            if !kept.is_empty() {
                extra.insert(i, kept);
            }
        };
        let n = rows.len();
        let nblocks = n.div_ceil(EVENT_BLOCK).max(1);
        let nk = self.by_kind.len();
        // Per kind, (time, new row, amount) in (new row, time) order ...
        let mut per_kind: Vec<Vec<(i64, u32, f64)>> = vec![Vec::new(); nk];
        let mut extra = BTreeMap::new();
        let mut gathered_kinds: Option<Vec<KindEvents>> = None;
        let total = self.rows();
        if n * 32 >= total && rows.windows(2).all(|w| w[0] < w[1]) {
            // Many rows: one sequential pass over each kept kind's events
            // (rows past the build have no stored events), block by block in
            // parallel, instead of following each row's positions all over
            // memory.
            let built = self.n_rows.div_ceil(EVENT_BLOCK);
            // Per source block and kind: the time-sorted run of its events
            // falling in each new block (the rows of a source block span one
            // or a few new blocks).
            type Runs = Vec<(usize, Vec<(i64, u32, f64)>)>;
            let per_block: Vec<Vec<Runs>> = (0..built)
                .into_par_iter()
                .map_init(
                    || (vec![u32::MAX; EVENT_BLOCK], vec![0u64; EVENT_BLOCK / 64]),
                    |(local, mark), b| {
                        let (lo, hi) = ((b * EVENT_BLOCK) as u32, ((b + 1) * EVENT_BLOCK) as u32);
                        let first = rows.partition_point(|&r| r < lo);
                        let last = rows.partition_point(|&r| r < hi);
                        let mut outs: Vec<Runs> = vec![Vec::new(); nk];
                        if first == last {
                            return outs;
                        }
                        // Kept rows are marked in a bitset (in L1) that
                        // rules most events out before their row is looked up.
                        for (i, &r) in rows[first..last].iter().enumerate() {
                            let j = (r - lo) as usize;
                            local[j] = (first + i) as u32;
                            mark[j >> 6] |= 1 << (j & 63);
                        }
                        let nb0 = first / EVENT_BLOCK;
                        let nb1 = (last - 1) / EVENT_BLOCK;
                        for (k, ke) in self.by_kind.iter().enumerate() {
                            if !keep(k) || b + 1 >= ke.block.len() {
                                continue;
                            }
                            let (a, z) = (ke.block[b] as usize, ke.block[b + 1] as usize);
                            // Room for twice the share of the kept rows (the
                            // rows gathered often hold more events than most).
                            let guess =
                                2 * (z - a) * (last - first) / EVENT_BLOCK / (nb1 - nb0 + 1);
                            let mut runs: Runs = (nb0..=nb1)
                                .map(|nb| (nb, Vec::with_capacity(guess + 8)))
                                .collect();
                            for (p, &rr) in (a..z).zip(&ke.row[a..z]) {
                                let j = rr as usize;
                                if mark[j >> 6] >> (j & 63) & 1 == 0 {
                                    continue;
                                }
                                let i = local[j];
                                if i != u32::MAX {
                                    runs[i as usize / EVENT_BLOCK - nb0].1.push((
                                        ke.time.get(p),
                                        i,
                                        ke.amount(p),
                                    ));
                                }
                            }
                            runs.retain(|r| !r.1.is_empty());
                            outs[k] = runs;
                        }
                        for &r in &rows[first..last] {
                            let j = (r - lo) as usize;
                            local[j] = u32::MAX;
                            mark[j >> 6] = 0;
                        }
                        outs
                    },
                )
                .collect();
            // Each kind's events in (new block, source order): the runs
            // come in ascending rows, so their concatenation is grouped by
            // new block, and each row's events keep their order (time, then
            // arrival), so sums add up in the same order as in the source.
            // Blocks are not time-sorted: windows read a whole block and test
            // each time, which costs less than sorting what was gathered.
            let gathered: Vec<KindEvents> = (0..nk)
                .into_par_iter()
                .map(|k| {
                    let src = &self.by_kind[k];
                    let runs = || per_block.iter().flat_map(|o| o[k].iter());
                    let m: usize = runs().map(|(_, r)| r.len()).sum();
                    let mut block = vec![0u32; nblocks + 1];
                    let mut time = Vec::with_capacity(m);
                    let mut row = Vec::with_capacity(m);
                    let mut amount = Vec::with_capacity(if src.amount.is_empty() { 0 } else { m });
                    for (nb, run) in runs() {
                        block[nb + 1] += run.len() as u32;
                        time.extend(run.iter().map(|e| e.0));
                        row.extend(run.iter().map(|e| (e.1 as usize % EVENT_BLOCK) as u16));
                        if !src.amount.is_empty() {
                            amount.extend(run.iter().map(|e| e.2));
                        }
                    }
                    for b in 0..nblocks {
                        block[b + 1] += block[b];
                    }
                    KindEvents {
                        sorted: false,
                        block,
                        time: Times::new(time),
                        row,
                        amount,
                    }
                })
                .collect();
            gathered_kinds = Some(gathered);
            let pos = |r: u32| rows.binary_search(&r).ok();
            for (&r, more) in &self.extra {
                if let Some(i) = pos(r) {
                    keep_extra(&mut extra, i as u32, more);
                }
            }
        } else {
            let ix = self.row_index();
            for (i, &r) in rows.iter().enumerate() {
                if let (Some(&a), Some(&b)) =
                    (ix.start.get(r as usize), ix.start.get(r as usize + 1))
                {
                    for &g in &ix.pos[a as usize..b as usize] {
                        let k = self.kind_base.partition_point(|&x| x <= g) - 1;
                        if !keep(k) {
                            continue;
                        }
                        let p = (g - self.kind_base[k]) as usize;
                        let ke = &self.by_kind[k];
                        per_kind[k].push((ke.time.get(p), i as u32, ke.amount(p)));
                    }
                }
                if let Some(more) = self.extra.get(&r) {
                    keep_extra(&mut extra, i as u32, more);
                }
            }
        }
        if let Some(by_kind) = gathered_kinds {
            let mut ev = Events::finish(self.kinds.clone(), n, by_kind);
            ev.extra = extra;
            return ev;
        }
        // Each kind's events by (block, time), as a built index is.
        let by_kind: Vec<KindEvents> = per_kind
            .into_par_iter()
            .zip(self.by_kind.par_iter())
            .map(|(mut evs, src)| {
                if !evs.is_sorted_by_key(|e| (e.1 as usize / EVENT_BLOCK, e.0)) {
                    evs.sort_by_key(|e| (e.1 as usize / EVENT_BLOCK, e.0));
                }
                let mut block = vec![0u32; nblocks + 1];
                for e in &evs {
                    block[e.1 as usize / EVENT_BLOCK + 1] += 1;
                }
                for b in 0..nblocks {
                    block[b + 1] += block[b];
                }
                KindEvents {
                    sorted: true,
                    block,
                    time: Times::new(evs.iter().map(|e| e.0).collect()),
                    row: evs
                        .iter()
                        .map(|e| (e.1 as usize % EVENT_BLOCK) as u16)
                        .collect(),
                    amount: if src.amount.is_empty() {
                        Vec::new()
                    } else {
                        evs.iter().map(|e| e.2).collect()
                    },
                }
            })
            .collect();
        let mut ev = Events::finish(self.kinds.clone(), n, by_kind);
        ev.extra = extra;
        ev
    }

    /// Number of events in the per-kind indexes (appended ones not counted).
    pub fn indexed_len(&self) -> usize {
        self.kind_base.last().map_or(0, |&m| m as usize)
    }

    /// Number of events appended after the build.
    pub fn extra_len(&self) -> usize {
        self.extra.values().map(Vec::len).sum()
    }

    /// The same events as one freshly built index: appended events join
    /// the per-kind indexes (each row's events keep their order).
    pub fn compacted(&self) -> Events {
        let n = self.rows();
        let m = self.indexed_len() + self.extra_len();
        let (mut rows, mut kind, mut time, mut amount) = (
            Vec::with_capacity(m),
            Vec::with_capacity(m),
            Vec::with_capacity(m),
            Vec::with_capacity(m),
        );
        // Stored events kind by kind (no per-row index needed), then the
        // appended ones: each row's events keep their order.
        for (k, ke) in self.by_kind.iter().enumerate() {
            for b in 0..ke.block.len().saturating_sub(1) {
                for p in ke.block[b] as usize..ke.block[b + 1] as usize {
                    rows.push((b * EVENT_BLOCK + ke.row[p] as usize) as u32);
                    kind.push(k as u32);
                    time.push(ke.time.get(p));
                    amount.push(ke.amount(p));
                }
            }
        }
        for (&r, evs) in &self.extra {
            for e in evs {
                rows.push(r);
                kind.push(e.kind);
                time.push(e.time);
                amount.push(e.amount);
            }
        }
        Events::build(self.kinds.clone(), n, &rows, &kind, &time, &amount)
    }

    /// Write the index (appended events as flat columns).
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> CoreResult<()> {
        w.strs(&self.kinds.values)?;
        w.u64(self.by_kind.len() as u64)?;
        for ke in &self.by_kind {
            w.u8(ke.sorted as u8)?;
            w.slice(&ke.block)?;
            ke.time.encode(w)?;
            w.slice(&ke.row)?;
            w.slice(&ke.amount)?;
        }
        w.slice(&self.kind_base)?;
        w.u64(self.n_rows as u64)?;
        let (mut rows, mut kind, mut time, mut amount) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (&r, evs) in &self.extra {
            for e in evs {
                rows.push(r);
                kind.push(e.kind);
                time.push(e.time);
                amount.push(e.amount);
            }
        }
        w.slice(&rows)?;
        w.slice(&kind)?;
        w.slice(&time)?;
        w.slice(&amount)
    }

    /// Read an index written by [`Events::encode`] for `n` rows, checking
    /// that every position and code in it is in range.
    pub(crate) fn decode(r: &mut Reader<'_>, n: usize) -> CoreResult<Events> {
        let kinds = Dict::from_strs(r.strs()?);
        let nk = r.u64()? as usize;
        if nk > kinds.values.len() {
            return Err(r.damaged("kind count"));
        }
        let nblocks = n.div_ceil(EVENT_BLOCK).max(1);
        let mut by_kind = Vec::with_capacity(nk);
        for _ in 0..nk {
            let sorted = r.u8()? != 0;
            let block: Vec<u32> = r.vec()?;
            let time = Times::decode(r)?;
            let row: Vec<u16> = r.vec()?;
            let amount: Vec<f64> = r.vec()?;
            // Rows appended after the build may add blocks the index has not.
            let nb = block.len().saturating_sub(1);
            let ok = nb >= 1
                && nb <= nblocks
                && block[0] == 0
                && block.windows(2).all(|w| w[0] <= w[1])
                && block[nb] as usize == time.len()
                && row.len() == time.len()
                && (amount.is_empty() || amount.len() == time.len())
                && (0..nb).all(|b| {
                    row[block[b] as usize..block[b + 1] as usize]
                        .iter()
                        .all(|&x| b * EVENT_BLOCK + (x as usize) < n)
                });
            if !ok {
                return Err(r.damaged("event index"));
            }
            by_kind.push(KindEvents {
                sorted,
                block,
                time,
                row,
                amount,
            });
        }
        let kind_base: Vec<u32> = r.vec()?;
        let n_rows = r.u64()?;
        let ok = kind_base.len() == nk + 1
            && kind_base[0] == 0
            && by_kind
                .iter()
                .enumerate()
                .all(|(k, ke)| kind_base[k + 1] as usize == kind_base[k] as usize + ke.len())
            && n_rows == n as u64;
        if !ok {
            return Err(r.damaged("event row index"));
        }
        let rows: Vec<u32> = r.vec()?;
        let kind: Vec<u32> = r.vec()?;
        let time: Vec<i64> = r.vec()?;
        let amount: Vec<f64> = r.vec()?;
        if kind.len() != rows.len() || time.len() != rows.len() || amount.len() != rows.len() {
            return Err(r.damaged("appended events"));
        }
        let mut extra: BTreeMap<u32, Vec<Event>> = BTreeMap::new();
        for i in 0..rows.len() {
            if rows[i] as usize >= n || kind[i] as usize >= kinds.values.len() {
                return Err(r.damaged("appended events"));
            }
            extra.entry(rows[i]).or_default().push(Event {
                kind: kind[i],
                time: time[i],
                amount: amount[i],
            });
        }
        Ok(Events {
            kinds,
            by_kind,
            kind_base,
            n_rows: n,
            row_index: std::sync::OnceLock::new(),
            extra,
        })
    }

    /// Approximate heap bytes held.
    pub fn bytes(&self) -> usize {
        self.by_kind.iter().map(KindEvents::bytes).sum::<usize>()
            + self
                .row_index
                .get()
                .map_or(0, |ix| (ix.start.len() + ix.pos.len()) * 4)
    }
}
