//! `crmkit._core`: thin Python bindings over `crmkit-core`.
//!
//! Conventions: columns cross the boundary in bulk (lists of `str | None`), the
//! GIL is released around every parallel fan-out via [`detach`], and core
//! errors and panics become exceptions of the `crmkit._core` hierarchy.

use pyo3::prelude::*;

mod convert;
mod csvread;
mod dedupe;
mod errors;
mod keymap;
mod normalize;
mod rfm;
#[allow(clippy::type_complexity)]
mod segments;
mod sqlite;

pub use errors::{detach, py_err, to_py_err, Kind};

/// Panic inside the engine on purpose; used by tests to prove that a panic
/// becomes `EnginePanic` instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    detach(py, || -> Result<(), crmkit_core::CoreError> {
        panic!("deliberate test panic")
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    keymap::register(m)?;
    normalize::register(m)?;
    rfm::register(m)?;
    csvread::register(m)?;
    convert::register(m)?;
    dedupe::register(m)?;
    segments::register(m)?;
    sqlite::register(m)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
