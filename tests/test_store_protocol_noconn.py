"""Every service runs over a store that offers the Store protocol and nothing else.

The kernel here holds a proxy that forwards the protocol's methods to a
SQLite store but is not a :class:`SQLiteStore` and has no ``conn``: a caller
that reaches for SQL or checks the store's class fails these tests.
"""

from __future__ import annotations

import csv
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmkit import consent
from crmkit.builtin.channels import read_outbox
from crmkit.ingest import ConsentColumn
from crmkit.kernel import Kernel
from crmkit.merge import build_plan
from crmkit.outreach import apply_callback, process_outbox, resolve_unknown, run_campaign
from crmkit.reports import ALL
from crmkit.settings import Settings
from crmkit.store.base import Store
from crmkit.store.sqlite import SQLiteStore

PROTOCOL = frozenset(
    name
    for cls in Store.__mro__
    if cls.__module__ == "crmkit.store.base"
    for name, _ in inspect.getmembers(cls)
    if not name.startswith("_")
) | {"url"}


class ProtocolOnly:
    """Forwards the Store protocol's members to ``inner``; anything else is an error."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name not in PROTOCOL:
            raise AttributeError(f"{name!r} is not part of the Store protocol")
        self.used.add(name)
        return getattr(self._inner, name)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    inner = SQLiteStore(tmp_path / "crm.db")
    proxy = ProtocolOnly(inner)
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True), store=proxy)  # type: ignore[arg-type]
    yield k
    k.close()


def _csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Email", "First Name", "Last Name", "Phone", "Newsletter"])
        w.writerow(["ann@example.com", "Ann", "Lee", "+14155550001", "yes"])
        w.writerow(["ann.lee@example.com", "Ann", "Lee", "+14155550001", "yes"])
        w.writerow(["bo@example.com", "Bo", "Berg", "+14155550003", "no"])
        w.writerow(["cy@example.com", "Cy", "Fox", "+14155550004", "yes"])
    return path


def _camp(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return {
        "name": "hello",
        "channel": "file",
        "channel_config": {"path": str(tmp_path / "out.jsonl"), "fsync": False},
        "template": "Hi {{ contact.first_name }}",
        "require_consent": True,
        **kw,
    }


def test_the_proxy_is_not_sqlite(kernel: Kernel) -> None:
    assert not isinstance(kernel.store, SQLiteStore)
    assert isinstance(kernel.store, Store)
    with pytest.raises(AttributeError):
        kernel.store.conn  # type: ignore[attr-defined]  # noqa: B018


def test_import_campaign_callbacks_and_unknowns(kernel: Kernel, tmp_path: Path) -> None:
    rep = kernel.import_file(
        _csv(tmp_path / "c.csv"), consent=[ConsentColumn(column="newsletter", channel="file")]
    )
    assert (rep.consents_given, rep.consents_withdrawn) == (3, 1)
    r = run_campaign(kernel, _camp(tmp_path))
    assert (r.audience, r.queued, r.sent) == (4, 3, 3)
    assert r.excluded == {"consent withdrawn": 1}
    sent = read_outbox(tmp_path / "out.jsonl")
    assert len(sent) == 3
    assert kernel.store.delivery_counts(campaign="hello") == {"sent": 3}
    # A bounce suppresses the address; the next campaign skips it.
    bounced = sent[0]["key"]
    cb = apply_callback(kernel, "file", f'{{"key": "{bounced}", "status": "bounced"}}'.encode())
    assert (cb.updated, cb.suppressed) == (1, 1)
    again = run_campaign(kernel, _camp(tmp_path, name="again"), dry_run=True)
    assert again.excluded.get("suppressed") == 1
    # Claims of a dead process on another host become unknown, then are settled by hand.
    kernel.store.set_delivery_status([sent[1]["key"]], "unknown")
    assert resolve_unknown(kernel, campaign="hello", outcome="failed") == 1
    assert process_outbox(kernel).sent == 0
    assert consent.history(kernel.store, sent[0]["contact_id"])


def test_follow_ups_and_triggers(kernel: Kernel, tmp_path: Path) -> None:
    kernel.import_file(
        _csv(tmp_path / "c.csv"), consent=[ConsentColumn(column="newsletter", channel="file")]
    )
    ids = [c.id for c in kernel.find_contacts(limit=10)]
    camp = _camp(tmp_path, follow_ups=[{"after": "1s", "template": "Again {{ contact.id }}"}])
    now = 2_000_000_000
    run_campaign(kernel, camp, now=now)
    s = process_outbox(kernel, now=now + 10)
    assert s.enqueued >= 1
    kernel.store.record_segment_run(now, {"vip": (ids[:2], [])})
    trig = _camp(tmp_path, name="trig", trigger={"segment": "vip", "include_existing": True})
    run_campaign(kernel, trig, now=now)
    assert kernel.store.has_deliveries(campaign="trig", step=0)


def test_merge_undo_reports_and_erase(kernel: Kernel, tmp_path: Path) -> None:
    kernel.import_file(
        _csv(tmp_path / "c.csv"), consent=[ConsentColumn(column="newsletter", channel="file")]
    )
    a = kernel.find_contacts(email="ann@example.com")[0].id
    b = kernel.find_contacts(email="ann.lee@example.com")[0].id
    events = kernel.merge(build_plan(kernel.store, {a: [a, b]}))
    assert kernel.store.count_contacts() == 3
    undone = kernel.undo_merge(events[0].id)
    assert undone.undone_at is not None and kernel.store.count_contacts() == 4
    kernel.merge(build_plan(kernel.store, {a: [a, b]}))
    report = kernel.report(ALL)
    assert {t.section for t in report.tables} >= {"crmkit summary", "Data quality"}
    res = kernel.erase_contacts([b])
    assert res.contacts == 2 and res.suppressed >= 2
    rep = kernel.import_file(_csv(tmp_path / "c.csv"), name="again", full=True)
    assert rep.created == 0, "an erased person is not brought back"
    assert kernel.store.count_contacts() == 2
