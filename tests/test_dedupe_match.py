"""Matching new records against the store's contacts: API, files and CLI."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.cli import build_cli
from crmkit.dedupe import Match, build_index, match_file
from crmkit.errors import ConfigError
from crmkit.kernel import Kernel
from crmkit.plugins import make_plugin_manager
from crmkit.sample import generate
from crmkit.settings import Settings


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


class Split:
    """A generated base cut in two: the first half imported, the second new."""

    def __init__(self, root: Path, contacts: int = 3000) -> None:
        info = generate(root, contacts=contacts, with_interactions=False, with_companies=False)
        header, rows = _rows(info.contacts_path)
        half = len(rows) // 2
        self.old = _write(root / "old.csv", header, rows[:half])
        self.new = _write(root / "new.csv", header, rows[half:])
        self.header, self.new_rows = header, rows[half:]
        with info.truth_path.open(newline="", encoding="utf-8") as f:
            self.entity = dict(list(csv.reader(f))[1:])


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return Split(tmp_path_factory.mktemp("split"))


@pytest.fixture
def kernel(tmp_path: Path, split: Split) -> Iterator[Kernel]:
    k = Kernel.open(tmp_path / "crm.db", disable_plugin_autoload=True)
    k.import_file(split.old, key="external_id")
    yield k
    k.close()


def _record(header: list[str], row: list[str]) -> dict[str, str]:
    names = {
        "First Name": "first_name",
        "Last Name": "last_name",
        "Email": "email",
        "Phone": "phone",
        "Company": "company",
        "Street": "street",
        "City": "city",
        "State": "region",
        "Postcode": "postcode",
        "Country": "country",
        "Birth Date": "birth_date",
    }
    return {names[h]: v for h, v in zip(header, row, strict=True) if h in names and v}


# Measured at 3,000 generated contacts (seed 42), the first half imported and
# the second matched (288 of its rows are people already in the store): the
# best match is right with precision 0.993 and recall 0.955.
PRECISION_FLOOR = 0.97
RECALL_FLOOR = 0.92


def test_new_rows_find_the_people_already_in_the_store(kernel: Kernel, split: Split) -> None:
    index = kernel.match_index()
    assert len(index) == kernel.store.count_contacts()
    contact_entity = {
        cid: split.entity[ext] for _src, ext, cid in kernel.store.iter_table("identities")
    }
    known = set(contact_entity.values())
    records = [_record(split.header, r) for r in split.new_rows]
    hits = index.match_many(records)
    assert len(hits) == len(records)
    tp = fp = fn = 0
    for row, best in zip(split.new_rows, hits, strict=True):
        entity = split.entity[row[0]]
        if best:
            ok = contact_entity[best[0].contact_id] == entity
            tp += ok
            fp += not ok
            fn += entity in known and not ok
        else:
            fn += entity in known
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= PRECISION_FLOOR, precision
    assert recall >= RECALL_FLOOR, recall


def test_one_record_and_many_agree_and_a_contact_finds_itself(kernel: Kernel) -> None:
    index = build_index(kernel.store)
    people = kernel.store.get_contacts(list(range(1, 40)))
    records = [
        {
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
            "phone": c.phone,
            "country": c.country,
        }
        for c in people
    ]
    many = index.match_many(records, limit=3)
    for c, rec, hits in zip(people, records, many, strict=True):
        assert index.match(rec, limit=3) == hits
        if c.email:  # an exact email and name: the contact itself comes first
            assert hits[0].contact_id == c.id and hits[0].probability > 0.9, c.id
        assert all(a.probability >= b.probability for a, b in itertools.pairwise(hits))
    # Values other than text are read as their text.
    rec = next(r for r in records if r["email"])
    assert index.match({**rec, "postcode": 90210}) == index.match({**rec, "postcode": "90210"})
    assert all(isinstance(m, Match) for m in many[0])
    assert index.match({"email": "nobody-like-this@example.invalid"}) == []
    assert index.match({}) == []
    with pytest.raises(ConfigError, match="between 0 and 1"):
        index.match(records[0], threshold=2)


def test_an_empty_store_has_nothing_to_match_against(tmp_path: Path) -> None:
    with (
        Kernel.open(tmp_path / "empty.db", disable_plugin_autoload=True) as k,
        pytest.raises(ConfigError, match="no live contacts"),
    ):
        k.match_index()


def test_a_file_is_written_back_with_the_best_match_of_each_row(
    kernel: Kernel, split: Split, tmp_path: Path
) -> None:
    index = kernel.match_index()
    out = tmp_path / "matched.csv"
    rep = match_file(index, split.new, out)
    header, rows = _rows(out)
    assert header == [*split.header, "match_id", "match_probability"]
    # Every row, in order, its cells trimmed (as `dedupe FILE --out` writes them).
    assert [r[:-2] for r in rows] == [[c.strip() for c in r] for r in split.new_rows]
    assert rep.rows == len(rows) and rep.rejected == 0
    assert rep.matched == sum(1 for r in rows if r[-2])
    # The same answers as matching the records one by one.
    for row, got in list(zip(split.new_rows, rows, strict=True))[:50]:
        best = index.match(_record(split.header, row), limit=1)
        want = [str(best[0].contact_id), str(round(best[0].probability, 4))] if best else ["", ""]
        assert got[-2:] == want


def test_a_json_lines_file_gets_the_same_matches_as_its_csv(
    kernel: Kernel, split: Split, tmp_path: Path
) -> None:
    index = kernel.match_index()
    want = tmp_path / "want.csv"
    match_file(index, split.new, want)
    _, csv_rows = _rows(want)
    src = tmp_path / "new.jsonl"
    lines = []
    for k, row in enumerate(split.new_rows):
        obj: dict[str, object] = {h: v for h, v in zip(split.header, row, strict=True) if v}
        if k == 0:
            obj["match_id"] = "stale"  # replaced in place
        lines.append(json.dumps(obj, ensure_ascii=k % 2 == 0))
    # A blank line is skipped; a line that is not an object is left out.
    src.write_text("\n".join([lines[0], "", "[1, 2]", *lines[1:]]) + "\n", encoding="utf-8")
    out = tmp_path / "matched.jsonl"
    rep = match_file(index, src, out)
    got = out.read_text(encoding="utf-8").splitlines()
    assert (rep.rows, rep.rejected) == (len(split.new_rows), 1)
    assert len(got) == rep.rows
    objs = [json.loads(line) for line in got]
    for k, (line, before, obj, row) in enumerate(zip(got, lines, objs, csv_rows, strict=True)):
        want_id = int(row[-2]) if row[-2] else None
        assert obj["match_id"] == want_id
        if want_id is None:
            assert obj["match_probability"] is None
        else:
            assert obj["match_probability"] == pytest.approx(float(row[-1]), abs=1e-4)
        # Each line as it was, the members set in place or added at the end.
        assert obj == {
            **json.loads(before),
            "match_id": want_id,
            "match_probability": obj["match_probability"],
        }
        if k > 0:
            assert line.startswith(before[:-1] + ',"match_id":')
    assert rep.matched == sum(1 for o in objs if o["match_id"] is not None) > 0
    assert got[0].startswith('{"Record ID"') and '"match_id": ' in got[0]


def test_cli_match(kernel: Kernel, split: Split, tmp_path: Path) -> None:
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    db = str(kernel.store.path)  # type: ignore[attr-defined]
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(cli, ["--db", db, "match", str(split.new), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["rows"] == len(split.new_rows) and 0 < rep["matched"] < rep["rows"]
    leads = tmp_path / "leads.txt"
    leads.write_text(
        "".join(
            json.dumps(dict(zip(split.header, r, strict=True))) + "\n" for r in split.new_rows[:20]
        ),
        encoding="utf-8",
    )
    jl = CliRunner().invoke(
        cli,
        ["--db", db, "match", str(leads), "--format", "jsonl", "--out", str(out), "--json"],
    )
    assert jl.exit_code == 0, jl.output
    assert json.loads(jl.stdout)["rows"] == 20
    assert all("match_probability" in json.loads(x) for x in out.read_text().splitlines())
    nothing = _write(tmp_path / "n.csv", ["Plan", "Tags"], [["Pro", "vip"]])
    bad = CliRunner().invoke(cli, ["--db", db, "match", str(nothing), "--out", str(out)])
    assert bad.exit_code == 1 and "no column maps to a field" in str(bad.exception)
