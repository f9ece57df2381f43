//! Bindings for `crmkit_core::dedupe` (see that module).

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
