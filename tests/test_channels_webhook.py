"""The ``webhook`` channel against a real HTTP server that verifies signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_outreach_support import Recorder, free_port, make_kernel, seed

from crmkit.builtin import channels
from crmkit.builtin.channels import WebhookChannel
from crmkit.errors import ChannelError
from crmkit.kinds import PluginContext
from crmkit.outreach import process_outbox, run_campaign
from crmkit.records import Message
from crmkit.store import outbox
from crmkit.testing.channels import ChannelConformance

pytest_plugins = ["crmkit.testing"]
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """A receiver's check, written from the Standard Webhooks spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > tolerance:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        sig.partition(",")[0] == "v1" and hmac.compare_digest(sig.partition(",")[2], expected)
        for sig in headers["webhook-signature"].split(" ")
    )


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    r = Recorder()

    def answer(
        path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        return (204, {}, b"") if verify(SECRET, headers, body) else (401, {}, b"bad signature")

    r.answer_fn = answer
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def _channel(url: str, **kw: Any) -> WebhookChannel:
    cfg = WebhookChannel.Config.model_validate({"url": url, "secret_env": "HOOK_SECRET", **kw})
    return WebhookChannel(cfg, PluginContext(base_dir=Path(".")))


class TestWebhookChannelConformance(ChannelConformance):
    channel_class = WebhookChannel
    plugin = channels
    rec: Recorder | None = None

    @pytest.fixture(autouse=True)
    def _server(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.setenv("HOOK_SECRET", SECRET)
        type(self).rec = Recorder(default=(200, {}, b""))
        yield
        assert self.rec is not None
        self.rec.stop()

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        assert self.rec is not None
        return {"url": self.rec.url + "/hook", "secret_env": "HOOK_SECRET"}


def test_campaign_webhooks_are_signed_and_verified(tmp_path: Path, receiver: Recorder) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 5)
    r = run_campaign(
        k,
        name="ping",
        channel="webhook",
        channel_config={"url": receiver.url + "/in", "secret_env": "HOOK_SECRET"},
        template="{{ contact.first_name }} joined",
        purpose="transactional",
    )
    assert r.sent == 5
    assert len(receiver.requests) == 5
    for path, headers, body in receiver.requests:
        assert path == "/in"
        assert verify(SECRET, headers, body)
        assert headers["webhook-id"] == headers["idempotency-key"]
        assert headers["webhook-signature"].startswith("v1,")
        data = json.loads(body)
        assert data["type"] == "crmkit.message"
        assert headers["webhook-id"] == data["data"]["key"]
    got = sorted(json.loads(b)["data"]["contact_id"] for _, _, b in receiver.requests)
    assert got == ids


def test_wrong_secret_is_rejected_by_the_receiver(
    receiver: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + base64.b64encode(b"x" * 32).decode())
    res = _channel(receiver.url).send_batch(
        [Message(key="k1", contact_id=1, channel="webhook", to="1", body="b")]
    )
    assert res[0].status == "failed" and "401" in (res[0].error or "")


def test_status_mapping_and_retry_after() -> None:
    rec = Recorder()
    try:
        rec.script = [
            (429, {"Retry-After": "7"}, b""),
            (503, {}, b""),
            (400, {}, b""),
            (200, {}, b""),
        ]
        msgs = [
            Message(key=f"k{i}", contact_id=i, channel="webhook", to=str(i), body="b")
            for i in range(4)
        ]
        res = _channel(rec.url).send_batch(msgs)
        assert [(r.status, r.retry_after) for r in res] == [
            ("retry", 7.0),
            ("retry", None),
            ("failed", None),
            ("sent", None),
        ]
    finally:
        rec.stop()


def test_timeout_after_sending_is_unknown_and_connect_refused_is_retry() -> None:
    rec = Recorder()
    rec.delay = 1.0
    try:
        m = Message(key="k", contact_id=1, channel="webhook", to="1", body="b")
        assert _channel(rec.url, timeout=0.3).send_batch([m])[0].status == "unknown"
    finally:
        rec.stop()
    down = f"http://127.0.0.1:{free_port()}"
    assert _channel(down).send_batch([m])[0].status == "retry"


def test_unknown_resent_with_same_id_only_when_configured(tmp_path: Path) -> None:
    rec = Recorder()
    rec.delay = 0.6
    try:
        k = make_kernel(tmp_path)
        seed(k, 1)
        base = {"url": rec.url, "secret_env": "HOOK_SECRET", "timeout": 0.2}
        r = run_campaign(k, name="w", channel="webhook", channel_config=base, template="x")
        assert r.unknown == 1
        rec.delay = 0
        process_outbox(k)
        assert len(rec.requests) == 1  # left unknown
        run_campaign(
            k, name="w", channel="webhook", channel_config={**base, "resend_unknown": True},
            template="x",
        )  # fmt: skip
        assert len(rec.requests) == 2
        assert rec.requests[0][1]["webhook-id"] == rec.requests[1][1]["webhook-id"]
        assert outbox.counts(k.store) == {"sent": 1}
    finally:
        rec.stop()


def test_missing_secret_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ChannelError, match="HOOK_SECRET"):
        _channel("http://127.0.0.1:1").check()
