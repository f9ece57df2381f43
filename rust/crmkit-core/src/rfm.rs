//! RFM scoring: recency, frequency and monetary quantile scores from purchases.
//!
//! Scores run from 1 (worst) to `bins` (best). Ties share a score: every
//! contact with the same value gets the score of the first position its value
//! takes in the sorted order, so identical one-time buyers are scored alike.
//! Contacts without a purchase at or before `as_of` have no scores.

use rayon::prelude::*;

use crate::{CoreError, CoreResult};

/// Per-contact RFM measures and scores, aligned with the contacts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rfm {
    /// Whole days since the last purchase.
    pub recency_days: Vec<Option<i64>>,
    /// Number of purchases.
    pub frequency: Vec<u32>,
    /// Sum of purchase amounts (missing amounts count as 0).
    pub monetary: Vec<f64>,
    /// Recency score (recent is high).
    pub r: Vec<Option<u8>>,
    /// Frequency score.
    pub f: Vec<Option<u8>>,
    /// Monetary score.
    pub m: Vec<Option<u8>>,
}

/// Score `n` contacts from purchases given as parallel columns: the contact's
/// row index, the time (epoch seconds) and the amount.
pub fn rfm_scores(
    n: usize,
    contact: &[u32],
    time: &[i64],
    amount: &[Option<f64>],
    as_of: i64,
    bins: u8,
) -> CoreResult<Rfm> {
    if contact.len() != time.len() || contact.len() != amount.len() {
        return Err(CoreError::InvalidInput(
            "purchase columns have different lengths".into(),
        ));
    }
    if !(2..=10).contains(&bins) {
        return Err(CoreError::Config(format!(
            "bins must be 2 to 10, not {bins}"
        )));
    }
    let mut last: Vec<Option<i64>> = vec![None; n];
    let mut frequency = vec![0u32; n];
    let mut monetary = vec![0f64; n];
    for ((&c, &t), &a) in contact.iter().zip(time).zip(amount) {
        let c = c as usize;
        if c >= n {
            return Err(CoreError::InvalidInput(format!(
                "purchase row refers to contact index {c}, but there are {n} contacts"
            )));
        }
        if t > as_of {
            continue;
        }
        frequency[c] += 1;
        monetary[c] += a.unwrap_or(0.0);
        last[c] = Some(last[c].map_or(t, |l| l.max(t)));
    }
    let recency_days: Vec<Option<i64>> = last
        .par_iter()
        .map(|l| l.map(|t| (as_of - t).div_euclid(86_400)))
        .collect();
    let buyers: Vec<usize> = (0..n).filter(|&i| last[i].is_some()).collect();
    // Recency: fewer days is better, so rank by negated days.
    let r = score(n, &buyers, bins, |i| -(recency_days[i].unwrap_or(0) as f64));
    let f = score(n, &buyers, bins, |i| frequency[i] as f64);
    let m = score(n, &buyers, bins, |i| monetary[i]);
    Ok(Rfm {
        recency_days,
        frequency,
        monetary,
        r,
        f,
        m,
    })
}

fn score(
    n: usize,
    buyers: &[usize],
    bins: u8,
    key: impl Fn(usize) -> f64 + Sync,
) -> Vec<Option<u8>> {
    let mut out = vec![None; n];
    let total = buyers.len();
    if total == 0 {
        return out;
    }
    let mut order: Vec<(f64, usize)> = buyers.iter().map(|&i| (key(i), i)).collect();
    order.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut first = 0usize;
    for pos in 0..total {
        if pos > 0 && order[pos].0.total_cmp(&order[pos - 1].0).is_ne() {
            first = pos;
        }
        let s = 1 + (first * bins as usize) / total;
        out[order[pos].1] = Some(s.min(bins as usize) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn ties_share_a_score_and_non_buyers_have_none() {
        // contacts 0..5 each buy once for 10 on the same day; contact 5 never buys
        let contact = [0, 1, 2, 3, 4];
        let time = [0; 5];
        let amount = [Some(10.0); 5];
        let out = rfm_scores(6, &contact, &time, &amount, 10 * DAY, 5).unwrap();
        assert_eq!(out.f[..5], [Some(1); 5]);
        assert_eq!(out.m[..5], [Some(1); 5]);
        assert_eq!(out.r[..5], [Some(1); 5]);
        assert_eq!(out.r[5], None);
        assert_eq!(out.recency_days[0], Some(10));
    }

    #[test]
    fn scores_rise_with_value_and_recency() {
        let n = 10;
        let contact: Vec<u32> = (0..n as u32).collect();
        let time: Vec<i64> = (0..n as i64).map(|i| i * DAY).collect();
        let amount: Vec<Option<f64>> = (0..n).map(|i| Some(i as f64)).collect();
        let out = rfm_scores(n, &contact, &time, &amount, 20 * DAY, 5).unwrap();
        assert_eq!(
            out.m,
            (0..n)
                .map(|i| Some(1 + (i * 5 / n) as u8))
                .collect::<Vec<_>>()
        );
        assert_eq!(out.r, out.m, "later purchases are more recent");
    }

    #[test]
    fn future_purchases_are_ignored_and_bad_input_is_an_error() {
        let out = rfm_scores(1, &[0], &[5 * DAY], &[Some(1.0)], DAY, 5).unwrap();
        assert_eq!((out.frequency[0], out.r[0]), (0, None));
        assert!(rfm_scores(1, &[3], &[0], &[None], DAY, 5).is_err());
        assert!(rfm_scores(1, &[0], &[0], &[None], DAY, 1).is_err());
    }
}
