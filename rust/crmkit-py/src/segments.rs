//! Bindings for `crmkit_core::segments` (see that module for the rule
//! language, the JSON tree schema, the NULL rule and time windows).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crmkit_core::segments::ast::{Expr, Json};
use crmkit_core::segments::compile::{Plan, RuleSource};
use crmkit_core::segments::eval::{self, EvalResult, Explain, Journal, RowUpdate};
use crmkit_core::segments::members::MemberSets as CoreMembers;
use crmkit_core::segments::snapshot::{ColumnData, Interactions, Snapshot as CoreSnapshot, Value};
use crmkit_core::segments::typecheck::check_expr;
use crmkit_core::segments::{parse, FieldType, RoaringBitmap, Schema};
use crmkit_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::{detach, to_py_err};

fn schema_from(py: Python<'_>, schema: &Bound<'_, PyDict>) -> PyResult<Schema> {
    let mut fields = Vec::with_capacity(schema.len());
    for (k, v) in schema.iter() {
        let name: String = k.extract()?;
        let ty: String = v.extract()?;
        fields.push((name, FieldType::parse(&ty).map_err(|e| to_py_err(py, e))?));
    }
    Schema::new(fields).map_err(|e| to_py_err(py, e))
}

fn invalid(py: Python<'_>, msg: String) -> PyErr {
    to_py_err(py, CoreError::InvalidInput(msg))
}

fn json_from(py: Python<'_>, o: &Bound<'_, PyAny>, depth: usize) -> PyResult<Json> {
    if depth > 256 {
        return Err(to_py_err(
            py,
            CoreError::Rule("condition tree nested too deeply".into()),
        ));
    }
    if o.is_none() {
        return Ok(Json::Null);
    }
    if o.is_instance_of::<PyBool>() {
        return Ok(Json::Bool(o.extract()?));
    }
    if o.is_instance_of::<PyInt>() {
        return match o.extract::<i64>() {
            Ok(i) => Ok(Json::Int(i)),
            Err(_) => Err(to_py_err(
                py,
                CoreError::Rule("integer out of range in condition tree".into()),
            )),
        };
    }
    if o.is_instance_of::<PyFloat>() {
        return Ok(Json::Num(o.extract()?));
    }
    if let Ok(s) = o.cast::<PyString>() {
        return Ok(Json::Str(s.to_str()?.to_string()));
    }
    if let Ok(d) = o.cast::<PyDict>() {
        let mut kv = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                to_py_err(
                    py,
                    CoreError::Rule("condition tree keys must be strings".into()),
                )
            })?;
            kv.push((key, json_from(py, &v, depth + 1)?));
        }
        return Ok(Json::Obj(kv));
    }
    if o.is_instance_of::<PyList>() || o.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for it in o.try_iter()? {
            items.push(json_from(py, &it?, depth + 1)?);
        }
        return Ok(Json::Arr(items));
    }
    Err(to_py_err(
        py,
        CoreError::Rule(format!(
            "unsupported value of type {} in condition tree",
            o.get_type().name()?
        )),
    ))
}

fn json_to<'py>(py: Python<'py>, j: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match j {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Json::Int(i) => i.into_pyobject(py)?.into_any(),
        Json::Num(f) => f.into_pyobject(py)?.into_any(),
        Json::Str(s) => s.into_pyobject(py)?.into_any(),
        Json::Arr(items) => {
            let l = PyList::empty(py);
            for it in items {
                l.append(json_to(py, it)?)?;
            }
            l.into_any()
        }
        Json::Obj(kv) => {
            let d = PyDict::new(py);
            for (k, v) in kv {
                d.set_item(k, json_to(py, v)?)?;
            }
            d.into_any()
        }
    })
}

fn rule_source(py: Python<'_>, rule: &Bound<'_, PyAny>) -> PyResult<RuleSource> {
    if let Ok(s) = rule.cast::<PyString>() {
        return Ok(RuleSource::Text(s.to_str()?.to_string()));
    }
    let j = json_from(py, rule, 0)?;
    Ok(RuleSource::Tree(
        Expr::from_json(&j).map_err(|e| to_py_err(py, e))?,
    ))
}

/// Parse a rule (text or JSON tree) into its JSON condition tree; with a
/// schema, also check its fields and types (raises RuleError).
#[pyfunction]
#[pyo3(signature = (rule, schema = None))]
fn parse_rule<'py>(
    py: Python<'py>,
    rule: &Bound<'py, PyAny>,
    schema: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let expr = match rule_source(py, rule)? {
        RuleSource::Text(t) => parse(&t).map_err(|e| to_py_err(py, e))?,
        RuleSource::Tree(e) => e,
    };
    let expr = match schema {
        Some(s) => {
            check_expr(&expr, &schema_from(py, s)?)
                .map_err(|e| to_py_err(py, e))?
                .0
        }
        None => expr,
    };
    json_to(py, &expr.to_json())
}

/// The canonical text form of a rule (a JSON condition tree or rule text).
#[pyfunction]
fn rule_to_text(py: Python<'_>, rule: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(match rule_source(py, rule)? {
        RuleSource::Text(t) => parse(&t).map_err(|e| to_py_err(py, e))?.to_text(),
        RuleSource::Tree(e) => e.to_text(),
    })
}

fn column_from(
    py: Python<'_>,
    name: &str,
    ty: FieldType,
    values: &Bound<'_, PyAny>,
) -> PyResult<ColumnData> {
    let err = |_| {
        invalid(
            py,
            format!(
                "column '{name}' must be a list of {} values or None",
                ty.name()
            ),
        )
    };
    Ok(match ty {
        FieldType::String => ColumnData::Str(values.extract().map_err(err)?),
        FieldType::Integer | FieldType::Date | FieldType::Datetime => {
            ColumnData::Int(values.extract().map_err(err)?)
        }
        FieldType::Number => ColumnData::Float(values.extract().map_err(err)?),
        FieldType::Boolean => ColumnData::Bool(values.extract().map_err(err)?),
        FieldType::List => ColumnData::List(values.extract().map_err(err)?),
    })
}

/// Epoch seconds of an ISO 8601 date (`YYYY-MM-DD`, midnight UTC) or
/// date-time (`YYYY-MM-DD[T ]HH:MM[:SS[.f]]` with `Z`, `±HH:MM`, `±HHMM`
/// or no offset, which means UTC); None when the text is not one.
fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() <= 10 || !s.is_char_boundary(10) {
        return crmkit_core::segments::parse_datetime(s);
    }
    let (date, time) = s.split_at(10);
    let sep = &time[..1];
    let mut t = &time[1..];
    let mut offset = 0i64;
    if let Some(rest) = t.strip_suffix('Z') {
        t = rest;
    } else if let Some(i) = t.rfind(['+', '-']) {
        let (base, off) = t.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
        if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let hh: i64 = digits[..2].parse().ok()?;
        let mm: i64 = if digits.len() == 4 {
            digits[2..].parse().ok()?
        } else {
            0
        };
        offset = sign * (hh * 3600 + mm * 60);
        t = base;
    }
    let mut frac = false;
    if let Some(i) = t.find('.') {
        let f = &t[i + 1..];
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        frac = f.bytes().any(|b| b != b'0');
        t = &t[..i];
    }
    let secs = crmkit_core::segments::parse_datetime(&format!("{date}{sep}{t}"))? - offset;
    // int(timestamp) truncates toward zero.
    Some(if frac && secs < 0 { secs + 1 } else { secs })
}

/// A column converted leniently, in one pass and without Python code per
/// value: strings take `str(v)`, integers and numbers take Python's
/// `int(v)` / `float(v)` (text included), booleans take `bool(v)`, dates
/// and datetimes take epoch numbers or ISO 8601 text (unparsable text is
/// None), lists take lists or tuples of strings (anything else is None).
fn column_coerced(
    py: Python<'_>,
    name: &str,
    ty: FieldType,
    values: &Bound<'_, PyAny>,
) -> PyResult<ColumnData> {
    let bad = || {
        invalid(
            py,
            format!("column '{name}' holds a value that is not a {}", ty.name()),
        )
    };
    let builtins = py.import("builtins")?;
    let n = values.len().unwrap_or(0);
    macro_rules! collect {
        ($variant:ident, $conv:expr) => {{
            let mut out = Vec::with_capacity(n);
            for v in values.try_iter()? {
                let v = v?;
                out.push(if v.is_none() { None } else { $conv(&v)? });
            }
            ColumnData::$variant(out)
        }};
    }
    Ok(match ty {
        FieldType::String => collect!(Str, |v: &Bound<'_, PyAny>| -> PyResult<_> {
            Ok(Some(match v.cast::<PyString>() {
                Ok(s) => s.to_str()?.to_owned(),
                Err(_) => v.str()?.to_str()?.to_owned(),
            }))
        }),
        FieldType::Integer => collect!(Int, |v: &Bound<'_, PyAny>| -> PyResult<_> {
            if v.is_instance_of::<PyInt>() {
                return v.extract::<i64>().map(Some).map_err(|_| bad());
            }
            if let Ok(f) = v.cast::<PyFloat>() {
                let f = f.value();
                return if f.is_finite() && f.abs() < 9.2e18 {
                    Ok(Some(f.trunc() as i64))
                } else {
                    Err(bad())
                };
            }
            if let Ok(s) = v.cast::<PyString>() {
                if let Ok(i) = s.to_str()?.trim().parse::<i64>() {
                    return Ok(Some(i));
                }
            }
            let i = builtins.getattr("int")?.call1((v,)).map_err(|_| bad())?;
            i.extract::<i64>().map(Some).map_err(|_| bad())
        }),
        FieldType::Number => collect!(Float, |v: &Bound<'_, PyAny>| -> PyResult<_> {
            if let Ok(f) = v.cast::<PyFloat>() {
                return Ok(Some(f.value()));
            }
            if v.is_instance_of::<PyInt>() {
                return v.extract::<f64>().map(Some).map_err(|_| bad());
            }
            let f = builtins.getattr("float")?.call1((v,)).map_err(|_| bad())?;
            f.extract::<f64>().map(Some).map_err(|_| bad())
        }),
        FieldType::Boolean => collect!(Bool, |v: &Bound<'_, PyAny>| -> PyResult<_> {
            Ok(Some(v.is_truthy()?))
        }),
        FieldType::Date | FieldType::Datetime => {
            collect!(Int, |v: &Bound<'_, PyAny>| -> PyResult<_> {
                if v.is_instance_of::<PyInt>() {
                    return v.extract::<i64>().map(Some).map_err(|_| bad());
                }
                if let Ok(f) = v.cast::<PyFloat>() {
                    let f = f.value();
                    return Ok((f.is_finite() && f.abs() < 9.2e18).then(|| f.trunc() as i64));
                }
                Ok(match v.cast::<PyString>() {
                    Ok(s) => parse_iso(s.to_str()?),
                    Err(_) => parse_iso(v.str()?.to_str()?),
                })
            })
        }
        FieldType::List => collect!(List, |v: &Bound<'_, PyAny>| -> PyResult<_> {
            if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
                v.extract::<Vec<String>>().map(Some).map_err(|_| bad())
            } else {
                Ok(None)
            }
        }),
    })
}

/// The position in `ids` of each of `keys` (raises when a key is not in `ids`).
#[pyfunction]
fn row_positions(py: Python<'_>, ids: Vec<i64>, keys: Vec<i64>) -> PyResult<Vec<usize>> {
    let pos: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    keys.iter()
        .map(|k| {
            pos.get(k)
                .copied()
                .ok_or_else(|| invalid(py, "a key is not among the ids".into()))
        })
        .collect()
}

/// The domain of each email (the text after the last `@`; None without one).
#[pyfunction]
fn email_domains(emails: Vec<Option<String>>) -> Vec<Option<String>> {
    emails
        .into_iter()
        .map(|e| {
            let e = e?;
            e.rsplit_once('@').map(|(_, d)| d.to_string())
        })
        .collect()
}

fn value_from(py: Python<'_>, name: &str, ty: FieldType, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    let err = |_| {
        invalid(
            py,
            format!("value for '{name}' must be a {} or None", ty.name()),
        )
    };
    Ok(match ty {
        FieldType::String => Value::Str(v.extract().map_err(err)?),
        FieldType::Integer | FieldType::Date | FieldType::Datetime => {
            Value::Int(v.extract().map_err(err)?)
        }
        FieldType::Number => Value::Float(v.extract().map_err(err)?),
        FieldType::Boolean => Value::Bool(v.extract().map_err(err)?),
        FieldType::List => Value::List(v.extract().map_err(err)?),
    })
}

/// Column lists by field name, checked against `schema` (see `Snapshot.__new__`).
fn columns_from(
    py: Python<'_>,
    schema: &Schema,
    columns: &Bound<'_, PyDict>,
    coerce: bool,
) -> PyResult<HashMap<String, ColumnData>> {
    let mut data = HashMap::with_capacity(columns.len());
    for (k, v) in columns.iter() {
        let name: String = k.extract()?;
        let Some((_, ty)) = schema.get(&name) else {
            return Err(invalid(py, format!("column '{name}' is not in the schema")));
        };
        let col = if coerce {
            column_coerced(py, &name, ty, &v)?
        } else {
            column_from(py, &name, ty, &v)?
        };
        data.insert(name, col);
    }
    Ok(data)
}

/// Interactions from parallel lists `contact_id`, `kind`, `time` and optional `amount`.
fn interactions_from(
    py: Python<'_>,
    interactions: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<Interactions>> {
    let Some(d) = interactions else {
        return Ok(None);
    };
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(k)?
            .ok_or_else(|| invalid(py, format!("interactions need a '{k}' list")))
    };
    let contact: Vec<i64> = get("contact_id")?.extract()?;
    let n = contact.len();
    let amount: Vec<Option<f64>> = match d.get_item("amount")? {
        Some(a) if !a.is_none() => a.extract()?,
        _ => vec![None; n],
    };
    Ok(Some(Interactions {
        contact,
        kind: get("kind")?.extract()?,
        time: get("time")?.extract()?,
        amount,
    }))
}

/// A columnar snapshot of contacts and their interactions.
#[pyclass(module = "crmkit._core")]
pub struct Snapshot {
    inner: CoreSnapshot,
}

#[pymethods]
impl Snapshot {
    /// Build from `ids`, `columns` ({field: list of values}), `schema`
    /// ({field: type name}) and optional `interactions`
    /// ({"contact_id": [...], "kind": [...], "time": [...], "amount": [...]}).
    /// With `coerce`, column values are converted leniently as they are read
    /// (text to numbers, ISO dates to epoch seconds, any value to `str` for
    /// strings), so that store rows need no conversion in Python.
    #[new]
    #[pyo3(signature = (ids, columns, schema, interactions = None, *, coerce = false))]
    fn new(
        py: Python<'_>,
        ids: Vec<i64>,
        columns: &Bound<'_, PyDict>,
        schema: &Bound<'_, PyDict>,
        interactions: Option<&Bound<'_, PyDict>>,
        coerce: bool,
    ) -> PyResult<Self> {
        let schema = schema_from(py, schema)?;
        let data = columns_from(py, &schema, columns, coerce)?;
        let inter = interactions_from(py, interactions)?;
        let inner = detach(py, move || CoreSnapshot::new(ids, schema, data, inter))?;
        Ok(Snapshot { inner })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The field names and types of the snapshot ({field: type name}).
    #[getter]
    fn schema(&self) -> HashMap<String, String> {
        self.inner
            .schema
            .fields()
            .iter()
            .map(|(n, t)| (n.clone(), t.name().to_string()))
            .collect()
    }

    /// Write the snapshot to `path` with a `meta` text, atomically (a
    /// temporary file renamed over `path`).
    fn save(&self, py: Python<'_>, path: PathBuf, meta: &str) -> PyResult<()> {
        let inner = &self.inner;
        detach(py, move || inner.save(&path, meta))
    }

    /// Read a snapshot written by `save`: (snapshot, meta). A damaged file,
    /// or one of another format version, raises InvalidInputError.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<(Snapshot, String)> {
        let (inner, meta) = detach(py, move || CoreSnapshot::load(&path))?;
        Ok((Snapshot { inner }, meta))
    }

    /// Bring rows up to date in place: each of `ids` (appended when new)
    /// takes the values of `columns` (as in the constructor; fields not
    /// given keep their values) and `interactions` are appended to their
    /// contacts. Returns how many rows were appended. On error the snapshot
    /// must be dropped and rebuilt.
    #[pyo3(signature = (ids, columns, interactions = None, *, coerce = false))]
    fn upsert(
        &mut self,
        py: Python<'_>,
        ids: Vec<i64>,
        columns: &Bound<'_, PyDict>,
        interactions: Option<&Bound<'_, PyDict>>,
        coerce: bool,
    ) -> PyResult<usize> {
        let data = columns_from(py, &self.inner.schema, columns, coerce)?;
        let inter = interactions_from(py, interactions)?;
        let inner = &mut self.inner;
        detach(py, move || inner.upsert(&ids, data, inter))
    }

    /// Contact ids, in row order.
    #[getter]
    fn ids(&self) -> Vec<i64> {
        self.inner.ids.clone()
    }
}

/// The memberships of every segment of a plan at one as-of time.
#[pyclass(module = "crmkit._core")]
pub struct SegmentResult {
    inner: EvalResult,
    /// Membership flips of single-contact updates not yet in `inner`'s
    /// bitmaps (applied in one batch before anything reads them).
    journal: Journal,
    snapshot: Py<Snapshot>,
}

/// Flips kept before an update applies them itself (bounds the journal
/// when nothing reads the result for a long time).
const MAX_PENDING_FLIPS: usize = 1 << 16;

impl SegmentResult {
    fn new(inner: EvalResult, snapshot: Py<Snapshot>) -> Self {
        SegmentResult {
            inner,
            journal: Journal::default(),
            snapshot,
        }
    }

    /// Apply the pending flips.
    fn flush(&mut self) {
        let SegmentResult { inner, journal, .. } = self;
        journal.apply(inner);
    }

    fn bitmap_of(&self, py: Python<'_>, name: &str) -> PyResult<&RoaringBitmap> {
        self.inner
            .get(name)
            .ok_or_else(|| invalid(py, format!("no segment named '{name}'")))
    }
}

/// The result with its pending flips applied, borrowed for reading.
fn flushed<'py>(r: &Bound<'py, SegmentResult>) -> PyResult<PyRef<'py, SegmentResult>> {
    if let Ok(mut m) = r.try_borrow_mut() {
        m.flush();
    }
    let me = r.try_borrow()?;
    if !me.journal.is_empty() {
        return Err(invalid(
            r.py(),
            "the result is being updated and cannot be read now".into(),
        ));
    }
    Ok(me)
}

fn rows_to_ids(ids: &[i64], bm: &RoaringBitmap) -> Vec<i64> {
    bm.iter().map(|r| ids[r as usize]).collect()
}

#[pymethods]
impl SegmentResult {
    /// The as-of time (epoch seconds).
    #[getter]
    fn as_of(&self) -> i64 {
        self.inner.as_of
    }

    /// Segment names, in plan order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names.clone()
    }

    /// {segment: number of members}.
    fn counts(slf: &Bound<'_, Self>) -> PyResult<HashMap<String, u64>> {
        let me = flushed(slf)?;
        Ok(me
            .inner
            .names
            .iter()
            .cloned()
            .zip(me.inner.counts())
            .collect())
    }

    /// Number of membership flips of single-contact updates not yet applied
    /// to the bitmaps (every read of the members applies them first).
    #[getter]
    fn pending(&self) -> usize {
        self.journal.len()
    }

    /// Contact ids of a segment's members, in snapshot row order.
    fn members(slf: &Bound<'_, Self>, name: &str) -> PyResult<Vec<i64>> {
        let py = slf.py();
        let me = flushed(slf)?;
        let bm = me.bitmap_of(py, name)?;
        let snap = me.snapshot.borrow(py);
        Ok(rows_to_ids(&snap.inner.ids, bm))
    }

    /// Every segment's members by contact id, to compare with the next run.
    fn member_sets(slf: &Bound<'_, Self>) -> PyResult<MemberSets> {
        let py = slf.py();
        let me = flushed(slf)?;
        let snap = me.snapshot.borrow(py);
        let (result, sref) = (&me.inner, &snap.inner);
        let inner = detach(py, move || CoreMembers::of_result(result, sref))?;
        Ok(MemberSets { inner })
    }

    /// Snapshot row indices of a segment's members.
    fn rows(slf: &Bound<'_, Self>, name: &str) -> PyResult<Vec<u32>> {
        let me = flushed(slf)?;
        Ok(me.bitmap_of(slf.py(), name)?.iter().collect())
    }

    /// The members' row indices as a serialized roaring bitmap (portable format).
    fn bitmap<'py>(slf: &Bound<'py, Self>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        let me = flushed(slf)?;
        let bm = me.bitmap_of(py, name)?;
        let mut buf = Vec::with_capacity(bm.serialized_size());
        bm.serialize_into(&mut buf)
            .map_err(|e| invalid(py, e.to_string()))?;
        Ok(PyBytes::new(py, &buf))
    }

    /// {segment: (entered ids, exited ids)} since `previous` (a segment
    /// absent from `previous` counts as empty there).
    fn diff(
        slf: &Bound<'_, Self>,
        previous: &Bound<'_, SegmentResult>,
    ) -> PyResult<HashMap<String, (Vec<i64>, Vec<i64>)>> {
        let py = slf.py();
        drop(flushed(previous)?);
        let me = flushed(slf)?;
        let d = me.inner.diff(&previous.borrow().inner);
        let snap = me.snapshot.borrow(py);
        Ok(d.into_iter()
            .map(|(n, e, x)| {
                (
                    n,
                    (
                        rows_to_ids(&snap.inner.ids, &e),
                        rows_to_ids(&snap.inner.ids, &x),
                    ),
                )
            })
            .collect())
    }

    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, SegmentResult>) -> PyResult<bool> {
        drop(flushed(other)?);
        let me = flushed(slf)?;
        Ok(me.inner == other.borrow().inner)
    }
}

/// All segments compiled into one plan with shared sub-expressions.
#[pyclass(module = "crmkit._core", frozen)]
pub struct SegmentPlan {
    plan: Arc<Plan>,
    /// The segment names as Python strings, made once (updates return them).
    py_names: Vec<Py<PyString>>,
}

fn explain_dict<'py>(py: Python<'py>, e: &Explain) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("text", &e.text)?;
    d.set_item("value", e.value)?;
    d.set_item("null", e.null)?;
    let kids = PyList::empty(py);
    for c in &e.children {
        kids.append(explain_dict(py, c)?)?;
    }
    d.set_item("children", kids)?;
    Ok(d)
}

impl SegmentPlan {
    fn seg(&self, py: Python<'_>, name: &str) -> PyResult<usize> {
        self.plan
            .segment(name)
            .ok_or_else(|| invalid(py, format!("no segment named '{name}'")))
    }
}

#[pymethods]
impl SegmentPlan {
    /// Compile `segments` ([(name, rule text or JSON tree)], in priority
    /// order) against `schema` ({field: type name}); raises RuleError.
    #[new]
    fn new(
        py: Python<'_>,
        segments: &Bound<'_, PyAny>,
        schema: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let schema = schema_from(py, schema)?;
        let mut segs = Vec::new();
        for item in segments.try_iter()? {
            let item = item?;
            let (name, rule): (String, Bound<'_, PyAny>) = item
                .extract()
                .map_err(|_| invalid(py, "segments must be (name, rule) pairs".into()))?;
            segs.push((name, rule_source(py, &rule)?));
        }
        let plan = detach(py, move || Plan::compile(segs, schema))?;
        let py_names = plan
            .names
            .iter()
            .map(|n| PyString::new(py, n).unbind())
            .collect();
        Ok(SegmentPlan {
            plan: Arc::new(plan),
            py_names,
        })
    }

    /// Segment names, in plan order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.plan.names.clone()
    }

    /// The fields the plan's rules read, sorted.
    fn fields(&self) -> Vec<String> {
        let names = self.plan.schema.fields();
        let mut out: Vec<String> = self
            .plan
            .col_segments
            .keys()
            .map(|&c| names[c].0.clone())
            .collect();
        out.sort();
        out
    }

    /// {segment: canonical rule text}.
    fn rules(&self) -> HashMap<String, String> {
        self.plan
            .names
            .iter()
            .cloned()
            .zip(self.plan.exprs.iter().map(Expr::to_text))
            .collect()
    }

    /// Number of distinct clauses and nodes after sharing: (leaves, nodes).
    fn stats(&self) -> (usize, usize) {
        (
            self.plan.leaves.len(),
            self.plan
                .nodes_for(&(0..self.plan.names.len()).collect::<Vec<_>>())
                .len(),
        )
    }

    /// Evaluate every segment over `snapshot` at `as_of` (epoch seconds);
    /// with `segments`, only those (a preview: the result cannot be updated
    /// in place or moved in time).
    #[pyo3(signature = (snapshot, as_of, segments = None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        snapshot: Bound<'_, Snapshot>,
        as_of: i64,
        segments: Option<Vec<String>>,
    ) -> PyResult<SegmentResult> {
        let plan = self.plan.clone();
        let inner = {
            let s = snapshot.borrow();
            let sref: &CoreSnapshot = &s.inner;
            match segments {
                None => detach(py, move || eval::evaluate(&plan, sref, as_of))?,
                Some(names) => {
                    detach(py, move || eval::evaluate_named(&plan, sref, as_of, &names))?
                }
            }
        };
        Ok(SegmentResult::new(inner, snapshot.unbind()))
    }

    /// Re-evaluate at a new as-of time, recomputing only the segments that
    /// depend on the clock (time windows, aggregates) and keeping the others.
    fn advance_clock(
        &self,
        py: Python<'_>,
        snapshot: Bound<'_, Snapshot>,
        previous: &Bound<'_, SegmentResult>,
        as_of: i64,
    ) -> PyResult<SegmentResult> {
        let plan = self.plan.clone();
        let previous = flushed(previous)?;
        let inner = {
            let s = snapshot.borrow();
            let sref: &CoreSnapshot = &s.inner;
            let prev = &previous.inner;
            detach(py, move || eval::advance_clock(&plan, sref, prev, as_of))?
        };
        Ok(SegmentResult::new(inner, snapshot.unbind()))
    }

    /// Move `result` (this plan's, on `snapshot`) to a new as-of time in
    /// place, recomputing only the segments that depend on the clock.
    /// Returns the exact entered and exited members of each segment that
    /// changed (ids are made on demand).
    fn advance(
        &self,
        py: Python<'_>,
        snapshot: Bound<'_, Snapshot>,
        result: &Bound<'_, SegmentResult>,
        as_of: i64,
    ) -> PyResult<SegmentChanges> {
        let plan = self.plan.clone();
        let changes = {
            let s = snapshot.borrow();
            let mut r = result.borrow_mut();
            if !r.snapshot.is(&snapshot) {
                return Err(invalid(py, "the result belongs to another snapshot".into()));
            }
            let sref: &CoreSnapshot = &s.inner;
            r.flush();
            let inner = &mut r.inner;
            detach(py, move || {
                eval::advance_clock_in_place(&plan, sref, inner, as_of)
            })?
        };
        Ok(SegmentChanges {
            changes: changes
                .into_iter()
                .map(|(seg, e, x)| (self.plan.names[seg].clone(), e, x))
                .collect(),
            snapshot: snapshot.unbind(),
        })
    }

    /// Apply a change to one contact (created if the id is new): new field
    /// `values` and/or new `interactions` [(kind, time, amount)]. Updates
    /// `snapshot` and `result` in place, re-evaluating only the segments that
    /// read what changed; returns (entered, exited) segment names.
    #[pyo3(signature = (snapshot, result, contact_id, values = None, interactions = None))]
    fn update_contact(
        &self,
        py: Python<'_>,
        snapshot: &Bound<'_, Snapshot>,
        result: &Bound<'_, SegmentResult>,
        contact_id: i64,
        values: Option<&Bound<'_, PyDict>>,
        interactions: Option<Vec<(String, i64, Option<f64>)>>,
    ) -> PyResult<(Vec<Py<PyString>>, Vec<Py<PyString>>)> {
        let mut snap = snapshot.borrow_mut();
        let mut upd = RowUpdate {
            values: Vec::new(),
            interactions: interactions.unwrap_or_default(),
        };
        if let Some(vals) = values {
            for (k, v) in vals.iter() {
                let key = k.cast::<PyString>()?;
                let name = key.to_str()?;
                let Some((_, ty)) = snap.inner.column(name) else {
                    return Err(invalid(py, format!("unknown field '{name}'")));
                };
                let value = value_from(py, name, ty, &v)?;
                upd.values.push((name.to_owned(), value));
            }
        }
        let mut res = result.borrow_mut();
        if !res.snapshot.is(snapshot) {
            return Err(invalid(
                py,
                "the result was not computed on this snapshot".into(),
            ));
        }
        if !eval::updates_prepared(&self.plan, &snap.inner) {
            // A one-off that fans out over large dictionaries: without the GIL.
            let (plan, sref) = (&*self.plan, &mut snap.inner);
            detach(py, move || {
                eval::prepare_updates(plan, sref);
                Ok(())
            })?;
        }
        let SegmentResult { inner, journal, .. } = &mut *res;
        let out = eval::update_contact_journaled(
            &self.plan,
            &mut snap.inner,
            inner,
            journal,
            contact_id,
            &upd,
        );
        let names = |v: &[usize]| -> Vec<Py<PyString>> {
            v.iter().map(|&i| self.py_names[i].clone_ref(py)).collect()
        };
        let moved = (names(&journal.entered), names(&journal.exited));
        if journal.len() >= MAX_PENDING_FLIPS || out.is_err() {
            journal.apply(inner);
        }
        out.map_err(|e| to_py_err(py, e))?;
        Ok(moved)
    }

    /// Why contact `contact_id` is or is not in `segment` at `as_of`: a tree
    /// of {"text", "value", "null", "children"}; "null" marks a clause that is
    /// false because the value it reads is missing.
    fn explain<'py>(
        &self,
        py: Python<'py>,
        snapshot: &Bound<'py, Snapshot>,
        contact_id: i64,
        segment: &str,
        as_of: i64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let seg = self.seg(py, segment)?;
        let snap = snapshot.borrow();
        let row = snap
            .inner
            .row_of(contact_id)
            .ok_or_else(|| invalid(py, "unknown contact id".into()))?;
        explain_dict(py, &eval::explain(&self.plan, &snap.inner, row, seg, as_of))
    }

    /// Exclusive segment set: label each contact (in row order) with the first
    /// segment of the plan that contains it, or `other`.
    #[pyo3(signature = (snapshot, as_of, other = "other"))]
    fn exclusive(
        &self,
        py: Python<'_>,
        snapshot: &Bound<'_, Snapshot>,
        as_of: i64,
        other: &str,
    ) -> PyResult<Vec<String>> {
        let plan = self.plan.clone();
        let labels = {
            let s = snapshot.borrow();
            let sref: &CoreSnapshot = &s.inner;
            detach(py, move || eval::exclusive(&plan, sref, as_of))?
        };
        Ok(labels
            .into_iter()
            .map(|l| {
                l.map_or_else(
                    || other.to_string(),
                    |i| self.plan.names[i as usize].clone(),
                )
            })
            .collect())
    }
}

/// The members that entered and exited each changed segment of one move.
#[pyclass(module = "crmkit._core", frozen)]
pub struct SegmentChanges {
    changes: Vec<(String, RoaringBitmap, RoaringBitmap)>,
    snapshot: Py<Snapshot>,
}

impl SegmentChanges {
    fn find(
        &self,
        py: Python<'_>,
        name: &str,
    ) -> PyResult<&(String, RoaringBitmap, RoaringBitmap)> {
        self.changes
            .iter()
            .find(|c| c.0 == name)
            .ok_or_else(|| invalid(py, format!("segment '{name}' did not change")))
    }
}

#[pymethods]
impl SegmentChanges {
    /// Names of the segments that changed, in plan order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.changes.iter().map(|c| c.0.clone()).collect()
    }

    /// {segment: (entered count, exited count)}.
    fn counts(&self) -> HashMap<String, (u64, u64)> {
        self.changes
            .iter()
            .map(|(n, e, x)| (n.clone(), (e.len(), x.len())))
            .collect()
    }

    /// Contact ids that entered a segment.
    fn entered(&self, py: Python<'_>, name: &str) -> PyResult<Vec<i64>> {
        let c = self.find(py, name)?;
        Ok(rows_to_ids(&self.snapshot.borrow(py).inner.ids, &c.1))
    }

    /// Contact ids that exited a segment.
    fn exited(&self, py: Python<'_>, name: &str) -> PyResult<Vec<i64>> {
        let c = self.find(py, name)?;
        Ok(rows_to_ids(&self.snapshot.borrow(py).inner.ids, &c.2))
    }

    /// {segment: (entered ids, exited ids)} for every changed segment.
    fn to_dict(&self, py: Python<'_>) -> HashMap<String, (Vec<i64>, Vec<i64>)> {
        let snap = self.snapshot.borrow(py);
        self.changes
            .iter()
            .map(|(n, e, x)| {
                (
                    n.clone(),
                    (
                        rows_to_ids(&snap.inner.ids, e),
                        rows_to_ids(&snap.inner.ids, x),
                    ),
                )
            })
            .collect()
    }

    fn __len__(&self) -> usize {
        self.changes.len()
    }
}

/// Members of each segment by contact id, kept between runs.
#[pyclass(module = "crmkit._core", frozen)]
pub struct MemberSets {
    inner: CoreMembers,
}

#[pymethods]
impl MemberSets {
    /// From {segment: [contact id, ...]}.
    #[new]
    fn new(py: Python<'_>, lists: HashMap<String, Vec<i64>>) -> PyResult<Self> {
        let inner = detach(py, move || {
            CoreMembers::from_lists(lists.into_iter().collect())
        })?;
        Ok(MemberSets { inner })
    }

    /// Segment names, sorted.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.sets.keys().cloned().collect()
    }

    /// Number of members of each segment.
    fn counts(&self) -> HashMap<String, u64> {
        self.inner
            .sets
            .iter()
            .map(|(n, s)| (n.clone(), s.len()))
            .collect()
    }

    /// For each of `names`: (name, entered ids, exited ids) going from these
    /// members to `new` (a segment missing on a side is empty there).
    fn diff(
        &self,
        py: Python<'_>,
        new: &MemberSets,
        names: Vec<String>,
    ) -> PyResult<Vec<(String, Vec<i64>, Vec<i64>)>> {
        let (old, cur) = (&self.inner, &new.inner);
        Ok(py.detach(move || old.diff(cur, &names)))
    }

    /// Write to `path` with a `meta` text, atomically.
    fn save(&self, py: Python<'_>, path: PathBuf, meta: &str) -> PyResult<()> {
        let inner = &self.inner;
        detach(py, move || inner.save(&path, meta))
    }

    /// Read a file written by `save`: (member sets, meta); InvalidInputError
    /// when it is damaged.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<(MemberSets, String)> {
        let (inner, meta) = detach(py, move || CoreMembers::load(&path))?;
        Ok((MemberSets { inner }, meta))
    }

    fn __eq__(&self, other: &MemberSets) -> bool {
        self.inner == other.inner
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_rule, m)?)?;
    m.add_function(wrap_pyfunction!(rule_to_text, m)?)?;
    m.add_function(wrap_pyfunction!(email_domains, m)?)?;
    m.add_function(wrap_pyfunction!(row_positions, m)?)?;
    m.add_class::<Snapshot>()?;
    m.add_class::<SegmentPlan>()?;
    m.add_class::<SegmentResult>()?;
    m.add_class::<MemberSets>()?;
    m.add_class::<SegmentChanges>()?;
    Ok(())
}
