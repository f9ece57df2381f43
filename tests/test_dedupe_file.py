"""The Rust file path of ``dedupe_file``: match keys and output against plain-Python oracles.

``dedupe_file`` reads a CSV file, normalizes and keys its cells, matches and
writes the file back without per-row Python. These tests hold it to what the
Python pipeline does with the same cells: ``normalize_contact_columns`` then
``match_keys`` then the matcher, and ``csv.writer`` for the output.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import _core
from crmkit.dedupe import MATCH_FIELDS, DedupeConfig, dedupe_file, match_keys, run_matcher
from crmkit.errors import SourceError
from crmkit.mapping import map_headers
from crmkit.sample import generate

# Unicode White_Space: what the CSV reader trims from every cell (Rust's
# ``str::trim``), which is not quite Python's ``str.strip()``.
_RUST_WS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def _cell(v: str | None) -> str | None:
    """A cell as the CSV reader gives it: trimmed, blank as None."""
    if v is None:
        return None
    s = v.strip(_RUST_WS)
    return s or None


def _normalize(cols: dict[str, list[str | None]]) -> None:
    """Normalize ``cols`` in place as an import does."""
    norm_in: dict[str, list[str | None]] = {
        f: cols[f]
        for f in ("email", "phone", "first_name", "last_name", "country", "postcode")
        if f in cols
    }
    normalized, _ = _core.normalize_contact_columns(norm_in, default_region="US")
    if "phone" in cols:
        # A phone the normalizer rejects is matched by its digits as written.
        raw = cols["phone"]
        normalized["phone"] = [
            n if n is not None else p for n, p in zip(normalized["phone"], raw, strict=True)
        ]
    cols.update(normalized)


def _oracle_keys(raw: dict[str, list[str | None]]) -> dict[str, list[str | None]]:
    cols = {f: [_cell(v) for v in vs] for f, vs in raw.items()}
    _normalize(cols)
    return match_keys(cols)


_ODD = ["é", "Ü", "ß", "ø", "İ", "Σ", "李", "\xa0", "\t", "\x1c", "٣", "²", "\u2003"]
_chars = st.sampled_from([*"abcxyzAEZ019 .-+@'_/,", *_ODD])
_text = st.text(_chars, max_size=14)
_samples = {
    "first_name": st.sampled_from(["Ann", "BILL", "dorothy ann smith", "Mr. José", "o'neil"]),
    "last_name": st.sampled_from(["Lee", "SMITH", "van der Berg", "Müller-Lüdenscheid"]),
    "email": st.sampled_from(
        [
            "Ann.Lee+news@GoogleMail.com",
            " <mailto:ann@x.org> ",
            "a@b.c>.",
            "bob@@x.org",
            "ÅSA@x.se",
            "x@y",
        ]
    ),
    "phone": st.sampled_from(
        [
            "(202) 555-0143",
            "+44 20 7946 0958",
            "020 7946 0958",
            "0668098442",
            "12",
            "+1 800 FLOWERS",
        ]
    ),
    "postcode": st.sampled_from(["sw1a1aa", "75003", " 2134 ", "M2R 2S7", "x#"]),
    "country": st.sampled_from(["UK", "France", "United States", "Canada", "Atlantis", "de"]),
    "birth_date": st.sampled_from(
        ["1980-02-03", " 1980-02-03T10:00", "1980/02/03", "1980-0٣-03", "80-2-3"]
    ),
    "city": st.sampled_from(["New  York", "LONDON", "São Paulo", "İstanbul"]),
}


def _column(field: str, n: int) -> st.SearchStrategy[list[str | None]]:
    value = st.one_of(st.none(), _text, _samples.get(field, _text))
    return st.lists(value, min_size=n, max_size=n)


@st.composite
def _raw_columns(draw: st.DrawFn) -> dict[str, list[str | None]]:
    n = draw(st.integers(min_value=1, max_value=12))
    fields = draw(st.sets(st.sampled_from([*MATCH_FIELDS, "country"]), min_size=1))
    return {f: draw(_column(f, n)) for f in sorted(fields)}


@settings(max_examples=300, deadline=None)
@given(_raw_columns())
def test_rust_match_keys_equal_the_python_pipeline(raw: dict[str, list[str | None]]) -> None:
    got = _core.match_keys_of_cells(raw)
    want = _oracle_keys(raw)
    assert got == want


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _rows(path: Path, *, no_rejects: bool = False) -> list[list[object]]:
    """Every accepted row of a CSV file as the reader gives it."""
    out: list[list[object]] = []
    for chunk, _lines, _ends, rejects in _core.CsvReader(path):
        assert not (no_rejects and rejects)
        if chunk:
            out.extend([list(r) for r in zip(*chunk, strict=True)])
    return out


def _python_dedupe(path: Path, config: DedupeConfig | None = None) -> list[int]:
    """The cluster ids the Python pipeline gives the rows of a CSV file."""
    reader = _core.CsvReader(path)
    headers = list(reader.headers)
    fields = map_headers(headers, "contacts")
    where: dict[str, int] = {}
    for j, f in enumerate(fields):
        if f is not None and f not in where:
            where[f] = j
    cols: dict[str, list[str | None]] = {f: [] for f in where}
    for chunk, _lines, _ends, _rejects in reader:
        for f, j in where.items():
            cols[f].extend(chunk[j] if chunk else [])
    _normalize(cols)
    keys = {f: v for f, v in cols.items() if f in MATCH_FIELDS}
    n = len(next(iter(keys.values())))
    res = run_matcher(keys, list(range(n)), config)
    return [c + 1 for c in res.assignment]


def test_file_clusters_equal_the_python_pipeline(tmp_path: Path) -> None:
    info = generate(tmp_path / "data", contacts=3000, seed=11, with_companies=False)
    out = tmp_path / "out.csv"
    rep = dedupe_file(info.contacts_path, out)
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    got = [int(r[-1]) for r in rows[1:]]
    want = _python_dedupe(info.contacts_path)
    assert got == want
    assert rep.rows == len(got)
    assert rep.duplicates == len(got) - len(set(got)) > 0
    assert rep.clusters == sum(1 for c in set(got) if got.count(c) > 1)
    assert rep.stats["candidate_pairs"] > 0
    # Other settings take the same road.
    cfg = DedupeConfig(threshold=0.9, fields=["first_name", "last_name", "email"])
    dedupe_file(info.contacts_path, out, cfg)
    with out.open(newline="", encoding="utf-8") as f:
        got = [int(r[-1]) for r in list(csv.reader(f))[1:]]
    assert got == _python_dedupe(info.contacts_path, cfg)


def test_files_of_several_chunks_are_written_like_small_ones(tmp_path: Path) -> None:
    # Over 50,000 rows: the output is written by two writers, each from its
    # half of the file (split where the reading found a record boundary).
    info = generate(tmp_path / "data", contacts=2000, seed=5, with_companies=False)
    with info.contacts_path.open(newline="", encoding="utf-8") as f:
        header, *body = list(csv.reader(f))
    rows: list[list[str]] = []
    for k in range(28):
        for i, r in enumerate(body):
            r = list(r)
            if i % 389 == 7:
                r[1] = f'line one\nline "two" {k}'
            rows.append(r)
            if i % 997 == 3:
                rows.append(["a row", "too short"])
    src, out = tmp_path / "big.csv", tmp_path / "out.csv"
    _write_csv(src, [header, *rows])
    rep = dedupe_file(src, out)
    want_rows = _rows(src)
    assert len(want_rows) > 55_000 and rep.rows == len(want_rows)
    got = _rows(out, no_rejects=True)
    assert [r[:-1] for r in got] == want_rows
    assert [int(str(r[-1])) for r in got] == _python_dedupe(src)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


_cells = st.text(
    st.sampled_from([*'ab ,"\n\r;é\u00a0\t', "李", "x"]),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_cells, min_size=3, max_size=3), min_size=1, max_size=8))
def test_written_rows_equal_what_csv_writer_writes(tmp_path_factory, rows: list[list[str]]) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("w")
    src, dst = d / "in.csv", d / "out.csv"
    _write_csv(src, [["First Name", "Email", "Notes, more"], ["Ann", "a@x.org", ""], *rows])
    dedupe_file(src, dst)
    # What the old path wrote: the reader's cells (trimmed, blank as None)
    # through csv.writer, and the cluster ids.
    want_rows = _rows(src)
    got = _rows(dst, no_rejects=True)
    headers = list(_core.CsvReader(src).headers)
    assert _core.CsvReader(dst).headers == [*headers, "cluster_id"]
    assert [r[:-1] for r in got] == want_rows
    got_text = dst.read_text(encoding="utf-8")
    if not any("\r" in str(c) for r in want_rows for c in r if c):
        # Byte for byte what csv.writer writes (it leaves a bare CR unquoted,
        # which the Rust writer quotes so the file reads back the same).
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*headers, "cluster_id"])
        w.writerows([[*r, got_r[-1]] for r, got_r in zip(want_rows, got, strict=True)])
        assert got_text == buf.getvalue()


def test_write_errors_are_clear_and_leave_no_file(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    _write_csv(src, [["Email"], ["a@x.org"], ["a@x.org"], ["b@x.org"]])
    m = _core.Matcher()
    m.fit_input(_core.read_match_csv(src, [("email", 0)]))
    res = m.predict()
    assert res.duplicates == 1
    bigger = tmp_path / "bigger.csv"
    _write_csv(bigger, [["Email"], ["a@x.org"], ["a@x.org"], ["b@x.org"], ["c@x.org"]])
    out = tmp_path / "out.csv"
    with pytest.raises(_core.InvalidInputError, match="did it change") as err:
        _core.write_clusters_csv(bigger, out, res)
    assert "@" not in str(err.value)
    assert _core.write_clusters_csv(src, out, res) == 3
    assert out.read_text(encoding="utf-8").splitlines()[1:] == [
        "a@x.org,1",
        "a@x.org,1",
        "b@x.org,3",
    ]
    # The rows kept from the read are written only while the file is as it
    # was: changed in place, it is read again (and found to have changed).
    _write_csv(src, [["Email"], ["a@x.org"], ["a@x.org"], ["b@x.org"], ["d@x.org"]])
    with pytest.raises(_core.InvalidInputError, match="did it change"):
        _core.write_clusters_csv(src, out, res)
    with pytest.raises(SourceError, match="cannot write"):
        dedupe_file(src, tmp_path / "missing" / "out.csv")
    assert not list((tmp_path).glob("**/*.tmp"))
    # An input fits once.
    rows = _core.read_match_csv(src, [("email", 0)])
    _core.Matcher().fit_input(rows)
    with pytest.raises(_core.InvalidInputError, match="already fitted"):
        _core.Matcher().fit_input(rows)


# -- JSON Lines -----------------------------------------------------------------


def _as_jsonl(src: Path, dst: Path) -> None:
    """``src`` CSV rows as JSON objects keyed by header, one per line."""
    import json

    with src.open(newline="", encoding="utf-8") as f, dst.open("w", encoding="utf-8") as g:
        for row in csv.DictReader(f):
            g.write(json.dumps(row, ensure_ascii=False) + "\n")


def test_jsonl_clusters_equal_the_csv_path(tmp_path: Path) -> None:
    info = generate(tmp_path / "data", contacts=3000, seed=11, with_companies=False)
    src = tmp_path / "contacts.jsonl"
    _as_jsonl(info.contacts_path, src)
    rep = dedupe_file(src, tmp_path / "out.jsonl")
    dedupe_file(info.contacts_path, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as f:
        want = [int(r[-1]) for r in list(csv.reader(f))[1:]]
    import json

    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    got = [json.loads(x)["cluster_id"] for x in lines]
    assert got == want == _python_dedupe(info.contacts_path)
    assert rep.rows == len(got) and rep.duplicates > 0 and rep.rejected == 0
    # Each line is the input line with the member added at the end.
    originals = src.read_text(encoding="utf-8").splitlines()
    assert [x.rsplit(',"cluster_id":', 1)[0] + "}" for x in lines] == originals


def _json_text(v: object) -> str | None:
    """A JSON value as ``dedupe_file`` reads it (see its docstring)."""
    if v is None or isinstance(v, dict | list):
        return None
    if isinstance(v, bool):
        return str(v)
    return str(v)


_json_value = st.one_of(
    st.none(),
    _text,
    st.integers(-(10**12), 10**12),
    st.booleans(),
    st.just({"k": 1}),
    st.just([1, "a"]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["Email", "First Name", "last_name", "Phone", "Country", "City"]),
            st.one_of(_json_value, _samples["email"], _samples["phone"]),
            max_size=6,
        ),
        min_size=1,
        max_size=10,
    )
)
def test_jsonl_keys_equal_the_python_pipeline(
    tmp_path_factory: pytest.TempPathFactory, objs: list[dict[str, object]]
) -> None:
    import json

    d = tmp_path_factory.mktemp("j")
    src = d / "in.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    names, rows, rejected = _core.jsonl_keys(src)
    assert (rows, rejected) == (len(objs), 0)
    assert names == list(dict.fromkeys(k for o in objs for k in o))
    fields = map_headers(names, "contacts")
    where = {f: j for j, f in enumerate(fields) if f is not None}
    keep = [(f, j) for f, j in where.items() if f in MATCH_FIELDS]
    if not keep:
        return
    got = _core.read_match_jsonl(src, names, keep, country=where.get("country"))
    assert len(got) == len(objs)
    raw = {f: [_json_text(o.get(names[j])) for o in objs] for f, j in where.items()}
    want = _oracle_keys(raw)
    # Same keys, same comparisons: every pair's levels agree with a matcher
    # fitted on the oracle's keys.
    from_file, from_keys = _core.Matcher(), _core.Matcher()
    from_file.fit_input(got)
    from_keys.fit(want)

    def levels(m: _core.Matcher, a: int, b: int) -> list[tuple[str, str]]:
        return [(f["field"], f["level"]) for f in m.explain(a, b)["fields"]]

    for a in range(len(objs)):
        for b in range(a + 1, len(objs)):
            assert levels(from_file, a, b) == levels(from_keys, a, b)


def test_jsonl_lines_are_kept_rejects_left_out(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'\xef\xbb\xbf{"Email": "ann@x.org", "nested": {"cluster_id": 0}}\n'
        b"\n"
        b"[1, 2]\n"
        b'{"Email": "ANN@x.org ",  "cluster_id": "old"}   \r\n'
        b"\xff\xfe not utf-8\n"
        b'{"Email": "bo@y.org"}'
    )
    rep = dedupe_file(src, tmp_path / "out.jsonl")
    assert (rep.rows, rep.rejected, rep.clusters) == (3, 2, 1)
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"Email": "ann@x.org", "nested": {"cluster_id": 0},"cluster_id":1}',
        '{"Email": "ANN@x.org ",  "cluster_id": 1}',
        '{"Email": "bo@y.org","cluster_id":3}',
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[]\nnull\n")
    with pytest.raises(SourceError, match="no rows"):
        dedupe_file(bad, tmp_path / "o.jsonl")


def test_a_phone_the_normalizer_rejects_is_matched_by_its_digits() -> None:
    # A national number on a row with no country (read as the default
    # region's) and the same number written internationally.
    keys = _core.match_keys_of_cells({"phone": ["0113 636 7590", "+44 113 636 7590", "12"]})
    assert keys["phone"] == ["136367590", "136367590", None]


# Measured on the generated sample (5,000 rows, default seed, default
# settings), file to file: pairwise precision 0.999, recall 0.961, F1 0.980
# (pairs implied by the cluster ids).
FILE_PRECISION_FLOOR = 0.997
FILE_F1_FLOOR = 0.978


def test_file_accuracy_against_the_sample_truth(tmp_path: Path) -> None:
    import itertools
    from collections import defaultdict

    info = generate(tmp_path, contacts=5000, with_interactions=False, with_companies=False)
    out = tmp_path / "out.csv"
    dedupe_file(info.contacts_path, out)

    def column(path: Path, k: int) -> list[str]:
        with path.open(newline="", encoding="utf-8") as f:
            return [r[k] for r in list(csv.reader(f))[1:]]

    def pairs(labels: list[str]) -> set[tuple[int, int]]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            groups[label].append(i)
        return {p for rows in groups.values() for p in itertools.combinations(rows, 2)}

    pred, true = pairs(column(out, -1)), pairs(column(info.truth_path, 1))
    tp = len(pred & true)
    precision, recall = tp / len(pred), tp / len(true)
    f1 = 2 * precision * recall / (precision + recall)
    assert precision >= FILE_PRECISION_FLOOR, precision
    assert f1 >= FILE_F1_FLOOR, f1
