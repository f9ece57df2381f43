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

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

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

/// Raise the `sqlite3` exception Python's module would for SQLite's last
/// error on `db` (the message names no values: SQLite's never do).
fn sqlite_error(py: Python<'_>, api: &Api, db: *mut Db) -> PyErr {
    // SAFETY: `db` is a live handle; the message is copied at once.
    let (code, msg) = unsafe {
        let m = (api.errmsg)(db);
        let msg = if m.is_null() {
            "unknown error".to_owned()
        } else {
            CStr::from_ptr(m).to_string_lossy().into_owned()
        };
        ((api.extended_errcode)(db), msg)
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

/// One bound column: a list or tuple of one value per row, or the same value
/// for every row.
enum Column<'py> {
    List(Bound<'py, PyList>),
    Tuple(Bound<'py, PyTuple>),
    Same(Bound<'py, PyAny>),
}

impl Column<'_> {
    /// The value of row `r`, borrowed from the column (`r` is in range).
    fn get(&self, r: usize) -> *mut ffi::PyObject {
        let r = r as ffi::Py_ssize_t;
        // SAFETY: `r` is below the length checked when the column was made;
        // the references returned are borrowed from a list or tuple that the
        // GIL-holding caller keeps alive and unchanged (no Python code runs
        // while the rows are bound).
        unsafe {
            match self {
                Column::List(l) => ffi::PyList_GetItem(l.as_ptr(), r),
                Column::Tuple(t) => ffi::PyTuple_GetItem(t.as_ptr(), r),
                Column::Same(v) => v.as_ptr(),
            }
        }
    }
}

/// Bind `value` to parameter `k` (1-based).
///
/// # Safety
/// `stmt` must be a live statement and `value` a live object that stays
/// alive, unchanged, until the statement is stepped and reset: a text or
/// blob value is bound without a copy.
unsafe fn bind(
    py: Python<'_>,
    api: &Api,
    stmt: *mut Stmt,
    k: c_int,
    value: *mut ffi::PyObject,
    column: usize,
) -> PyResult<c_int> {
    let too_long =
        |what: &str| PyOverflowError::new_err(format!("column {column}: {what} too long"));
    if value == ffi::Py_None() {
        return Ok((api.bind_null)(stmt, k));
    }
    if ffi::PyUnicode_Check(value) != 0 {
        let mut len: ffi::Py_ssize_t = 0;
        let data = ffi::PyUnicode_AsUTF8AndSize(value, &mut len);
        if data.is_null() {
            return Err(PyErr::fetch(py));
        }
        let len = c_int::try_from(len).map_err(|_| too_long("text"))?;
        return Ok((api.bind_text)(stmt, k, data, len, std::ptr::null()));
    }
    if ffi::PyLong_Check(value) != 0 {
        let v = ffi::PyLong_AsLongLong(value);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return Err(PyOverflowError::new_err(format!(
                "column {column}: Python int too large to convert to SQLite INTEGER"
            )));
        }
        return Ok((api.bind_int64)(stmt, k, v));
    }
    if ffi::PyFloat_Check(value) != 0 {
        return Ok((api.bind_double)(stmt, k, ffi::PyFloat_AsDouble(value)));
    }
    if ffi::PyBytes_Check(value) != 0 {
        let (mut data, mut len): (*mut c_char, ffi::Py_ssize_t) = (std::ptr::null_mut(), 0);
        if ffi::PyBytes_AsStringAndSize(value, &mut data, &mut len) != 0 {
            return Err(PyErr::fetch(py));
        }
        let len = c_int::try_from(len).map_err(|_| too_long("blob"))?;
        return Ok((api.bind_blob)(stmt, k, data.cast(), len, std::ptr::null()));
    }
    let name = Bound::from_borrowed_ptr(py, value)
        .get_type()
        .name()?
        .to_string();
    Err(PyTypeError::new_err(format!(
        "column {column}: type {name} is not supported (str, int, float, bytes or None)"
    )))
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
/// last few through `sql`: far fewer statement steps. Returns the rows
/// changed, summed over the statements (as `cursor.rowcount` of
/// `executemany`). Errors are the `sqlite3` module's exceptions; the rows
/// done before a failing one stay in the open transaction for the caller to
/// roll back.
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
    let Some(api) = api(py) else {
        return Err(PyValueError::new_err(
            "bulk statements are not available here; use executemany",
        ));
    };
    let sqlite3 = py.import("sqlite3")?;
    if !conn.is_instance(&sqlite3.getattr("Connection")?)? {
        return Err(PyTypeError::new_err("conn must be a sqlite3.Connection"));
    }
    // SAFETY: a `sqlite3.Connection` of the CPython the self-check passed on.
    let db = unsafe { raw_handle(conn) };
    let programming = |msg: &str| -> PyResult<PyErr> {
        Ok(PyErr::from_value(
            sqlite3.getattr("ProgrammingError")?.call1((msg,))?,
        ))
    };
    if db.is_null() {
        return Err(programming("Cannot operate on a closed database.")?);
    }
    // SAFETY: `db` is open; the GIL is held throughout, so no Python code
    // uses the connection meanwhile (SQLite serializes its own calls).
    if unsafe { (api.get_autocommit)(db) } != 0 {
        return Err(programming(
            "bulk statements run inside a transaction: BEGIN first",
        )?);
    }
    let cols: Vec<Column<'_>> = columns
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let (col, n) = match c.cast_into::<PyList>() {
                Ok(l) => {
                    let n = l.len();
                    (Column::List(l), Some(n))
                }
                Err(e) => match e.into_inner().cast_into::<PyTuple>() {
                    Ok(t) => {
                        let n = t.len();
                        (Column::Tuple(t), Some(n))
                    }
                    Err(e) => (Column::Same(e.into_inner()), None),
                },
            };
            match n {
                Some(n) if n != rows => Err(PyValueError::new_err(format!(
                    "column {k} has {n} values, expected {rows}"
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
    let order: Vec<usize> = index.unwrap_or_else(|| (0..rows).collect());
    if order.is_empty() {
        return Ok(0);
    }
    let single = prepare(py, api, db, sql, cols.len())?;
    let mut changed: u64 = 0;
    let mut rest: &[usize] = &order;
    if let Some((many_sql, per)) = many.filter(|&(_, per)| per > 1 && order.len() >= per) {
        let grouped = prepare(py, api, db, &many_sql, cols.len() * per)?;
        let whole = order.len() / per * per;
        for group in order[..whole].chunks_exact(per) {
            changed += run(py, api, db, &grouped, &cols, group)?;
        }
        rest = &order[whole..];
    }
    for &r in rest {
        changed += run(py, api, db, &single, &cols, &[r])?;
    }
    Ok(changed)
}

/// Prepare a data-changing statement of `params` parameters.
fn prepare<'a>(
    py: Python<'_>,
    api: &'a Api,
    db: *mut Db,
    sql: &str,
    params: usize,
) -> PyResult<Prepared<'a>> {
    let csql = CString::new(sql).map_err(|_| PyValueError::new_err("sql holds a NUL byte"))?;
    let mut stmt: *mut Stmt = std::ptr::null_mut();
    // SAFETY: `db` is open, `csql` NUL-terminated; `stmt` is finalized by
    // `Prepared` on every path.
    let rc = unsafe { (api.prepare_v2)(db, csql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()) };
    if rc != SQLITE_OK || stmt.is_null() {
        if stmt.is_null() && rc == SQLITE_OK {
            return Err(PyValueError::new_err("sql holds no statement"));
        }
        return Err(sqlite_error(py, api, db));
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
        return Err(PyValueError::new_err(
            "sql must be an INSERT, UPDATE or DELETE",
        ));
    }
    if usize::try_from(got).ok() != Some(params) {
        return Err(PyValueError::new_err(format!(
            "sql has {got} parameters, {params} expected for the columns given"
        )));
    }
    Ok(prepared)
}

/// Bind rows `group` (one after the other: row *g* of the group takes
/// parameters `g * columns + 1 ..`) and step the statement once; returns the
/// rows it changed.
fn run(
    py: Python<'_>,
    api: &Api,
    db: *mut Db,
    stmt: &Prepared<'_>,
    cols: &[Column<'_>],
    group: &[usize],
) -> PyResult<u64> {
    let stmt = stmt.stmt;
    for (g, &r) in group.iter().enumerate() {
        for (k, col) in cols.iter().enumerate() {
            let param = (g * cols.len() + k + 1) as c_int;
            // SAFETY: `stmt` is live; the value is borrowed from a column the
            // caller keeps alive, and no Python code runs before the reset.
            let rc = unsafe { bind(py, api, stmt, param, col.get(r), k)? };
            if rc != SQLITE_OK {
                return Err(sqlite_error(py, api, db));
            }
        }
    }
    // SAFETY: `stmt` is live with every parameter bound.
    let rc = unsafe { (api.step)(stmt) };
    if rc == SQLITE_ROW {
        // SAFETY: as above.
        unsafe { (api.reset)(stmt) };
        return Err(PyValueError::new_err(
            "sql returns rows (RETURNING is not supported here)",
        ));
    }
    if rc != SQLITE_DONE {
        let err = sqlite_error(py, api, db);
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

/// Register the functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sqlite_bulk_available, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_execute_columns, m)?)?;
    Ok(())
}
