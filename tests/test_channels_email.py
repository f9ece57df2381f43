"""The ``email`` channel against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_outreach_support import free_port, make_kernel, seed

from crmkit.builtin import channels
from crmkit.builtin.channels import EmailChannel
from crmkit.errors import ChannelError
from crmkit.kinds import PluginContext
from crmkit.outreach import run_campaign
from crmkit.records import Message
from crmkit.store import outbox
from crmkit.testing.channels import ChannelConformance

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

pytest_plugins = ["crmkit.testing"]


class Sink:
    """An aiosmtpd handler that keeps every message and can refuse some recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        self.slow = 0.0
        self.pipelining = False

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bad"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow:
            await asyncio.sleep(self.slow)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


class Server:
    """A running SMTP server and its sink."""

    def __init__(self, pipelining: bool = False, **kw: Any) -> None:
        self.sink = Sink()
        self.sink.pipelining = pipelining
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def smtp(request: pytest.FixtureRequest) -> Iterator[Server]:
    s = Server(pipelining=request.param)
    yield s
    s.stop()


def _config(server: Server, **kw: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "sender": "News <news@shop.example>",
        **kw,
    }


def _channel(server: Server, **kw: Any) -> EmailChannel:
    cfg = EmailChannel.Config.model_validate(_config(server, **kw))
    return EmailChannel(cfg, PluginContext(base_dir=Path(".")))


class TestEmailChannelConformance(ChannelConformance):
    channel_class = EmailChannel
    plugin = channels
    server: Server | None = None

    @pytest.fixture(autouse=True)
    def _server(self) -> Iterator[None]:
        type(self).server = Server()
        yield
        assert self.server is not None
        self.server.stop()

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        assert self.server is not None
        return _config(self.server)


def test_campaign_over_smtp_exact_count_headers_and_bodies(tmp_path: Path, smtp: Server) -> None:
    k = make_kernel(tmp_path)
    ids = seed(k, 25)
    r = run_campaign(
        k,
        name="spring",
        channel="email",
        channel_config=_config(smtp),
        template="Hello {{ contact.first_name }},\nunsubscribe: {{ unsubscribe_url }}",
        html="<p>Hello {{ contact.first_name }}</p>",
        subject="Spring for {{ contact.last_name }}",
        unsubscribe_url="https://shop.example/u/{token}",
        unsubscribe_mailto="unsub@shop.example",
    )
    assert r.sent == 25
    got = smtp.sink.messages
    assert len(got) == 25
    by_to = {
        rcpt[0]: email.message_from_bytes(data, policy=email.policy.default)
        for _, rcpt, data in got
    }
    assert set(by_to) == {f"p{i}@example.com" for i in range(25)}
    assert all(mf == "news@shop.example" for mf, _, _ in got)
    m = by_to["p7@example.com"]
    assert m["Subject"] == "Spring for Last7"
    assert m["From"] == "News <news@shop.example>"
    assert m["To"] == "p7@example.com"
    lu = m["List-Unsubscribe"]
    assert lu.startswith("<https://shop.example/u/") and "mailto:unsub@shop.example" in lu
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = m.get_body(("plain",))
    html = m.get_body(("html",))
    assert text is not None and html is not None
    url = lu.split(">", 1)[0][1:]
    assert text.get_content().replace("\r\n", "\n") == f"Hello First7,\nunsubscribe: {url}\n"
    assert html.get_content().strip() == "<p>Hello First7</p>"
    row = next(x for x in outbox.rows(k.store) if x.contact_id == ids[7])
    assert row.status == "sent" and row.provider_id == m["Message-ID"]
    # a re-run sends nothing more
    r2 = run_campaign(
        k,
        name="spring",
        channel="email",
        channel_config=_config(smtp),
        template="Hello {{ contact.first_name }},\nunsubscribe: {{ unsubscribe_url }}",
        html="<p>Hello {{ contact.first_name }}</p>",
        subject="Spring for {{ contact.last_name }}",
        unsubscribe_url="https://shop.example/u/{token}",
    )
    assert r2.sent == 0 and len(smtp.sink.messages) == 25


def _msg(key: str, to: str) -> Message:
    return Message(key=key, contact_id=1, channel="email", to=to, subject="s", body="b")


def test_refusals_map_to_failed_and_retry(smtp: Server) -> None:
    ch = _channel(smtp)
    ch.check()
    assert ch._smtp.has_extn("pipelining") == smtp.sink.pipelining
    res = ch.send_batch(
        [_msg("a", "ok@x.example"), _msg("b", "bad@x.example"), _msg("c", "later@x.example"),
         _msg("d", "ok2@x.example")]
    )  # fmt: skip
    st = {r.key: r.status for r in res}
    assert st == {"a": "sent", "b": "failed", "c": "retry", "d": "sent"}
    assert all("x.example" not in (r.error or "") for r in res)
    assert len(smtp.sink.messages) == 2
    ch.close()


def test_dot_lines_headers_and_non_ascii_survive(smtp: Server) -> None:
    ch = _channel(smtp)
    body = ".\n..two\nline\n.\nünïcödé ✓\n"
    m = Message(key="k", contact_id=1, channel="email", to="ok@x.example", subject="Grüße ✓",
                body=body, html="<p>é</p>", headers={"X-Campaign": "c1"})  # fmt: skip
    assert ch.send_batch([m])[0].status == "sent"
    got = email.message_from_bytes(smtp.sink.messages[0][2], policy=email.policy.default)
    assert got["Subject"] == "Grüße ✓" and got["X-Campaign"] == "c1"
    text = got.get_body(("plain",))
    assert text is not None and text.get_content().replace("\r\n", "\n") == body
    html = got.get_body(("html",))
    assert html is not None and html.get_content().strip() == "<p>é</p>"
    bad = Message(key="k2", contact_id=1, channel="email", to="ok@x.example", body="b",
                  headers={"X-Evil": "a\r\nBcc: victim@x.example"})  # fmt: skip
    res = ch.send_batch([bad])[0]
    assert res.status == "failed" and "line break" in (res.error or "")
    assert len(smtp.sink.messages) == 1
    ch.close()


def test_timeout_while_sending_data_is_unknown(smtp: Server) -> None:
    smtp.sink.slow = 1.5
    ch = _channel(smtp, timeout=0.5)
    res = ch.send_batch([_msg("a", "ok@x.example")])
    assert res[0].status == "unknown" and res[0].provider_id
    ch.close()


def test_server_down_is_retry_and_check_fails() -> None:
    port = free_port()
    cfg = EmailChannel.Config.model_validate(
        {"host": "127.0.0.1", "port": port, "security": "none", "sender": "a@b.example"}
    )
    ch = EmailChannel(cfg, PluginContext(base_dir=Path(".")))
    with pytest.raises(ChannelError, match="cannot connect"):
        ch.check()
    assert [r.status for r in ch.send_batch([_msg("a", "x@y.example")])] == ["retry"]


def test_login_with_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret", handled=False)

    s = Server(authenticator=auth, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"])
    try:
        monkeypatch.setenv("SMTP_PW", "s3cret")
        ch = _channel(s, username="mailer", password_env="SMTP_PW")
        assert ch.send_batch([_msg("a", "ok@x.example")])[0].status == "sent"
        assert seen == [("mailer", "s3cret")]
        ch.close()
        monkeypatch.setenv("SMTP_PW", "wrong")
        with pytest.raises(ChannelError, match="refused the login"):
            _channel(s, username="mailer", password_env="SMTP_PW").check()
        monkeypatch.delenv("SMTP_PW")
        with pytest.raises(ChannelError, match="SMTP_PW"):
            _channel(s, username="mailer", password_env="SMTP_PW").check()
    finally:
        s.stop()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    d = tmp_path_factory.mktemp("tls")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available to make a test certificate")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def test_starttls(tls_context: ssl.SSLContext) -> None:
    s = Server(tls_context=tls_context, require_starttls=True)
    try:
        plain = _channel(s)
        assert plain.send_batch([_msg("a", "ok@x.example")])[0].status != "sent"
        ch = _channel(s, security="starttls", verify_tls=False)
        assert ch.send_batch([_msg("b", "ok@x.example")])[0].status == "sent"
        assert len(s.sink.messages) == 1
        ch.close()
        strict = _channel(s, security="starttls")
        with pytest.raises(ChannelError, match="cannot connect"):
            strict.check()  # self-signed certificate refused by default
    finally:
        s.stop()
