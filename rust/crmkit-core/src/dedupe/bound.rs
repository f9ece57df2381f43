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
use super::data::{Dataset, Field, NULL};
use super::score::Weights;

/// The row-major dictionary codes of a dataset: one `[u32; 9]` per row, in
/// [`Field::ALL`] order ([`NULL`] when missing or the field is absent).
pub fn row_codes(ds: &Dataset) -> Vec<[u32; 9]> {
    let mut out = vec![[NULL; 9]; ds.len()];
    for (k, col) in ds.columns.iter().enumerate() {
        if let Some(col) = col {
            for (row, &c) in out.iter_mut().zip(&col.codes) {
                row[k] = c;
            }
        }
    }
    out
}

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
    present: [bool; 9],
    /// Best weight of a level other than `exact` (and 0 for email, whose
    /// levels may be made neutral).
    best_other: [f64; 9],
    /// Best weight of any level.
    best_any: [f64; 9],
    /// Best weight of a name under a swap (`exact` or `fuzzy_high`).
    best_swapped: [f64; 9],
}

impl Bounds {
    /// Bounds of the weights `w`.
    pub fn new(w: &Weights) -> Bounds {
        let mut b = Bounds {
            present: [false; 9],
            best_other: [0.0; 9],
            best_any: [0.0; 9],
            best_swapped: [0.0; 9],
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
        rows: &[[u32; 9]],
        i: usize,
        j: usize,
        target: f64,
    ) -> bool {
        let (a, b) = (&rows[i], &rows[j]);
        let mut ub = [0.0f64; 9];
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
                    Field::City => e.max(0.0),
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
        for f in ORDER {
            let k = f.index();
            if pending & (1 << k) == 0 {
                continue;
            }
            let l = self.raw_level(ds, f, a[k], b[k]);
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
            let level = |k: usize| -> u8 {
                if !self.present[k] || a[k] == NULL || b[k] == NULL {
                    L_NULL
                } else if pending & (1 << k) != 0 {
                    self.raw_level(ds, Field::ALL[k], a[k], b[k])
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

/// The fields whose values [`Bounds::may_reach`] reads first.
const PREFETCHED: [Field; 4] = [
    Field::BirthDate,
    Field::Phone,
    Field::Email,
    Field::FirstName,
];

/// Prefetch the right-hand row's values of the fields [`Bounds::may_reach`]
/// reads first (`text`: their text instead, once the values are cached).
#[inline]
pub fn prefetch_values(ds: &Dataset, rows: &[[u32; 9]], j: usize, text: bool) {
    let codes = &rows[j];
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
