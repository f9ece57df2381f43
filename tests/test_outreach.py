"""The outreach send path over the ``file`` channel and a real SQLite store."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from test_outreach_support import make_kernel, seed

from crmkit import consent
from crmkit.builtin.channels import FileChannel, read_outbox
from crmkit.errors import ChannelError, ConfigError
from crmkit.hookspecs import hookimpl
from crmkit.kernel import Kernel
from crmkit.kinds import Channel, PluginConfig
from crmkit.outreach import (
    TemplateProblem,
    apply_callback,
    load_campaign,
    next_in_window,
    process_outbox,
    resolve_unknown,
    run_campaign,
    unsubscribe,
)
from crmkit.records import Message, SendResult
from crmkit.settings import Settings
from crmkit.store import outbox
from crmkit.store.sqlite import SQLiteStore
from crmkit.testing import build_plugin_manager


def _db(k: Kernel) -> SQLiteStore:
    assert isinstance(k.store, SQLiteStore)
    return k.store


def _camp(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    base = {
        "name": "welcome",
        "channel": "file",
        "channel_config": {"path": str(tmp_path / "out.jsonl"), "fsync": False},
        "template": "Hello {{ contact.first_name }}!",
        "subject": "Hi {{ contact.last_name }}",
    }
    base.update(kw)
    return base


def _sent(tmp_path: Path) -> list[dict[str, Any]]:
    p = tmp_path / "out.jsonl"
    return read_outbox(p) if p.exists() else []


def test_send_renders_records_and_never_sends_twice(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 6)
    r = run_campaign(k, _camp(tmp_path))
    assert (r.audience, r.queued, r.sent) == (6, 6, 6)
    lines = _sent(tmp_path)
    assert sorted(e["body"] for e in lines) == sorted(f"Hello First{i}!" for i in range(6))
    assert {e["key"] for e in lines} == {f"welcome:0:{i}:file" for i in ids}
    assert lines[0]["subject"].startswith("Hi Last")
    again = run_campaign(k, _camp(tmp_path))
    assert (again.queued, again.already, again.sent) == (0, 6, 0)
    process_outbox(k)
    assert len(_sent(tmp_path)) == 6
    tl = k.timeline(ids[0])
    assert [(i.kind, i.channel, i.key) for i in tl] == [
        ("message", "file", f"delivery:welcome:0:{ids[0]}:file")
    ]
    assert outbox.counts(_db(k), campaign="welcome") == {"sent": 6}


def test_outbox_rows_exist_before_the_channel_is_called(tmp_path: Path) -> None:
    seen: list[dict[str, int]] = []
    k = make_kernel(tmp_path)
    seed(k, 3)
    real = FileChannel.send_batch

    def spy(self: FileChannel, messages: Sequence[Message]) -> list[SendResult]:
        seen.append(outbox.counts(_db(k)))
        return real(self, messages)

    FileChannel.send_batch = spy  # type: ignore[method-assign]
    try:
        run_campaign(k, _camp(tmp_path))
    finally:
        FileChannel.send_batch = real  # type: ignore[method-assign]
    assert seen == [{"sending": 3}]


def test_dry_run_lists_every_exclusion_and_writes_nothing(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 6)
    k.store.set_attributes([ids[1]], {"email": [None]})  # no-op: COALESCE keeps the value
    _db(k).conn.execute("UPDATE contacts SET email = NULL WHERE id = ?", (ids[1],))
    consent.record(
        _db(k), [ids[2]], channel="file", purpose="marketing", status="withdrawn", source="t"
    )
    key = consent.load_secret(_db(k))
    consent.suppress(_db(k), key, ["P3@Example.com "], scope="file", reason="bounced")
    r = run_campaign(k, _camp(tmp_path), dry_run=True)
    assert r.dry_run and r.audience == 6 and r.queued == 3
    assert sorted(r.exclusions) == sorted(
        [(ids[1], "no email"), (ids[2], "consent withdrawn"), (ids[3], "suppressed")]
    )
    assert r.excluded == {"no email": 1, "consent withdrawn": 1, "suppressed": 1}
    assert len(r.samples) == 3 and r.samples[0]["body"].startswith("Hello First")
    assert outbox.counts(_db(k)) == {}
    assert not (tmp_path / "out.jsonl").exists()
    # exclusion reasons carry no personal data
    assert all("@" not in why and "First" not in why for _, why in r.exclusions)


def test_require_consent_and_duplicate_address(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    consent.record(_db(k), ids[:2], channel="file", purpose="marketing", status="given", source="t")
    r = run_campaign(k, _camp(tmp_path, require_consent=True), dry_run=True)
    assert sorted(r.exclusions) == [(ids[2], "no consent"), (ids[3], "no consent")]
    _db(k).conn.execute(
        "UPDATE contacts SET merged_into = NULL, email = 'P0@example.com' WHERE id = ?", (ids[1],)
    )
    r = run_campaign(k, _camp(tmp_path), dry_run=True)
    assert (ids[1], "duplicate address") in r.exclusions


def test_withdrawn_consent_stops_a_queued_message(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 3)
    run_campaign(k, _camp(tmp_path), send=False)
    consent.record(
        _db(k), [ids[0]], channel="file", purpose="marketing", status="withdrawn", source="t"
    )
    key = consent.load_secret(_db(k))
    consent.suppress(_db(k), key, ["p1@example.com"], scope="file", reason="complained")
    s = process_outbox(k)
    assert (s.sent, s.skipped) == (1, 2)
    assert [e["contact_id"] for e in _sent(tmp_path)] == [ids[2]]
    rows = {r.contact_id: r for r in outbox.rows(_db(k))}
    assert rows[ids[0]].status == "failed" and "consent" in (rows[ids[0]].error or "")
    assert rows[ids[1]].status == "failed" and "suppressed" in (rows[ids[1]].error or "")


def test_unsubscribe_token_withdraws_at_once_and_outlives_the_contact(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 2)
    c = _camp(tmp_path, unsubscribe_url="https://u.example/{token}",
              template="Hi {{ contact.first_name }}, leave: {{ unsubscribe_url }}")  # fmt: skip
    run_campaign(k, c)
    entry = next(e for e in _sent(tmp_path) if e["contact_id"] == ids[0])
    url = entry["headers"]["List-Unsubscribe"].strip("<>")
    assert entry["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in entry["body"]
    token = url.rsplit("/", 1)[1]
    # No personal data inside: the signed part holds ids and names of things
    # only (the signature after the dot is an HMAC, random-looking text).
    body = token.partition(".")[0]
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert "p0" not in payload and "First0" not in payload and str(ids[0]) in payload
    req = unsubscribe(k, token)
    assert (req.contact_id, req.channel, req.purpose) == (ids[0], "file", "marketing")
    assert k.store.consent_status([ids[0]], channel="file", purpose="marketing") == {
        ids[0]: "withdrawn"
    }
    # the address stays suppressed even if the ledger is gone (contact erased, re-imported)
    _db(k).conn.execute("DELETE FROM consents")
    r = run_campaign(k, _camp(tmp_path, name="second"), dry_run=True)
    assert (ids[0], "suppressed") in r.exclusions
    # a transactional message is not blocked by a marketing unsubscribe
    r = run_campaign(k, _camp(tmp_path, name="receipt", purpose="transactional"), dry_run=True)
    assert r.exclusions == []


def test_tampered_token_is_refused(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    key = consent.load_secret(_db(k))
    tok = consent.make_token(
        key, consent.UnsubscribeRequest(contact_id=5, channel="email", purpose="marketing")
    )
    assert consent.read_token(key, tok).contact_id == 5
    _body, sig = tok.split(".")
    forged = consent.make_token(
        consent.SecretKey(b"another key of 32 bytes........."),
        consent.UnsubscribeRequest(contact_id=6, channel="email", purpose="marketing"),
    )
    with pytest.raises(ConfigError, match="signature"):
        unsubscribe(k, forged.split(".")[0] + "." + sig)
    with pytest.raises(ConfigError):
        unsubscribe(k, "garbage")


def test_secret_from_env_and_key_change_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMKIT_SECRET_KEY", "k" * 32)
    k = make_kernel(tmp_path)
    a = consent.load_secret(_db(k))
    assert a.address_hash("A@b.c ") == a.address_hash("a@b.c")
    assert "a@b.c" not in a.address_hash("a@b.c")
    monkeypatch.setenv("CRMKIT_SECRET_KEY", "z" * 32)
    with pytest.raises(ConfigError, match="not the one"):
        consent.load_secret(_db(k))
    monkeypatch.setenv("CRMKIT_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="16"):
        consent.load_secret(_db(k))


def test_generated_secret_is_stable_per_store(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    h = consent.load_secret(_db(k)).address_hash("x@y.z")
    k.close()
    k2 = make_kernel(tmp_path)
    assert consent.load_secret(_db(k2)).address_hash("x@y.z") == h


@pytest.mark.parametrize(
    "template",
    [
        "{{ contact.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ contact['__class__'] }}",
        "{{ _private }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_templates_reaching_for_internals_are_refused(tmp_path: Path, template: str) -> None:
    k = make_kernel(tmp_path)
    seed(k, 1)
    with pytest.raises(TemplateProblem, match="refused"):
        run_campaign(k, _camp(tmp_path, template=template), dry_run=True)


def test_sandbox_blocks_unsafe_calls_at_render(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 1)
    with pytest.raises(TemplateProblem):
        run_campaign(k, _camp(tmp_path, template="{{ contact.tags.append(1) }}"), dry_run=True)


def test_missing_field_is_an_error_at_preview_naming_campaign_and_variable(
    tmp_path: Path,
) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 3)
    _db(k).conn.execute("UPDATE contacts SET first_name = NULL WHERE id = ?", (ids[1],))
    with pytest.raises(TemplateProblem) as info:
        run_campaign(k, _camp(tmp_path), dry_run=True)
    msg = str(info.value)
    assert "'welcome'" in msg and "'first_name'" in msg and "1 contact" in msg
    assert "First" not in msg and "@" not in msg
    with pytest.raises(TemplateProblem, match="'nickname'"):
        run_campaign(k, _camp(tmp_path, template="{{ contact.nickname }}"), dry_run=True)
    # nothing reached the outbox
    with pytest.raises(TemplateProblem):
        run_campaign(k, _camp(tmp_path))
    assert outbox.counts(_db(k)) == {}
    ok = run_campaign(k, _camp(tmp_path, template="Hi {{ contact.first_name | default('there') }}"))
    assert ok.sent == 3
    assert "Hi there" in {e["body"] for e in _sent(tmp_path)}


def test_html_body_is_autoescaped(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 1)
    _db(k).conn.execute("UPDATE contacts SET first_name = '<b>x</b>' WHERE id = ?", (ids[0],))
    run_campaign(k, _camp(tmp_path, html="<p>Hi {{ contact.first_name }}</p>"))
    e = _sent(tmp_path)[0]
    assert e["html"] == "<p>Hi &lt;b&gt;x&lt;/b&gt;</p>"
    assert e["body"] == "Hello <b>x</b>!"


def test_audience_segment_static_list_and_where(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 6)
    now = int(time.time())
    _db(k).conn.executemany(
        "INSERT INTO memberships(segment, contact_id, entered_at, exited_at) VALUES (?, ?, ?, ?)",
        [("vip", ids[0], now, None), ("vip", ids[2], now, None), ("vip", ids[4], now, now)],
    )
    r = run_campaign(k, _camp(tmp_path, segment="vip"), dry_run=True)
    assert r.audience == 2
    r = run_campaign(k, _camp(tmp_path, contacts=[ids[1], ids[2]]), dry_run=True)
    assert r.audience == 2
    r = run_campaign(k, _camp(tmp_path, where={"country": "FR"}), dry_run=True)
    assert r.audience == 3


class _Flaky(Channel):
    """Test channel: answers from a script per attempt."""

    name = "flaky"
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    max_batch: ClassVar[int] = 50
    script: ClassVar[list[str]] = []
    calls: ClassVar[list[list[str]]] = []

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        _Flaky.calls.append([m.key for m in messages])
        what = _Flaky.script.pop(0) if _Flaky.script else "sent"
        if what == "raise":
            raise ChannelError("provider down")
        if what == "missing":
            return []
        return [
            SendResult(
                key=m.key,
                status=what,  # type: ignore[arg-type]
                error=None if what == "sent" else "busy",
                retry_after=120 if what == "retry" else None,
            )
            for m in messages
        ]


class _FlakyPlugin:
    @hookimpl
    def crmkit_register_channels(self, register: Any) -> None:
        register(_Flaky)


def _flaky_kernel(tmp_path: Path) -> Kernel:
    _Flaky.script = []
    _Flaky.calls = []
    mgr = build_plugin_manager([_FlakyPlugin()])
    return Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True), manager=mgr)


def test_retry_backoff_survives_restart_then_gives_up(tmp_path: Path) -> None:
    k = _flaky_kernel(tmp_path)
    seed(k, 2)
    _Flaky.script = ["retry"]
    t0 = 1_900_000_000
    c = _camp(tmp_path, channel="flaky", channel_config={}, backoff_seconds=60, max_attempts=3)
    r = run_campaign(k, c, now=t0)
    assert (r.sent, r.retrying) == (0, 2)
    rows = outbox.rows(_db(k))
    assert {(x.status, x.attempts, x.next_attempt_at) for x in rows} == {("queued", 1, t0 + 120)}
    k.close()
    k = _flaky_kernel(tmp_path)  # a restart: the schedule is in the store
    assert process_outbox(k, now=t0 + 100).sent == 0 and _Flaky.calls == []
    _Flaky.script = ["raise"]
    s = process_outbox(k, now=t0 + 120)
    assert s.retrying == 2
    assert {(x.attempts, x.next_attempt_at) for x in outbox.rows(_db(k))} == {(2, t0 + 240)}
    _Flaky.script = ["retry"]
    s = process_outbox(k, now=t0 + 240)
    assert s.failed == 2
    assert all("gave up after 3 attempts" in (x.error or "") for x in outbox.rows(_db(k)))


def test_unknown_results_are_not_resent_until_resolved(tmp_path: Path) -> None:
    k = _flaky_kernel(tmp_path)
    seed(k, 3)
    _Flaky.script = ["missing"]
    r = run_campaign(k, _camp(tmp_path, channel="flaky", channel_config={}))
    assert r.unknown == 3
    for _ in range(2):
        process_outbox(k)
    assert len(_Flaky.calls) == 1  # never re-sent blindly
    assert resolve_unknown(k, campaign="welcome", outcome="resend") == 3
    process_outbox(k)
    assert len(_Flaky.calls) == 2
    assert outbox.counts(_db(k)) == {"sent": 3}


def test_stale_claim_of_dead_process_is_reconciled_by_the_file_channel(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    run_campaign(k, _camp(tmp_path), send=False)
    dead = "claim:" + __import__("socket").gethostname() + ":999999:00"
    claimed = outbox.claim(_db(k), owner=dead, limit=4, lease=3600)
    assert len(claimed) == 4
    # the dead sender had written two of them before it was killed
    ch = k.plugin("channel", "file", {"path": str(tmp_path / "out.jsonl"), "fsync": False})
    ch.send_batch([m for m in _msgs(claimed)][:2])
    s = process_outbox(k)
    assert s.recovered == 4 and s.reconciled == 4 and s.sent == 2
    keys = [e["key"] for e in _sent(tmp_path)]
    assert sorted(keys) == sorted(f"welcome:0:{i}:file" for i in ids)
    assert outbox.counts(_db(k)) == {"sent": 4}
    assert k.store.count_interactions() == 4


def _msgs(rows: list[outbox.OutboxRow]) -> list[Message]:
    from crmkit.outreach import _message

    return [_message(r) for r in rows]


def test_live_claim_is_not_stolen(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 2)
    run_campaign(k, _camp(tmp_path), send=False)
    outbox.claim(_db(k), owner=outbox.owner_token(), limit=2, lease=3600)
    s = process_outbox(k)
    assert (s.recovered, s.sent) == (0, 0)
    assert outbox.counts(_db(k)) == {"sending": 2}


def test_two_concurrent_senders_never_send_the_same_row(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 300)
    run_campaign(k, _camp(tmp_path, batch_size=7), send=False)
    k.close()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            kk = make_kernel(tmp_path)
            process_outbox(kk)
            kk.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = [e["key"] for e in _sent(tmp_path)]
    assert len(keys) == 300 and len(set(keys)) == 300


def test_callbacks_update_deliveries_and_suppress(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 3)
    run_campaign(k, _camp(tmp_path))
    pid = {e["contact_id"]: e["provider_id"] for e in _sent(tmp_path)}
    body = msgspec.json.encode(
        [
            {"provider_id": pid[ids[0]], "status": "delivered"},
            {"key": f"welcome:0:{ids[1]}:file", "status": "bounced"},
            {"provider_id": pid[ids[2]], "status": "complained"},
            {"provider_id": "nope", "status": "delivered"},
        ]
    )
    s = apply_callback(k, "file", body)
    assert (s.events, s.updated, s.unmatched, s.suppressed, s.withdrawn) == (4, 3, 1, 2, 1)
    st = {r.contact_id: r.status for r in outbox.rows(_db(k))}
    assert st == {ids[0]: "delivered", ids[1]: "bounced", ids[2]: "complained"}
    r = run_campaign(k, _camp(tmp_path, name="next"), dry_run=True)
    assert sorted(r.exclusions) == [(ids[1], "suppressed"), (ids[2], "consent withdrawn")]


def test_send_at_and_window_schedule(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 2, timezone=["America/New_York", "Asia/Tokyo"])
    k.store.declare_attributes({"timezone": "string"}, source="t")
    now = 1_900_000_000  # 2030-03-17 17:46:40 UTC
    r = run_campaign(k, _camp(tmp_path, window="09:00-10:00"), now=now)
    assert (r.queued, r.scheduled, r.sent) == (2, 2, 0)
    due = sorted(x.next_attempt_at or 0 for x in outbox.rows(_db(k)))
    assert due == sorted(
        [
            next_in_window(now, _w("09:00-10:00"), "America/New_York"),
            next_in_window(now, _w("09:00-10:00"), "Asia/Tokyo"),
        ]
    )
    assert process_outbox(k, now=now).sent == 0
    assert process_outbox(k, now=due[0]).sent == 1
    assert process_outbox(k, now=due[1]).sent == 1


def _w(text: str) -> Any:
    from crmkit.outreach import _parse_window

    return _parse_window(text)


def test_next_in_window_properties() -> None:
    from datetime import UTC, datetime

    w = _w("09:00-17:00")
    t = int(datetime(2030, 1, 1, 8, 0, tzinfo=UTC).timestamp())
    assert next_in_window(t, w, "UTC") == t + 3600
    inside = t + 2 * 3600
    assert next_in_window(inside, w, "UTC") == inside
    late = int(datetime(2030, 1, 1, 18, 0, tzinfo=UTC).timestamp())
    assert next_in_window(late, w, "UTC") == int(datetime(2030, 1, 2, 9, tzinfo=UTC).timestamp())
    assert next_in_window(t, w, "No/Such_Zone") == t + 3600


def test_triggered_campaign_sends_after_delay_to_new_entrants_only(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 3)
    t0 = 1_900_000_000
    _db(k).conn.execute(
        "INSERT INTO memberships(segment, contact_id, entered_at) VALUES ('at_risk', ?, ?)",
        (ids[0], t0 - 10),
    )
    c = _camp(tmp_path, trigger={"segment": "at_risk", "delay": "2d"}, defined_at=t0)
    r = run_campaign(k, c, now=t0)
    assert r.queued == 0  # the member who was already there is not messaged
    _db(k).conn.execute(
        "INSERT INTO memberships(segment, contact_id, entered_at) VALUES ('at_risk', ?, ?)",
        (ids[1], t0 + 100),
    )
    s = process_outbox(k, now=t0 + 200)
    assert (s.enqueued, s.sent) == (1, 0)
    assert process_outbox(k, now=t0 + 100 + 2 * 86400).sent == 1
    assert process_outbox(k, now=t0 + 10 * 86400).enqueued == 0
    assert [e["contact_id"] for e in _sent(tmp_path)] == [ids[1]]
    assert load_campaign(k, "welcome").defined_at == t0


def test_follow_up_unless_reaction(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 2)
    c = _camp(
        tmp_path,
        follow_ups=[{"after": "3d", "template": "Still there, {{ contact.first_name }}?"}],
    )
    run_campaign(k, c)
    first = {i.contact_id: i.occurred_at for i in [*k.timeline(ids[0]), *k.timeline(ids[1])]}
    t_sent = int(first[ids[0]].timestamp())
    k.store.add_interactions(
        {"contact_id": [ids[1]], "kind": ["purchase"], "occurred_at": [t_sent + 60]},
        source="t",
    )
    assert process_outbox(k, now=t_sent + 86400).enqueued == 0
    s = process_outbox(k, now=t_sent + 3 * 86400 + 5)
    assert (s.enqueued, s.sent) == (1, 1)
    bodies = [e["body"] for e in _sent(tmp_path)]
    assert bodies.count("Still there, First0?") == 1 and len(bodies) == 3


def test_before_send_veto(tmp_path: Path) -> None:
    class Veto:
        @hookimpl
        def crmkit_before_send(self, messages: Sequence[Message]) -> list[str]:
            return [m.key for m in messages if m.contact_id % 2 == 0]

    mgr = build_plugin_manager([Veto()])
    k = Kernel(Settings(db=tmp_path / "crm.db", disable_plugin_autoload=True), manager=mgr)
    seed(k, 4)
    r = run_campaign(k, _camp(tmp_path))
    assert (r.sent, r.failed) == (2, 2)
    assert all(e["contact_id"] % 2 == 1 for e in _sent(tmp_path))


def test_invalid_campaign_names_the_field(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    with pytest.raises(ConfigError, match="window"):
        run_campaign(k, _camp(tmp_path, window="9-5"))
    with pytest.raises(ConfigError, match="unsubscribe_url"):
        run_campaign(k, _camp(tmp_path, unsubscribe_url="https://x"))
    with pytest.raises(ConfigError, match="https"):
        run_campaign(k, _camp(tmp_path, unsubscribe_url="http://x.example/{token}"))
    with pytest.raises(ConfigError, match="name"):
        run_campaign(k, _camp(tmp_path, name="a:b"))


def test_consent_from_import_column(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    out = consent.consent_from_column(_db(k), ids, ["yes", "no", "", "maybe"], channel="email", purpose="marketing",
        source="import", file="crm.csv", lines=[2, 3, 4, 5],
    )  # fmt: skip
    assert out == {"given": 1, "withdrawn": 1, "ignored": 1}
    h = consent.history(_db(k), ids[1])
    assert h[0]["status"] == "withdrawn" and h[0]["evidence"] == "crm.csv:3"
    out = consent.consent_from_column(_db(k), ids[:1], ["true"], channel="email", purpose="marketing", source="import",
        opt_out=True,
    )  # fmt: skip
    assert k.store.consent_status(ids[:1], channel="email", purpose="marketing") == {
        ids[0]: "withdrawn"
    }


def test_pacer_spaces_batches_at_the_rate() -> None:
    from crmkit.outreach import _Pacer

    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    p = _Pacer(10.0, sleep=sleep, clock=lambda: now[0])
    p.wait(5)
    p.wait(5)
    now[0] += 0.2  # sending took a while: only the rest is slept
    p.wait(5)
    assert slept == pytest.approx([0.5, 0.3])
    unlimited = _Pacer(None, sleep=sleep)
    unlimited.wait(1000)
    assert len(slept) == 2


def test_workflow_campaign_step(tmp_path: Path) -> None:
    from crmkit.workflow import load_workflow, run_workflow

    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    (tmp_path / "t.txt").write_text("Hi {{ contact.first_name }}\n")
    (tmp_path / "f.txt").write_text("Again, {{ contact.first_name }}\n")
    wf_path = tmp_path / "wf.toml"
    wf_path.write_text(
        "[[campaigns]]\n"
        'name = "wf"\nchannel = "file"\ntemplate = "t.txt"\nsubject = "S"\n'
        'where = { country = "US" }\n'
        'channel_config = { path = "out.jsonl", fsync = false }\n'
        '[[campaigns.follow_ups]]\nafter = "2d"\ntemplate = "f.txt"\n'
    )
    wf = load_workflow(wf_path, k.registry)
    dry = run_workflow(k, wf, dry_run=True)
    assert dry["steps"][0]["queued"] == 2 and dry["steps"][0]["sent"] == 0
    out = run_workflow(k, wf)
    step = out["steps"][0]
    assert (step["audience"], step["queued"], step["sent"]) == (2, 2, 2)
    assert sorted(e["contact_id"] for e in _sent(tmp_path)) == [ids[0], ids[2]]
    assert _sent(tmp_path)[0]["body"] == "Hi First0"
    again = run_workflow(k, wf)
    assert again["steps"][0]["already"] == 2 and len(_sent(tmp_path)) == 2
    assert len(load_campaign(k, "wf").follow_ups) == 1
    (tmp_path / "t.txt").unlink()
    with pytest.raises(ConfigError, match="not found"):
        run_workflow(k, wf)


def test_missing_field_may_fall_back_with_or_and_if(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 2)
    _db(k).conn.execute("UPDATE contacts SET first_name = NULL WHERE id = ?", (ids[0],))
    t = "Hi {{ contact.first_name or 'friend' }}{% if contact.city %} in {{ contact.city }}{% endif %}"
    r = run_campaign(k, _camp(tmp_path, template=t))
    assert r.sent == 2
    assert sorted(e["body"] for e in _sent(tmp_path)) == ["Hi First1", "Hi friend"]


def test_claims_from_another_host_expire_only_with_their_lease(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 2)
    run_campaign(k, _camp(tmp_path), send=False)
    t0 = 1_900_000_000
    outbox.claim(_db(k), owner="claim:elsewhere:1:ab", limit=2, lease=600, now=t0)
    assert outbox.recover_stale(_db(k), now=t0 + 599) == 0
    assert outbox.recover_stale(_db(k), now=t0 + 600) == 2
    assert outbox.counts(_db(k)) == {"unknown": 2}


_ZONES = ["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe"]


def _inside(t: int, start: int, end: int, zone: str) -> bool:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(t, ZoneInfo(zone))
    m = local.hour * 60 + local.minute
    return start <= m < end if start < end else (m >= start or m < end)


@pytest.mark.parametrize("zone", _ZONES)
def test_next_in_window_matches_a_minute_by_minute_oracle(zone: str) -> None:
    from datetime import time as dtime

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(
        at=st.integers(1_700_000_000, 1_800_000_000).map(lambda t: t - t % 60),
        start=st.integers(0, 23 * 60 + 59),
        length=st.integers(1, 23 * 60),
    )
    def check(at: int, start: int, length: int) -> None:
        end = (start + length) % (24 * 60)
        if end == start:
            return
        window = (dtime(start // 60, start % 60), dtime(end // 60, end % 60))
        got = next_in_window(at, window, zone)
        t = at
        while not _inside(t, start, end, zone):
            t += 60
        assert got == t

    check()


def test_templates_see_the_fields_they_read_however_they_read_them(tmp_path: Path) -> None:
    """Only the fields a template reads are loaded; using ``contact`` whole loads them all."""
    k = make_kernel(tmp_path)
    seed(k, 4, tier=["gold", None, "silver", "gold"])
    direct = run_campaign(
        k,
        _camp(tmp_path, name="direct", template="{{ contact['tier'] | default('none') }} "
              "{{ contact.first_name }} {{ contact.id }}"),
        dry_run=True, samples=4,
    )  # fmt: skip
    whole = run_campaign(
        k,
        _camp(tmp_path, name="whole", template="{% for k in contact | sort %}{% if k in "
              "('tier', 'first_name', 'id') %}{{ contact[k] }}|{% endif %}{% endfor %}"),
        dry_run=True, samples=4,
    )  # fmt: skip
    by_id = {s["contact_id"]: s["body"] for s in direct.samples}
    assert len(by_id) == 4
    for s in whole.samples:
        cid = s["contact_id"]
        tier, first, ident = by_id[cid].split(" ")
        assert ident == str(cid)
        want = [first, str(cid)] + ([tier] if tier != "none" else [])
        assert sorted(s["body"].rstrip("|").split("|")) == sorted(want)


def test_payload_is_compact_and_messages_keep_their_metadata(tmp_path: Path) -> None:
    k = make_kernel(tmp_path)
    seed(k, 2)
    run_campaign(k, _camp(tmp_path, purpose="news"), send=False)
    raw = [r[0] for r in _db(k).conn.execute("SELECT payload FROM deliveries")]
    assert all("metadata" not in p and "html" not in p for p in raw)
    process_outbox(k, campaign="welcome")
    lines = _sent(tmp_path)
    assert [e["metadata"] for e in lines] == [
        {"campaign": "welcome", "step": 0, "purpose": "news"}
    ] * 2


def test_bulk_tokens_match_single_tokens_and_verify() -> None:
    key = consent.SecretKey(b"k" * 32)
    signer = consent.TokenSigner(key, channel="email", purpose="news", campaign="c", issued_at=7)
    ids = [0, 1, 42, 10**12, 987654321]
    bulk = signer.tokens(ids)
    assert bulk == [signer.token(i) for i in ids]
    assert [consent.read_token(key, t).contact_id for t in bulk] == ids
    assert len(set(bulk)) == len(ids)


def test_separator_characters_in_data_render_exactly(tmp_path: Path) -> None:
    """Batch rendering splits on control characters; data holding them still renders right."""
    for n, names in enumerate([["A\x1fB", "plain", "E\x1f\x1fF"], ["C\x1eD", "plain"]]):
        (tmp_path / str(n)).mkdir()
        k = make_kernel(tmp_path / str(n))
        seed(k, len(names), first_name=names)
        r = run_campaign(k, _camp(tmp_path), dry_run=True, samples=len(names))
        assert sorted(s["body"] for s in r.samples) == sorted(f"Hello {x}!" for x in names)
        assert sorted(s["subject"] for s in r.samples) == [f"Hi Last{i}" for i in range(len(names))]
        k.close()
