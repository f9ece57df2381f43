//! Bulk normalization bindings.

use crmkit_core::normalize::{map_column, normalize_email, EmailOptions};
use pyo3::prelude::*;

use crate::detach;

/// Normalize a column of emails; invalid or missing values become `None`.
#[pyfunction]
#[pyo3(signature = (values, *, strip_plus = false, fold_gmail_dots = false))]
fn normalize_emails(
    py: Python<'_>,
    values: Vec<Option<String>>,
    strip_plus: bool,
    fold_gmail_dots: bool,
) -> PyResult<Vec<Option<String>>> {
    let opts = EmailOptions {
        strip_plus,
        fold_gmail_dots,
    };
    detach(py, move || {
        let refs: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
        Ok(map_column(&refs, |s| normalize_email(s, opts)))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(normalize_emails, m)?)?;
    Ok(())
}
