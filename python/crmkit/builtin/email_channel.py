"""The ``email`` channel: SMTP over one connection, pipelined when the server allows.

Messages are written as RFC 5322 bytes directly (CRLF line ends, RFC 2047
encoded words for non-ASCII headers, quoted-printable for non-ASCII bodies,
dot-stuffing); no :mod:`email.message` object is built per message.

With the server's PIPELINING extension (RFC 2920) each message costs one
round trip: the end of one message's data goes in the same write as the next
message's ``MAIL``, ``RCPT`` and ``DATA``, and the next message is built
while the server works on the previous one. Without it, each command waits
for its reply (RFC 5321), and the next message is still built while the
server stores the previous one.

Outcomes: a refusal before the message data is sent is ``retry`` (4xx) or
``failed`` (5xx); a connection lost before the data left is ``retry``; a
connection lost while the data is sent or acknowledged is ``unknown`` (the
server may have accepted it), never retried blindly.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from crmkit.errors import ChannelError
from crmkit.kinds import CallbackEvent, Channel, PluginConfig, PluginContext
from crmkit.records import Message, SendResult

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_ADDR_SPECIAL = re.compile(r"[\s<>()\[\],;:\"\\]")
_MAX_REPLY_LINE = 8192


class EmailChannelConfig(PluginConfig):
    """Configuration of the ``email`` channel (SMTP)."""

    host: str = "localhost"
    """SMTP server host."""
    port: int | None = None
    """SMTP port; default 25 (``none``), 587 (``starttls``) or 465 (``ssl``)."""
    security: Literal["none", "starttls", "ssl"] = "starttls"
    """Transport security: plain, STARTTLS after connecting, or TLS from the start."""
    username: str | None = None
    """Login name (the password is never in the config)."""
    password_env: str | None = None
    """Name of the environment variable holding the password."""
    sender: str
    """The ``From`` address (``Name <addr@example.com>`` allowed)."""
    reply_to: str | None = None
    """The ``Reply-To`` address, when replies go elsewhere."""
    timeout: float = 30.0
    """Seconds to wait on the server."""
    verify_tls: bool = True
    """Check the server's certificate (turn off only for a local test server)."""
    rate_per_second: float | None = None
    """Send at most this many messages per second."""


class _Lost(Exception):
    """The connection failed; ``sent`` says whether message data had left."""


class _Prepared:
    """One message ready for the wire: envelope commands and dot-stuffed data."""

    __slots__ = ("data", "envelope", "index", "msg")

    def __init__(self, index: int, msg: Message, envelope: bytes, data: bytes) -> None:
        self.index = index
        self.msg = msg
        self.envelope = envelope
        self.data = data


class EmailChannel(Channel):
    """Sends email over SMTP, keeping one connection open (see the module docs).

    Each message gets a ``Message-ID`` derived from its outbox key, which is
    also its ``provider_id``; headers given by the kernel (``List-Unsubscribe``
    and ``List-Unsubscribe-Post`` for one-click unsubscribe, RFC 8058) are
    written as they are. A text body and, when present, an HTML alternative.
    """

    name = "email"
    description = "Send email over SMTP (STARTTLS or SSL; password from the environment)."
    Config: ClassVar[type[PluginConfig]] = EmailChannelConfig
    max_batch: ClassVar[int] = 500
    address_field: ClassVar[str] = "email"

    config: EmailChannelConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self._smtp: Any = None
        from email.utils import parseaddr

        c = self.config
        addr = parseaddr(c.sender)[1]
        if "@" not in addr or not addr.isascii() or _ADDR_SPECIAL.search(addr):
            raise ChannelError("email channel: 'sender' is not an email address")
        self._envelope_from = addr
        self._domain = addr.rsplit("@", 1)[1]
        self._mail_cmd = f"MAIL FROM:<{addr}>\r\n".encode("ascii")
        fixed = [("From", c.sender)]
        if c.reply_to:
            fixed.append(("Reply-To", c.reply_to))
        self._fixed = "".join(_header(n, v) for n, v in fixed)
        self._date_at = -1
        self._date = ""
        self._names_ok: set[str] = set()

    # -- connection ------------------------------------------------------------------

    def _port(self) -> int:
        c = self.config
        return c.port or {"none": 25, "starttls": 587, "ssl": 465}[c.security]

    def _connect(self) -> Any:
        import smtplib
        import socket
        import ssl

        from crmkit.builtin.channels import _secret_from_env

        c = self.config
        password = _secret_from_env("email", c.password_env, "SMTP password")
        ctx = ssl.create_default_context()
        if not c.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            smtp: smtplib.SMTP
            if c.security == "ssl":
                smtp = smtplib.SMTP_SSL(c.host, self._port(), timeout=c.timeout, context=ctx)
            else:
                smtp = smtplib.SMTP(c.host, self._port(), timeout=c.timeout)
            if smtp.sock is not None:
                with contextlib.suppress(OSError):
                    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo()
            if c.security == "starttls":
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if c.username:
                smtp.login(c.username, password or "")
        except smtplib.SMTPAuthenticationError:
            raise ChannelError("email channel: the SMTP server refused the login") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(
                f"email channel: cannot connect to {c.host}:{self._port()} "
                f"({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})"
            ) from None
        return smtp

    def check(self) -> None:
        """Connect (and log in) once; raise :class:`ChannelError` when that fails."""
        self._ensure()

    def _ensure(self) -> Any:
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def close(self) -> None:
        """Say QUIT and close the connection."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except Exception:  # already gone
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                self._smtp.close()
            self._smtp = None

    # -- messages --------------------------------------------------------------------

    def message_id(self, key: str) -> str:
        """The ``Message-ID`` (and provider id) of the message with outbox ``key``."""
        return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@{self._domain}>"

    def _now_date(self) -> str:
        now = int(time.time())
        if now != self._date_at:
            from email.utils import formatdate

            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n"
            self._date_at = now
        return self._date

    def build(self, msg: Message) -> bytes:
        """The RFC 5322 bytes of ``msg`` (CRLF line ends, not dot-stuffed).

        ASCII headers are written as they are (folded when long); others as
        RFC 2047 encoded words. A text body is sent as 7bit when it can be,
        else quoted-printable. A header value holding a line break, or a bad
        header name, is refused (header injection).
        """
        out = [self._fixed, _header("To", msg.to)]
        if msg.subject is not None:
            out.append(_header("Subject", msg.subject))
        out.append(self._now_date())
        out.append(f"Message-ID: {self.message_id(msg.key)}\r\n")
        for name, value in msg.headers.items():
            if name not in self._names_ok:
                if not _HEADER_NAME.match(name):
                    raise ChannelError(f"email channel: header {name!r} has a bad name")
                self._names_ok.add(name)
            out.append(_header(name, value))
        out.append("MIME-Version: 1.0\r\n")
        if msg.html is None:
            out.append(_text_part("plain", msg.body))
        else:
            boundary = "=_" + hashlib.sha256(msg.key.encode("utf-8")).hexdigest()[:24]
            out.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
            out.append(f"--{boundary}\r\n")
            out.append(_text_part("plain", msg.body))
            out.append(f"\r\n--{boundary}\r\n")
            out.append(_text_part("html", msg.html))
            out.append(f"\r\n--{boundary}--\r\n")
        return "".join(out).encode("ascii")

    def _prepare(self, index: int, msg: Message) -> _Prepared | SendResult:
        """The wire form of ``msg``, or the result when it cannot be sent at all."""
        rcpt = _quote_rcpt(msg.to)
        if rcpt is None:
            return SendResult(key=msg.key, status="failed", error="invalid recipient address")
        try:
            data = self.build(msg)
        except ChannelError as exc:
            return SendResult(key=msg.key, status="failed", error=str(exc))
        except UnicodeError:
            return SendResult(key=msg.key, status="failed", error="message cannot be encoded")
        if b"\n." in data:
            data = data.replace(b"\n.", b"\n..")  # dot-stuffing (RFC 5321 4.5.2)
        envelope = self._mail_cmd + b"RCPT TO:" + rcpt + b"\r\nDATA\r\n"
        return _Prepared(index, msg, envelope, data + b".\r\n")

    # -- sending ---------------------------------------------------------------------

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages`` over the open connection (reconnecting once per drop)."""
        results: list[SendResult | None] = [None] * len(messages)
        pos = 0
        while pos < len(messages):
            try:
                smtp = self._ensure()
            except ChannelError as exc:
                for i in range(pos, len(messages)):
                    if results[i] is None:
                        results[i] = SendResult(key=messages[i].key, status="retry", error=str(exc))
                break
            run = self._pipelined if smtp.has_extn("pipelining") else self._stepwise
            try:
                pos = run(smtp, messages, pos, results)
            except _Lost as exc:  # the connection was unusable before anything was sent
                self._drop()
                results[pos] = SendResult(
                    key=messages[pos].key,
                    status="retry",
                    error=f"connection lost before sending ({exc})",
                )
                pos += 1
        return [r for r in results if r is not None]

    def _sent(self, results: list[SendResult | None], p: _Prepared, code: int) -> None:
        if code == 250:
            results[p.index] = SendResult(
                key=p.msg.key, status="sent", provider_id=self.message_id(p.msg.key)
            )
        else:
            results[p.index] = _refusal(p.msg.key, code, "message")

    def _lost(
        self, results: list[SendResult | None], p: _Prepared, exc: BaseException, *, sent: bool
    ) -> None:
        if sent:
            results[p.index] = SendResult(
                key=p.msg.key,
                status="unknown",
                provider_id=self.message_id(p.msg.key),
                error=f"connection lost while sending ({_cause(exc)})",
            )
        else:
            results[p.index] = SendResult(
                key=p.msg.key,
                status="retry",
                error=f"connection lost before sending ({_cause(exc)})",
            )

    def _next(
        self, messages: Sequence[Message], pos: int, results: list[SendResult | None]
    ) -> tuple[_Prepared | None, int]:
        """The next sendable message from ``pos`` (recording those that cannot be sent)."""
        while pos < len(messages):
            p = self._prepare(pos, messages[pos])
            pos += 1
            if isinstance(p, SendResult):
                results[pos - 1] = p
                continue
            return p, pos
        return None, pos

    def _pipelined(
        self, smtp: Any, messages: Sequence[Message], pos: int, results: list[SendResult | None]
    ) -> int:
        """Send from ``pos`` with PIPELINING; returns where to go on after a drop.

        Each write holds the previous message's data (when its envelope was
        accepted) or an ``RSET`` (when it was refused), then the current
        message's ``MAIL``, ``RCPT`` and ``DATA``.
        """
        send, reply = _wire(smtp)
        cur, pos = self._next(messages, pos, results)
        if cur is None:
            return pos
        head = cur.envelope
        in_flight: _Prepared | None = None  # its data went out, its reply is not read yet
        rset = False  # an RSET went out before cur's envelope
        nxt: _Prepared | None = None
        try:
            while True:
                nxt = None
                send(head)
                nxt, pos = self._next(messages, pos, results)  # built while the server works
                if in_flight is not None:
                    self._sent(results, in_flight, reply())
                    in_flight = None
                if rset:
                    reply()
                    rset = False
                mail, rcpt, data = reply(), reply(), reply()
                if mail == 250 and rcpt in (250, 251) and data == 354:
                    in_flight = cur
                    if nxt is None:
                        send(cur.data)
                        self._sent(results, cur, reply())
                        return pos
                    head = cur.data + nxt.envelope
                    cur = nxt
                    continue
                if data == 354:
                    raise _Lost("the server accepted DATA after refusing the envelope")
                if mail != 250:
                    results[cur.index] = _refusal(cur.msg.key, mail, "sender")
                elif rcpt not in (250, 251):
                    results[cur.index] = _refusal(cur.msg.key, rcpt, "recipient")
                else:
                    results[cur.index] = _refusal(cur.msg.key, data, "message")
                if nxt is None:
                    send(b"RSET\r\n")
                    reply()
                    return pos
                head = b"RSET\r\n" + nxt.envelope
                rset = True
                cur = nxt
        except (OSError, ValueError, _Lost) as exc:
            self._drop()
            if in_flight is not None:
                self._lost(results, in_flight, exc, sent=True)
            if cur is not in_flight and results[cur.index] is None:
                self._lost(results, cur, exc, sent=False)
            return nxt.index if nxt is not None and nxt is not cur else pos

    def _stepwise(
        self, smtp: Any, messages: Sequence[Message], pos: int, results: list[SendResult | None]
    ) -> int:
        """Send from ``pos`` waiting for each reply; returns where to go on after a drop."""
        send, reply = _wire(smtp)
        nxt, pos = self._next(messages, pos, results)
        while nxt is not None:
            cur, nxt = nxt, None
            sent = False
            try:
                mail, rcpt, _ = cur.envelope.split(b"\r\n", 2)
                send(mail + b"\r\n")
                code, what = reply(), "sender"
                if code == 250:
                    send(rcpt + b"\r\n")
                    code, what = reply(), "recipient"
                    if code in (250, 251):
                        send(b"DATA\r\n")
                        code, what = reply(), "message"
                if code != 354:
                    results[cur.index] = _refusal(cur.msg.key, code, what)
                    send(b"RSET\r\n")
                    reply()
                    nxt, pos = self._next(messages, pos, results)
                    continue
                sent = True
                send(cur.data)
                nxt, pos = self._next(messages, pos, results)  # built while the server works
                self._sent(results, cur, reply())
            except (OSError, ValueError, _Lost) as exc:
                self._drop()
                if results[cur.index] is None:
                    self._lost(results, cur, exc, sent=sent)
                return nxt.index if nxt is not None else pos
        return pos

    def parse_callback(self, payload: bytes, headers: Mapping[str, str]) -> list[CallbackEvent]:
        """Bounce and complaint reports in the generic JSON shape (see the ``file`` channel)."""
        from crmkit.builtin.channels import _parse_generic

        return _parse_generic("email", payload)


def _cause(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, _Lost) else type(exc).__name__


def _wire(smtp: Any) -> tuple[Callable[[bytes], None], Callable[[], int]]:
    """``send(bytes)`` and ``reply() -> code`` over ``smtp``'s socket."""
    sock = smtp.sock
    if sock is None:
        raise _Lost("not connected")
    if smtp.file is None:
        smtp.file = sock.makefile("rb")
    readline = smtp.file.readline

    def reply() -> int:
        while True:
            line = readline(_MAX_REPLY_LINE)
            if not line:
                raise _Lost("the server closed the connection")
            if len(line) < 4 or not line[:3].isdigit():
                raise _Lost("the server sent a malformed reply")
            if line[3:4] != b"-":
                return int(line[:3])

    return sock.sendall, reply


def _quote_rcpt(to: str) -> bytes | None:
    """``<addr>`` for the envelope, or ``None`` when ``to`` is not a usable address."""
    if to.isascii() and "@" in to and not _ADDR_SPECIAL.search(to):
        return f"<{to}>".encode("ascii")
    import smtplib

    quoted = smtplib.quoteaddr(to)
    if quoted == "<>" or not quoted.isascii() or "\r" in quoted or "\n" in quoted:
        return None
    return quoted.encode("ascii")


def _header(name: str, value: str) -> str:
    """``Name: value`` with CRLF: as is when plain ASCII, else folded or RFC 2047 encoded."""
    if "\r" in value or "\n" in value:
        raise ChannelError(f"email channel: header {name!r} holds a line break")
    # an ASCII value is written as it is, but a subject holding "=?" is encoded
    # so that a reader never takes part of it for an encoded word
    plain = value.isascii() and ("=?" not in value or name != "Subject")
    if plain and len(name) + len(value) < 76:
        return f"{name}: {value}\r\n"
    from email.header import Header

    if plain:
        if len(name) + len(value) < 996:
            return f"{name}: {value}\r\n"
        folded = Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")
        return f"{name}: {folded}\r\n"
    if name in _ADDRESS_HEADERS:
        return f"{name}: {_address_header(value)}\r\n"
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n"


_ADDRESS_HEADERS = frozenset({"From", "To", "Reply-To", "Cc", "Sender"})


def _address_header(value: str) -> str:
    """An address list with display names encoded (RFC 2047); addresses stay ASCII."""
    from email.header import Header
    from email.utils import formataddr, getaddresses

    out = []
    for display, addr in getaddresses([value]):
        if not addr.isascii():
            raise ChannelError("email channel: an address needs SMTPUTF8, which is not supported")
        if display and not display.isascii():
            display = Header(display, "utf-8").encode()
        out.append(formataddr((display, addr)) if display else addr)
    return ", ".join(out)


def _text_part(subtype: str, text: str) -> str:
    """Headers and body of one text part: 7bit when it can be, else quoted-printable."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    crlf = text.replace("\n", "\r\n")
    if not crlf.endswith("\r\n"):
        crlf += "\r\n"
    if crlf.isascii() and (len(crlf) <= 998 or max(map(len, crlf.split("\r\n"))) <= 998):
        return (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{crlf}"
        )
    qp = binascii.b2a_qp(crlf.encode("utf-8"), istext=True).decode("ascii")
    if not qp.endswith("\r\n"):
        qp += "\r\n"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}"
    )


def _refusal(key: str, code: int, what: str) -> SendResult:
    if 400 <= code < 500:
        return SendResult(key=key, status="retry", error=f"SMTP {code}: {what} deferred")
    return SendResult(key=key, status="failed", error=f"SMTP {code}: {what} refused")


__all__ = ["EmailChannel", "EmailChannelConfig"]
