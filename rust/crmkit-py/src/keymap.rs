//! The `KeyMap` class: upsert keys to contact ids, held in Rust.

use std::collections::HashMap;

use crmkit_core::keymap::KeyMap as CoreKeyMap;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyList;

/// Upsert keys (normalized emails) to contact ids, for a bulk load that
/// resolves keys in memory instead of through the store's index.
#[pyclass(module = "crmkit._core", name = "KeyMap")]
pub struct KeyMap {
    inner: CoreKeyMap,
}

/// `(ids, new_rows, created, updated, next_id)` for one batch.
type AssignResult = (Vec<Option<i64>>, Vec<usize>, Vec<i64>, Vec<i64>, i64);

#[pymethods]
impl KeyMap {
    #[new]
    fn new() -> Self {
        Self {
            inner: CoreKeyMap::new(),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Hold `keys[i] → ids[i]` for each pair, except keys already held (the
    /// first wins).
    fn insert_first(&mut self, keys: Vec<PyBackedStr>, ids: Vec<i64>) -> PyResult<()> {
        if keys.len() != ids.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{} keys but {} ids",
                keys.len(),
                ids.len()
            )));
        }
        for (k, id) in keys.iter().zip(ids) {
            self.inner.insert_first(k, id);
        }
        Ok(())
    }

    /// The id held for each key, or `None`.
    fn get(&self, keys: Vec<Option<PyBackedStr>>) -> Vec<Option<i64>> {
        keys.iter()
            .map(|k| k.as_deref().and_then(|k| self.inner.get(k)))
            .collect()
    }

    /// Resolve a batch: held keys keep their id, new keys get `next_id`,
    /// `next_id + 1`, … in row order. Returns `(ids, new_rows, created,
    /// updated, next_id)`: each row's id (`None` for a missing key), the rows
    /// that create a contact, the ids created, the existing ids updated (once
    /// per row), and the next free id.
    fn assign(&mut self, keys: Vec<Option<PyBackedStr>>, next_id: i64) -> AssignResult {
        let a = self
            .inner
            .assign(keys.iter().map(|k| k.as_deref()), next_id);
        (a.ids, a.new_rows, a.created, a.updated, a.next_id)
    }
}

/// Fold the rows of a batch that share a contact id into the first of them,
/// as upserting them one after the other would: each column of that row takes
/// the last value that is not `None` among the id's rows.
///
/// Returns `None` when no id repeats (nothing to fold); else the first row of
/// each id, in row order, and a copy of each column with the folded values in
/// those rows (the other rows are left as they were). Rows whose id is `None`
/// are left out.
#[pyfunction]
fn fold_rows<'py>(
    py: Python<'py>,
    ids: Vec<Option<i64>>,
    columns: Vec<Bound<'py, PyAny>>,
) -> PyResult<Option<(Vec<usize>, Vec<Bound<'py, PyList>>)>> {
    let mut first: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
    let mut rep_of: Vec<Option<usize>> = Vec::with_capacity(ids.len());
    let mut reps: Vec<usize> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        rep_of.push(id.map(|id| {
            *first.entry(id).or_insert_with(|| {
                reps.push(i);
                i
            })
        }));
    }
    if reps.len() == ids.iter().flatten().count() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(columns.len());
    for (k, col) in columns.iter().enumerate() {
        let copy = PyList::new(py, col.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        if copy.len() != ids.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "column {k} has {} values, expected {}",
                copy.len(),
                ids.len()
            )));
        }
        for (i, rep) in rep_of.iter().enumerate() {
            match rep {
                Some(rep) if *rep != i => {
                    let v = copy.get_item(i)?;
                    if !v.is_none() {
                        copy.set_item(*rep, v)?;
                    }
                }
                _ => {}
            }
        }
        out.push(copy);
    }
    Ok(Some((reps, out)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<KeyMap>()?;
    m.add_function(wrap_pyfunction!(fold_rows, m)?)
}
