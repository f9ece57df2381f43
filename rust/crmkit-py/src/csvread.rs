//! Bindings for `crmkit_core::csvread`: the streaming `CsvReader` class.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
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

/// What the parsing thread sends: a chunk and the reader's position after it,
/// the end, or an error (the thread stops after the last two).
type Parsed = Result<Option<(Chunk, u64)>, CsvError>;

/// The reader's state. The first `__next__` moves the file reader to a
/// thread that parses one chunk ahead while Python handles the last one
/// (parsing needs no GIL), so only the conversion to Python objects is left
/// on the caller's time. The channel holds nothing: the thread waits with one
/// parsed chunk until it is asked for, so memory grows by one chunk only.
enum State {
    /// Opened; nothing parsed yet.
    Idle(Box<CoreCsvReader>),
    /// Parsing ahead; `position` is the reader's position after the last
    /// chunk handed out.
    Running { rx: Receiver<Parsed>, position: u64 },
    /// At the end, or stopped by an error.
    Done { position: u64 },
}

impl State {
    fn position(&self) -> u64 {
        match self {
            State::Idle(r) => r.position(),
            State::Running { position, .. } | State::Done { position } => *position,
        }
    }

    /// The next chunk, starting the parsing thread on first use.
    fn next(&mut self, path: &str) -> Result<Option<Chunk>, NextError> {
        if let State::Idle(_) = self {
            let position = self.position();
            let State::Idle(mut reader) = std::mem::replace(self, State::Done { position }) else {
                unreachable!()
            };
            let (tx, rx) = sync_channel::<Parsed>(0);
            std::thread::Builder::new()
                .name("crmkit-csv".into())
                .spawn(move || loop {
                    let msg = reader
                        .next_chunk()
                        .map(|c| c.map(|c| (c, reader.position())));
                    let last = !matches!(msg, Ok(Some(_)));
                    // A closed channel means the reader was dropped: stop.
                    if tx.send(msg).is_err() || last {
                        break;
                    }
                })
                .map_err(|e| NextError::Stopped(format!("{path}: cannot start the reader: {e}")))?;
            *self = State::Running { rx, position };
        }
        let State::Running { rx, position } = self else {
            return Ok(None);
        };
        let got = rx.recv();
        let pos = *position;
        match got {
            Ok(Ok(Some((chunk, after)))) => {
                *position = after;
                Ok(Some(chunk))
            }
            Ok(Ok(None)) => {
                *self = State::Done { position: pos };
                Ok(None)
            }
            Ok(Err(e)) => {
                *self = State::Done { position: pos };
                Err(NextError::Csv(e))
            }
            Err(_) => {
                *self = State::Done { position: pos };
                Err(NextError::Stopped(format!(
                    "{path}: the CSV reader stopped unexpectedly"
                )))
            }
        }
    }
}

/// Why [`State::next`] failed.
enum NextError {
    Csv(CsvError),
    Stopped(String),
}

/// Stream a CSV file in column chunks. See `crmkit._core.CsvReader` in the stubs.
#[pyclass(frozen, module = "crmkit._core", name = "CsvReader")]
pub struct PyCsvReader {
    inner: Mutex<State>,
    path: String,
    encoding: String,
    delimiter: String,
    headers: Vec<String>,
}

/// Rows of a column read before deciding whether its values repeat.
const SAMPLE_ROWS: usize = 512;

/// Distinct values a column may hold to be interned (a code, a city, a
/// name); past it, one string per cell.
const MAX_INTERNED: usize = 16_384;

fn chunk_to_py<'py>(py: Python<'py>, chunk: Chunk) -> PyResult<Bound<'py, PyTuple>> {
    let rows = chunk.rows();
    let columns = PyList::empty(py);
    let mut seen: ahash::AHashMap<&str, Bound<'py, PyString>> = ahash::AHashMap::new();
    for col in 0..chunk.ncols {
        // A column whose values repeat (most but emails, phones and ids)
        // gets one string object per distinct value: fewer objects to make
        // and to hold.
        seen.clear();
        let mut interning = true;
        let list = PyList::new(
            py,
            (0..rows).map(|r| {
                let s = chunk
                    .cell(r, col)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())?;
                if interning && r == SAMPLE_ROWS && seen.len() * 2 > SAMPLE_ROWS {
                    interning = false;
                }
                if !interning || seen.len() >= MAX_INTERNED {
                    return Some(PyString::new(py, s));
                }
                Some(
                    seen.entry(s)
                        .or_insert_with(|| PyString::new(py, s))
                        .clone(),
                )
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
            inner: Mutex::new(State::Idle(Box::new(reader))),
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
            Ok(inner.lock().map(|s| s.position()).unwrap_or(0))
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
            Ok(guard.next(&path))
        })?;
        match next {
            Ok(Some(chunk)) => Ok(Some(chunk_to_py(py, chunk)?)),
            Ok(None) => Ok(None),
            Err(NextError::Csv(e)) => Err(csv_err(py, e)),
            Err(NextError::Stopped(m)) => Err(py_err(py, Kind::Panic, m)),
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
