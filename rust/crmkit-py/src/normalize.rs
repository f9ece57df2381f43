//! Bulk normalization bindings: whole columns in, whole columns out, the GIL
//! released while rayon works.

use crmkit_core::normalize::{
    self, contact::CONTACT_FIELDS, map_column, normalize_email, ContactOptions, EmailOptions,
};
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString};

use crate::{detach, py_err, Kind};

type Column = Vec<Option<PyBackedStr>>;

fn refs(values: &[Option<PyBackedStr>]) -> Vec<Option<&str>> {
    values.iter().map(|v| v.as_deref()).collect()
}

/// Normalize a column of emails; invalid or missing values become `None`.
#[pyfunction]
#[pyo3(signature = (values, *, strip_plus = false, fold_gmail_dots = false))]
fn normalize_emails(
    py: Python<'_>,
    values: Column,
    strip_plus: bool,
    fold_gmail_dots: bool,
) -> PyResult<Vec<Option<String>>> {
    let opts = EmailOptions {
        strip_plus,
        fold_gmail_dots,
    };
    let values = &values;
    detach(py, move || {
        Ok(map_column(&refs(values), |s| normalize_email(s, opts)))
    })
}

/// Normalize a column of phone numbers to E.164; numbers without a country
/// code are read in `default_region` (ISO 3166 alpha-2). Invalid -> `None`.
#[pyfunction]
#[pyo3(signature = (values, default_region = "US"))]
fn normalize_phones(
    py: Python<'_>,
    values: Column,
    default_region: &str,
) -> PyResult<Vec<Option<String>>> {
    let values = &values;
    let region = default_region.to_string();
    detach(py, move || {
        normalize::normalize_phones(&refs(values), &region)
    })
}

/// Display-clean a column of names (NFC, whitespace, proper case for
/// all-upper or all-lower values).
#[pyfunction]
fn clean_names(py: Python<'_>, values: Column) -> PyResult<Vec<Option<String>>> {
    let values = &values;
    detach(py, move || Ok(normalize::clean_names(&refs(values))))
}

/// Match keys for a column of names (ASCII, lowercase, no punctuation,
/// titles and suffixes dropped).
#[pyfunction]
fn name_keys(py: Python<'_>, values: Column) -> PyResult<Vec<Option<String>>> {
    let values = &values;
    detach(py, move || Ok(normalize::name_keys(&refs(values))))
}

/// ISO 3166 alpha-2 codes for a column of country codes or names; unknown -> `None`.
#[pyfunction]
fn normalize_countries(py: Python<'_>, values: Column) -> PyResult<Vec<Option<&'static str>>> {
    let values = &values;
    detach(py, move || {
        Ok(normalize::normalize_countries(&refs(values)))
    })
}

/// Clean a column of postal codes, each with its row's country (ISO alpha-2)
/// when `countries` is given.
#[pyfunction]
#[pyo3(signature = (values, countries = None))]
fn normalize_postcodes(
    py: Python<'_>,
    values: Column,
    countries: Option<Column>,
) -> PyResult<Vec<Option<String>>> {
    if let Some(c) = &countries {
        if c.len() != values.len() {
            return Err(py_err(
                py,
                Kind::InvalidInput,
                format!(
                    "countries has {} values, expected {} like values",
                    c.len(),
                    values.len()
                ),
            ));
        }
    }
    let values = &values;
    let countries = &countries;
    detach(py, move || {
        let c = countries.as_deref().map(refs);
        Ok(normalize::normalize_postcodes(&refs(values), c.as_deref()))
    })
}

/// Normalize the known contact fields of a batch in one call.
///
/// Returns the columns (known fields normalized, other columns passed
/// through as the same objects) and `(row, field, reason)` issues.
#[pyfunction]
#[pyo3(signature = (columns, *, default_region = "US", strip_plus = false, fold_gmail_dots = false))]
fn normalize_contact_columns<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyDict>,
    default_region: &str,
    strip_plus: bool,
    fold_gmail_dots: bool,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
    let mut known: Vec<(String, Column)> = Vec::new();
    let mut expected: Option<(String, usize)> = None;
    for (k, v) in columns.iter() {
        let name: String = k.extract().map_err(|_| {
            py_err(
                py,
                Kind::InvalidInput,
                "column names must be str".to_string(),
            )
        })?;
        let len = v.len()?;
        match &expected {
            None => expected = Some((name.clone(), len)),
            Some((first, n)) if *n != len => {
                return Err(py_err(
                    py,
                    Kind::InvalidInput,
                    format!("column {name:?} has {len} values, expected {n} like column {first:?}"),
                ))
            }
            _ => {}
        }
        if CONTACT_FIELDS.contains(&name.as_str()) {
            let values: Column = v.extract().map_err(|_| {
                py_err(
                    py,
                    Kind::InvalidInput,
                    format!("column {name:?} must be a list of str or None"),
                )
            })?;
            known.push((name, values));
        }
    }
    let opts = ContactOptions {
        default_region: default_region.to_string(),
        email: EmailOptions {
            strip_plus,
            fold_gmail_dots,
        },
    };
    let known_ref = &known;
    let result = detach(py, move || {
        let refs_owned: Vec<(&str, Vec<Option<&str>>)> = known_ref
            .iter()
            .map(|(n, v)| (n.as_str(), refs(v)))
            .collect();
        let cols: Vec<(&str, &[Option<&str>])> =
            refs_owned.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        normalize::normalize_contact_columns(&cols, &opts)
    })?;
    drop(known);
    let out = PyDict::new(py);
    let mut normalized = result.columns.into_iter().collect::<Vec<_>>();
    for (k, v) in columns.iter() {
        let name: String = k.extract()?;
        match normalized.iter().position(|(f, _)| *f == name) {
            Some(i) => {
                let (_, vals) = normalized.swap_remove(i);
                out.set_item(k, reuse_unchanged(py, &v, vals)?)?;
            }
            None => out.set_item(k, v)?,
        }
    }
    let issues = PyList::new(py, result.issues.iter().map(|i| (i.row, i.field, i.reason)))?;
    Ok((out, issues))
}

/// The output column as a list, reusing the input's string object wherever
/// normalizing left a value unchanged, and one object per distinct short
/// value (country codes) otherwise: most values of a clean export are
/// unchanged, and a new string per value costs more than the normalizing.
fn reuse_unchanged<'py>(
    py: Python<'py>,
    input: &Bound<'py, PyAny>,
    values: Vec<Option<String>>,
) -> PyResult<Bound<'py, PyList>> {
    let input = input.cast::<PyList>().ok();
    let mut short: HashMap<String, Bound<'py, PyString>> = HashMap::new();
    let out = PyList::empty(py);
    for (i, value) in values.into_iter().enumerate() {
        let Some(value) = value else {
            out.append(py.None())?;
            continue;
        };
        if let Some(item) = input.and_then(|l| l.get_item(i).ok()) {
            if let Ok(s) = item.cast::<PyString>() {
                if s.to_str().is_ok_and(|t| t == value) {
                    out.append(item)?;
                    continue;
                }
            }
        }
        if value.len() <= 3 {
            let obj = short
                .entry(value)
                .or_insert_with_key(|k| PyString::new(py, k));
            out.append(obj.clone())?;
        } else {
            out.append(PyString::new(py, &value))?;
        }
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(normalize_emails, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_phones, m)?)?;
    m.add_function(wrap_pyfunction!(clean_names, m)?)?;
    m.add_function(wrap_pyfunction!(name_keys, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_countries, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_postcodes, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_contact_columns, m)?)?;
    Ok(())
}
