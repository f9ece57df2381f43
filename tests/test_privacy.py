"""Erasure on request: everything about a person goes; a keyed hash keeps them gone."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmkit.cli import build_cli
from crmkit.errors import NotFoundError
from crmkit.hookspecs import hookimpl
from crmkit.kernel import Kernel
from crmkit.merge import apply_plan, build_plan
from crmkit.plugins import make_plugin_manager
from crmkit.records import Consent
from crmkit.settings import Settings
from crmkit.store.sqlite import SQLiteStore

ALL_TABLES = (
    "contacts",
    "identities",
    "interactions",
    "consents",
    "suppressions",
    "memberships",
    "merges",
    "deliveries",
    "audit",
    "source_state",
    "segments",
    "segment_runs",
)


class Recorder:
    def __init__(self) -> None:
        self.erased: list[list[int]] = []

    @hookimpl
    def crmkit_contacts_erased(self, kernel: Any, contact_ids: Any) -> None:
        self.erased.append(list(contact_ids))


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def kernel(tmp_path: Path, rec: Recorder) -> Iterator[Kernel]:
    settings = Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True)
    mgr = make_plugin_manager(settings)
    mgr.pm.register(rec, name="recorder")
    k = Kernel(settings, manager=mgr)
    yield k
    k.close()


def _csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Record ID", "Email", "First Name", "Last Name", "Phone", "City", "Plan"])
        w.writerow(
            ["R1", "zelda.quist@example.com", "Zelda", "Quist", "+14155552671", "Oslo", "Pro"]
        )
        w.writerow(["R2", "zq@work.example", "Zelda", "Quist", "+14155552672", "Oslo", ""])
        w.writerow(["R3", "bo@example.com", "Bo", "Berg", "+14155552673", "Rome", "Free"])
    return path


def _seed(k: Kernel, tmp_path: Path) -> tuple[SQLiteStore, dict[str, int]]:
    s = k.store
    assert isinstance(s, SQLiteStore)
    k.import_file(_csv(tmp_path / "c.csv"), key="external_id")
    ids = s.lookup_contacts("external_id", ["R1", "R2", "R3"], source="file:c.csv")
    z1, z2, bo = ids["R1"], ids["R2"], ids["R3"]
    s.add_interactions(
        {
            "contact_id": [z1, z2, bo],
            "kind": ["purchase"] * 3,
            "occurred_at": [1_700_000_000, 1_700_000_100, 1_700_000_200],
            "amount": [10.0, 20.0, 30.0],
            "subject": ["Zelda's order", "Zelda's order", "Bo's order"],
        },
        source="shop",
    )
    s.record_consents(
        [Consent(contact_id=z1, channel="email", purpose="marketing", status="given", source="t")]
    )
    with s.transaction():
        s.conn.executemany(
            "INSERT INTO memberships(segment, contact_id, entered_at) VALUES (?, ?, ?)",
            [("vip", z1, 1), ("vip", bo, 1)],
        )
        s.conn.executemany(
            "INSERT INTO deliveries(key, campaign, step, contact_id, channel, status, payload, "
            "created_at, updated_at) VALUES (?, 'c', 0, ?, 'email', ?, ?, 0, 0)",
            [
                ("k1", z1, "sent", '{"to": "zelda.quist@example.com", "body": "Hi Zelda"}'),
                ("k2", z1, "queued", '{"to": "zelda.quist@example.com", "body": "Hi Zelda"}'),
                ("k3", bo, "queued", '{"to": "bo@example.com", "body": "Hi Bo"}'),
            ],
        )
    apply_plan(k, build_plan(s, {z1: [z1, z2]}))  # the two Zelda records become one
    return s, {"z1": z1, "z2": z2, "bo": bo}


def _text_of_store(s: SQLiteStore) -> str:
    return "\n".join(repr(row) for t in ALL_TABLES for row in s.iter_table(t))


def test_erasure_removes_every_trace_and_keeps_others(
    kernel: Kernel, tmp_path: Path, rec: Recorder
) -> None:
    s, ids = _seed(kernel, tmp_path)
    before_bo = kernel.timeline(ids["bo"])
    # Erasing the merged-away id erases the person: the survivor and both records.
    res = kernel.erase_contacts([ids["z2"]])
    assert res.contacts == 2 and res.interactions == 2 and res.consents == 1
    assert res.memberships == 1 and res.merges == 1 and res.deliveries_scrubbed == 2
    text = _text_of_store(s)
    for secret in (
        "zelda",
        "Zelda",
        "Quist",
        "+14155552671",
        "+14155552672",
        "zq@work",
        "R1'",
        "R2'",
    ):
        assert secret not in text, secret
    assert rec.erased == [sorted([ids["z1"], ids["z2"]])]
    with pytest.raises(NotFoundError):
        kernel.contact(ids["z1"])
    # Everyone else is untouched; the queued message to Zelda can never go out.
    assert kernel.timeline(ids["bo"]) == before_bo
    status = {r[1]: r[6] for r in s.iter_table("deliveries")}
    assert status == {"k1": "sent", "k2": "failed", "k3": "queued"}
    audit = [a for a in s.audit_log() if a.action == "erase"]
    assert len(audit) == 1 and audit[0].details == {"contacts": 2, "interactions": 2}


def test_an_erased_person_is_not_brought_back_by_an_import(kernel: Kernel, tmp_path: Path) -> None:
    s, ids = _seed(kernel, tmp_path)
    kernel.erase_contacts([ids["z1"]])
    rep = kernel.import_file(tmp_path / "c.csv", key="external_id", full=True, name="again")
    assert rep.created == 0 and rep.rejected_rows == 2
    text = Path(rep.rejects_path or "").read_text()
    rejects = list(csv.DictReader(text.splitlines()))
    assert [r["reason"] for r in rejects] == ["erased on request"] * 2
    assert "zelda" not in text.lower()
    assert s.count_contacts() == 1
    # Only the phone is enough to recognise the person.
    other = tmp_path / "o.csv"
    other.write_text("Email,Phone\nnew@example.com,+14155552672\nfresh@example.com,\n")
    rep2 = kernel.import_file(other)
    assert rep2.created == 1 and rep2.rejected_rows == 1


def test_unknown_ids_change_nothing(kernel: Kernel, tmp_path: Path) -> None:
    s, ids = _seed(kernel, tmp_path)
    before = _text_of_store(s)
    with pytest.raises(NotFoundError, match="999"):
        kernel.erase_contacts([ids["bo"], 999])
    assert _text_of_store(s) == before


def test_cli_erase_asks_first(kernel: Kernel, tmp_path: Path) -> None:
    _, ids = _seed(kernel, tmp_path)
    cli = build_cli(make_plugin_manager(Settings(disable_plugin_autoload=True)))
    db = ["--db", str(tmp_path / "crm.db")]
    no = CliRunner().invoke(cli, [*db, "contacts", "erase", str(ids["bo"])], input="n\n")
    assert no.exit_code == 1 and kernel.store.count_contacts() == 2
    yes = CliRunner().invoke(cli, [*db, "contacts", "erase", str(ids["bo"]), "--yes", "--json"])
    assert yes.exit_code == 0, yes.output
    assert '"contacts": 1' in yes.output and kernel.store.count_contacts() == 1
