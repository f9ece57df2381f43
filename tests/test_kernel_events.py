"""The kernel fires event hooks with whole batches, and survives plugins that raise."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from crmkit import hookimpl
from crmkit.kernel import Kernel
from crmkit.plugins import make_plugin_manager
from crmkit.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def crmkit_contacts_upserted(self, created: list[int], updated: list[int], source: str) -> None:
        self.calls.append(("upserted", (len(created), len(updated), source)))

    @hookimpl
    def crmkit_step_started(self, step: str) -> None:
        self.calls.append(("started", step))

    @hookimpl
    def crmkit_step_finished(self, step: str, summary: dict[str, Any]) -> None:
        self.calls.append(("finished", step))

    @hookimpl
    def crmkit_messages_sent(self, results: list[Any]) -> None:
        self.calls.append(("sent", len(results)))


class Broken:
    @hookimpl
    def crmkit_contacts_upserted(self, created: list[int]) -> None:
        raise RuntimeError("ann@example.com exploded")


def _kernel(tmp_path: Path, *plugins: object) -> Kernel:
    settings = Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True)
    mgr = make_plugin_manager(settings)
    for i, p in enumerate(plugins):
        mgr.pm.register(p, name=f"test-{i}")
    return Kernel(settings, manager=mgr)


def _csv(path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Email", "First Name"])
        w.writerows([[f"u{i}@example.com", f"U{i}"] for i in range(n)])
    return path


def test_import_fires_one_upserted_event_per_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmkit.ingest import Ingester

    rec = Recorder()
    k = _kernel(tmp_path, rec)
    src = k.plugin("source", "csv", {"path": str(_csv(tmp_path / "c.csv", 25)), "batch_rows": 10})
    k.ingest(src, name="c")
    assert [c for c in rec.calls if c[0] == "upserted"] == [("upserted", (25, 0, "c"))]

    rec.calls.clear()
    monkeypatch.setattr(Ingester, "GROUP_ROWS", 10)  # one commit per source batch
    src = k.plugin("source", "csv", {"path": str(_csv(tmp_path / "d.csv", 25)), "batch_rows": 10})
    k.ingest(src, name="d", full=True)
    assert [c for c in rec.calls if c[0] == "upserted"] == [
        ("upserted", (0, 10, "d")),
        ("upserted", (0, 10, "d")),
        ("upserted", (0, 5, "d")),
    ]


def test_a_raising_event_hook_is_named_and_the_run_goes_on(tmp_path: Path, caplog: Any) -> None:
    rec = Recorder()
    k = _kernel(tmp_path, Broken(), rec)
    rep = k.import_file(_csv(tmp_path / "c.csv", 3))
    assert rep.created == 3
    assert any(c[0] == "upserted" for c in rec.calls)
    assert [e.plugin for e in k.hooks.errors] == ["test-0"]
    assert "ann@example.com" not in caplog.text, "logs carry no personal data"


def test_workflow_fires_step_events_and_messages_sent(tmp_path: Path) -> None:
    from crmkit.starter import write_starter

    rec = Recorder()
    k = _kernel(tmp_path, rec)
    write_starter(tmp_path / "demo", contacts=200)
    k.run_workflow(tmp_path / "demo" / "workflow.toml")
    started = [c[1] for c in rec.calls if c[0] == "started"]
    finished = [c[1] for c in rec.calls if c[0] == "finished"]
    assert (
        started == finished and "import contacts" in started and "categorize lifecycle" in started
    )
    assert any(c[0] == "sent" for c in rec.calls)
