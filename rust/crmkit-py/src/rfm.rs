//! Bindings for `crmkit_core::rfm`.

use std::collections::HashMap;

use pyo3::prelude::*;

use crate::detach;

type Columns = (
    Vec<Option<i64>>,
    Vec<u32>,
    Vec<f64>,
    Vec<Option<u8>>,
    Vec<Option<u8>>,
    Vec<Option<u8>>,
);

/// RFM measures and scores for `ids` from purchase columns (`contact_id`,
/// `time` epoch seconds, `amount`). Returns columns aligned with `ids`:
/// recency_days, frequency, monetary, r, f, m.
#[pyfunction]
#[pyo3(signature = (ids, contact_id, time, amount, as_of, *, bins = 5))]
fn rfm_scores(
    py: Python<'_>,
    ids: Vec<i64>,
    contact_id: Vec<i64>,
    time: Vec<i64>,
    amount: Vec<Option<f64>>,
    as_of: i64,
    bins: u8,
) -> PyResult<Columns> {
    detach(py, move || {
        let pos: HashMap<i64, u32> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        let mut rows = Vec::with_capacity(contact_id.len());
        let mut t = Vec::with_capacity(contact_id.len());
        let mut a = Vec::with_capacity(contact_id.len());
        for ((c, tm), am) in contact_id.iter().zip(&time).zip(&amount) {
            if let Some(&p) = pos.get(c) {
                rows.push(p);
                t.push(*tm);
                a.push(*am);
            }
        }
        let out = crmkit_core::rfm::rfm_scores(ids.len(), &rows, &t, &a, as_of, bins)?;
        Ok((
            out.recency_days,
            out.frequency,
            out.monetary,
            out.r,
            out.f,
            out.m,
        ))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_scores, m)?)?;
    Ok(())
}
