//! Fellegi-Sunter scoring with m and u estimated by EM, without labels.
//!
//! A pair's comparison vector (one level per field) is scored by its match
//! weight: `log2(λ / (1 - λ)) + Σ_f log2(m_f,l / u_f,l)`, plus a
//! term-frequency adjustment on exact matches, and its match probability is
//! `1 / (1 + 2^-weight)`.
//!
//! Training (no labels needed):
//! 1. `u` is first estimated from random pairs of rows (almost all
//!    non-matches), with add-one smoothing.
//! 2. EM then fits the two-class mixture (match / non-match) to the
//!    comparison vectors of a bounded sample of *candidate* pairs, starting
//!    from that `u` and a generic `m`; `u` is re-estimated too, with the random
//!    pair estimate as a prior (pseudo-counts), because non-matches that pass
//!    blocking agree more often than random pairs do. `λ` is then the share of
//!    matches among candidate pairs, which stays stable as the data grows
//!    since blocking keeps the pairs per record roughly constant.
//!    EM runs over distinct comparison vectors with their counts, so each
//!    iteration costs the number of distinct patterns, not of pairs.
//! 3. Labelled pairs, when given, enter every M-step with their known class.
//! 4. By default ([`to_all_pairs`]) the fitted model is then restated over all
//!    pairs of rows: `u` from random pairs (exact level counted from the
//!    values), `λ` = expected matching pairs / all pairs, so the odds of a
//!    pair of namesakes fall as the data grows.
//!
//! Null and [`compare::is_neutral`] levels weigh 0. Term frequencies: an
//! exact match on a value with relative frequency `tf` gets
//! `log2(Σ tf_k² / tf)` more (a rare surname counts more than "smith"),
//! clamped to ±[`TF_CLAMP`] bits.

use super::compare::{self, has_tf, is_neutral, n_levels, L_EXACT, L_NULL};
use super::data::{Column, Field, N_FIELDS};
use crate::{CoreError, CoreResult};

/// Bound (in bits) of a term-frequency adjustment.
pub const TF_CLAMP: f64 = 12.0;
/// Strength (pseudo-count) of the random-pair prior on `u` in EM.
pub const U_PRIOR_STRENGTH: f64 = 50.0;
/// Strength of the generic `m` prior (exact likely, different unlikely among
/// matches), as a share of the training pairs: it keeps EM from settling on
/// a split other than match / non-match (e.g. "same first name and city").
pub const M_PRIOR_SHARE: f64 = 0.05;
/// Strength of the random-pair `u` prior, as a share of the training pairs.
pub const U_PRIOR_SHARE: f64 = 0.05;

/// m and u of every level of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldModel {
    /// The field.
    pub field: Field,
    /// P(level | match), indexed by level (index 0, null, unused).
    pub m: Vec<f64>,
    /// P(level | non-match), indexed by level (index 0, null, unused).
    pub u: Vec<f64>,
}

impl FieldModel {
    /// The weight (log2 Bayes factor) of a level.
    pub fn weight(&self, level: u8) -> f64 {
        if is_neutral(self.field, level) {
            0.0
        } else {
            (self.m[level as usize] / self.u[level as usize]).log2()
        }
    }
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Share of matches among candidate pairs (λ).
    pub prior: f64,
    /// One entry per field used.
    pub fields: Vec<FieldModel>,
    /// EM iterations run (0 for a loaded model).
    pub iterations: usize,
}

impl Model {
    /// The prior weight `log2(λ / (1 - λ))`.
    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    /// The field model of `f`, if the model uses it.
    pub fn field(&self, f: Field) -> Option<&FieldModel> {
        self.fields.iter().find(|m| m.field == f)
    }

    /// Check that probabilities are in (0, 1) and level counts match.
    pub fn validate(&self) -> CoreResult<()> {
        let ok = |p: f64| p.is_finite() && p > 0.0 && p < 1.0;
        if !ok(self.prior) {
            return Err(CoreError::Config("model prior must be in (0, 1)".into()));
        }
        for fm in &self.fields {
            let n = n_levels(fm.field);
            if fm.m.len() != n || fm.u.len() != n {
                return Err(CoreError::Config(format!(
                    "model field '{}' needs {} levels",
                    fm.field.name(),
                    n
                )));
            }
            for l in 1..n {
                if !(ok(fm.m[l]) || fm.m[l] == 1.0) || !(ok(fm.u[l]) || fm.u[l] == 1.0) {
                    return Err(CoreError::Config(format!(
                        "model field '{}' level '{}': m and u must be in (0, 1]",
                        fm.field.name(),
                        compare::level_names(fm.field)[l]
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Packs a comparison vector (levels in [`Field::ALL`] order) into a `u64`.
pub fn pack_levels(levels: &[u8; N_FIELDS]) -> u64 {
    levels
        .iter()
        .enumerate()
        .fold(0u64, |acc, (k, &l)| acc | ((l as u64) << (4 * k)))
}

/// The level of field index `k` in a packed vector.
pub fn level_at(pattern: u64, k: usize) -> u8 {
    ((pattern >> (4 * k)) & 0xf) as u8
}

/// `u` from level counts of random pairs, with add-one smoothing over non-null levels.
pub fn u_from_counts(field: Field, counts: &[u64]) -> Vec<f64> {
    let n = n_levels(field);
    let total: u64 = counts[1..].iter().sum();
    let mut u = vec![0.0; n];
    for l in 1..n {
        u[l] = (counts[l] as f64 + 1.0) / (total as f64 + (n - 1) as f64);
    }
    u
}

fn initial_m(field: Field) -> Vec<f64> {
    let n = n_levels(field);
    let mut m = vec![0.0; n];
    let middle = n - 3; // levels strictly between exact and different
    m[L_EXACT as usize] = if middle == 0 { 0.9 } else { 0.7 };
    m[n - 1] = 0.1;
    if field == Field::Country {
        // A person keeps their country: records of one person that name
        // different countries are rare.
        m[L_EXACT as usize] = 0.99;
        m[n - 1] = 0.01;
    }
    for l in 2..n - 1 {
        m[l] = 0.2 / middle as f64;
    }
    m
}

/// EM settings.
#[derive(Debug, Clone, Copy)]
pub struct EmSettings {
    /// Maximum iterations.
    pub max_iter: usize,
    /// Stop when no parameter moves more than this.
    pub tol: f64,
    /// Strength of the generic `m` prior, as a share of the training pairs
    /// ([`M_PRIOR_SHARE`] by default; 0 for plain maximum likelihood).
    pub m_prior_share: f64,
    /// Strength of the random-pair `u` prior, as a share of the training
    /// pairs ([`U_PRIOR_SHARE`] by default).
    pub u_prior_share: f64,
}

/// Fit m, u and λ by EM over distinct comparison vectors with their counts.
///
/// `patterns` must be sorted (for a deterministic result); `labelled` holds
/// comparison vectors of pairs of known class; `u_random[k]` is the random-pair
/// `u` of `fields[k]`.
pub fn train_em(
    fields: &[Field],
    patterns: &[(u64, u64)],
    labelled: &[(u64, bool)],
    u_random: &[Vec<f64>],
    settings: EmSettings,
) -> Model {
    let mut model = Model {
        prior: 0.2,
        fields: fields
            .iter()
            .zip(u_random)
            .map(|(&f, u)| FieldModel {
                field: f,
                m: initial_m(f),
                u: u.clone(),
            })
            .collect(),
        iterations: 0,
    };
    let ln_odds = |model: &Model, p: u64| -> f64 {
        let mut s = (model.prior / (1.0 - model.prior)).ln();
        for fm in &model.fields {
            let l = level_at(p, fm.field.index());
            if !is_neutral(fm.field, l) {
                s += (fm.m[l as usize] / fm.u[l as usize]).ln();
            }
        }
        s
    };
    let total: f64 = patterns.iter().map(|&(_, c)| c as f64).sum();
    let m_strength = settings.m_prior_share * total;
    let u_strength = U_PRIOR_STRENGTH.max(settings.u_prior_share * total);
    let m_init: Vec<Vec<f64>> = fields.iter().map(|&f| initial_m(f)).collect();
    for it in 1..=settings.max_iter {
        let mut m_acc: Vec<Vec<f64>> = fields.iter().map(|&f| vec![0.0; n_levels(f)]).collect();
        let mut u_acc = m_acc.clone();
        let (mut w_match, mut w_total) = (0.0, 0.0);
        let add = |p: u64, c: f64, r: f64, m_acc: &mut [Vec<f64>], u_acc: &mut [Vec<f64>]| {
            for (k, fm) in model.fields.iter().enumerate() {
                let l = level_at(p, fm.field.index()) as usize;
                if l != L_NULL as usize {
                    m_acc[k][l] += c * r;
                    u_acc[k][l] += c * (1.0 - r);
                }
            }
        };
        for &(p, c) in patterns {
            let r = 1.0 / (1.0 + (-ln_odds(&model, p)).exp());
            let c = c as f64;
            w_match += c * r;
            w_total += c;
            add(p, c, r, &mut m_acc, &mut u_acc);
        }
        for &(p, is_match) in labelled {
            add(
                p,
                1.0,
                if is_match { 1.0 } else { 0.0 },
                &mut m_acc,
                &mut u_acc,
            );
        }
        let mut delta: f64;
        let prior = ((w_match + 1.0) / (w_total + 2.0)).clamp(1e-6, 1.0 - 1e-6);
        delta = (prior - model.prior).abs();
        model.prior = prior;
        for (k, fm) in model.fields.iter_mut().enumerate() {
            let n = fm.m.len();
            let m_tot: f64 = m_acc[k][1..].iter().sum();
            let u_tot: f64 = u_acc[k][1..].iter().sum();
            for l in 1..n {
                let m = (m_acc[k][l] + 0.1 + m_strength * m_init[k][l])
                    / (m_tot + 0.1 * (n - 1) as f64 + m_strength);
                let u = (u_acc[k][l] + u_strength * u_random[k][l]) / (u_tot + u_strength);
                delta = delta.max((m - fm.m[l]).abs()).max((u - fm.u[l]).abs());
                fm.m[l] = m;
                fm.u[l] = u;
            }
        }
        model.iterations = it;
        if delta < settings.tol {
            break;
        }
    }
    model
}

/// Share of random pairs of non-null values that agree exactly: `Σ tf_k²`.
pub fn exact_agreement(col: &Column) -> f64 {
    let n = col.non_null.max(1) as f64;
    col.counts.iter().map(|&c| (c as f64 / n).powi(2)).sum()
}

/// Turn a model fitted on candidate pairs into one over *all* pairs of rows.
///
/// EM on candidate pairs gives `m` and the share of matches among candidates.
/// Scored against all pairs instead, `u` is the random-pair estimate, except
/// for the exact level, counted from the values themselves: the pairs of
/// distinct rows sharing a value, less the matching pairs expected among
/// them, over all pairs of rows with a value. `λ` is the expected number of
/// matching pairs over the number of pairs of rows. A pair's odds then fall as
/// namesakes grow with the data, while pairs that agree on rare values or
/// identifiers keep theirs: the threshold holds as N grows.
pub fn to_all_pairs(
    model: &mut Model,
    columns: &[Option<Column>],
    u_random: &[Vec<f64>],
    candidates: usize,
    rows: usize,
) {
    let all = (rows as f64) * (rows as f64 - 1.0) / 2.0;
    if all < 1.0 {
        return;
    }
    let matches = (model.prior * candidates as f64).max(1.0);
    model.prior = (matches / all).clamp(1e-12, 0.5);
    let share = matches / all;
    for (fm, ur) in model.fields.iter_mut().zip(u_random) {
        let Some(col) = columns[fm.field.index()].as_ref() else {
            continue;
        };
        let n = fm.u.len();
        let nn = col.non_null as f64;
        let pairs = (nn * (nn - 1.0) / 2.0).max(1.0);
        let agree: f64 = col
            .counts
            .iter()
            .map(|&c| c as f64 * (c as f64 - 1.0) / 2.0)
            .sum();
        let matching = share * pairs * fm.m[L_EXACT as usize];
        let exact = ((agree - matching).max(0.5) / pairs).clamp(1e-12, 0.5);
        let rest: f64 = ur[2..n].iter().sum();
        fm.u[L_EXACT as usize] = exact;
        for l in 2..n {
            fm.u[l] = (1.0 - exact) * ur[l] / rest.max(1e-300);
        }
    }
}

/// Per-code term-frequency adjustments (bits) of a column's exact matches.
pub fn tf_table(col: &Column) -> Vec<f32> {
    let n = col.non_null.max(1) as f64;
    let expected: f64 = col.counts.iter().map(|&c| (c as f64 / n).powi(2)).sum();
    col.counts
        .iter()
        .map(|&c| {
            let tf = c as f64 / n;
            (expected / tf).log2().clamp(-TF_CLAMP, TF_CLAMP) as f32
        })
        .collect()
}

/// The weights used on the hot path: one table lookup per field.
#[derive(Debug, Clone)]
pub struct Weights {
    /// The fields compared.
    pub fields: Vec<Field>,
    /// Weight per field index and level.
    pub level: [[f64; 16]; N_FIELDS],
    /// Term-frequency adjustment per field index and dictionary code.
    pub tf: Vec<Option<Vec<f32>>>,
    /// Per first-name code, the adjustment its text would get as a surname;
    /// per surname code, as a first name (`+inf` when the other column never
    /// holds it). See [`Weights::adjustments`].
    pub name_cross: Option<[Vec<f32>; 2]>,
    /// The prior weight.
    pub prior: f64,
}

/// Per code of `from`, the term-frequency adjustment its text has in `to`
/// (`+inf` when `to` never holds it).
fn cross_table(from: &Column, to: &Column, to_tf: &[f32]) -> Vec<f32> {
    let code_of: ahash::AHashMap<&str, usize> = to
        .values
        .iter()
        .enumerate()
        .map(|(c, v)| (&*v.text, c))
        .collect();
    from.values
        .iter()
        .map(|v| code_of.get(&*v.text).map_or(f32::INFINITY, |&c| to_tf[c]))
        .collect()
}

impl Weights {
    /// Build the weight tables of a model for a dataset's columns.
    pub fn new(model: &Model, columns: &[Option<Column>]) -> Weights {
        let mut level = [[0.0; 16]; N_FIELDS];
        let mut tf = vec![None; N_FIELDS];
        let mut fields = Vec::new();
        for fm in &model.fields {
            let k = fm.field.index();
            let Some(col) = columns[k].as_ref() else {
                continue;
            };
            fields.push(fm.field);
            for l in 0..n_levels(fm.field) {
                level[k][l] = fm.weight(l as u8);
            }
            if has_tf(fm.field) {
                tf[k] = Some(tf_table(col));
            }
        }
        let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
        let name_cross = match (&tf[fi], &tf[li], &columns[fi], &columns[li]) {
            (Some(tf_f), Some(tf_l), Some(cf), Some(cl)) => {
                Some([cross_table(cf, cl, tf_l), cross_table(cl, cf, tf_f)])
            }
            _ => None,
        };
        Weights {
            fields,
            level,
            tf,
            name_cross,
            prior: model.prior_weight(),
        }
    }

    /// The adjustment of every field (by field index) of a comparison vector;
    /// `codes[k]` is the left side's dictionary code of field `k`, `swapped`
    /// disables the name adjustments.
    ///
    /// Names that agree exactly on both fields are adjusted as the more
    /// common of their two readings: `rodriguez mary` is as common as `mary
    /// rodriguez` written the other way round, not as rare as a first name
    /// `rodriguez` makes it look. A name written swapped on both records
    /// would otherwise count as a rare name.
    pub fn adjustments(
        &self,
        levels: &[u8; N_FIELDS],
        codes: &[u32; N_FIELDS],
        swapped: bool,
    ) -> [f64; N_FIELDS] {
        let mut out = [0.0; N_FIELDS];
        for &f in &self.fields {
            let k = f.index();
            if !(swapped && matches!(f, Field::FirstName | Field::LastName)) {
                out[k] = self.level_adjustment(k, levels[k], codes[k]);
            }
        }
        let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
        if let Some([xf, xl]) = &self.name_cross {
            if !swapped && levels[fi] == L_EXACT && levels[li] == L_EXACT {
                if let (Some(&a), Some(&b)) =
                    (xf.get(codes[fi] as usize), xl.get(codes[li] as usize))
                {
                    let (a, b) = (f64::from(a), f64::from(b));
                    if a + b < out[fi] + out[li] {
                        out[fi] = a;
                        out[li] = b;
                    }
                }
            }
        }
        out
    }

    /// The term-frequency adjustment of field index `k` for an exact match on `code`.
    pub fn tf_adjustment(&self, k: usize, code: u32) -> f64 {
        match &self.tf[k] {
            Some(t) => t.get(code as usize).map_or(0.0, |&a| a as f64),
            None => 0.0,
        }
    }

    /// The adjustment of `level` of field index `k` for the left side's
    /// `code`: the term-frequency adjustment on an exact match, else 0.
    pub fn level_adjustment(&self, k: usize, level: u8, code: u32) -> f64 {
        if level == L_EXACT {
            self.tf_adjustment(k, code)
        } else {
            0.0
        }
    }

    /// Total match weight of a comparison vector; `codes[k]` is the left
    /// side's dictionary code of field `k` (for term frequencies), `swapped`
    /// disables the name adjustments.
    pub fn total(&self, levels: &[u8; N_FIELDS], codes: &[u32; N_FIELDS], swapped: bool) -> f64 {
        let adj = self.adjustments(levels, codes, swapped);
        let mut w = self.prior;
        for &f in &self.fields {
            let k = f.index();
            w += self.level[k][levels[k] as usize] + adj[k];
        }
        w
    }
}

/// Match probability of a match weight.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy population: matches agree on each of three fields with
    /// probability 0.9, non-matches with probability 0.1 (conditionally
    /// independent), 20% matches. EM must recover m, u and λ.
    #[test]
    fn em_recovers_a_known_mixture() {
        let fields = [Field::Phone, Field::Postcode, Field::City];
        // Levels: 1 = exact (agree), last = different (disagree).
        let mut patterns: Vec<(u64, u64)> = Vec::new();
        let total = 1_000_000f64;
        for bits in 0..8u32 {
            let agree = |k: u32| bits & (1 << k) != 0;
            let mut levels = [0u8; N_FIELDS];
            let mut pm = 0.2;
            let mut pu = 0.8;
            for (k, f) in fields.iter().enumerate() {
                let a = agree(k as u32);
                levels[f.index()] = if a { 1 } else { compare::l_different(*f) };
                pm *= if a { 0.9 } else { 0.1 };
                pu *= if a { 0.1 } else { 0.9 };
            }
            patterns.push((pack_levels(&levels), ((pm + pu) * total).round() as u64));
        }
        patterns.sort();
        let u0: Vec<Vec<f64>> = fields
            .iter()
            .map(|&f| {
                let mut c = vec![0u64; n_levels(f)];
                c[1] = 3;
                *c.last_mut().unwrap() = 7;
                u_from_counts(f, &c)
            })
            .collect();
        let model = train_em(
            &fields,
            &patterns,
            &[],
            &u0,
            EmSettings {
                max_iter: 500,
                tol: 1e-9,
                m_prior_share: 0.0,
                u_prior_share: 0.0,
            },
        );
        assert!((model.prior - 0.2).abs() < 0.01, "prior {}", model.prior);
        for fm in &model.fields {
            assert!((fm.m[1] - 0.9).abs() < 0.02, "m {:?}", fm.m);
            assert!((fm.u[1] - 0.1).abs() < 0.02, "u {:?}", fm.u);
        }
    }

    #[test]
    fn tf_favours_rare_values() {
        let raw: Vec<Option<String>> =
            ["smith", "smith", "smith", "smith", "zed", "zed", "ab", "cd"]
                .iter()
                .map(|s| Some(s.to_string()))
                .collect();
        let col = Column::build(Field::LastName, &raw);
        let t = tf_table(&col);
        assert!(t[0] < 0.0 && t[1] > 0.0 && t[1] < t[2]);
    }

    #[test]
    fn all_pairs_model_uses_exact_frequencies_and_scales_the_prior() {
        let raw: Vec<Option<String>> = ["a", "a", "b", "c"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let mut columns: Vec<Option<Column>> = vec![None; N_FIELDS];
        columns[Field::City.index()] = Some(Column::build(Field::City, &raw));
        let mut model = Model {
            prior: 0.25,
            fields: vec![FieldModel {
                field: Field::City,
                m: vec![0.0, 0.8, 0.1, 0.1],
                u: vec![0.0, 0.3, 0.3, 0.4],
            }],
            iterations: 1,
        };
        let ur = vec![vec![0.0, 0.5, 0.25, 0.25]];
        to_all_pairs(&mut model, &columns, &ur, 4, 4);
        let fm = &model.fields[0];
        // One pair of rows shares a value ("a"); one matching pair is
        // expected among the 6 pairs, agreeing exactly with m = 0.8, which
        // leaves 0.2 non-matching agreeing pairs, floored at half a pair.
        assert!((fm.u[1] - 0.5 / 6.0).abs() < 1e-12, "{:?}", fm.u);
        let rest = 1.0 - fm.u[1];
        assert!((fm.u[2] - rest / 2.0).abs() < 1e-12 && (fm.u[3] - rest / 2.0).abs() < 1e-12);
        assert!((model.prior - 1.0 / 6.0).abs() < 1e-12);
        model.validate().unwrap();
    }

    #[test]
    fn a_name_written_swapped_is_adjusted_as_its_common_reading() {
        let col = |f: Field, v: &[&str]| {
            let raw: Vec<Option<String>> = v.iter().map(|s| Some(s.to_string())).collect();
            Some(Column::build(f, &raw))
        };
        let mut columns: Vec<Option<Column>> = vec![None; N_FIELDS];
        let (fi, li) = (Field::FirstName.index(), Field::LastName.index());
        columns[fi] = col(
            Field::FirstName,
            &[
                "mary",
                "mary",
                "mary",
                "ann",
                "rodriguez",
                "rodriguez",
                "zoe",
            ],
        );
        columns[li] = col(
            Field::LastName,
            &[
                "rodriguez",
                "rodriguez",
                "rodriguez",
                "lee",
                "mary",
                "mary",
                "okafor",
            ],
        );
        let fm = |f: Field| FieldModel {
            field: f,
            m: initial_m(f),
            u: vec![0.1; n_levels(f)],
        };
        let model = Model {
            prior: 0.01,
            fields: vec![fm(Field::FirstName), fm(Field::LastName)],
            iterations: 1,
        };
        let w = Weights::new(&model, &columns);
        let mut levels = [0u8; N_FIELDS];
        levels[fi] = L_EXACT;
        levels[li] = L_EXACT;
        let code = |k: usize, t: &str| {
            let c = columns[k].as_ref().unwrap();
            c.values.iter().position(|v| &*v.text == t).unwrap() as u32
        };
        let mut codes = [0u32; N_FIELDS];
        // `rodriguez mary`: rare as written, common the other way round.
        codes[fi] = code(fi, "rodriguez");
        codes[li] = code(li, "mary");
        let adj = w.adjustments(&levels, &codes, false);
        let common =
            w.tf_adjustment(li, code(li, "rodriguez")) + w.tf_adjustment(fi, code(fi, "mary"));
        let as_written = w.tf_adjustment(fi, codes[fi]) + w.tf_adjustment(li, codes[li]);
        assert!(common < as_written);
        assert!((adj[fi] + adj[li] - common).abs() < 1e-9, "{adj:?}");
        // A name never seen the other way round keeps its own adjustment.
        codes[fi] = code(fi, "zoe");
        codes[li] = code(li, "okafor");
        let adj = w.adjustments(&levels, &codes, false);
        assert_eq!(adj[fi], w.tf_adjustment(fi, codes[fi]));
        assert_eq!(adj[li], w.tf_adjustment(li, codes[li]));
        // Swapped comparisons carry no name adjustment at all.
        assert_eq!(w.adjustments(&levels, &codes, true)[fi], 0.0);
    }

    #[test]
    fn packing_round_trips() {
        let mut l = [0u8; N_FIELDS];
        l[0] = 7;
        l[8] = 3;
        let p = pack_levels(&l);
        assert_eq!(level_at(p, 0), 7);
        assert_eq!(level_at(p, 8), 3);
        assert_eq!(level_at(p, 4), 0);
    }
}
