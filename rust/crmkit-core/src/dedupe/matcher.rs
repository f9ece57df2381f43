//! The matcher: fit (blocking + EM), predict (scores + clusters), explain.

use std::sync::Arc;

use ahash::AHashMap;
use rayon::prelude::*;

use super::block::{self, candidate_pairs, unpack, BlockLimits, BlockStats, Rule};
use super::bound::{self, Bounds};
use super::cluster::{cluster_weighted, Clusters};
use super::compare::{self, level_names, n_levels};
use super::data::{Column, Dataset, Field, NULL, N_FIELDS};
use super::score::{self, pack_levels, probability, EmSettings, Model, Weights};
use crate::{CoreError, CoreResult};

/// Matcher settings; [`Config::default`] needs no tuning for contact data.
#[derive(Debug, Clone)]
pub struct Config {
    /// Match probability at or above which a pair is a match.
    pub threshold: f64,
    /// Blocking rules.
    pub rules: Vec<Rule>,
    /// Blocks with more rows are searched with a sorted window.
    pub max_block: usize,
    /// The sorted window of oversized blocks.
    pub window: usize,
    /// Pair budget per record: the candidate pairs never exceed this times
    /// the row count (or 1000, whichever is larger).
    pub max_pairs_per_record: f64,
    /// Candidate pairs sampled for EM (training does not grow with N).
    pub train_pairs: usize,
    /// Random pairs sampled to estimate `u`.
    pub random_pairs: usize,
    /// EM iteration cap.
    pub em_max_iter: usize,
    /// EM convergence tolerance.
    pub em_tol: f64,
    /// Chaining guard (see [`super::cluster::cluster_weighted`]): above 0,
    /// two clusters join only when the match weights of all pairs between
    /// them sum to more than 0, and joins too large to weigh need this share
    /// of their pairs matched; 0 disables it (plain connected components).
    pub guard: f64,
    /// Seed of the random-pair sample.
    pub seed: u64,
    /// Fields to compare (default: every field present).
    pub fields: Option<Vec<Field>>,
    /// Score against all pairs of rows (random-pair `u`, `λ` over all
    /// pairs; see [`score::to_all_pairs`]) rather than against candidate pairs.
    pub all_pairs_prior: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 0.5,
            rules: block::default_rules(),
            max_block: 5,
            window: 1,
            max_pairs_per_record: 3.0,
            train_pairs: 150_000,
            random_pairs: 150_000,
            em_max_iter: 200,
            em_tol: 1e-6,
            guard: 0.5,
            seed: 0x5eed,
            fields: None,
            all_pairs_prior: true,
        }
    }
}

impl Config {
    /// Check every value's range.
    pub fn validate(&self) -> CoreResult<()> {
        let bad = |m: &str| Err(CoreError::Config(m.to_string()));
        if !(0.0..=1.0).contains(&self.threshold) || self.threshold.is_nan() {
            return bad("threshold must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.guard) || self.guard.is_nan() {
            return bad("guard must be between 0 and 1");
        }
        if self.max_block < 2 || self.window < 1 {
            return bad("max_block must be at least 2 and window at least 1");
        }
        if self.max_pairs_per_record.is_nan() || self.max_pairs_per_record <= 0.0 {
            return bad("max_pairs_per_record must be positive");
        }
        if self.train_pairs == 0 || self.random_pairs == 0 || self.em_max_iter == 0 {
            return bad("train_pairs, random_pairs and em_max_iter must be positive");
        }
        if self.rules.is_empty() {
            return bad("at least one blocking rule is needed");
        }
        Ok(())
    }
}

/// Per-row context that depends on several fields: whether the row's email
/// local part restates its name (see [`compare::email_restates_name`]).
pub fn restates_flags(ds: &Dataset) -> Vec<bool> {
    let (Some(email), first, last) = (
        ds.column(Field::Email),
        ds.column(Field::FirstName),
        ds.column(Field::LastName),
    ) else {
        return vec![false; ds.len()];
    };
    // Letters once per distinct value, not once per row.
    let letters = |c: Option<&Column>, local: bool| -> Vec<String> {
        c.map_or_else(Vec::new, |c| {
            c.values
                .par_iter()
                .map(|v| compare::name_letters(if local { v.local() } else { &v.text }))
                .collect()
        })
    };
    let (le, lf, ll) = (
        letters(Some(email), true),
        letters(first, false),
        letters(last, false),
    );
    fn get<'l>(c: Option<&Column>, l: &'l [String], r: usize) -> Option<&'l str> {
        match c?.codes[r] {
            NULL => None,
            k => Some(l[k as usize].as_str()),
        }
    }
    (0..ds.len())
        .into_par_iter()
        .with_min_len(4096)
        .map(|r| match email.codes[r] {
            NULL => false,
            e => compare::restates_letters(&le[e as usize], get(first, &lf, r), get(last, &ll, r)),
        })
        .collect()
}

/// The row of each id.
fn rows_by_id(ids: &[i64]) -> AHashMap<i64, u32> {
    let mut row_of = AHashMap::with_capacity(ids.len());
    for (r, id) in ids.iter().enumerate() {
        row_of.insert(*id, r as u32);
    }
    row_of
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Each field's contribution to a pair's score.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldExplanation {
    /// The field.
    pub field: Field,
    /// Its comparison level.
    pub level: &'static str,
    /// The level's weight (log2 Bayes factor).
    pub weight: f64,
    /// The term-frequency adjustment (bits; exact matches only).
    pub tf_adjustment: f64,
}

/// Why a pair scores what it scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The prior weight `log2(λ / (1 - λ))`.
    pub prior_weight: f64,
    /// One entry per compared field.
    pub fields: Vec<FieldExplanation>,
    /// Prior + field weights + adjustments.
    pub total_weight: f64,
    /// `1 / (1 + 2^-total_weight)`.
    pub probability: f64,
    /// Whether first and last names were compared swapped.
    pub names_swapped: bool,
    /// Whether blocking made this pair a candidate.
    pub candidate: bool,
}

/// The output of [`Matcher::predict`].
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Pairs `(row_i, row_j, probability)` at or above the threshold, sorted by pair.
    pub pairs: Vec<(u32, u32, f64)>,
    /// Clusters over those pairs.
    pub clusters: Clusters,
    /// Warnings from fitting and predicting.
    pub warnings: Vec<String>,
    /// Named counts.
    pub stats: Vec<(&'static str, f64)>,
}

/// A fitted matcher over one dataset.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The settings.
    pub config: Config,
    ds: Arc<Dataset>,
    restates: Arc<Vec<bool>>,
    fields: Vec<Field>,
    candidates: Vec<u64>,
    model: Model,
    weights: Arc<Weights>,
    /// Row of each id, built on first use (explanations).
    row_of: std::sync::OnceLock<AHashMap<i64, u32>>,
    feats: bound::Feats,
    warnings: Vec<String>,
    block_stats: BlockStats,
    train_pairs: usize,
}

impl Matcher {
    /// Block and, unless `model` is given, train by EM.
    ///
    /// `labels` are `(id, id, is_match)` pairs of known class (optional).
    pub fn fit(
        config: Config,
        ds: Dataset,
        mut warnings: Vec<String>,
        model: Option<Model>,
        labels: &[(i64, i64, bool)],
    ) -> CoreResult<Matcher> {
        config.validate()?;
        let n = ds.len();
        let present = ds.fields();
        let fields: Vec<Field> = match &config.fields {
            Some(fs) => fs.iter().copied().filter(|f| present.contains(f)).collect(),
            None => present.clone(),
        };
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .filter(|r| r.fields().all(|f| present.contains(&f)))
            .cloned()
            .collect();
        let limits = BlockLimits {
            max_block: config.max_block,
            window: config.window,
            max_pairs: ((config.max_pairs_per_record * n as f64) as usize).max(1000),
        };
        // Independent steps side by side, so that their serial parts overlap.
        let ((restates, feats), (candidates, block_stats, block_warnings)) = rayon::join(
            || rayon::join(|| restates_flags(&ds), || bound::Feats::new(&ds)),
            || {
                let mut w = Vec::new();
                let (c, s) = candidate_pairs(&ds, &block::ranks(&ds), &rules, &limits, &mut w);
                (c, s, w)
            },
        );
        warnings.extend(block_warnings);
        let row_of = std::sync::OnceLock::new();
        let train_n = candidates.len().min(config.train_pairs);
        let model = match model {
            Some(m) => {
                m.validate()?;
                m
            }
            None => {
                let lab: Vec<(u64, bool)> = labels
                    .iter()
                    .map(|&(a, b, y)| {
                        let by_id = row_of.get_or_init(|| rows_by_id(&ds.ids));
                        let (Some(&i), Some(&j)) = (by_id.get(&a), by_id.get(&b)) else {
                            return Err(CoreError::InvalidInput(
                                "a labelled pair names an unknown id".into(),
                            ));
                        };
                        let mut lv = [0u8; N_FIELDS];
                        feats.levels(&ds, &restates, &fields, i as usize, j as usize, &mut lv);
                        Ok((pack_levels(&lv), y))
                    })
                    .collect::<CoreResult<_>>()?;
                train(&config, &ds, &restates, &feats, &fields, &candidates, &lab)
            }
        };
        let weights = Arc::new(Weights::new(&model, &ds.columns));
        let fields = weights.fields.clone();
        Ok(Matcher {
            config,
            ds: Arc::new(ds),
            restates: Arc::new(restates),
            fields,
            candidates,
            model,
            weights,
            row_of,
            feats,
            warnings,
            block_stats,
            train_pairs: train_n,
        })
    }

    /// The trained (or loaded) model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.ds
    }

    /// The candidate pairs, packed (see [`block::pack`]), sorted.
    pub fn candidates(&self) -> &[u64] {
        &self.candidates
    }

    /// The fields compared.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub(crate) fn parts(&self) -> (&Arc<Dataset>, &Arc<Vec<bool>>, &Arc<Weights>) {
        (&self.ds, &self.restates, &self.weights)
    }

    /// Comparison levels of a pair of rows, and whether names were swapped.
    pub fn levels(&self, i: usize, j: usize) -> ([u8; N_FIELDS], bool) {
        let mut lv = [0u8; N_FIELDS];
        let sw = self
            .feats
            .levels(&self.ds, &self.restates, &self.fields, i, j, &mut lv);
        (lv, sw)
    }

    fn codes(&self, i: usize) -> [u32; N_FIELDS] {
        self.feats.rows[i].codes
    }

    /// Match weight of a pair of rows.
    pub fn weight(&self, i: usize, j: usize) -> f64 {
        let (lv, sw) = self.levels(i, j);
        self.weights.total(&lv, &self.codes(i), sw)
    }

    /// Score every candidate pair and cluster those at or above the threshold.
    pub fn predict(&self, threshold: Option<f64>) -> CoreResult<Prediction> {
        self.predict_apart(threshold, &[])
    }

    /// [`Matcher::predict`] with pairs of ids that must not share a cluster
    /// (a reviewer's "not the same person", an undone merge). Pairs naming
    /// an id not among the rows are ignored.
    pub fn predict_apart(
        &self,
        threshold: Option<f64>,
        apart: &[(i64, i64)],
    ) -> CoreResult<Prediction> {
        let t = threshold.unwrap_or(self.config.threshold);
        if !(0.0..=1.0).contains(&t) || t.is_nan() {
            return Err(CoreError::Config(
                "threshold must be between 0 and 1".into(),
            ));
        }
        let target = bound::target_weight(t);
        let bounds = Bounds::new(&self.weights);
        let full = std::sync::atomic::AtomicUsize::new(0);
        let pairs: Vec<(u32, u32, f64)> = self
            .candidates
            .par_chunks(4096)
            .flat_map_iter(|chunk| {
                let mut scored = 0;
                let ahead = |k: usize| chunk.get(k).map(|&p| unpack(p).1 as usize);
                let out: Vec<(u32, u32, f64)> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &p)| {
                        if let Some(j) = ahead(k + 16) {
                            bound::prefetch(&self.feats.rows[j]);
                        }
                        if let Some(j) = ahead(k + 8) {
                            self.feats.prefetch_text(j);
                            bound::prefetch_values(&self.ds, &self.feats.rows, j, false);
                        }
                        if let Some(j) = ahead(k + 4) {
                            bound::prefetch_values(&self.ds, &self.feats.rows, j, true);
                        }
                        let (i, j) = unpack(p);
                        let (i, j) = (i as usize, j as usize);
                        let mut raw = [bound::UNKNOWN; N_FIELDS];
                        if let Some(target) = target {
                            if !bounds.may_reach_with(
                                &self.weights,
                                &self.ds,
                                &self.feats,
                                i,
                                j,
                                target,
                                &mut raw,
                            ) {
                                return None;
                            }
                        }
                        scored += 1;
                        // The levels the bound computed are not computed again.
                        let mut lv = [0u8; N_FIELDS];
                        let sw = self.feats.levels_with(
                            &self.ds,
                            &self.restates,
                            &self.fields,
                            i,
                            j,
                            &mut lv,
                            &raw,
                        );
                        let w = self.weights.total(&lv, &self.codes(i), sw);
                        let prob = probability(w);
                        (prob >= t).then_some((i as u32, j as u32, prob))
                    })
                    .collect();
                full.fetch_add(scored, std::sync::atomic::Ordering::Relaxed);
                out
            })
            .collect();
        let apart: Vec<(u32, u32)> = if apart.is_empty() {
            Vec::new()
        } else {
            let by_id = self.row_of.get_or_init(|| rows_by_id(&self.ds.ids));
            apart
                .iter()
                .filter_map(|(a, b)| Some((*by_id.get(a)?, *by_id.get(b)?)))
                .filter(|(i, j)| i != j)
                .collect()
        };
        let clusters = cluster_weighted(
            self.ds.len(),
            &self.ds.ids,
            &pairs,
            self.config.guard,
            &apart,
            |i, j| self.weight(i as usize, j as usize),
        );
        let n = self.ds.len().max(1) as f64;
        let stats = vec![
            ("records", self.ds.len() as f64),
            ("candidate_pairs", self.candidates.len() as f64),
            (
                "candidate_pairs_per_record",
                self.candidates.len() as f64 / n,
            ),
            ("blocks_windowed", self.block_stats.blocks_windowed as f64),
            ("rules_skipped", self.block_stats.rules_skipped as f64),
            ("pairs_scored_in_full", full.into_inner() as f64),
            ("train_pairs", self.train_pairs as f64),
            ("em_iterations", self.model.iterations as f64),
            ("prior", self.model.prior),
            ("threshold", t),
            ("matched_pairs", pairs.len() as f64),
            ("clusters", clusters.multi as f64),
            ("links_refused", clusters.refused as f64),
            ("links_kept_apart", clusters.kept_apart as f64),
        ];
        Ok(Prediction {
            pairs,
            clusters,
            warnings: self.warnings.clone(),
            stats,
        })
    }

    /// Explain the score of the pair of rows with ids `a` and `b`.
    pub fn explain(&self, a: i64, b: i64) -> CoreResult<Explanation> {
        let by_id = self.row_of.get_or_init(|| rows_by_id(&self.ds.ids));
        let (Some(&i), Some(&j)) = (by_id.get(&a), by_id.get(&b)) else {
            return Err(CoreError::InvalidInput("explain: unknown row id".into()));
        };
        let (lv, sw) = self.levels(i as usize, j as usize);
        let codes = self.codes(i as usize);
        let adj = self.weights.adjustments(&lv, &codes, sw);
        let fields = self
            .fields
            .iter()
            .map(|&f| {
                let k = f.index();
                let l = lv[k];
                let tf = adj[k];
                FieldExplanation {
                    field: f,
                    level: level_names(f)[l as usize],
                    weight: self.weights.level[k][l as usize],
                    tf_adjustment: tf,
                }
            })
            .collect();
        let total = self.weights.total(&lv, &codes, sw);
        Ok(Explanation {
            prior_weight: self.weights.prior,
            fields,
            total_weight: total,
            probability: probability(total),
            names_swapped: sw,
            candidate: self.candidates.binary_search(&block::pack(i, j)).is_ok(),
        })
    }
}

fn train(
    config: &Config,
    ds: &Dataset,
    restates: &[bool],
    feats: &bound::Feats,
    fields: &[Field],
    candidates: &[u64],
    labelled: &[(u64, bool)],
) -> Model {
    let n = ds.len();
    let levels = |i: u32, j: u32, lv: &mut [u8; N_FIELDS]| {
        feats.levels(ds, restates, fields, i as usize, j as usize, lv);
    };
    // u from random pairs.
    let mut counts: Vec<Vec<u64>> = fields.iter().map(|&f| vec![0; n_levels(f)]).collect();
    if n >= 2 {
        let total = (n as u128 * (n as u128 - 1) / 2).min(config.random_pairs as u128) as usize;
        let mut state = config.seed;
        let pairs: Vec<(u32, u32)> = (0..total)
            .map(|_| {
                let i = (splitmix(&mut state) % n as u64) as u32;
                let mut j = (splitmix(&mut state) % (n as u64 - 1)) as u32;
                if j >= i {
                    j += 1;
                }
                (i, j)
            })
            .collect();
        counts = pairs
            .par_iter()
            .with_min_len(4096)
            .fold(
                || {
                    fields
                        .iter()
                        .map(|&f| vec![0u64; n_levels(f)])
                        .collect::<Vec<_>>()
                },
                |mut acc, &(i, j)| {
                    let mut lv = [0u8; N_FIELDS];
                    levels(i, j, &mut lv);
                    for (k, f) in fields.iter().enumerate() {
                        acc[k][lv[f.index()] as usize] += 1;
                    }
                    acc
                },
            )
            .reduce(
                || {
                    fields
                        .iter()
                        .map(|&f| vec![0u64; n_levels(f)])
                        .collect::<Vec<_>>()
                },
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        for (p, q) in x.iter_mut().zip(y) {
                            *p += q;
                        }
                    }
                    a
                },
            );
    }
    let u_random: Vec<Vec<f64>> = fields
        .iter()
        .zip(&counts)
        .map(|(&f, c)| score::u_from_counts(f, c))
        .collect();
    // Comparison vectors of a bounded, evenly spaced sample of candidates.
    let take = candidates.len().min(config.train_pairs);
    let step = candidates.len() as f64 / take.max(1) as f64;
    let sample: Vec<u64> = (0..take)
        .map(|k| candidates[((k as f64 * step) as usize).min(candidates.len() - 1)])
        .collect();
    let mut pats: Vec<u64> = sample
        .par_iter()
        .with_min_len(4096)
        .map(|&p| {
            let (i, j) = unpack(p);
            let mut lv = [0u8; N_FIELDS];
            levels(i, j, &mut lv);
            pack_levels(&lv)
        })
        .collect();
    pats.par_sort_unstable();
    let mut patterns: Vec<(u64, u64)> = Vec::new();
    for p in pats {
        match patterns.last_mut() {
            Some((q, c)) if *q == p => *c += 1,
            _ => patterns.push((p, 1)),
        }
    }
    let mut model = score::train_em(
        fields,
        &patterns,
        labelled,
        &u_random,
        EmSettings {
            max_iter: config.em_max_iter,
            tol: config.em_tol,
            m_prior_share: score::M_PRIOR_SHARE,
            u_prior_share: score::U_PRIOR_SHARE,
        },
    );
    if config.all_pairs_prior {
        score::to_all_pairs(&mut model, &ds.columns, &u_random, candidates.len(), n);
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(n: usize) -> Dataset {
        let firsts = ["ann", "bob", "william", "bill", "cara", "dan", "eve"];
        let lasts = ["smith", "smyth", "jones", "lee", "okafor", "zhang"];
        let mut cols: Vec<(Field, Vec<Option<String>>)> = vec![
            (Field::FirstName, vec![]),
            (Field::LastName, vec![]),
            (Field::Email, vec![]),
            (Field::Postcode, vec![]),
            (Field::BirthDate, vec![]),
        ];
        let mut s = 7u64;
        for r in 0..n {
            let p = r / 2; // rows 2k and 2k+1 are the same person, with noise
            let f = firsts[p % firsts.len()];
            let l = lasts[(p / 7) % lasts.len()];
            let noisy = splitmix(&mut s) % 3 == 0 && r % 2 == 1;
            cols[0].1.push(Some(
                if noisy { firsts[(p + 1) % 7] } else { f }.to_string(),
            ));
            cols[1].1.push(Some(l.to_string()));
            cols[2]
                .1
                .push((splitmix(&mut s) % 4 != 0).then(|| format!("{f}{p}@x.org")));
            cols[3].1.push(Some(format!("p{}", p % 50)));
            cols[4]
                .1
                .push(Some(format!("19{:02}-0{}-1{}", p % 90, 1 + p % 9, p % 10)));
        }
        Dataset::from_columns((0..n as i64).map(|i| 1000 - i).collect(), cols)
            .unwrap()
            .0
    }

    fn run(threads: usize) -> (Vec<u64>, Vec<(u32, u32, f64)>, Vec<i64>, Model) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let m = Matcher::fit(Config::default(), dataset(400), vec![], None, &[]).unwrap();
            let p = m.predict(None).unwrap();
            (
                m.candidates().to_vec(),
                p.pairs,
                p.clusters.ids,
                m.model().clone(),
            )
        })
    }

    #[test]
    fn output_is_the_same_whatever_the_thread_count() {
        let one = run(1);
        let two = run(2);
        assert!(!one.1.is_empty());
        assert_eq!(one, two);
    }

    #[test]
    fn early_rejection_never_drops_a_pair_that_reaches_the_threshold() {
        let m = Matcher::fit(Config::default(), dataset(300), vec![], None, &[]).unwrap();
        let b = Bounds::new(&m.weights);
        let (mut rejected, mut kept) = (0, 0);
        for t in [0.01, 0.3, 0.5, 0.9, 0.999] {
            let target = bound::target_weight(t).unwrap();
            for i in 0..m.ds.len() {
                for j in (i + 1..m.ds.len()).step_by(7) {
                    let w = m.weight(i, j);
                    if b.may_reach(&m.weights, &m.ds, &m.feats, i, j, target) {
                        kept += 1;
                    } else {
                        rejected += 1;
                        assert!(probability(w) < t, "pair ({i}, {j}) weight {w} at {t}");
                    }
                }
            }
        }
        assert!(rejected > 0 && kept > 0);
        // Swapped names, initials and missing names.
        let names = [
            "ann", "lee", "bo", "li", "annie", "smith", "smyth", "a", "jon",
        ];
        let mut s = 11u64;
        let mut pick = |none: bool| -> Option<String> {
            let k = splitmix(&mut s) as usize % (names.len() + usize::from(none));
            names.get(k).map(|n| n.to_string())
        };
        let n = 120;
        let (first, last): (Vec<_>, Vec<_>) = (0..n).map(|_| (pick(true), pick(true))).unzip();
        let email: Vec<Option<String>> =
            (0..n).map(|r| Some(format!("p{}@x.org", r % 40))).collect();
        let m = fit_rows(vec![
            (Field::FirstName, first),
            (Field::LastName, last),
            (Field::Email, email),
        ]);
        let b = Bounds::new(&m.weights);
        let mut swaps = 0;
        for t in [0.05, 0.5, 0.95] {
            let target = bound::target_weight(t).unwrap();
            for i in 0..n {
                for j in i + 1..n {
                    swaps += usize::from(m.levels(i, j).1);
                    if !b.may_reach(&m.weights, &m.ds, &m.feats, i, j, target) {
                        let w = m.weight(i, j);
                        assert!(probability(w) < t, "pair ({i}, {j}) weight {w} at {t}");
                    }
                }
            }
        }
        assert!(swaps > 0);
        assert_eq!(bound::target_weight(1.0), None);
        assert_eq!(bound::target_weight(0.0), None);
    }

    #[test]
    fn feature_levels_equal_the_value_comparisons() {
        use crate::dedupe::compare::{compare_sides, Side};
        // Small pools of values with typos, so that every level comes up.
        let pools: [(Field, &[&str]); N_FIELDS] = [
            (
                Field::FirstName,
                &["ann", "anne", "bill", "william", "a", "lee"],
            ),
            (Field::LastName, &["lee", "smith", "smyth", "ann", "o'neil"]),
            (
                Field::Email,
                &[
                    "annlee@x.org",
                    "anlee@y.com",
                    "ann.lee84@x.org",
                    "bob@x.org",
                    "annle@x.orgg",
                ],
            ),
            (
                Field::Phone,
                &[
                    "447700900123",
                    "447700900132",
                    "44770090012",
                    "12025550143",
                    "123",
                ],
            ),
            (
                Field::Postcode,
                &["sw1a 1aa", "sw1a 2bb", "75003", "750", "sw1a1aa"],
            ),
            (
                Field::City,
                &["london", "londno", "paris", "new york", "york"],
            ),
            (
                Field::Street,
                &["12 lee st", "12 lee street", "rue foch", "42 rue foch"],
            ),
            (
                Field::BirthDate,
                &[
                    "1980-02-03",
                    "1980-03-02",
                    "1980-02-13",
                    "1980-12-01",
                    "1981-02-03",
                    "1980/02/03",
                    "1980-00-03",
                ],
            ),
            (
                Field::Company,
                &["acme inc", "acme", "acme corp", "widgets ltd"],
            ),
            (Field::Country, &["us", "gb", "fr"]),
            (Field::Region, &["ny", "ca", "bayern"]),
        ];
        let n = 300;
        let mut state = 3u64;
        let cols = pools
            .iter()
            .map(|(f, pool)| {
                let col = (0..n)
                    .map(|_| {
                        let k = (splitmix(&mut state) % (pool.len() as u64 + 1)) as usize;
                        pool.get(k).map(|v| v.to_string())
                    })
                    .collect();
                (*f, col)
            })
            .collect();
        let m = fit_rows(cols);
        let (ds, restates) = (&m.ds, &m.restates);
        let all = ds.fields();
        let b = Bounds::new(&m.weights);
        let mut graded = 0;
        for i in 0..ds.len() {
            for j in i + 1..ds.len() {
                let (mut x, mut y) = ([0u8; N_FIELDS], [0u8; N_FIELDS]);
                let sx = m.feats.levels(ds, restates, &all, i, j, &mut x);
                let sy = compare_sides(
                    &all,
                    &Side::of_row(ds, restates, i),
                    &Side::of_row(ds, restates, j),
                    &mut y,
                );
                assert_eq!((x, sx), (y, sy), "rows {i} {j}");
                // The raw levels the bound computes give the same levels.
                for t in [0.01, 0.5, 0.99] {
                    let mut raw = [bound::UNKNOWN; N_FIELDS];
                    let target = bound::target_weight(t).unwrap();
                    if b.may_reach_with(&m.weights, ds, &m.feats, i, j, target, &mut raw) {
                        let mut z = [0u8; N_FIELDS];
                        let sz = m.feats.levels_with(ds, restates, &all, i, j, &mut z, &raw);
                        assert_eq!((z, sz), (x, sx), "rows {i} {j} at {t}");
                    }
                }
                let d = x[Field::BirthDate.index()];
                graded += usize::from(d == 3 || d == 4);
            }
        }
        assert!(graded > 0);
    }

    /// A matcher fitted with the default settings on rows `0..n` of `cols`.
    fn fit_rows(cols: Vec<(Field, Vec<Option<String>>)>) -> Matcher {
        let n = cols.first().map_or(0, |c| c.1.len());
        let (ds, _) = Dataset::from_columns((0..n as i64).collect(), cols).unwrap();
        Matcher::fit(Config::default(), ds, vec![], None, &[]).unwrap()
    }

    #[test]
    fn a_country_disagreement_weighs_against_a_match() {
        // Pairs of rows of one person share a name and a country; a namesake
        // in another country shares only the name.
        let firsts = ["ann", "bob", "cara", "dan", "eve", "fay", "gus"];
        let lasts = ["lee", "okafor", "zhang", "smith", "nagy", "kowalski"];
        let countries = ["us", "gb", "fr", "de"];
        let n = 600;
        let mut s = 5u64;
        let (mut first, mut last, mut email, mut country) = (vec![], vec![], vec![], vec![]);
        for r in 0..n {
            let p = r / 2;
            first.push(Some(firsts[p % firsts.len()].to_string()));
            last.push(Some(lasts[(p / 7) % lasts.len()].to_string()));
            let keep = splitmix(&mut s) % 2 == 0;
            email.push(keep.then(|| format!("p{p}@x.org")));
            country.push(Some(countries[p % 4].to_string()));
        }
        let m = fit_rows(vec![
            (Field::FirstName, first),
            (Field::LastName, last),
            (Field::Email, email),
            (Field::Country, country),
        ]);
        let fm = m.model().field(Field::Country).unwrap();
        assert_eq!(fm.weight(compare::L_EXACT), 0.0);
        assert!(fm.weight(compare::l_different(Field::Country)) < -3.0);
        // Rows 0 and 2 * 42 = 84 share a name; 84's person lives elsewhere.
        let (lv, _) = m.levels(0, 84);
        assert_eq!(lv[Field::FirstName.index()], compare::L_EXACT);
        assert_eq!(
            lv[Field::Country.index()],
            compare::l_different(Field::Country)
        );
        let e = m.explain(0, 84).unwrap();
        let c = e.fields.iter().find(|f| f.field == Field::Country).unwrap();
        assert_eq!(c.level, "different");
        assert!(c.weight < -3.0);
    }

    #[test]
    fn explain_adds_up_and_config_is_checked() {
        let m = Matcher::fit(Config::default(), dataset(100), vec![], None, &[]).unwrap();
        let e = m.explain(1000, 999).unwrap();
        let sum: f64 = e.prior_weight
            + e.fields
                .iter()
                .map(|f| f.weight + f.tf_adjustment)
                .sum::<f64>();
        assert!((sum - e.total_weight).abs() < 1e-9);
        assert!(m.explain(1000, 5).is_err());
        assert!(m.predict(Some(1.5)).is_err());
        let bad = Config {
            threshold: -0.1,
            ..Config::default()
        };
        assert!(Matcher::fit(bad, dataset(10), vec![], None, &[]).is_err());
    }

    #[test]
    fn labelled_pairs_are_used_and_checked() {
        // Ids are 1000 - row; rows 2k and 2k+1 are the same person.
        let labels: Vec<(i64, i64, bool)> = (0..40)
            .map(|k| (1000 - 2 * k, 999 - 2 * k, true))
            .chain((0..40).map(|k| (1000 - 2 * k, 1000 - 2 * k - 50, false)))
            .collect();
        let plain = Matcher::fit(Config::default(), dataset(200), vec![], None, &[]).unwrap();
        let m = Matcher::fit(Config::default(), dataset(200), vec![], None, &labels).unwrap();
        m.model().validate().unwrap();
        assert_ne!(m.model(), plain.model());
        let bad = [(1000, 5, true)];
        let err = Matcher::fit(Config::default(), dataset(200), vec![], None, &bad).unwrap_err();
        assert!(err.to_string().contains("unknown id"));
    }

    #[test]
    fn empty_input_gives_an_empty_result() {
        let (ds, _) = Dataset::from_columns(vec![], vec![(Field::Email, vec![])]).unwrap();
        let m = Matcher::fit(Config::default(), ds, vec![], None, &[]).unwrap();
        let p = m.predict(None).unwrap();
        assert!(p.pairs.is_empty() && p.clusters.ids.is_empty());
    }

    #[test]
    fn the_index_finds_a_known_row() {
        let m = Matcher::fit(Config::default(), dataset(200), vec![], None, &[]).unwrap();
        let idx = super::super::Index::new(&m);
        let ds = m.dataset();
        let rec: Vec<(Field, Option<String>)> = ds
            .fields()
            .into_iter()
            .map(|f| (f, ds.column(f).unwrap().get(10).map(|v| v.text.to_string())))
            .collect();
        let rec: Vec<(Field, Option<&str>)> = rec.iter().map(|(f, v)| (*f, v.as_deref())).collect();
        let hits = idx.match_one(&rec, Some(0.5)).unwrap();
        assert!(hits.iter().any(|h| h.0 == ds.ids[10]));
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn a_whole_name_in_one_field_matches_as_the_split_name() {
        let m = Matcher::fit(Config::default(), dataset(200), vec![], None, &[]).unwrap();
        let idx = super::super::Index::new(&m);
        let ds = m.dataset();
        let text = |f: Field, r: usize| ds.column(f).unwrap().get(r).map(|v| v.text.to_string());
        let row = (0..ds.len())
            .find(|&r| text(Field::FirstName, r).is_some() && text(Field::LastName, r).is_some())
            .unwrap();
        let (first, last) = (
            text(Field::FirstName, row).unwrap(),
            text(Field::LastName, row).unwrap(),
        );
        let rest: Vec<(Field, Option<String>)> = ds
            .fields()
            .into_iter()
            .filter(|f| !matches!(f, Field::FirstName | Field::LastName))
            .map(|f| (f, text(f, row)))
            .collect();
        let with = |names: [(Field, Option<String>); 2]| {
            let rec: Vec<(Field, Option<&str>)> = rest
                .iter()
                .chain(&names)
                .map(|(f, v)| (*f, v.as_deref()))
                .collect();
            idx.match_one(&rec, Some(0.0)).unwrap()
        };
        let plain = with([
            (Field::FirstName, Some(first.clone())),
            (Field::LastName, Some(last.clone())),
        ]);
        assert!(plain.iter().any(|h| h.0 == ds.ids[row]));
        for names in [
            [
                (Field::FirstName, None),
                (Field::LastName, Some(format!("{last}, {first}"))),
            ],
            [
                (Field::FirstName, Some(format!("{last}, {first}"))),
                (Field::LastName, None),
            ],
            [
                (Field::FirstName, Some(format!("{first} {last}"))),
                (Field::LastName, Some(" ".into())),
            ],
        ] {
            assert_eq!(with(names), plain);
        }
    }

    #[test]
    fn matching_many_records_equals_matching_each() {
        let m = Matcher::fit(Config::default(), dataset(300), vec![], None, &[]).unwrap();
        let idx = super::super::Index::new(&m);
        let ds = m.dataset();
        let rows = [0usize, 7, 42, 150, 299];
        let cols: Vec<(Field, Vec<Option<String>>)> = ds
            .fields()
            .into_iter()
            .map(|f| {
                let c = ds.column(f).unwrap();
                (
                    f,
                    rows.iter()
                        .map(|&r| c.get(r).map(|v| v.text.to_string()))
                        .collect(),
                )
            })
            .collect();
        let view: Vec<(Field, Vec<Option<&str>>)> = cols
            .iter()
            .map(|(f, v)| (*f, v.iter().map(Option::as_deref).collect()))
            .collect();
        for limit in [1, 3, usize::MAX] {
            let many = idx.match_many(&view, Some(0.3), limit).unwrap();
            assert_eq!(many.len(), rows.len());
            for (k, hits) in many.iter().enumerate() {
                let rec: Vec<(Field, Option<&str>)> =
                    cols.iter().map(|(f, v)| (*f, v[k].as_deref())).collect();
                let mut one = idx.match_one(&rec, Some(0.3)).unwrap();
                one.truncate(limit);
                assert_eq!(hits, &one);
            }
        }
        assert!(idx.match_many(&view, Some(1.5), 1).is_err());
        let ragged = vec![(Field::Email, vec![None]), (Field::LastName, vec![])];
        assert!(idx.match_many(&ragged, None, 1).is_err());
    }
}
