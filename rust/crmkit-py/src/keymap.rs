//! The `KeyMap` class (upsert keys to contact ids, held in Rust) and
//! `fold_rows`.

use std::collections::HashMap;

use crmkit_core::keymap::Keys;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyList;

/// Upsert keys to contact ids, held in Rust: emails (with each live
/// contact's current one) and one source's record ids. A bulk load keeps one
/// for the whole load; outside one, the store fills one per batch with what
/// its indexes return. Either way a batch resolves by the same rules.
#[pyclass(module = "crmkit._core", name = "KeyMap")]
pub struct KeyMap {
    inner: Keys,
}

/// `(ids, new_rows, created, updated, next_id)` for one batch.
type AssignResult = (Vec<Option<i64>>, Vec<usize>, Vec<i64>, Vec<i64>, i64);

/// [`AssignResult`] and the rows whose email is kept back: `(…, conflicts, held)`.
type AssignExternalResult = (
    Vec<Option<i64>>,
    Vec<usize>,
    Vec<i64>,
    Vec<i64>,
    i64,
    Vec<usize>,
    Vec<usize>,
);

fn pairs(keys: &[PyBackedStr], ids: &[i64]) -> PyResult<()> {
    if keys.len() != ids.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} keys but {} ids",
            keys.len(),
            ids.len()
        )));
    }
    Ok(())
}

#[pymethods]
impl KeyMap {
    /// `track_current` keeps each contact's current email, which
    /// `assign_external` needs.
    #[new]
    #[pyo3(signature = (*, track_current = false))]
    fn new(track_current: bool) -> Self {
        Self {
            inner: Keys::new(track_current),
        }
    }

    /// The number of keys held: emails and record ids.
    fn __len__(&self) -> usize {
        self.inner.email.len() + self.inner.external.len()
    }

    /// Record that live contact `ids[i]` holds `emails[i]` (the first
    /// recorded wins, for an email and for a contact).
    fn add_current(&mut self, emails: Vec<PyBackedStr>, ids: Vec<i64>) -> PyResult<()> {
        pairs(&emails, &ids)?;
        for (e, id) in emails.iter().zip(ids) {
            self.inner.add_current(e, id);
        }
        Ok(())
    }

    /// Resolve `emails[i]` to `ids[i]` unless the email is held already (for
    /// the emails of merged-away records, resolved to their survivor).
    fn add_emails(&mut self, emails: Vec<PyBackedStr>, ids: Vec<i64>) -> PyResult<()> {
        pairs(&emails, &ids)?;
        for (e, id) in emails.iter().zip(ids) {
            self.inner.email.insert_first(e, id);
        }
        Ok(())
    }

    /// Resolve record id `keys[i]` to `ids[i]` unless held already.
    fn add_external(&mut self, keys: Vec<PyBackedStr>, ids: Vec<i64>) -> PyResult<()> {
        pairs(&keys, &ids)?;
        for (k, id) in keys.iter().zip(ids) {
            self.inner.external.insert_first(k, id);
        }
        Ok(())
    }

    /// Forget every record id (before holding another source's).
    fn clear_external(&mut self) {
        self.inner.external.clear();
    }

    /// The contact id each email resolves to, or `None`.
    fn get(&self, keys: Vec<Option<PyBackedStr>>) -> Vec<Option<i64>> {
        keys.iter()
            .map(|k| k.as_deref().and_then(|k| self.inner.email.get(k)))
            .collect()
    }

    /// Resolve a batch keyed by email: held keys keep their id, new keys get
    /// `next_id`, `next_id + 1`, … in row order. Returns `(ids, new_rows,
    /// created, updated, next_id)`: each row's id (`None` for a missing key),
    /// the rows that create a contact, the ids created, the existing ids
    /// updated (once per row), and the next free id.
    fn assign(&mut self, keys: Vec<Option<PyBackedStr>>, next_id: i64) -> AssignResult {
        let a = self
            .inner
            .assign_email(keys.iter().map(|k| k.as_deref()), next_id);
        (a.ids, a.new_rows, a.created, a.updated, a.next_id)
    }

    /// Resolve a batch keyed by record id, each row with its email: by record
    /// id, else by email, else a new contact. Returns what [`assign`] does,
    /// then the rows whose email another contact holds (`conflicts`) and the
    /// rows whose email their contact holds already (`held`): neither writes
    /// its email.
    fn assign_external(
        &mut self,
        keys: Vec<Option<PyBackedStr>>,
        emails: Vec<Option<PyBackedStr>>,
        next_id: i64,
    ) -> PyResult<AssignExternalResult> {
        if !self.inner.tracks_current() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "assign_external needs a KeyMap(track_current=True)",
            ));
        }
        if keys.len() != emails.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{} keys but {} emails",
                keys.len(),
                emails.len()
            )));
        }
        let k: Vec<Option<&str>> = keys.iter().map(|v| v.as_deref()).collect();
        let e: Vec<Option<&str>> = emails.iter().map(|v| v.as_deref()).collect();
        let got = self.inner.assign_external(&k, &e, next_id);
        let a = got.assigned;
        Ok((
            a.ids,
            a.new_rows,
            a.created,
            a.updated,
            a.next_id,
            got.conflicts,
            got.held,
        ))
    }
}

/// The first row of each id, and the folded column copies.
type Folded<'py> = (Vec<usize>, Vec<Bound<'py, PyList>>);

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
) -> PyResult<Option<Folded<'py>>> {
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
