"""Contact exports: CSV that reads back with import, JSON Lines, segments, bad input."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmkit import export as export_mod
from crmkit.cli import build_cli
from crmkit.errors import ConfigError, NotFoundError
from crmkit.kernel import Kernel
from crmkit.plugins import make_plugin_manager
from crmkit.records import Segment
from crmkit.sample import generate
from crmkit.settings import Settings


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    info = generate(tmp_path / "data", contacts=400, seed=3, with_interactions=False)
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True))
    k.import_file(info.contacts_path)
    yield k
    k.close()


def _by_email(k: Kernel, fields: list[str]) -> dict[str, tuple[Any, ...]]:
    ids, cols = k.store.contact_columns(["email", *fields])
    return {
        cols["email"][i]: tuple(cols[f][i] for f in fields)
        for i in range(len(ids))
        if cols["email"][i]
    }


def test_csv_export_reads_back_into_an_equal_store(kernel: Kernel, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    n = kernel.export_contacts(out)
    assert n == kernel.store.count_contacts() > 0
    header = next(csv.reader(out.open()))
    assert header[0] == "id" and "email" in header and "plan" in header and "tags" in header

    other = Kernel(Settings(db=tmp_path / "other.db", disable_plugin_autoload=True))
    other.import_file(out, attributes=dict(kernel.store.attribute_types()))
    fields = [f for f in header[1:] if f != "email"]
    assert _by_email(other, fields) == _by_email(kernel, fields)
    other.close()


def test_jsonl_export_of_a_segment_in_chosen_fields(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "EXPORT_CHUNK", 7)  # several chunks
    kernel.segments.add([Segment(name="fr", rule="country = 'FR'")])
    kernel.segments.run()
    members = sorted(kernel.store.segment_members("fr"))
    assert members
    out = tmp_path / "fr.jsonl"
    assert kernel.export_contacts(out, segment="fr", fields=["country", "plan"]) == len(members)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == members
    assert all(r["country"] == "FR" and set(r) <= {"id", "country", "plan"} for r in rows)


def test_bad_requests_are_clear_errors_and_write_nothing(kernel: Kernel, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    with pytest.raises(ConfigError, match="did you mean 'country'"):
        kernel.export_contacts(out, fields=["contry"])
    with pytest.raises(NotFoundError, match="no segment"):
        kernel.export_contacts(out, segment="nope")
    with pytest.raises(ConfigError, match="does not exist"):
        kernel.export_contacts(tmp_path / "missing" / "x.csv")
    assert not out.exists()


def test_an_interrupted_export_leaves_the_previous_file(
    kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "all.csv"
    out.write_text("previous\n")
    monkeypatch.setattr(export_mod, "EXPORT_CHUNK", 50)
    calls = {"n": 0}
    real = kernel.store.contact_columns

    def failing(fields: Any, *, ids: Any = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(fields, ids=ids)

    monkeypatch.setattr(kernel.store, "contact_columns", failing)
    with pytest.raises(KeyboardInterrupt):
        kernel.export_contacts(out)
    assert out.read_text() == "previous\n"
    assert not list(tmp_path.glob("*.part"))


def test_cli_export(kernel: Kernel, tmp_path: Path) -> None:
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    out = tmp_path / "c.csv"
    r = CliRunner().invoke(
        cli,
        [
            "--db",
            str(tmp_path / "crm.db"),
            "contacts",
            "export",
            str(out),
            "--fields",
            "email,city",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["exported"] == kernel.store.count_contacts()
    assert next(csv.reader(out.open())) == ["id", "email", "city"]
