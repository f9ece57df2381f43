//! Bindings for `crmkit_core::dedupe`: `Matcher`, `MatchResult`, `MatchIndex`,
//! and the file path (`read_match_csv`, `write_clusters_csv`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crmkit_core::dedupe::block::{unpack, Rule};
use crmkit_core::dedupe::compare::{level_names, n_levels};
use crmkit_core::dedupe::file::{self, FileError, FileSpec};
use crmkit_core::dedupe::jsonl;
use crmkit_core::dedupe::score::{FieldModel, Model};
use crmkit_core::dedupe::{self as core, Config, Dataset, Field, Index};
use crmkit_core::normalize::PhoneRegion;
use crmkit_core::CoreError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList};

use crate::{detach, py_err, Kind};

fn config_err(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py_err(py, Kind::Config, msg.into())
}

fn parse_field(py: Python<'_>, name: &str) -> PyResult<Field> {
    Field::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        config_err(
            py,
            format!("unknown field '{name}'; known fields: {}", known.join(", ")),
        )
    })
}

fn parse_config(py: Python<'_>, d: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut c = Config::default();
    let Some(d) = d else { return Ok(c) };
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        let bad = |e: PyErr| config_err(py, format!("config '{key}': {e}"));
        match key.as_str() {
            "threshold" => c.threshold = v.extract().map_err(bad)?,
            "max_block" => c.max_block = v.extract().map_err(bad)?,
            "window" => c.window = v.extract().map_err(bad)?,
            "max_pairs_per_record" => c.max_pairs_per_record = v.extract().map_err(bad)?,
            "train_pairs" => c.train_pairs = v.extract().map_err(bad)?,
            "random_pairs" => c.random_pairs = v.extract().map_err(bad)?,
            "em_max_iter" => c.em_max_iter = v.extract().map_err(bad)?,
            "em_tol" => c.em_tol = v.extract().map_err(bad)?,
            "guard" => c.guard = v.extract().map_err(bad)?,
            "seed" => c.seed = v.extract().map_err(bad)?,
            "all_pairs_prior" => c.all_pairs_prior = v.extract().map_err(bad)?,
            "fields" => {
                let names: Vec<String> = v.extract().map_err(bad)?;
                c.fields = Some(names.iter().map(|n| parse_field(py, n)).collect::<PyResult<_>>()?);
            }
            "blocking" => {
                let rules: Vec<Vec<String>> = v.extract().map_err(bad)?;
                c.rules = rules
                    .iter()
                    .map(|r| {
                        let parts: Vec<&str> = r.iter().map(String::as_str).collect();
                        Rule::parse(&parts)
                    })
                    .collect::<Result<_, CoreError>>()
                    .map_err(|e| crate::to_py_err(py, e))?;
            }
            _ => {
                return Err(config_err(
                    py,
                    format!(
                        "unknown config key '{key}'; known keys: threshold, blocking, max_block, window, \
                         max_pairs_per_record, train_pairs, random_pairs, em_max_iter, em_tol, guard, seed, fields, all_pairs_prior"
                    ),
                ))
            }
        }
    }
    c.validate().map_err(|e| crate::to_py_err(py, e))?;
    Ok(c)
}

fn model_to_dict<'py>(py: Python<'py>, m: &Model) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("prior", m.prior)?;
    d.set_item("iterations", m.iterations)?;
    let fields = PyDict::new(py);
    for fm in &m.fields {
        let levels = PyDict::new(py);
        for l in 1..n_levels(fm.field) {
            let e = PyDict::new(py);
            e.set_item("m", fm.m[l])?;
            e.set_item("u", fm.u[l])?;
            e.set_item("weight", fm.weight(l as u8))?;
            levels.set_item(level_names(fm.field)[l], e)?;
        }
        fields.set_item(fm.field.name(), levels)?;
    }
    d.set_item("fields", fields)?;
    Ok(d)
}

fn model_from_dict(py: Python<'_>, d: &Bound<'_, PyDict>) -> PyResult<Model> {
    let bad = |m: String| config_err(py, format!("model: {m}"));
    let prior: f64 = d
        .get_item("prior")?
        .ok_or_else(|| bad("missing 'prior'".into()))?
        .extract()?;
    let fields_obj = d
        .get_item("fields")?
        .ok_or_else(|| bad("missing 'fields'".into()))?;
    let fields_d = fields_obj.cast::<PyDict>()?;
    let mut fields = Vec::new();
    for (k, v) in fields_d.iter() {
        let name: String = k.extract()?;
        let field = parse_field(py, &name)?;
        let levels = v.cast::<PyDict>()?;
        let n = n_levels(field);
        let (mut m, mut u) = (vec![0.0; n], vec![0.0; n]);
        for l in 1..n {
            let lname = level_names(field)[l];
            let e = levels
                .get_item(lname)?
                .ok_or_else(|| bad(format!("field '{name}' lacks level '{lname}'")))?;
            let e = e.cast::<PyDict>()?;
            m[l] = e
                .get_item("m")?
                .ok_or_else(|| bad(format!("'{name}.{lname}' lacks m")))?
                .extract()?;
            u[l] = e
                .get_item("u")?
                .ok_or_else(|| bad(format!("'{name}.{lname}' lacks u")))?
                .extract()?;
        }
        fields.push(FieldModel { field, m, u });
    }
    fields.sort_by_key(|f| f.field);
    let model = Model {
        prior,
        fields,
        iterations: 0,
    };
    model.validate().map_err(|e| crate::to_py_err(py, e))?;
    Ok(model)
}

/// Duplicate finder over columns of normalized contact fields.
#[pyclass(module = "crmkit._core")]
pub struct Matcher {
    config: Config,
    loaded: Option<Model>,
    fitted: Option<Arc<core::Matcher>>,
    /// What the writer needs of the file `read_match_csv` read.
    origin: Origin,
}

/// What writing back the CSV file the rows were read from needs: where it
/// can be split between two writers, and its rows as the writer formats
/// them, when the read kept them.
#[derive(Clone, Default)]
struct Origin {
    split: Option<file::Split>,
    formatted: Option<Arc<file::Formatted>>,
}

impl Matcher {
    fn fitted(&self, py: Python<'_>) -> PyResult<Arc<core::Matcher>> {
        self.fitted.clone().ok_or_else(|| {
            py_err(
                py,
                Kind::InvalidInput,
                "the matcher is not fitted: call fit() first".into(),
            )
        })
    }
}

#[pymethods]
impl Matcher {
    #[new]
    #[pyo3(signature = (config = None, model = None))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyDict>>,
        model: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        Ok(Matcher {
            config: parse_config(py, config)?,
            loaded: model.map(|m| model_from_dict(py, m)).transpose()?,
            fitted: None,
            origin: Origin::default(),
        })
    }

    /// Block the rows and train the model by EM (unless one was loaded).
    ///
    /// With `consume`, `columns` is emptied once its values are interned, so
    /// the caller's strings can be freed while blocking and training run.
    #[pyo3(signature = (columns, ids = None, *, labels = None, consume = false))]
    fn fit(
        &mut self,
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        ids: Option<Vec<i64>>,
        labels: Option<Vec<(i64, i64, bool)>>,
        consume: bool,
    ) -> PyResult<()> {
        // The text is borrowed from the Python strings, not copied; they are
        // released below, with the GIL held.
        let mut cols: Vec<(Field, Vec<Option<PyBackedStr>>)> = Vec::new();
        for (k, v) in columns.iter() {
            let name: String = k.extract()?;
            let field = parse_field(py, &name)?;
            cols.push((field, v.extract()?));
        }
        let n = cols.first().map_or(0, |c| c.1.len());
        let ids = ids.unwrap_or_else(|| (0..n as i64).collect());
        let config = self.config.clone();
        let model = self.loaded.clone();
        let labels = labels.unwrap_or_default();
        let borrowed = &cols;
        let (ds, warnings) = detach(py, move || {
            let refs = borrowed
                .iter()
                .map(|(f, col)| (*f, col.iter().map(|v| v.as_deref()).collect()))
                .collect();
            Dataset::from_refs(ids, refs)
        })?;
        drop(cols);
        if consume {
            columns.clear();
        }
        let m = detach(py, move || {
            core::Matcher::fit(config, ds, warnings, model, &labels)
        })?;
        self.fitted = Some(Arc::new(m));
        self.origin = Origin::default();
        Ok(())
    }

    /// Block the rows of `input` (from `read_match_csv`) and train the model
    /// by EM (unless one was loaded). The input's rows are moved into the
    /// matcher: an input fits once.
    #[pyo3(signature = (input, *, labels = None))]
    fn fit_input(
        &mut self,
        py: Python<'_>,
        input: &MatchInput,
        labels: Option<Vec<(i64, i64, bool)>>,
    ) -> PyResult<()> {
        let taken = input.rows.lock().ok().and_then(|mut g| g.take());
        let Some(file::FileRows {
            dataset: ds,
            warnings,
            split,
            formatted,
            ..
        }) = taken
        else {
            return Err(py_err(
                py,
                Kind::InvalidInput,
                "this input was already fitted".into(),
            ));
        };
        let config = self.config.clone();
        let model = self.loaded.clone();
        let labels = labels.unwrap_or_default();
        let m = detach(py, move || {
            core::Matcher::fit(config, ds, warnings, model, &labels)
        })?;
        self.fitted = Some(Arc::new(m));
        self.origin = Origin {
            split,
            formatted: formatted.map(Arc::new),
        };
        Ok(())
    }

    /// Score the candidate pairs and cluster those at or above `threshold`;
    /// no cluster holds both ids of a pair in `apart`.
    #[pyo3(signature = (threshold = None, *, apart = None))]
    fn predict(
        &self,
        py: Python<'_>,
        threshold: Option<f64>,
        apart: Option<Vec<(i64, i64)>>,
    ) -> PyResult<MatchResult> {
        let m = self.fitted(py)?;
        let origin = self.origin.clone();
        let apart = apart.unwrap_or_default();
        let p = detach(py, move || {
            let p = m.predict_apart(threshold, &apart)?;
            let ids = &m.dataset().ids;
            let (left, right, prob) = p
                .pairs
                .iter()
                .map(|&(i, j, q)| (ids[i as usize], ids[j as usize], q))
                .fold((vec![], vec![], vec![]), |mut acc, (a, b, q)| {
                    acc.0.push(a);
                    acc.1.push(b);
                    acc.2.push(q);
                    acc
                });
            let duplicates = p
                .clusters
                .ids
                .iter()
                .zip(ids)
                .filter(|(c, id)| c != id)
                .count();
            Ok(MatchResult {
                duplicates,
                left,
                right,
                probability: prob,
                clusters: p.clusters.ids,
                warnings: p.warnings,
                stats: p.stats,
                origin,
            })
        })?;
        Ok(p)
    }

    /// The candidate pairs that blocking produced, as `(left_ids, right_ids)`.
    fn candidate_pairs(&self, py: Python<'_>) -> PyResult<(Vec<i64>, Vec<i64>)> {
        let m = self.fitted(py)?;
        let ids = &m.dataset().ids;
        Ok(m.candidates()
            .iter()
            .map(|&p| {
                let (i, j) = unpack(p);
                (ids[i as usize], ids[j as usize])
            })
            .unzip())
    }

    /// Each field's level, weight and term-frequency adjustment for a pair of ids.
    fn explain<'py>(&self, py: Python<'py>, left: i64, right: i64) -> PyResult<Bound<'py, PyDict>> {
        let m = self.fitted(py)?;
        let e = m
            .explain(left, right)
            .map_err(|e| crate::to_py_err(py, e))?;
        let d = PyDict::new(py);
        d.set_item("left", left)?;
        d.set_item("right", right)?;
        d.set_item("prior_weight", e.prior_weight)?;
        let fields = PyList::empty(py);
        for f in &e.fields {
            let fd = PyDict::new(py);
            fd.set_item("field", f.field.name())?;
            fd.set_item("level", f.level)?;
            fd.set_item("weight", f.weight)?;
            fd.set_item("tf_adjustment", f.tf_adjustment)?;
            fields.append(fd)?;
        }
        d.set_item("fields", fields)?;
        d.set_item("total_weight", e.total_weight)?;
        d.set_item("probability", e.probability)?;
        d.set_item("names_swapped", e.names_swapped)?;
        d.set_item("candidate", e.candidate)?;
        Ok(d)
    }

    /// The model: prior and m/u/weight per field and level (loadable with `Matcher(model=...)`).
    fn model<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.fitted(py)?;
        model_to_dict(py, m.model())
    }

    /// Build an index of the fitted rows for incremental matching.
    fn index(&self, py: Python<'_>) -> PyResult<MatchIndex> {
        let m = self.fitted(py)?;
        let idx = detach(py, move || Ok(Index::new(&m)))?;
        Ok(MatchIndex {
            inner: Arc::new(idx),
        })
    }
}

/// The output of `Matcher.predict`.
#[pyclass(module = "crmkit._core", frozen)]
pub struct MatchResult {
    duplicates: usize,
    left: Vec<i64>,
    right: Vec<i64>,
    probability: Vec<f64>,
    clusters: Vec<i64>,
    warnings: Vec<String>,
    stats: Vec<(&'static str, f64)>,
    /// What writing back the file the rows came from needs.
    origin: Origin,
}

#[pymethods]
impl MatchResult {
    /// Left ids of the matched pairs (left < right in row order).
    #[getter]
    fn left(&self) -> Vec<i64> {
        self.left.clone()
    }
    /// Right ids of the matched pairs.
    #[getter]
    fn right(&self) -> Vec<i64> {
        self.right.clone()
    }
    /// Match probability of each pair.
    #[getter]
    fn probability(&self) -> Vec<f64> {
        self.probability.clone()
    }
    /// Cluster id per row (the smallest id in the row's cluster), in input order.
    #[getter]
    fn clusters(&self) -> Vec<i64> {
        self.clusters.clone()
    }
    /// Warnings (oversized blocks, skipped rules, dropped fields).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    /// Counts: records, candidate_pairs, blocks_windowed, em_iterations, ...
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.stats {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    /// Rows that are not the first of their cluster (cluster sizes minus one, summed).
    #[getter]
    fn duplicates(&self) -> usize {
        self.duplicates
    }
    fn __len__(&self) -> usize {
        self.left.len()
    }
}

fn file_err(py: Python<'_>, e: FileError) -> PyErr {
    match e {
        FileError::Read(e) => crate::csvread::csv_err(py, e),
        FileError::Write(e) => PyErr::from(e),
        FileError::Core(e) => crate::to_py_err(py, e),
    }
}

/// Contact rows read from a file as match keys, ready for `Matcher.fit_input`.
#[pyclass(module = "crmkit._core", frozen)]
pub struct MatchInput {
    rows: Mutex<Option<file::FileRows>>,
    len: usize,
    rejected: usize,
}

#[pymethods]
impl MatchInput {
    /// Rows read (row ids are `0..len`).
    fn __len__(&self) -> usize {
        self.len
    }
    /// Rows the CSV reader rejected.
    #[getter]
    fn rejected(&self) -> usize {
        self.rejected
    }
}

fn file_spec(
    py: Python<'_>,
    columns: Vec<(String, usize)>,
    country: Option<usize>,
    default_region: &str,
) -> PyResult<FileSpec> {
    PhoneRegion::new(default_region).map_err(|e| crate::to_py_err(py, e))?;
    Ok(FileSpec {
        columns: columns
            .iter()
            .map(|(f, c)| Ok((parse_field(py, f)?, *c)))
            .collect::<PyResult<_>>()?,
        country,
        default_region: default_region.to_string(),
    })
}

/// Run file work with the GIL released; a panic becomes `EnginePanic`
/// (`doing` says what was under way), a file error its Python exception.
fn run_file<T: Send>(
    py: Python<'_>,
    doing: &str,
    work: impl FnOnce() -> Result<T, FileError> + Send,
) -> PyResult<T> {
    py.detach(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)))
        .map_err(|_| {
            py_err(
                py,
                Kind::Panic,
                format!("internal engine error while {doing}"),
            )
        })?
        .map_err(|e| file_err(py, e))
}

fn match_input(got: file::FileRows) -> MatchInput {
    MatchInput {
        len: got.dataset.len(),
        rejected: got.rejected,
        rows: Mutex::new(Some(got)),
    }
}

/// Read a CSV file's contact columns (`(field, column index)` pairs) into
/// match keys, normalizing them as an import does.
#[pyfunction]
#[pyo3(signature = (path, columns, *, country = None, default_region = "US"))]
fn read_match_csv(
    py: Python<'_>,
    path: PathBuf,
    columns: Vec<(String, usize)>,
    country: Option<usize>,
    default_region: &str,
) -> PyResult<MatchInput> {
    let spec = file_spec(py, columns, country, default_region)?;
    let got = run_file(py, "reading", move || file::read_csv(&path, &spec))?;
    Ok(match_input(got))
}

/// Write the rows of CSV file `src` to `dst` with a `column` holding each
/// row's cluster id plus `offset`; returns the rows written.
#[pyfunction]
#[pyo3(signature = (src, dst, result, *, column = "cluster_id", offset = 1))]
fn write_clusters_csv(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    result: &MatchResult,
    column: &str,
    offset: i64,
) -> PyResult<usize> {
    // The rows kept from the read are written as they are, unless `src` is
    // another file, or changed since: it is then read again.
    let Origin { split, formatted } = result.origin.clone();
    write_clusters(
        py,
        move |s, d, name, values| match formatted.filter(|f| f.is_of(s)) {
            Some(f) => file::write_formatted(&f, d, name, values),
            None => file::write_csv_with_column_split(s, d, name, values, split),
        },
        src,
        dst,
        result,
        column,
        offset,
    )
}

/// Write `src` to `dst` with `write`, giving it each row's cluster id plus
/// `offset` under the name `column`.
fn write_clusters(
    py: Python<'_>,
    write: impl FnOnce(&std::path::Path, &std::path::Path, &str, &[i64]) -> Result<usize, FileError>
        + Send,
    src: PathBuf,
    dst: PathBuf,
    result: &MatchResult,
    column: &str,
    offset: i64,
) -> PyResult<usize> {
    let values: Vec<i64> = result.clusters.iter().map(|c| c + offset).collect();
    let column = column.to_string();
    run_file(py, "writing", move || write(&src, &dst, &column, &values))
}

/// The member keys of the objects of a JSON Lines file, in the order they
/// first appear, with the count of object lines and of rejected lines.
#[pyfunction]
fn jsonl_keys(py: Python<'_>, path: PathBuf) -> PyResult<(Vec<String>, usize, usize)> {
    let k = run_file(py, "reading", move || jsonl::keys(&path))?;
    Ok((k.keys, k.rows, k.rejected))
}

/// Read a JSON Lines file's contact members into match keys: `columns` are
/// `(field, index into names)` pairs, `names` the member keys (see
/// `jsonl_keys`), `country` the index of the country's key.
#[pyfunction]
#[pyo3(signature = (path, names, columns, *, country = None, default_region = "US"))]
fn read_match_jsonl(
    py: Python<'_>,
    path: PathBuf,
    names: Vec<String>,
    columns: Vec<(String, usize)>,
    country: Option<usize>,
    default_region: &str,
) -> PyResult<MatchInput> {
    let spec = file_spec(py, columns, country, default_region)?;
    let got = run_file(py, "reading", move || jsonl::read(&path, &names, &spec))?;
    Ok(match_input(got))
}

/// Write the rows of JSON Lines file `src` to `dst` with member `column` set
/// to each row's cluster id plus `offset` (each line otherwise as it was);
/// returns the rows written.
#[pyfunction]
#[pyo3(signature = (src, dst, result, *, column = "cluster_id", offset = 1))]
fn write_clusters_jsonl(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    result: &MatchResult,
    column: &str,
    offset: i64,
) -> PyResult<usize> {
    write_clusters(
        py,
        jsonl::write_with_member,
        src,
        dst,
        result,
        column,
        offset,
    )
}

/// The match keys of phones: the last nine digits of seven or more (see
/// `file::phone_key`).
#[pyfunction]
fn phone_keys(values: Vec<Option<String>>) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| v.as_deref().and_then(file::phone_key))
        .collect()
}

/// The match keys of dates: `YYYY-MM-DD` as written, or read from day, month
/// and year as numbers in the order of the row's country (month first for
/// the US or no country; see `file::numeric_date_key`).
#[pyfunction]
#[pyo3(signature = (values, countries = None))]
fn date_keys(
    values: Vec<Option<String>>,
    countries: Option<Vec<Option<String>>>,
) -> PyResult<Vec<Option<String>>> {
    if countries.as_ref().is_some_and(|c| c.len() != values.len()) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "countries and values differ in length",
        ));
    }
    Ok(values
        .iter()
        .enumerate()
        .map(|(r, v)| {
            let v = v.as_deref()?;
            file::date_key(v).map(str::to_string).or_else(|| {
                let country = countries.as_ref().and_then(|c| c[r].as_deref());
                let us = country.is_none_or(|c| c.eq_ignore_ascii_case("US"));
                file::numeric_date_key(v, us)
            })
        })
        .collect())
}

/// The match keys of free text (cities, streets, companies, postcodes,
/// countries): lowercase with white space collapsed (see `file::lower_key`).
#[pyfunction]
fn lower_keys(values: Vec<Option<String>>) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| v.as_deref().and_then(file::lower_key))
        .collect()
}

/// The match keys of states, provinces or regions (see `file::region_key`).
#[pyfunction]
fn region_keys(values: Vec<Option<String>>) -> Vec<Option<String>> {
    values
        .iter()
        .map(|v| v.as_deref().and_then(file::region_key))
        .collect()
}

/// The match keys `read_match_csv` makes of raw cells (`crmkit.dedupe.match_keys`): `columns`
/// maps field names to cells (`country` also reads phones and postcodes);
/// returns one key column per field.
#[pyfunction]
#[pyo3(signature = (columns, *, default_region = "US"))]
fn match_keys_of_cells(
    py: Python<'_>,
    columns: HashMap<String, Vec<Option<String>>>,
    default_region: &str,
) -> PyResult<HashMap<String, Vec<Option<String>>>> {
    let mut names: Vec<&String> = columns.keys().collect();
    names.sort();
    let spec_cols: Vec<(String, usize)> = names
        .iter()
        .enumerate()
        .map(|(k, n)| ((*n).clone(), k))
        .collect();
    let cols: Vec<&Vec<Option<String>>> = names.iter().map(|n| &columns[*n]).collect();
    // The country column is read for phones and postcodes, and keyed too.
    let country = names.iter().position(|n| *n == "country");
    let rows = cols.first().map_or(0, |c| c.len());
    if cols.iter().any(|c| c.len() != rows) {
        return Err(py_err(
            py,
            Kind::InvalidInput,
            "columns differ in length".into(),
        ));
    }
    let spec = file_spec(py, spec_cols, country, default_region)?;
    let region = PhoneRegion::new(default_region).map_err(|e| crate::to_py_err(py, e))?;
    let cols = &cols;
    let spec = &spec;
    let keys = detach(py, move || {
        let cell = |r: usize, c: usize| {
            cols[c][r]
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let mut regions = HashMap::new();
        let countries = file::countries_of(rows, &cell, spec.country, &mut regions);
        Ok(file::keys_of(
            rows, &cell, spec, &countries, &regions, &region,
        ))
    })?;
    Ok(keys
        .iter()
        .map(|k| {
            let col = (0..k.len()).map(|r| k.get(r).map(str::to_string)).collect();
            (k.field.name().to_string(), col)
        })
        .collect())
}

/// An index of fitted rows: match new records without refitting.
#[pyclass(module = "crmkit._core", frozen)]
pub struct MatchIndex {
    inner: Arc<Index>,
}

#[pymethods]
impl MatchIndex {
    /// `(row id, probability)` of the indexed rows matching `record`, best first.
    #[pyo3(signature = (record, threshold = None))]
    fn match_one(
        &self,
        py: Python<'_>,
        record: &Bound<'_, PyDict>,
        threshold: Option<f64>,
    ) -> PyResult<Vec<(i64, f64)>> {
        let mut rec = Vec::new();
        for (k, v) in record.iter() {
            let name: String = k.extract()?;
            rec.push((parse_field(py, &name)?, v.extract::<Option<String>>()?));
        }
        let rec: Vec<(Field, Option<&str>)> = rec.iter().map(|(f, v)| (*f, v.as_deref())).collect();
        self.inner
            .match_one(&rec, threshold)
            .map_err(|e| crate::to_py_err(py, e))
    }

    /// The `limit` best `(row id, probability)` matches of each record given
    /// as columns of match keys (all of one length), in record order;
    /// matched in parallel without the GIL.
    #[pyo3(signature = (columns, threshold = None, limit = 1))]
    fn match_many(
        &self,
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        threshold: Option<f64>,
        limit: usize,
    ) -> PyResult<Vec<Vec<(i64, f64)>>> {
        let mut cols = Vec::new();
        for (k, v) in columns.iter() {
            let name: String = k.extract()?;
            cols.push((parse_field(py, &name)?, v.extract::<Vec<Option<String>>>()?));
        }
        let inner = self.inner.clone();
        detach(py, move || {
            let view: Vec<(Field, Vec<Option<&str>>)> = cols
                .iter()
                .map(|(f, v)| (*f, v.iter().map(Option::as_deref).collect()))
                .collect();
            inner.match_many(&view, threshold, limit)
        })
    }

    /// Match every object line of JSON Lines file `src` (members `names`,
    /// mapped to fields by `columns` as in `read_match_jsonl`) and write it
    /// to `dst` with `match_id` and `match_probability` set; returns
    /// `(rows, matched, rejected)`.
    #[pyo3(signature = (src, dst, names, columns, *, country = None, default_region = "US", threshold = None))]
    #[allow(clippy::too_many_arguments)]
    fn match_jsonl(
        &self,
        py: Python<'_>,
        src: PathBuf,
        dst: PathBuf,
        names: Vec<String>,
        columns: Vec<(String, usize)>,
        country: Option<usize>,
        default_region: &str,
        threshold: Option<f64>,
    ) -> PyResult<(usize, usize, usize)> {
        let spec = file_spec(py, columns, country, default_region)?;
        let inner = self.inner.clone();
        let got = run_file(py, "matching", move || {
            jsonl::write_matches(&inner, &src, &dst, &names, &spec, threshold)
        })?;
        Ok((got.rows, got.matched, got.rejected))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Matcher>()?;
    m.add_class::<MatchResult>()?;
    m.add_class::<MatchIndex>()?;
    m.add_class::<MatchInput>()?;
    m.add_function(wrap_pyfunction!(read_match_csv, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl_keys, m)?)?;
    m.add_function(wrap_pyfunction!(read_match_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(write_clusters_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(write_clusters_csv, m)?)?;
    m.add_function(wrap_pyfunction!(match_keys_of_cells, m)?)?;
    m.add_function(wrap_pyfunction!(region_keys, m)?)?;
    m.add_function(wrap_pyfunction!(phone_keys, m)?)?;
    m.add_function(wrap_pyfunction!(lower_keys, m)?)?;
    m.add_function(wrap_pyfunction!(date_keys, m)?)?;
    Ok(())
}
