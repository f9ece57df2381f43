//! The exception hierarchy and the GIL-release helper.
//!
//! The exception classes derive from `crmkit._base.CrmkitError` (imported when
//! the module initializes), so `except crmkit.errors.CrmkitError` catches
//! engine errors too:
//!
//! ```text
//! CrmkitError
//! └── CoreError            (crmkit._core; re-exported as crmkit.errors.EngineError)
//!     ├── InvalidInputError
//!     ├── RuleError
//!     ├── ConfigError      (re-exported as EngineConfigError)
//!     └── EnginePanic      (an internal bug; the operation aborted, the process did not)
//! ```

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crmkit_core::CoreError;
use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

struct Classes {
    base: Py<PyType>,
    invalid_input: Py<PyType>,
    rule: Py<PyType>,
    config: Py<PyType>,
    panic: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> &'static Classes {
    CLASSES
        .get(py)
        .expect("crmkit._core exception classes are initialized at import")
}

fn new_class(
    py: Python<'_>,
    name: &CStr,
    doc: &CStr,
    base: &Bound<'_, PyType>,
) -> PyResult<Py<PyType>> {
    PyErr::new_type(py, name, Some(doc), Some(base), None)
}

/// Kinds of Python exception that engine code can raise directly.
pub enum Kind {
    InvalidInput,
    Rule,
    Config,
    Panic,
}

/// Build a Python exception of the given kind.
pub fn py_err(py: Python<'_>, kind: Kind, msg: String) -> PyErr {
    let c = classes(py);
    let ty = match kind {
        Kind::InvalidInput => &c.invalid_input,
        Kind::Rule => &c.rule,
        Kind::Config => &c.config,
        Kind::Panic => &c.panic,
    };
    PyErr::from_type(ty.bind(py).clone(), msg)
}

/// Map a core error to its Python exception.
pub fn to_py_err(py: Python<'_>, e: CoreError) -> PyErr {
    match e {
        CoreError::InvalidInput(m) => py_err(py, Kind::InvalidInput, m),
        CoreError::Rule(m) => py_err(py, Kind::Rule, m),
        CoreError::Config(m) => py_err(py, Kind::Config, m),
    }
}

/// Run `f` with the GIL released, turning core errors and panics into Python
/// exceptions. Every rayon fan-out goes through here.
pub fn detach<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, CoreError> + Ungil + Send,
    T: Ungil + Send,
{
    let out = py.detach(move || catch_unwind(AssertUnwindSafe(f)));
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py_err(py, e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(py_err(
                py,
                Kind::Panic,
                format!("internal engine error: {msg}"),
            ))
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let root = py
        .import("crmkit._base")?
        .getattr("CrmkitError")?
        .cast_into::<PyType>()?;
    let base = new_class(
        py,
        c"crmkit._core.CoreError",
        c"Base class of errors raised by the Rust engines.",
        &root,
    )?;
    let b = base.bind(py).clone();
    let classes = Classes {
        invalid_input: new_class(
            py,
            c"crmkit._core.InvalidInputError",
            c"Input the engine cannot process.",
            &b,
        )?,
        rule: new_class(
            py,
            c"crmkit._core.RuleError",
            c"A segment rule that does not parse or type-check.",
            &b,
        )?,
        config: new_class(
            py,
            c"crmkit._core.ConfigError",
            c"An engine configuration value out of range.",
            &b,
        )?,
        panic: new_class(
            py,
            c"crmkit._core.EnginePanic",
            c"An internal engine failure (a bug): the operation was aborted, the process was not.",
            &b,
        )?,
        base,
    };
    m.add("CoreError", classes.base.bind(py))?;
    m.add("InvalidInputError", classes.invalid_input.bind(py))?;
    m.add("RuleError", classes.rule.bind(py))?;
    m.add("ConfigError", classes.config.bind(py))?;
    m.add("EnginePanic", classes.panic.bind(py))?;
    let _ = CLASSES.set(py, classes);
    Ok(())
}
