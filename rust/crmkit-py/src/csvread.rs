//! Bindings for `crmkit_core::csvread`: the streaming `CsvReader` class.

use std::path::PathBuf;
use std::sync::Mutex;

use crmkit_core::csvread::{Chunk, CsvError, CsvOptions, CsvReader as CoreCsvReader};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::{detach, py_err, Kind};

/// A CSV reader error as a Python exception (`OSError` or `InvalidInputError`).
pub(crate) fn csv_err(py: Python<'_>, e: CsvError) -> PyErr {
    match e {
        CsvError::Io { path, source } => PyErr::from(std::io::Error::new(
            source.kind(),
            format!("{path}: {source}"),
        )),
        CsvError::Invalid(m) => py_err(py, Kind::InvalidInput, m),
    }
}

/// Stream a CSV file in column chunks. See `crmkit._core.CsvReader` in the stubs.
#[pyclass(frozen, module = "crmkit._core", name = "CsvReader")]
pub struct PyCsvReader {
    inner: Mutex<CoreCsvReader>,
    path: String,
    encoding: String,
    delimiter: String,
    headers: Vec<String>,
}

fn chunk_to_py<'py>(py: Python<'py>, chunk: Chunk) -> PyResult<Bound<'py, PyTuple>> {
    let rows = chunk.rows();
    let columns = PyList::empty(py);
    for col in 0..chunk.ncols {
        let list = PyList::new(
            py,
            (0..rows).map(|r| {
                chunk
                    .cell(r, col)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| PyString::new(py, s))
            }),
        )?;
        columns.append(list)?;
    }
    (columns, chunk.lines, chunk.byte_ends, chunk.rejects).into_pyobject(py)
}

#[pymethods]
impl PyCsvReader {
    #[new]
    #[pyo3(signature = (path, *, encoding = None, delimiter = None, chunk_rows = 50_000, max_field_bytes = 1_048_576, start_byte = 0))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        encoding: Option<String>,
        delimiter: Option<String>,
        chunk_rows: usize,
        max_field_bytes: usize,
        start_byte: u64,
    ) -> PyResult<Self> {
        let delim = match delimiter.as_deref() {
            None => None,
            Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" && d != "\r" => {
                Some(d.as_bytes()[0])
            }
            Some(_) => {
                return Err(py_err(
                    py,
                    Kind::InvalidInput,
                    "delimiter must be one ASCII character other than a quote or a newline"
                        .to_string(),
                ))
            }
        };
        let opts = CsvOptions {
            encoding,
            delimiter: delim,
            chunk_rows,
            max_field_bytes,
            start_byte,
        };
        let p = path.clone();
        let opened = detach(py, move || Ok(CoreCsvReader::open(&p, &opts)))?;
        let reader = opened.map_err(|e| csv_err(py, e))?;
        Ok(Self {
            path: reader.path().to_string(),
            encoding: reader.encoding(),
            delimiter: (reader.delimiter() as char).to_string(),
            headers: reader.headers().to_vec(),
            inner: Mutex::new(reader),
        })
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The encoding used ("utf-8", "utf-16le", "utf-16be", "windows-1252", ...).
    #[getter]
    fn encoding(&self) -> &str {
        &self.encoding
    }

    /// The delimiter used.
    #[getter]
    fn delimiter(&self) -> &str {
        &self.delimiter
    }

    /// The header names, trimmed, BOM stripped.
    #[getter]
    fn headers(&self) -> Vec<String> {
        self.headers.clone()
    }

    /// Byte offset just after the last record read, accepted or rejected.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        detach(py, move || {
            Ok(inner.lock().map(|r| r.position()).unwrap_or(0))
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let inner = &self.inner;
        let path = self.path.clone();
        let next = detach(py, move || {
            let mut guard = inner.lock().map_err(|_| {
                crmkit_core::CoreError::InvalidInput(format!(
                    "{path}: the reader failed earlier and cannot continue"
                ))
            })?;
            Ok(guard.next_chunk())
        })?;
        match next.map_err(|e| csv_err(py, e))? {
            Some(chunk) => Ok(Some(chunk_to_py(py, chunk)?)),
            None => Ok(None),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "CsvReader(path={:?}, encoding={:?}, delimiter={:?}, columns={})",
            self.path,
            self.encoding,
            self.delimiter,
            self.headers.len()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCsvReader>()?;
    Ok(())
}
