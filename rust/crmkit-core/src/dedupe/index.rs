//! Incremental matching: score a new record against a fitted dataset
//! without recomputing anything.
//!
//! The index keeps, per blocking rule, the sorted distinct keys with the rows
//! of each key in sort-key order (a CSR layout, binary-searched), and a
//! value → code map per column so a new record's values hit the same
//! dictionaries (and term frequencies) as the indexed rows. A new record is
//! compared with the rows sharing one of its keys (in an oversized block, only
//! the `window` rows on each side of where it sorts).

use std::sync::Arc;

use ahash::AHashMap;
use rayon::prelude::*;

use super::block::{blocks_of, key_of, ranks, sort_key, KeyTables, Rule};
use super::compare::{compare_sides, email_restates_name, Side};
use super::data::{split_name, Dataset, Field, Value, NULL, N_FIELDS, UNSEEN};
use super::matcher::Matcher;
use super::score::{probability, Weights};
use crate::{CoreError, CoreResult};

struct RuleIndex {
    rule: Rule,
    keys: Vec<u64>,
    offsets: Vec<u32>,
    rows: Vec<u32>,
}

/// A read-only index over a fitted matcher's rows.
pub struct Index {
    ds: Arc<Dataset>,
    restates: Arc<Vec<bool>>,
    weights: Arc<Weights>,
    rules: Vec<RuleIndex>,
    lookups: Vec<Option<AHashMap<Box<str>, u32>>>,
    max_block: usize,
    window: usize,
    threshold: f64,
}

impl Index {
    /// Build the index of a fitted matcher.
    pub fn new(m: &Matcher) -> Index {
        let (ds, restates, weights) = m.parts();
        let present = ds.fields();
        let rank = ranks(ds);
        let present_rules: Vec<Rule> = m
            .config
            .rules
            .iter()
            .filter(|r| r.fields().all(|f| present.contains(&f)))
            .cloned()
            .collect();
        let tables = KeyTables::new(ds, &present_rules);
        let rules = m
            .config
            .rules
            .iter()
            .filter(|r| r.fields().all(|f| present.contains(&f)))
            .map(|rule| {
                let (keyed, ranges) = blocks_of(rule, &tables, &rank, 1);
                let mut keys = Vec::with_capacity(ranges.len());
                let mut offsets = Vec::with_capacity(ranges.len() + 1);
                offsets.push(0);
                for &(s, e) in &ranges {
                    keys.push(keyed[s].0);
                    offsets.push(e as u32);
                }
                RuleIndex {
                    rule: rule.clone(),
                    keys,
                    offsets,
                    rows: keyed.into_iter().map(|(_, r)| r).collect(),
                }
            })
            .collect();
        let lookups = ds
            .columns
            .par_iter()
            .map(|c| {
                c.as_ref().map(|c| {
                    c.values
                        .iter()
                        .enumerate()
                        .map(|(k, v)| (v.text.clone(), k as u32))
                        .collect()
                })
            })
            .collect();
        Index {
            ds: ds.clone(),
            restates: restates.clone(),
            weights: weights.clone(),
            rules,
            lookups,
            max_block: m.config.max_block,
            window: m.config.window,
            threshold: m.config.threshold,
        }
    }

    /// Number of indexed rows.
    pub fn len(&self) -> usize {
        self.ds.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.ds.is_empty()
    }

    /// Score one record against the index: `(row id, probability)` of the
    /// rows at or above `threshold` (default: the matcher's), best first.
    pub fn match_one(
        &self,
        record: &[(Field, Option<&str>)],
        threshold: Option<f64>,
    ) -> CoreResult<Vec<(i64, f64)>> {
        let t = threshold.unwrap_or(self.threshold);
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(CoreError::Config(
                "threshold must be between 0 and 1".into(),
            ));
        }
        // Whole names in one field are split as the index's rows were.
        let mut items = record.to_vec();
        let named = |f: Field| record.iter().find(|(g, _)| *g == f).and_then(|(_, v)| *v);
        if let Some((g, l)) = split_name(named(Field::FirstName), named(Field::LastName)) {
            items.retain(|(f, _)| !matches!(f, Field::FirstName | Field::LastName));
            items.extend([(Field::FirstName, Some(g)), (Field::LastName, Some(l))]);
        }
        let mut owned: Vec<Option<(u32, Value)>> = vec![None; N_FIELDS];
        for (f, v) in &items {
            let k = f.index();
            let (Some(text), Some(col)) = (
                v.map(str::trim).filter(|s| !s.is_empty()),
                self.ds.columns[k].as_ref(),
            ) else {
                continue;
            };
            let code = self.lookups[k].as_ref().and_then(|m| m.get(text).copied());
            owned[k] = Some(match code {
                Some(c) => (c, col.values[c as usize].clone()),
                None => (UNSEEN, Value::new(*f, text)),
            });
        }
        let mut values = [None; N_FIELDS];
        for (k, o) in owned.iter().enumerate() {
            values[k] = o.as_ref().map(|(c, v)| (*c, v));
        }
        let text = |f: Field| values[f.index()].map(|(_, v): (u32, &Value)| &*v.text);
        let email_restates = values[Field::Email.index()].is_some_and(|(_, e)| {
            email_restates_name(e.local(), text(Field::FirstName), text(Field::LastName))
        });
        let me = Side {
            values,
            email_restates,
            uid: 0,
        };
        let my_sort = sort_key(&me);
        let side = |r: usize| Side::of_row(&self.ds, &self.restates, r);
        let mut cands: Vec<u32> = Vec::new();
        for ri in &self.rules {
            let Some(key) = key_of(&ri.rule, &me) else {
                continue;
            };
            let Ok(b) = ri.keys.binary_search(&key) else {
                continue;
            };
            let rows = &ri.rows[ri.offsets[b] as usize..ri.offsets[b + 1] as usize];
            if rows.len() <= self.max_block {
                cands.extend_from_slice(rows);
            } else {
                let pos = rows.partition_point(|&r| sort_key(&side(r as usize)) < my_sort);
                let lo = pos.saturating_sub(self.window);
                let hi = (pos + self.window).min(rows.len());
                cands.extend_from_slice(&rows[lo..hi]);
            }
        }
        cands.sort_unstable();
        cands.dedup();
        let fields = &self.weights.fields;
        let mut out: Vec<(i64, f64)> = cands
            .into_iter()
            .filter_map(|r| {
                let other = side(r as usize);
                let mut lv = [0u8; N_FIELDS];
                let sw = compare_sides(fields, &me, &other, &mut lv);
                let mut codes = [NULL; N_FIELDS];
                for (k, v) in other.values.iter().enumerate() {
                    if let Some((c, _)) = v {
                        codes[k] = *c;
                    }
                }
                let p = probability(self.weights.total(&lv, &codes, sw));
                (p >= t).then_some((self.ds.ids[r as usize], p))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// [`Index::match_one`] over many records given as columns of match
    /// keys (all of one length), in parallel: the `limit` best matches of
    /// each record, in record order.
    pub fn match_many(
        &self,
        columns: &[(Field, Vec<Option<&str>>)],
        threshold: Option<f64>,
        limit: usize,
    ) -> CoreResult<Vec<Vec<(i64, f64)>>> {
        let n = columns.first().map_or(0, |c| c.1.len());
        if columns.iter().any(|c| c.1.len() != n) {
            return Err(CoreError::InvalidInput(
                "match_many: columns of different lengths".into(),
            ));
        }
        (0..n)
            .into_par_iter()
            .map(|r| {
                let rec: Vec<(Field, Option<&str>)> =
                    columns.iter().map(|(f, v)| (*f, v[r])).collect();
                let mut hits = self.match_one(&rec, threshold)?;
                hits.truncate(limit);
                Ok(hits)
            })
            .collect()
    }
}
