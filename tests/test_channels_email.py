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
from typing import Any, cast

import pytest
from test_outreach_support import free_port, make_kernel, seed

from crmkit.builtin import channels
from crmkit.builtin.email_channel import EmailChannel
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
        self.reject_marker: bytes | None = None
        self.drop_on: bytes | None = None

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
        if self.reject_marker and self.reject_marker in envelope.content:
            return "554 5.6.0 message refused"
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.drop_on and self.drop_on in envelope.content:
            self.drop_on = None
            server.transport.abort()  # accepted, but the reply never leaves
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
    # the registration check applies once the built-in plugin registers this class
    plugin = channels if cast(object, channels.EmailChannel) is EmailChannel else None
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
    row = next(x for x in outbox.rows(k.store) if x.contact_id == ids[7])  # type: ignore[arg-type]
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


def test_implicit_tls(tls_context: ssl.SSLContext) -> None:
    s = Server(ssl_context=tls_context)
    try:
        ch = _channel(s, security="ssl", verify_tls=False)
        res = ch.send_batch([_msg("a", "ok@x.example"), _msg("b", "ok2@x.example")])
        assert [r.status for r in res] == ["sent", "sent"]
        assert [m[1] for m in s.sink.messages] == [["ok@x.example"], ["ok2@x.example"]]
        ch.close()
    finally:
        s.stop()


def test_long_batch_keeps_order_through_refusals(smtp: Server) -> None:
    """Refusals at every stage in the middle of a pipelined batch do not disturb the others."""
    smtp.sink.reject_marker = b"REJECT-ME"
    ch = _channel(smtp)
    msgs = []
    for i in range(60):
        to = (
            f"bad{i}@x.example"
            if i % 7 == 3
            else f"later{i}@x.example"
            if i % 11 == 5
            else f"ok{i}@x.example"
        )
        body = "REJECT-ME\n" if i % 13 == 6 else f"body {i}\n.leading dot\n"
        msgs.append(
            Message(key=f"k{i}", contact_id=i, channel="email", to=to, subject=f"s{i}", body=body)
        )
    res = ch.send_batch(msgs)
    assert [r.key for r in res] == [m.key for m in msgs]
    want = {
        m.key: "failed" if m.to.startswith("bad") or "REJECT" in m.body
        else "retry" if m.to.startswith("later") else "sent"
        for m in msgs
    }  # fmt: skip
    assert {r.key: r.status for r in res} == want
    got = {
        email.message_from_bytes(data, policy=email.policy.default)["Message-ID"]: data
        for _, _, data in smtp.sink.messages
        if b"REJECT-ME" not in data
    }
    sent = [r for r in res if r.status == "sent"]
    assert len(got) == len(sent) == len(smtp.sink.messages)
    for r in sent:
        m = email.message_from_bytes(got[r.provider_id], policy=email.policy.default)
        n = int(r.key[1:])
        text = m.get_body(("plain",))
        assert text is not None
        assert text.get_content().replace("\r\n", "\n") == f"body {n}\n.leading dot\n"
    ch.close()


def test_connection_lost_mid_batch(smtp: Server) -> None:
    """The message whose reply was lost is unknown; the rest go out on a new connection."""
    smtp.sink.drop_on = b"DROP-HERE"
    ch = _channel(smtp)
    msgs = [
        Message(key=f"k{i}", contact_id=i, channel="email", to=f"ok{i}@x.example",
                body="DROP-HERE\n" if i == 4 else f"body {i}\n")
        for i in range(10)
    ]  # fmt: skip
    res = ch.send_batch(msgs)
    st = {r.key: r.status for r in res}
    assert st["k4"] == "unknown" and next(r for r in res if r.key == "k4").provider_id
    others = [s for k, s in st.items() if k != "k4"]
    assert set(others) <= {"sent", "retry"} and others.count("retry") <= 1
    delivered = [rcpt[0] for _, rcpt, _ in smtp.sink.messages]
    assert len(delivered) == len(set(delivered))  # nothing twice
    assert sorted(delivered) == sorted(
        f"ok{int(k[1:])}@x.example" for k, s in st.items() if s in ("sent", "unknown")
    )
    ch.close()


def test_build_encodes_headers_and_bodies() -> None:
    cfg = EmailChannel.Config.model_validate(
        {"host": "127.0.0.1", "port": 25, "security": "none",
         "sender": "Boutique Éclair <news@shop.example>", "reply_to": "help@shop.example"}
    )  # fmt: skip
    ch = EmailChannel(cfg, PluginContext(base_dir=Path(".")))
    long_value = " ".join(f"<https://shop.example/u/{i:04d}>," for i in range(60)).rstrip(",")
    body = "Grüße\n" + "x" * 300 + " é\n.\ntrailing space \n"
    m = Message(key="k", contact_id=1, channel="email", to="ok@x.example",
                subject="Été ✓ " * 20, body=body, headers={"List-Unsubscribe": long_value})  # fmt: skip
    raw = ch.build(m)
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    head, _, text = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in text.split(b"\r\n")) <= 76
    assert b"Content-Transfer-Encoding: quoted-printable" in head
    got = email.message_from_bytes(raw, policy=email.policy.default)
    assert got["From"].addresses[0].display_name == "Boutique Éclair"
    assert got["From"].addresses[0].addr_spec == "news@shop.example"
    assert got["Reply-To"] == "help@shop.example"
    assert got["Subject"] == "Été ✓ " * 20
    assert " ".join(got["List-Unsubscribe"].split()) == long_value
    assert got["Message-ID"] == ch.message_id("k")
    part = got.get_body(("plain",))
    assert part is not None and part.get_content().replace("\r\n", "\n") == body
    tricky = "Why =?utf-8?q?not?= now"
    got = email.message_from_bytes(
        ch.build(Message(key="t", contact_id=1, channel="email", to="ok@x.example",
                         subject=tricky, body="b")),
        policy=email.policy.default,
    )  # fmt: skip
    assert got["Subject"] == tricky
    plain = ch.build(Message(key="p", contact_id=1, channel="email", to="ok@x.example", body="hi"))
    assert plain.endswith(b"Content-Transfer-Encoding: 7bit\r\n\r\nhi\r\n")
    for bad in ({"subject": "a\nBcc: v@x.example"}, {"headers": {"Bad Name": "x"}}):
        fields: dict[str, Any] = {"key": "b", "contact_id": 1, "channel": "email",
                                  "to": "ok@x.example", "body": "b", **bad}  # fmt: skip
        with pytest.raises(ChannelError):
            ch.build(Message(**fields))


def test_outbox_sends_through_this_channel_with_unsubscribe_headers(
    tmp_path: Path, smtp: Server
) -> None:
    from crmkit.outreach import process_outbox

    k = make_kernel(tmp_path)
    seed(k, 30)
    camp = {
        "name": "news",
        "channel": "email",
        "channel_config": _config(smtp),
        "template": "Hi {{ contact.first_name }}\n.\nbye: {{ unsubscribe_url }}",
        "subject": "News for {{ contact.first_name }}",
        "unsubscribe_url": "https://shop.example/u/{token}",
    }
    r = run_campaign(k, camp, send=False)
    assert r.queued == 30 and not smtp.sink.messages
    ch = _channel(smtp)
    s = process_outbox(k, campaign="news", channel=ch)
    ch.close()
    assert s.sent == 30 and len(smtp.sink.messages) == 30
    for _, rcpt, data in smtp.sink.messages:
        m = email.message_from_bytes(data, policy=email.policy.default)
        url = m["List-Unsubscribe"][1:-1]
        assert url.startswith("https://shop.example/u/")
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = m.get_body(("plain",))
        assert text is not None
        assert text.get_content().replace("\r\n", "\n").endswith(f"\n.\nbye: {url}\n")
        assert m["To"] == rcpt[0]
    assert outbox.counts(k.store, campaign="news") == {"sent": 30}  # type: ignore[arg-type]
    assert process_outbox(k, campaign="news", channel=_channel(smtp)).sent == 0
