//! Bindings for `crmkit_core::convert`: typed attribute columns for ingest.

use crmkit_core::convert::{
    convert_text, epoch_seconds, json_objects, AttrType, Converted, JsonValue,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString};

use crate::{py_err, Kind};

/// `values` (a list of `str | None`) converted to attribute type `typ`.
///
/// Returns the converted list and the indexes of the values not converted
/// here (bad values, rare forms, and values that are not strings): those are
/// `None` in the list, and the caller converts them one by one, which also
/// names the reason of each bad one.
#[pyfunction]
#[pyo3(signature = (values, typ, list_separator = ";"))]
fn convert_column<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    typ: &str,
    list_separator: &str,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let typ = AttrType::parse(typ)
        .ok_or_else(|| py_err(py, Kind::InvalidInput, format!("unknown type {typ:?}")))?;
    map_text(py, values, |item, s| {
        Ok(match convert_text(s, typ, list_separator) {
            Converted::Null => Some(py.None().into_bound(py)),
            Converted::Same(t) if t.len() == s.len() => Some(item.clone()),
            Converted::Same(t) => Some(PyString::new(py, t).into_any()),
            Converted::Text(t) => Some(PyString::new(py, &t).into_any()),
            Converted::Int(n) => Some(PyInt::new(py, n).into_any()),
            Converted::Float(f) => Some(PyFloat::new(py, f).into_any()),
            Converted::Bool(b) => Some(PyBool::new(py, b).to_owned().into_any()),
            Converted::List(parts) => Some(PyList::new(py, parts)?.into_any()),
            Converted::Unsure => None,
        })
    })
}

/// Map each text value of `values` with `f` (`None` from `f`: not converted
/// here). Returns the new list, `None` where a value was missing or not
/// converted, and the indexes of the values not converted (non-text values
/// included), for the caller to convert one by one.
fn map_text<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    mut f: impl FnMut(&Bound<'py, PyAny>, &str) -> PyResult<Option<Bound<'py, PyAny>>>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    let out = PyList::empty(py);
    let mut unsure = Vec::new();
    for (i, item) in values.iter().enumerate() {
        if item.is_none() {
            out.append(py.None())?;
            continue;
        }
        let converted = match item.cast::<PyString>() {
            Ok(text) => f(&item, text.to_str()?)?,
            Err(_) => None,
        };
        match converted {
            Some(v) => out.append(v)?,
            None => {
                unsure.push(i);
                out.append(py.None())?;
            }
        }
    }
    Ok((out, unsure))
}

fn json_value<'a>(item: &'a Bound<'_, PyAny>) -> PyResult<Option<JsonValue<'a>>> {
    if item.is_none() {
        return Ok(Some(JsonValue::Missing));
    }
    if let Ok(b) = item.cast::<PyBool>() {
        return Ok(Some(JsonValue::Bool(b.is_true())));
    }
    if let Ok(n) = item.cast::<PyInt>() {
        return Ok(n.extract::<i64>().ok().map(JsonValue::Int));
    }
    if let Ok(f) = item.cast::<PyFloat>() {
        return Ok(Some(JsonValue::Float(f.value())));
    }
    if let Ok(s) = item.cast::<PyString>() {
        return Ok(Some(JsonValue::Str(s.to_str()?)));
    }
    if let Ok(list) = item.cast::<PyList>() {
        let mut parts = Vec::with_capacity(list.len());
        for part in list.iter() {
            match part.cast::<PyString>() {
                Ok(s) => parts.push(s.to_str()?.to_owned()),
                Err(_) => return Ok(None),
            }
        }
        return Ok(Some(JsonValue::List(parts)));
    }
    Ok(None)
}

/// One JSON object (bytes) per row from `columns` (name → list of values:
/// `None`, bool, int, float, str or a list of str), keys in the given order,
/// `None` values left out; `None` for a row without any value. Returns `None`
/// as a whole when a value is of another kind (a dict, a big integer): the
/// caller then encodes that batch itself.
#[pyfunction]
fn encode_json_objects<'py>(
    py: Python<'py>,
    names: Vec<String>,
    columns: Vec<Bound<'py, PyList>>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    if names.len() != columns.len() {
        return Err(py_err(
            py,
            Kind::InvalidInput,
            "names and columns differ in length".to_string(),
        ));
    }
    let rows = columns.first().map_or(0, |c| c.len());
    let items: Vec<Vec<Bound<'py, PyAny>>> = columns.iter().map(|c| c.iter().collect()).collect();
    let mut cols: Vec<(&str, Vec<JsonValue<'_>>)> = Vec::with_capacity(names.len());
    for (name, col) in names.iter().zip(&items) {
        if col.len() != rows {
            return Err(py_err(
                py,
                Kind::InvalidInput,
                format!("column {name:?} has {} values, expected {rows}", col.len()),
            ));
        }
        let mut values = Vec::with_capacity(rows);
        for item in col {
            match json_value(item)? {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        cols.push((name.as_str(), values));
    }
    let out = PyList::empty(py);
    for row in json_objects(&cols, rows) {
        match row {
            Some(text) => out.append(PyBytes::new(py, text.as_bytes()))?,
            None => out.append(py.None())?,
        }
    }
    Ok(Some(out))
}

/// Epoch seconds for a list of ISO 8601 times (`str | None`), and the
/// indexes of the values not parsed here (other forms, times before 1970,
/// values that are not strings), which are `None` in the list for the caller
/// to parse one by one.
#[pyfunction]
fn parse_epochs<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyList>, Vec<usize>)> {
    map_text(py, values, |_, s| {
        Ok(epoch_seconds(s).map(|t| PyInt::new(py, t).into_any()))
    })
}

/// Register the functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert_column, m)?)?;
    m.add_function(wrap_pyfunction!(encode_json_objects, m)?)?;
    m.add_function(wrap_pyfunction!(parse_epochs, m)?)?;
    Ok(())
}
