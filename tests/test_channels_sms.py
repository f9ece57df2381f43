"""The ``sms`` channel against a real local HTTP server that answers like a provider."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import msgspec
import pytest
from test_outreach_support import Recorder, make_kernel, seed

from crmkit.builtin import channels
from crmkit.builtin.channels import SmsChannel
from crmkit.errors import ChannelError
from crmkit.kinds import PluginContext
from crmkit.outreach import apply_callback, process_outbox, run_campaign
from crmkit.records import Message
from crmkit.store import outbox
from crmkit.testing.channels import ChannelConformance

pytest_plugins = ["crmkit.testing"]


class Provider(Recorder):
    """Answers like an SMS provider: checks basic auth, returns a message sid."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.answer_fn = self._answer

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.script:
            return self.script.pop(0)
        auth = headers.get("authorization", "")
        if auth != "Basic " + base64.b64encode(b"AC123:tok").decode():
            return 401, {}, b'{"message": "auth"}'
        self.n += 1
        return (
            201,
            {"content-type": "application/json"},
            msgspec.json.encode({"sid": f"SM{self.n:04d}", "status": "queued"}),
        )

    def forms(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(b.decode()).items()} for _, _, b in self.requests]


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    monkeypatch.setenv("SMS_TOKEN", "tok")
    p = Provider()
    yield p
    p.stop()


def _config(p: Provider, **kw: Any) -> dict[str, Any]:
    return {"base_url": p.url + "/2010-04-01", "account": "AC123", "token_env": "SMS_TOKEN",
            "sender": "+15550009999", "status_callback": "https://crm.example/sms-status", **kw}  # fmt: skip


def _channel(p: Provider, **kw: Any) -> SmsChannel:
    return SmsChannel(
        SmsChannel.Config.model_validate(_config(p, **kw)), PluginContext(base_dir=Path("."))
    )


def _m(i: int) -> Message:
    return Message(key=f"k{i}", contact_id=i, channel="sms", to=f"+1555000{i:04d}", body=f"hi {i}")


class TestSmsChannelConformance(ChannelConformance):
    channel_class = SmsChannel
    plugin = channels
    prov: Provider | None = None

    @pytest.fixture(autouse=True)
    def _server(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.setenv("SMS_TOKEN", "tok")
        type(self).prov = Provider()
        yield
        assert self.prov is not None
        self.prov.stop()

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        assert self.prov is not None
        return _config(self.prov)

    def make_messages(self, n: int, prefix: str = "m") -> list[Message]:
        return [Message(key=f"{prefix}-{i}", contact_id=i + 1, channel="sms",
                        to=f"+1555{i:07d}", body=f"hello {i}") for i in range(n)]  # fmt: skip


def test_campaign_over_sms_form_post_auth_and_ids(tmp_path: Path, provider: Provider) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 4)
    r = run_campaign(k, name="sms1", channel="sms", channel_config=_config(provider),
                     template="Hi {{ contact.first_name }}, reply STOP to opt out")  # fmt: skip
    assert r.sent == 4
    paths = {p for p, _, _ in provider.requests}
    assert paths == {"/2010-04-01/Accounts/AC123/Messages.json"}
    forms = sorted(provider.forms(), key=lambda f: f["To"])
    assert forms[0] == {
        "To": "+15550000000", "From": "+15550009999",
        "Body": "Hi First0, reply STOP to opt out", "StatusCallback": "https://crm.example/sms-status",
    }  # fmt: skip
    assert all(
        h["content-type"] == "application/x-www-form-urlencoded" for _, h, _ in provider.requests
    )
    pids = sorted(x.provider_id or "" for x in outbox.rows(k.store))
    assert pids == ["SM0001", "SM0002", "SM0003", "SM0004"]
    # status callbacks and an inbound STOP
    row = next(x for x in outbox.rows(k.store) if x.contact_id == ids[1])
    s = apply_callback(k, "sms", f"MessageSid={row.provider_id}&MessageStatus=delivered".encode(),
                       channel_config=_config(provider))  # fmt: skip
    assert s.updated == 1
    s = apply_callback(
        k, "sms", b"From=%2B15550000002&Body=Stop%20", channel_config=_config(provider)
    )
    assert s.suppressed == 1 and s.withdrawn == 1
    assert k.store.consent_status([ids[2]], channel="sms", purpose="marketing") == {
        ids[2]: "withdrawn"
    }
    r = run_campaign(k, name="sms2", channel="sms", channel_config=_config(provider), template="x",
                     purpose="transactional", dry_run=True)  # fmt: skip
    assert (ids[2], "suppressed") in r.exclusions  # STOP blocks every purpose on the channel
    st = {x.contact_id: x.status for x in outbox.rows(k.store)}
    assert st[ids[1]] == "delivered"


def test_429_retry_after_and_5xx_are_retried_later(tmp_path: Path, provider: Provider) -> None:
    k = make_kernel(tmp_path)
    seed(k, 3)
    provider.script = [(429, {"Retry-After": "30"}, b""), (500, {}, b""), (503, {}, b"")]
    t0 = 1_900_000_000
    r = run_campaign(k, name="s", channel="sms", channel_config=_config(provider), template="x",
                     backoff_seconds=10, now=t0)  # fmt: skip
    assert (r.sent, r.retrying) == (0, 3)
    due = sorted(x.next_attempt_at or 0 for x in outbox.rows(k.store))
    assert due == [t0 + 10, t0 + 10, t0 + 30]
    assert process_outbox(k, now=t0 + 10).sent == 2
    assert process_outbox(k, now=t0 + 30).sent == 1
    assert len(provider.requests) == 6


def test_4xx_is_failed_and_missing_id_is_unknown(provider: Provider) -> None:
    provider.script = [(400, {}, b'{"message": "invalid number"}'), (200, {}, b"not json")]
    res = _channel(provider).send_batch([_m(1), _m(2)])
    assert [r.status for r in res] == ["failed", "unknown"]
    assert all("+1555" not in (r.error or "") for r in res)


def test_parse_callback_shapes(provider: Provider) -> None:
    ch = _channel(provider)
    ev = ch.parse_callback(b"MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003", {})
    assert (
        ev[0].provider_id == "SM1" and ev[0].status == "bounced" and "30003" in (ev[0].detail or "")
    )
    assert ch.parse_callback(b"MessageSid=SM1&MessageStatus=sent", {}) == []
    assert ch.parse_callback(b"From=%2B1555&Body=hello", {}) == []
    with pytest.raises(ChannelError):
        ch.parse_callback(b"a=1&b=2", {})


def test_missing_token_env_is_a_clear_error(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMS_TOKEN")
    with pytest.raises(ChannelError, match="SMS_TOKEN"):
        _channel(provider).check()
