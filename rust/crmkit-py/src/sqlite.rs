//! Bulk statements on a Python `sqlite3.Connection`, bound from columns in Rust.
//!
//! `executemany` in Python's `sqlite3` module builds a tuple per row and binds
//! each value through several layers: for wide rows that costs more than
//! SQLite's own insert. [`execute_columns`] runs one INSERT, UPDATE or DELETE
//! per row on the connection's *own* database handle, inside the transaction
//! the caller opened, binding values straight from the column lists.
//!
//! Same connection, same library: the SQLite functions are looked up in the
//! library Python's `_sqlite3` module already loaded (never a second copy of
//! SQLite in the process, whose file locks would not see each other's), and
//! the handle is read from the `sqlite3.Connection` object, whose first field
//! after the object header has been the `sqlite3 *` since the module's first
//! release. A self-check on a private in-memory connection confirms both
//! before first use; anything unexpected (another Python implementation, a
//! statically linked SQLite, a failed check) makes [`available`] false, and
//! callers keep to `executemany`.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

type Db = c_void;
type Stmt = c_void;

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;

macro_rules! sqlite_api {
    ($($field:ident: $name:literal => $ty:ty,)*) => {
        /// The SQLite functions used, from the library Python's `sqlite3` runs on.
        struct Api {
            $($field: $ty,)*
        }

        /// Look the functions up in the already loaded `_sqlite3` extension's
        /// library scope (it and the SQLite library it links); `None` if any is
        /// missing or the module is not a loaded shared object.
        fn load(path: &str) -> Option<Api> {
            let cpath = CString::new(path).ok()?;
            // SAFETY: RTLD_NOLOAD only returns a handle to an object already
            // loaded (Python loaded it on `import sqlite3`); nothing is
            // initialized anew.
            let handle =
                unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
            if handle.is_null() {
                return None;
            }
            Some(Api {
                $($field: {
                    // SAFETY: looking a symbol up does not call it.
                    let p = unsafe { libc::dlsym(handle, concat!($name, "\0").as_ptr().cast()) };
                    if p.is_null() {
                        return None;
                    }
                    // SAFETY: `p` is the address of the named SQLite C
                    // function, whose C signature `$ty` spells.
                    unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
                },)*
            })
        }
    };
}

sqlite_api! {
    prepare_v2: "sqlite3_prepare_v2" => unsafe extern "C" fn(
        *mut Db,
        *const c_char,
        c_int,
        *mut *mut Stmt,
        *mut *const c_char,
    ) -> c_int,
    bind_null: "sqlite3_bind_null" => unsafe extern "C" fn(*mut Stmt, c_int) -> c_int,
    bind_int64: "sqlite3_bind_int64" => unsafe extern "C" fn(*mut Stmt, c_int, i64) -> c_int,
    bind_double: "sqlite3_bind_double" => unsafe extern "C" fn(*mut Stmt, c_int, f64) -> c_int,
    bind_text: "sqlite3_bind_text" =>
        unsafe extern "C" fn(*mut Stmt, c_int, *const c_char, c_int, *const c_void) -> c_int,
    bind_blob: "sqlite3_bind_blob" =>
        unsafe extern "C" fn(*mut Stmt, c_int, *const c_void, c_int, *const c_void) -> c_int,
    bind_parameter_count: "sqlite3_bind_parameter_count" => unsafe extern "C" fn(*mut Stmt) -> c_int,
    stmt_readonly: "sqlite3_stmt_readonly" => unsafe extern "C" fn(*mut Stmt) -> c_int,
    step: "sqlite3_step" => unsafe extern "C" fn(*mut Stmt) -> c_int,
    reset: "sqlite3_reset" => unsafe extern "C" fn(*mut Stmt) -> c_int,
    finalize: "sqlite3_finalize" => unsafe extern "C" fn(*mut Stmt) -> c_int,
    errmsg: "sqlite3_errmsg" => unsafe extern "C" fn(*mut Db) -> *const c_char,
    extended_errcode: "sqlite3_extended_errcode" => unsafe extern "C" fn(*mut Db) -> c_int,
    get_autocommit: "sqlite3_get_autocommit" => unsafe extern "C" fn(*mut Db) -> c_int,
    changes: "sqlite3_changes" => unsafe extern "C" fn(*mut Db) -> c_int,
    total_changes: "sqlite3_total_changes" => unsafe extern "C" fn(*mut Db) -> c_int,
    libversion_number: "sqlite3_libversion_number" => unsafe extern "C" fn() -> c_int,
}

static API: OnceLock<Option<Api>> = OnceLock::new();

fn api(py: Python<'_>) -> Option<&'static Api> {
    API.get_or_init(|| init(py).ok().flatten()).as_ref()
}

fn init(py: Python<'_>) -> PyResult<Option<Api>> {
    let sys = py.import("sys")?;
    let implementation: String = sys.getattr("implementation")?.getattr("name")?.extract()?;
    let version = sys.getattr("version_info")?;
    let (major, minor): (u32, u32) = (
        version.getattr("major")?.extract()?,
        version.getattr("minor")?.extract()?,
    );
    // The layouts checked: CPython 3.11 to 3.14.
    if implementation != "cpython" || major != 3 || !(11..=14).contains(&minor) {
        return Ok(None);
    }
    let module = py.import("_sqlite3")?;
    let path: String = module.getattr("__file__")?.extract()?;
    let Some(api) = load(&path) else {
        return Ok(None);
    };
    Ok(self_check(py, &api)?.then_some(api))
}

/// The `sqlite3 *` of a `sqlite3.Connection` (null once closed).
///
/// # Safety
/// `conn` must be a `sqlite3.Connection` (or a subclass) of CPython 3.11+,
/// whose object header is followed by the `sqlite3 *` field.
unsafe fn raw_handle(conn: &Bound<'_, PyAny>) -> *mut Db {
    let base = conn.as_ptr().cast::<u8>();
    *base
        .add(std::mem::size_of::<ffi::PyObject>())
        .cast::<*mut Db>()
}

/// Confirm the handle and the functions on a private in-memory connection:
/// the library version, the transaction state and the change counts must all
/// agree with what Python's module reports.
fn self_check(py: Python<'_>, api: &Api) -> PyResult<bool> {
    let sqlite3 = py.import("sqlite3")?;
    let (a, b, c): (i64, i64, i64) = sqlite3.getattr("sqlite_version_info")?.extract()?;
    // SAFETY: a plain C function without arguments.
    if i64::from(unsafe { (api.libversion_number)() }) != a * 1_000_000 + b * 1000 + c {
        return Ok(false);
    }
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("isolation_level", py.None())?;
    let conn = sqlite3.call_method("connect", (":memory:",), Some(&kwargs))?;
    let ok = (|| -> PyResult<bool> {
        conn.call_method1("execute", ("CREATE TABLE t (x)",))?;
        conn.call_method1("execute", ("BEGIN",))?;
        conn.call_method1("execute", ("INSERT INTO t VALUES (1), (2), (3)",))?;
        let total: i64 = conn.getattr("total_changes")?.extract()?;
        // SAFETY: `conn` is a fresh `sqlite3.Connection` of a checked CPython.
        let db = unsafe { raw_handle(&conn) };
        if db.is_null() {
            return Ok(false);
        }
        // SAFETY: `db` is the open handle of `conn`, used on this thread
        // while holding the GIL.
        let (in_tx, changes) = unsafe { ((api.get_autocommit)(db), (api.total_changes)(db)) };
        conn.call_method1("execute", ("COMMIT",))?;
        // SAFETY: as above.
        let after = unsafe { (api.get_autocommit)(db) };
        Ok(in_tx == 0 && after != 0 && i64::from(changes) == total && total == 3)
    })();
    conn.call_method0("close")?;
    ok
}

/// Why a statement failed, kept without the GIL and raised with it.
enum Fail {
    /// SQLite's extended result code and message (the message names no
    /// values: SQLite's never do).
    Sqlite(c_int, String),
    /// A misuse of the call (`ValueError`).
    Value(String),
}

impl Fail {
    /// SQLite's last error on `db`.
    fn last(api: &Api, db: *mut Db) -> Fail {
        // SAFETY: `db` is a live handle; the message is copied at once.
        unsafe {
            let m = (api.errmsg)(db);
            let msg = if m.is_null() {
                "unknown error".to_owned()
            } else {
                CStr::from_ptr(m).to_string_lossy().into_owned()
            };
            Fail::Sqlite((api.extended_errcode)(db), msg)
        }
    }

    /// The exception Python's `sqlite3` module would raise for it.
    fn into_py(self, py: Python<'_>) -> PyErr {
        let (code, msg) = match self {
            Fail::Value(msg) => return PyValueError::new_err(msg),
            Fail::Sqlite(code, msg) => (code, msg),
        };
        // The classes Python's module raises for each primary result code.
        let class = match code & 0xff {
            2 | 12 => "InternalError",   // INTERNAL NOTFOUND
            7 => "MemoryError",          // NOMEM
            11 => "DatabaseError",       // CORRUPT
            18 => "DataError",           // TOOBIG
            19 | 20 => "IntegrityError", // CONSTRAINT MISMATCH
            21 | 25 => "InterfaceError", // MISUSE RANGE
            1 | 3..=6 | 8..=10 | 13..=17 => "OperationalError",
            _ => "DatabaseError",
        };
        if class == "MemoryError" {
            return pyo3::exceptions::PyMemoryError::new_err(msg);
        }
        let make = || -> PyResult<PyErr> {
            let cls = py.import("sqlite3")?.getattr(class)?;
            let exc = cls.call1((msg.clone(),))?;
            exc.setattr("sqlite_errorcode", code)?;
            Ok(PyErr::from_value(exc))
        };
        make().unwrap_or_else(|e| e)
    }
}

/// One parameter value, read from a Python object that stays pinned (and,
/// being a `str`, `bytes`, `int` or `float`, unchanged) until its statement
/// has run: text and blobs point into the object, never copied.
#[derive(Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(*const c_char, c_int),
    Blob(*const c_void, c_int),
}

/// The value of a Python object as a [`Cell`].
///
/// # Safety
/// `value` must be a live object; the cell points into it and is valid as
/// long as the object lives.
unsafe fn cell(py: Python<'_>, value: *mut ffi::PyObject, column: usize) -> PyResult<Cell> {
    let too_long =
        |what: &str| PyOverflowError::new_err(format!("column {column}: {what} too long"));
    if value == ffi::Py_None() {
        return Ok(Cell::Null);
    }
    if ffi::PyUnicode_Check(value) != 0 {
        let mut len: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(value, &mut len);
        if data.is_null() {
            return Err(PyErr::fetch(py));
        }
        let len = c_int::try_from(len).map_err(|_| too_long("text"))?;
        return Ok(Cell::Text(data, len));
    }
    if ffi::PyLong_Check(value) != 0 {
        let v = ffi::PyLong_AsLongLong(value);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return Err(PyOverflowError::new_err(format!(
                "column {column}: Python int too large to convert to SQLite INTEGER"
            )));
        }
        return Ok(Cell::Int(v));
    }
    if ffi::PyFloat_Check(value) != 0 {
        return Ok(Cell::Real(ffi::PyFloat_AsDouble(value)));
    }
    if ffi::PyBytes_Check(value) != 0 {
        let (mut data, mut len): (*mut c_char, ffi::Py_ssize_t) = (std::ptr::null_mut(), 0);
        if ffi::PyBytes_AsStringAndSize(value, &mut data, &mut len) != 0 {
            return Err(PyErr::fetch(py));
        }
        let len = c_int::try_from(len).map_err(|_| too_long("blob"))?;
        return Ok(Cell::Blob(data.cast(), len));
    }
    let name = Bound::from_borrowed_ptr(py, value)
        .get_type()
        .name()?
        .to_string();
    Err(PyTypeError::new_err(format!(
        "column {column}: type {name} is not supported (str, int, float, bytes or None)"
    )))
}

/// One statement and the parameters of each of its rows, ready to run
/// without the GIL.
struct Rows {
    sql: CString,
    /// `(sql_many, per)`: the same statement for `per` rows at once.
    many: Option<(CString, usize)>,
    /// Parameters per row.
    width: usize,
    count: usize,
    /// Row after row, `width` cells each.
    cells: Vec<Cell>,
}

// SAFETY: the cells point into immutable Python objects that whoever made the
// `Rows` keeps alive until it has run; nothing else in it is tied to a thread.
unsafe impl Send for Rows {}

/// One bound column: a tuple of one value per row, or the same value (read
/// once) for every row.
enum Column<'py> {
    Tuple(Bound<'py, PyTuple>),
    Same(Bound<'py, PyAny>, Cell),
}

/// Read the rows of a statement from its columns (see
/// [`sqlite_execute_columns`]), pinning in `pins` every object the cells
/// point into: a list is copied into a tuple first, so that later changes to
/// the list cannot free a value a cell points into.
fn read_rows(
    py: Python<'_>,
    sql: &str,
    columns: Vec<Bound<'_, PyAny>>,
    rows: usize,
    index: Option<Vec<usize>>,
    many: Option<(String, usize)>,
    pins: &mut Vec<Py<PyAny>>,
) -> PyResult<Rows> {
    let nul = |_| PyValueError::new_err("sql holds a NUL byte");
    let sql_c = CString::new(sql).map_err(nul)?;
    let many = match many.filter(|&(_, per)| per > 1) {
        Some((m, per)) => Some((CString::new(m).map_err(nul)?, per)),
        None => None,
    };
    let cols: Vec<Column<'_>> = columns
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let col = match c.cast_into::<PyList>() {
                Ok(l) => Column::Tuple(l.to_tuple()),
                Err(e) => match e.into_inner().cast_into::<PyTuple>() {
                    Ok(t) => Column::Tuple(t),
                    Err(e) => {
                        let v = e.into_inner();
                        // SAFETY: `v` is pinned with the column.
                        let c = unsafe { cell(py, v.as_ptr(), k)? };
                        Column::Same(v, c)
                    }
                },
            };
            match &col {
                Column::Tuple(t) if t.len() != rows => Err(PyValueError::new_err(format!(
                    "column {k} has {} values, expected {rows}",
                    t.len()
                ))),
                _ => Ok(col),
            }
        })
        .collect::<PyResult<_>>()?;
    if let Some(bad) = index
        .as_ref()
        .and_then(|ix| ix.iter().find(|&&r| r >= rows))
    {
        return Err(PyValueError::new_err(format!(
            "index {bad} is out of range for {rows} rows"
        )));
    }
    let count = index.as_ref().map_or(rows, Vec::len);
    let width = cols.len();
    let mut cells = Vec::with_capacity(count * width);
    let mut push_row = |r: usize| -> PyResult<()> {
        for (k, col) in cols.iter().enumerate() {
            cells.push(match col {
                // SAFETY: `r` is below the length checked above, and the
                // value is borrowed from a column pinned below.
                Column::Tuple(t) => unsafe {
                    cell(
                        py,
                        ffi::PyTuple_GetItem(t.as_ptr(), r as ffi::Py_ssize_t),
                        k,
                    )?
                },
                Column::Same(_, c) => *c,
            });
        }
        Ok(())
    };
    match &index {
        Some(ix) => ix.iter().try_for_each(|&r| push_row(r))?,
        None => (0..rows).try_for_each(&mut push_row)?,
    }
    pins.extend(cols.into_iter().map(|c| match c {
        Column::Tuple(t) => t.into_any().unbind(),
        Column::Same(v, _) => v.unbind(),
    }));
    Ok(Rows {
        sql: sql_c,
        many,
        width,
        count,
        cells,
    })
}

/// Finalizes a prepared statement however the call ends.
struct Prepared<'a> {
    api: &'a Api,
    stmt: *mut Stmt,
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        // SAFETY: `stmt` was prepared on a live handle and is finalized once.
        unsafe { (self.api.finalize)(self.stmt) };
    }
}

/// Prepare a data-changing statement of `params` parameters.
fn prepare<'a>(api: &'a Api, db: *mut Db, sql: &CStr, params: usize) -> Result<Prepared<'a>, Fail> {
    let mut stmt: *mut Stmt = std::ptr::null_mut();
    // SAFETY: `db` is open, `sql` NUL-terminated; `stmt` is finalized by
    // `Prepared` on every path.
    let rc = unsafe { (api.prepare_v2)(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()) };
    if rc != SQLITE_OK || stmt.is_null() {
        if stmt.is_null() && rc == SQLITE_OK {
            return Err(Fail::Value("sql holds no statement".into()));
        }
        return Err(Fail::last(api, db));
    }
    let prepared = Prepared { api, stmt };
    // SAFETY: `stmt` is live.
    let (got, readonly) = unsafe {
        (
            (api.bind_parameter_count)(stmt),
            (api.stmt_readonly)(stmt) != 0,
        )
    };
    if readonly {
        return Err(Fail::Value(
            "sql must be an INSERT, UPDATE or DELETE".into(),
        ));
    }
    if usize::try_from(got).ok() != Some(params) {
        return Err(Fail::Value(format!(
            "sql has {got} parameters, {params} expected for the columns given"
        )));
    }
    Ok(prepared)
}

impl Cell {
    /// Whether binding `self` binds what `other` bound: the same variant and
    /// value, text and blobs at the same address (so constants, repeated
    /// nulls and interned strings are bound once).
    fn same(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Real(a), Cell::Real(b)) => a.to_bits() == b.to_bits(),
            (Cell::Text(a, n), Cell::Text(b, m)) => a == b && n == m,
            (Cell::Blob(a, n), Cell::Blob(b, m)) => a == b && n == m,
            _ => false,
        }
    }
}

/// Bind `cells` (parameters `1..`) and step the statement once; returns the
/// rows it changed. `before` holds the cells the statement's last step bound
/// (a reset keeps bindings): a parameter bound to the same cell is not bound
/// again.
fn step(
    api: &Api,
    db: *mut Db,
    stmt: &Prepared<'_>,
    cells: &[Cell],
    before: Option<&[Cell]>,
) -> Result<u64, Fail> {
    let stmt = stmt.stmt;
    for (i, &c) in cells.iter().enumerate() {
        if before.is_some_and(|b| b[i].same(&c)) {
            continue;
        }
        let k = (i + 1) as c_int;
        // SAFETY: `stmt` is live; text and blobs point into pinned objects
        // and are bound without a copy (SQLITE_STATIC, a null destructor)
        // until the reset below.
        let rc = unsafe {
            match c {
                Cell::Null => (api.bind_null)(stmt, k),
                Cell::Int(v) => (api.bind_int64)(stmt, k, v),
                Cell::Real(v) => (api.bind_double)(stmt, k, v),
                Cell::Text(p, n) => (api.bind_text)(stmt, k, p, n, std::ptr::null()),
                Cell::Blob(p, n) => (api.bind_blob)(stmt, k, p, n, std::ptr::null()),
            }
        };
        if rc != SQLITE_OK {
            return Err(Fail::last(api, db));
        }
    }
    // SAFETY: `stmt` is live with every parameter bound.
    let rc = unsafe { (api.step)(stmt) };
    if rc == SQLITE_ROW {
        // SAFETY: as above.
        unsafe { (api.reset)(stmt) };
        return Err(Fail::Value(
            "sql returns rows (RETURNING is not supported here)".into(),
        ));
    }
    if rc != SQLITE_DONE {
        let err = Fail::last(api, db);
        // SAFETY: `stmt` is live; resetting clears its error state.
        unsafe { (api.reset)(stmt) };
        return Err(err);
    }
    // SAFETY: `db` and `stmt` are live.
    unsafe {
        let changed = u64::try_from((api.changes)(db)).unwrap_or(0);
        (api.reset)(stmt);
        Ok(changed)
    }
}

/// Run every row of `rows` on `db`; returns the rows changed.
fn execute(api: &Api, db: *mut Db, rows: &Rows) -> Result<u64, Fail> {
    if rows.count == 0 {
        return Ok(0);
    }
    let w = rows.width;
    let single = prepare(api, db, &rows.sql, w)?;
    let mut changed: u64 = 0;
    let mut done = 0;
    if let Some((many_sql, per)) = rows
        .many
        .as_ref()
        .filter(|(_, per)| w > 0 && rows.count >= *per)
    {
        let grouped = prepare(api, db, many_sql, w * per)?;
        done = rows.count / per * per;
        let mut before = None;
        for group in rows.cells[..done * w].chunks_exact(w * per) {
            changed += step(api, db, &grouped, group, before)?;
            before = Some(group);
        }
    }
    let mut before = None;
    for row in rows.cells[done * w..].chunks_exact(w.max(1)) {
        changed += step(api, db, &single, row, before)?;
        before = Some(row);
    }
    if w == 0 {
        for _ in done..rows.count {
            changed += step(api, db, &single, &[], None)?;
        }
    }
    Ok(changed)
}

/// The `sqlite3` module, once `conn` is checked to be one of its connections.
fn check_connection<'py>(
    py: Python<'py>,
    conn: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyModule>> {
    let sqlite3 = py.import("sqlite3")?;
    if !conn.is_instance(&sqlite3.getattr("Connection")?)? {
        return Err(PyTypeError::new_err("conn must be a sqlite3.Connection"));
    }
    Ok(sqlite3)
}

/// The open handle of `conn`, checked to be a `sqlite3.Connection` inside a
/// transaction.
fn open_handle(py: Python<'_>, api: &Api, conn: &Bound<'_, PyAny>) -> PyResult<usize> {
    let sqlite3 = check_connection(py, conn)?;
    let programming = |msg: &str| -> PyResult<PyErr> {
        Ok(PyErr::from_value(
            sqlite3.getattr("ProgrammingError")?.call1((msg,))?,
        ))
    };
    // SAFETY: a `sqlite3.Connection` of the CPython the self-check passed on.
    let db = unsafe { raw_handle(conn) };
    if db.is_null() {
        return Err(programming("Cannot operate on a closed database.")?);
    }
    // SAFETY: `db` is open, and no statement of ours runs on it now.
    if unsafe { (api.get_autocommit)(db) } != 0 {
        return Err(programming(
            "bulk statements run inside a transaction: BEGIN first",
        )?);
    }
    Ok(db as usize)
}

fn unavailable() -> PyErr {
    PyValueError::new_err("bulk statements are not available here; use executemany")
}

/// Whether bulk statements can run on `sqlite3` connections here (checked
/// once per process; false means: use `executemany`).
#[pyfunction]
fn sqlite_bulk_available(py: Python<'_>) -> bool {
    api(py).is_some()
}

/// Run the INSERT, UPDATE or DELETE `sql` once per row on `conn`, inside the
/// transaction the caller holds, binding parameter *k* of row *r* from
/// `columns[k][r]` (a list or tuple of `rows` values) or from `columns[k]`
/// itself for any other value (the same for every row). With `index`, only
/// the rows it lists run, in its order. With `many = (sql_many, per)`, rows
/// run `per` at a time through `sql_many`, the same statement for `per` rows
/// at once (`INSERT … VALUES (…), (…)`: parameters row after row), and the
/// last few through `sql`: far fewer statement steps. The values are read
/// first; the statements then run without the GIL. Returns the rows changed,
/// summed over the statements (as `cursor.rowcount` of `executemany`).
/// Errors are the `sqlite3` module's exceptions; the rows done before a
/// failing one stay in the open transaction for the caller to roll back.
#[pyfunction]
#[pyo3(signature = (conn, sql, columns, rows, index=None, many=None))]
fn sqlite_execute_columns(
    py: Python<'_>,
    conn: &Bound<'_, PyAny>,
    sql: &str,
    columns: Vec<Bound<'_, PyAny>>,
    rows: usize,
    index: Option<Vec<usize>>,
    many: Option<(String, usize)>,
) -> PyResult<u64> {
    let api = api(py).ok_or_else(unavailable)?;
    let db = open_handle(py, api, conn)?;
    let mut pins = Vec::new();
    let todo = read_rows(py, sql, columns, rows, index, many, &mut pins)?;
    let out = py.detach(move || execute(api, db as *mut Db, &todo));
    drop(pins);
    out.map_err(|f| f.into_py(py))
}

/// What the writer's thread has done since the last drain.
#[derive(Default)]
struct Progress {
    /// Statements queued since the writer was made.
    sent: u64,
    /// Statements run (or skipped) since the writer was made.
    done: u64,
    /// Rows of the statements queued and not yet run.
    pending_rows: usize,
    changed: u64,
    /// The first failure; the statements queued after it are skipped.
    error: Option<Fail>,
}

impl Progress {
    /// Whether every statement queued has run (or been skipped).
    fn idle(&self) -> bool {
        self.done == self.sent
    }
}

struct Shared {
    progress: Mutex<Progress>,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs bulk statements on a `sqlite3.Connection` in a thread of its own,
/// in the order they are given, inside the transaction the caller holds, so
/// that the caller can prepare what comes next meanwhile.
///
/// The caller must not use the connection between [`BulkWriter::submit`]
/// and [`BulkWriter::drain`] (SQLite would serialize the calls, but a read
/// could see half a batch, and a COMMIT would end the transaction under the
/// writer); the values given stay pinned until their statement has run.
///
/// At most [`MAX_PENDING_ROWS`] rows wait at a time: past it, `submit` waits
/// for the thread, so that a caller faster than SQLite holds a bounded number
/// of batches in memory.
#[pyclass(module = "crmkit._core")]
pub struct BulkWriter {
    /// The connection, kept open while statements of it are queued.
    conn: Py<PyAny>,
    shared: Arc<Shared>,
    /// Statements to run, each with the handle it runs on.
    queue: Option<mpsc::Sender<(usize, Rows)>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// The objects the queued cells point into, by the number of the
    /// statement that reads them (counted from 1).
    pins: VecDeque<(u64, Vec<Py<PyAny>>)>,
}

/// Rows queued on a [`BulkWriter`] before `submit` waits for its thread:
/// about two batches of an import.
const MAX_PENDING_ROWS: usize = 131_072;

impl BulkWriter {
    /// Let go of the objects of the statements that have run.
    fn release_done(&mut self) {
        let done = self.shared.lock().done;
        while self.pins.front().is_some_and(|(seq, _)| *seq <= done) {
            self.pins.pop_front();
        }
    }
}

#[pymethods]
impl BulkWriter {
    /// A writer for `conn` (a `sqlite3.Connection`), with its thread.
    #[new]
    fn new(py: Python<'_>, conn: Bound<'_, PyAny>) -> PyResult<Self> {
        let api = api(py).ok_or_else(unavailable)?;
        check_connection(py, &conn)?;
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            idle: Condvar::new(),
        });
        let (queue, jobs) = mpsc::channel::<(usize, Rows)>();
        let on_thread = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("crmkit-sqlite-writer".into())
            .spawn(move || {
                for (db, rows) in jobs {
                    let skip = on_thread.lock().error.is_some();
                    let out = if skip {
                        Ok(0)
                    } else {
                        catch_unwind(AssertUnwindSafe(|| execute(api, db as *mut Db, &rows)))
                            .unwrap_or_else(|_| {
                                Err(Fail::Value("internal error in the bulk writer".into()))
                            })
                    };
                    let count = rows.count;
                    drop(rows);
                    let mut p = on_thread.lock();
                    match out {
                        Ok(n) => p.changed += n,
                        Err(f) => {
                            p.error.get_or_insert(f);
                        }
                    }
                    p.pending_rows -= count;
                    p.done += 1;
                    on_thread.idle.notify_all();
                }
            })
            .map_err(|e| PyValueError::new_err(format!("cannot start the bulk writer: {e}")))?;
        Ok(BulkWriter {
            conn: conn.unbind(),
            shared,
            queue: Some(queue),
            worker: Some(worker),
            pins: VecDeque::new(),
        })
    }

    /// Queue `sql` for every row of `columns`, as
    /// [`sqlite_execute_columns`] takes them; it runs after what was queued
    /// before. Type and shape errors are raised here; SQLite's, by the next
    /// drain.
    #[pyo3(signature = (sql, columns, rows, index=None, many=None))]
    fn submit(
        &mut self,
        py: Python<'_>,
        sql: &str,
        columns: Vec<Bound<'_, PyAny>>,
        rows: usize,
        index: Option<Vec<usize>>,
        many: Option<(String, usize)>,
    ) -> PyResult<()> {
        let api = api(py).ok_or_else(unavailable)?;
        if self.queue.is_none() {
            return Err(PyValueError::new_err("the bulk writer is closed"));
        }
        self.release_done();
        if self.shared.lock().pending_rows >= MAX_PENDING_ROWS {
            let shared = Arc::clone(&self.shared);
            py.detach(move || {
                let mut p = shared.lock();
                while p.pending_rows >= MAX_PENDING_ROWS {
                    p = shared.idle.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            });
            self.release_done();
        }
        // The transaction check reads the handle's state: only while the
        // thread is idle.
        let idle = self.shared.lock().idle();
        let conn = self.conn.bind(py);
        let db = if idle {
            open_handle(py, api, conn)?
        } else {
            // SAFETY: a `sqlite3.Connection` checked when the writer was made.
            let db = unsafe { raw_handle(conn) };
            if db.is_null() {
                return Err(PyValueError::new_err("the connection is closed"));
            }
            db as usize
        };
        let mut pins = Vec::new();
        let todo = read_rows(py, sql, columns, rows, index, many, &mut pins)?;
        let count = todo.count;
        let seq = {
            let mut p = self.shared.lock();
            p.sent += 1;
            p.pending_rows += count;
            p.sent
        };
        let sent = self
            .queue
            .as_ref()
            .is_some_and(|q| q.send((db, todo)).is_ok());
        if !sent {
            let mut p = self.shared.lock();
            p.sent -= 1;
            p.pending_rows -= count;
            return Err(PyValueError::new_err("the bulk writer has stopped"));
        }
        self.pins.push_back((seq, pins));
        Ok(())
    }

    /// Wait for every queued statement; returns the rows they changed, or
    /// raises the first error (as the `sqlite3` module would). Either way
    /// the writer is idle and empty afterwards.
    fn drain(&mut self, py: Python<'_>) -> PyResult<u64> {
        let shared = Arc::clone(&self.shared);
        let (changed, error) = py.detach(move || {
            let mut p = shared.lock();
            while !p.idle() {
                p = shared.idle.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            (std::mem::take(&mut p.changed), p.error.take())
        });
        self.pins.clear();
        match error {
            Some(f) => Err(f.into_py(py)),
            None => Ok(changed),
        }
    }

    /// Wait for what is queued, discard any error, and stop the thread.
    fn close(&mut self, py: Python<'_>) {
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            py.detach(move || {
                let _ = worker.join();
            });
        }
        self.pins.clear();
        let mut p = self.shared.lock();
        p.changed = 0;
        p.error = None;
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        // Ending the queue stops the thread after what it holds; joining
        // keeps the pinned values alive until then.
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Register the functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sqlite_bulk_available, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_execute_columns, m)?)?;
    m.add_class::<BulkWriter>()?;
    Ok(())
}
