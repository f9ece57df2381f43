"""Built-in channels.

``file``: an outbox channel that appends every message it is given as one JSON
line to a file. It sends nothing anywhere, which makes it the channel for
quickstarts, dry runs and tests, and a hand-off point for tools that read the
file and deliver the messages themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec
from pydantic import Field

from crmkit.builtin.email_channel import EmailChannel, EmailChannelConfig
from crmkit.errors import ChannelError
from crmkit.hookspecs import hookimpl
from crmkit.kinds import CallbackEvent, Channel, PluginConfig, PluginContext
from crmkit.records import DeliveryStatus, Message, SendResult


class OutboxEntry(Message, frozen=True, kw_only=True):
    """One line of the ``file`` channel's outbox: the message and when it was written."""

    provider_id: str
    """The id the channel reported for this message (stable for a key)."""
    sent_at: datetime
    """When the line was written (UTC)."""


class _Callback(msgspec.Struct, frozen=True, kw_only=True):
    key: str | None = None
    provider_id: str | None = None
    status: DeliveryStatus | None = None
    unsubscribe: bool = False
    detail: str | None = None


class _KeyOnly(msgspec.Struct):
    key: str


_encoder = msgspec.json.Encoder()
_callback_one = msgspec.json.Decoder(_Callback)
_callback_many = msgspec.json.Decoder(list[_Callback])


def provider_id_for(key: str) -> str:
    """The ``file`` channel's provider id for a message key: stable across runs."""
    return "file-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


class FileChannelConfig(PluginConfig):
    """Configuration of the ``file`` channel."""

    path: str
    """The outbox file (JSON lines), relative to the workflow folder."""
    fsync: bool = True
    """Flush each batch to disk (``os.fsync``) before reporting it sent."""


class FileChannel(Channel):
    """Appends each message as one JSON line to an outbox file.

    A batch is encoded first and appended with a single ``write`` while the
    file is locked, then flushed (and ``fsync``-ed unless ``fsync = false``):
    a batch is on disk before it is reported ``sent``. A line left half
    written by a crash is cut off before the next batch is appended, so every
    line of the file is a whole JSON object. Each line holds the message, its
    ``provider_id`` and ``sent_at``.
    """

    name = "file"
    description = "Write messages as JSON lines to an outbox file (sends nothing)."
    Config: ClassVar[type[PluginConfig]] = FileChannelConfig
    max_batch: ClassVar[int] = 1000
    rate_per_second: ClassVar[float | None] = None
    address_field: ClassVar[str] = "email"

    config: FileChannelConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self.path: Path = context.resolve(self.config.path)

    def check(self) -> None:
        """Raise :class:`ChannelError` unless the outbox's folder exists and is writable."""
        folder = self.path.parent
        if not folder.is_dir():
            raise ChannelError(f"file channel: outbox folder {str(folder)!r} does not exist")
        if self.path.exists() and not self.path.is_file():
            raise ChannelError(f"file channel: outbox {str(self.path)!r} is not a file")
        target = self.path if self.path.exists() else folder
        if not os.access(target, os.W_OK):
            raise ChannelError(f"file channel: {str(target)!r} is not writable")

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Append ``messages`` to the outbox; every one is reported ``sent``."""
        if not messages:
            return []
        if len(messages) > self.max_batch:
            raise ChannelError(
                f"file channel: batch of {len(messages)} exceeds max_batch {self.max_batch}"
            )
        now = datetime.now(UTC)
        buf = bytearray()
        results: list[SendResult] = []
        for msg in messages:
            pid = provider_id_for(msg.key)
            entry = OutboxEntry(**msgspec.structs.asdict(msg), provider_id=pid, sent_at=now)
            buf += _encoder.encode(entry)
            buf += b"\n"
            results.append(SendResult(key=msg.key, status="sent", provider_id=pid))
        try:
            _append_whole(self.path, bytes(buf), fsync=self.config.fsync)
        except OSError as exc:
            raise ChannelError(
                f"file channel: cannot write outbox {str(self.path)!r}: {exc.strerror or exc}"
            ) from None
        return results

    def reconcile(self, messages: Sequence[Message]) -> list[SendResult]:
        """Settle messages whose outcome is unknown by looking for them in the outbox.

        A message whose key is in the file was written (``sent``); one that is
        not never left (``retry``: safe to send again).
        """
        present: set[str] = set()
        if self.path.exists():
            dec = msgspec.json.Decoder(_KeyOnly)
            with open(self.path, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        try:
                            present.add(dec.decode(line).key)
                        except msgspec.DecodeError:
                            continue
        return [
            SendResult(key=m.key, status="sent", provider_id=provider_id_for(m.key))
            if m.key in present
            else SendResult(key=m.key, status="retry")
            for m in messages
        ]

    def parse_callback(self, payload: bytes, headers: Mapping[str, str]) -> list[CallbackEvent]:
        """Parse ``{"key" or "provider_id", "status"}`` (or a list of them).

        ``status`` is a delivery status (``delivered``, ``bounced``, ...);
        ``unsubscribe: true`` reports an opt-out. Anything else raises
        :class:`ChannelError`.
        """
        body = payload.strip()
        try:
            items = (
                _callback_many.decode(body) if body[:1] == b"[" else [_callback_one.decode(body)]
            )
        except msgspec.DecodeError:
            raise ChannelError(
                "file channel: callback body must be a JSON object (or list) with "
                "'key' or 'provider_id' and a delivery 'status'"
            ) from None
        events = []
        for item in items:
            if item.key is None and item.provider_id is None:
                raise ChannelError("file channel: callback names neither 'key' nor 'provider_id'")
            if item.status is None and not item.unsubscribe:
                raise ChannelError("file channel: callback has no 'status'")
            events.append(
                CallbackEvent(
                    key=item.key,
                    provider_id=item.provider_id,
                    status=item.status,
                    unsubscribe=item.unsubscribe,
                    detail=item.detail,
                )
            )
        return events


def _lock(fd: int) -> Callable[[], None]:
    """Take an exclusive lock on ``fd`` where the platform has one; return the unlock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return lambda: None
    fcntl.flock(fd, fcntl.LOCK_EX)
    return lambda: fcntl.flock(fd, fcntl.LOCK_UN)


def _append_whole(path: Path, data: bytes, *, fsync: bool) -> None:
    """Append ``data`` to ``path`` as a whole, or leave the file as it was.

    A torn last line (no final newline, from a crash during an earlier write)
    is cut off first. If the write fails the file is truncated back to where it
    was.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o644)
    try:
        unlock = _lock(fd)
        try:
            start = _repair_tail(fd)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if fsync:
                    os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, start)
                raise
        finally:
            unlock()
    finally:
        os.close(fd)


def _repair_tail(fd: int) -> int:
    """Cut a torn last line off the file; return the file's size afterwards."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    # Walk back to the last newline: everything after it is a half-written line.
    end = size
    chunk = 64 * 1024
    while end > 0:
        begin = max(0, end - chunk)
        block = os.pread(fd, end - begin, begin)
        nl = block.rfind(b"\n")
        if nl >= 0:
            keep = begin + nl + 1
            os.ftruncate(fd, keep)
            return keep
        end = begin
    os.ftruncate(fd, 0)
    return 0


def read_outbox(path: str | Path) -> list[dict[str, Any]]:
    """Every entry of a ``file`` channel outbox, in the order written."""
    with open(path, "rb") as f:
        return [msgspec.json.decode(line) for line in f if line.strip()]


# -- shared helpers for provider channels ------------------------------------------------


def _secret_from_env(channel: str, var: str | None, what: str) -> str | None:
    """The value of environment variable ``var``; ChannelError naming ``var`` when unset."""
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise ChannelError(f"{channel} channel: environment variable {var} ({what}) is not set")
    return value


def _parse_generic(channel: str, payload: bytes) -> list[CallbackEvent]:
    """``{"key" or "provider_id", "status"}`` objects (or a list): the generic callback shape."""
    body = payload.strip()
    try:
        items = _callback_many.decode(body) if body[:1] == b"[" else [_callback_one.decode(body)]
    except msgspec.DecodeError:
        raise ChannelError(
            f"{channel} channel: callback body must be a JSON object (or list) with "
            "'key' or 'provider_id' and a delivery 'status'"
        ) from None
    events = []
    for item in items:
        if item.key is None and item.provider_id is None:
            raise ChannelError(f"{channel} channel: callback names neither 'key' nor 'provider_id'")
        if item.status is None and not item.unsubscribe:
            raise ChannelError(f"{channel} channel: callback has no 'status'")
        events.append(
            CallbackEvent(
                key=item.key,
                provider_id=item.provider_id,
                status=item.status,
                unsubscribe=item.unsubscribe,
                detail=item.detail,
            )
        )
    return events


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _http_result(key: str, status: int, retry_after: str | None, pid: str | None) -> SendResult:
    """A send result from an HTTP status: 2xx sent, 408/429/5xx retry, other 4xx failed."""
    if 200 <= status < 300:
        return SendResult(key=key, status="sent", provider_id=pid)
    if status in (408, 425, 429) or status >= 500:
        return SendResult(
            key=key,
            status="retry",
            error=f"provider answered HTTP {status}",
            retry_after=_retry_after(retry_after),
        )
    return SendResult(key=key, status="failed", error=f"provider refused: HTTP {status}")


# -- email ------------------------------------------------------------------------------


def _post(client: Any, key: str, url: str, **kwargs: Any) -> tuple[Any, SendResult | None]:
    """POST one message: the response, or the result to record when none came.

    A connection that never opened is retried (nothing was sent); an error after
    the request went out leaves the outcome ``unknown`` (never re-sent blindly).
    """
    import httpx

    try:
        return client.post(url, **kwargs), None
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return None, SendResult(
            key=key, status="retry", error=f"cannot connect ({type(exc).__name__})"
        )
    except httpx.HTTPError as exc:
        return None, SendResult(
            key=key, status="unknown", error=f"no answer after sending ({type(exc).__name__})"
        )


class WebhookChannelConfig(PluginConfig):
    """Configuration of the ``webhook`` channel."""

    url: str
    """Where each message is POSTed."""
    secret_env: str = "CRMKIT_WEBHOOK_SECRET"
    """Environment variable holding the signing secret (``whsec_<base64>`` or raw)."""
    event_type: str = "crmkit.message"
    timeout: float = 10.0
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers."""
    resend_unknown: bool = False
    """Resend messages whose outcome is unknown, with the same ``webhook-id``
    (safe only when the receiver drops ids it has seen, as the scheme asks)."""
    rate_per_second: float | None = None


def standard_webhook_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (Standard Webhooks)."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def webhook_secret_bytes(secret: str) -> bytes:
    """The key bytes of a Standard Webhooks secret (``whsec_`` + base64, or raw text)."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode("utf-8")


class _WebhookBody(msgspec.Struct, kw_only=True):
    type: str
    timestamp: str
    data: dict[str, Any]


class WebhookChannel(Channel):
    """POSTs each message as JSON, signed per the Standard Webhooks scheme.

    Headers: ``webhook-id`` (the outbox key, also sent as ``Idempotency-Key``),
    ``webhook-timestamp`` (epoch seconds) and ``webhook-signature``
    (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``). 2xx is sent; 408, 429
    and 5xx are retried (``Retry-After`` honoured); other 4xx fail; a timeout
    after the request left is ``unknown``.
    """

    name = "webhook"
    description = "POST messages to a URL, signed (Standard Webhooks)."
    Config: ClassVar[type[PluginConfig]] = WebhookChannelConfig
    max_batch: ClassVar[int] = 100
    address_field: ClassVar[str] = "id"

    config: WebhookChannelConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self._client: Any = None

    def _secret(self) -> bytes:
        raw = _secret_from_env("webhook", self.config.secret_env, "signing secret")
        assert raw is not None
        try:
            return webhook_secret_bytes(raw)
        except ValueError:
            raise ChannelError(
                f"webhook channel: {self.config.secret_env} is not valid base64 after 'whsec_'"
            ) from None

    def check(self) -> None:
        """Raise :class:`ChannelError` when the URL or the secret is unusable."""
        if not self.config.url.startswith(("http://", "https://")):
            raise ChannelError("webhook channel: 'url' must start with http:// or https://")
        self._secret()

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.config.timeout)
        return self._client

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """POST each message; one result per message."""

        secret = self._secret()
        client = self._http()
        results: list[SendResult] = []
        for msg in messages:
            ts = int(time.time())
            body = _encoder.encode(
                _WebhookBody(
                    type=self.config.event_type,
                    timestamp=datetime.fromtimestamp(ts, UTC).isoformat(),
                    data={
                        "key": msg.key,
                        "contact_id": msg.contact_id,
                        "subject": msg.subject,
                        "body": msg.body,
                        "html": msg.html,
                        "metadata": msg.metadata,
                    },
                )
            )
            headers = {
                **self.config.headers,
                "content-type": "application/json",
                "webhook-id": msg.key,
                "webhook-timestamp": str(ts),
                "webhook-signature": standard_webhook_signature(secret, msg.key, ts, body),
                "idempotency-key": msg.key,
            }
            resp, failure = _post(client, msg.key, self.config.url, content=body, headers=headers)
            if failure is not None:
                results.append(failure)
                continue
            results.append(
                _http_result(msg.key, resp.status_code, resp.headers.get("retry-after"), msg.key)
            )
        return results

    def reconcile(self, messages: Sequence[Message]) -> list[SendResult]:
        """With ``resend_unknown``, resend under the same ``webhook-id``; else leave unknown."""
        status: Literal["retry", "unknown"] = "retry" if self.config.resend_unknown else "unknown"
        return [SendResult(key=m.key, status=status) for m in messages]

    def parse_callback(self, payload: bytes, headers: Mapping[str, str]) -> list[CallbackEvent]:
        """Status reports in the generic JSON shape (see the ``file`` channel)."""
        return _parse_generic("webhook", payload)


# -- sms ------------------------------------------------------------------------------------

STOP_WORDS: frozenset[str] = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
"""Inbound SMS bodies read as an opt-out."""

_SMS_STATUS: dict[str, DeliveryStatus | None] = {
    "delivered": "delivered",
    "undelivered": "bounced",
    "failed": "failed",
    "sent": None,
    "queued": None,
    "accepted": None,
    "sending": None,
    "scheduled": None,
}


class SmsChannelConfig(PluginConfig):
    """Configuration of the ``sms`` channel (the common SMS-provider REST shape)."""

    base_url: str
    """The provider's API root, e.g. ``https://api.provider.example/2010-04-01``."""
    account: str
    """Account id: the basic-auth user name and ``{account}`` in ``path``."""
    token_env: str
    """Environment variable holding the API token (the basic-auth password)."""
    sender: str
    """The ``From`` number or sender id."""
    path: str = "/Accounts/{account}/Messages.json"
    status_callback: str | None = None
    """URL the provider should post delivery statuses to."""
    timeout: float = 10.0
    rate_per_second: float | None = None


class SmsChannel(Channel):
    """Sends SMS through a provider's REST API (form POST, basic auth).

    Each message is one ``POST {base_url}{path}`` with ``To``, ``From``,
    ``Body`` (and ``StatusCallback``); the JSON answer's ``sid`` (or ``id``) is
    the provider id. 429 and 5xx are retried (``Retry-After`` honoured).
    Status callbacks are form posts with ``MessageSid`` and ``MessageStatus``;
    an inbound message whose body is a stop word (``STOP``, …) is an opt-out.
    """

    name = "sms"
    description = "Send SMS through a provider's REST API (configurable base URL)."
    Config: ClassVar[type[PluginConfig]] = SmsChannelConfig
    max_batch: ClassVar[int] = 100
    address_field: ClassVar[str] = "phone"

    config: SmsChannelConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self._client: Any = None

    def check(self) -> None:
        """Raise :class:`ChannelError` when the base URL or the token is unusable."""
        if not self.config.base_url.startswith(("http://", "https://")):
            raise ChannelError("sms channel: 'base_url' must start with http:// or https://")
        _secret_from_env("sms", self.config.token_env, "API token")

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            token = _secret_from_env("sms", self.config.token_env, "API token") or ""
            self._client = httpx.Client(
                timeout=self.config.timeout, auth=(self.config.account, token)
            )
        return self._client

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """POST each message; one result per message."""

        client = self._http()
        url = self.config.base_url.rstrip("/") + self.config.path.format(
            account=self.config.account
        )
        results: list[SendResult] = []
        for msg in messages:
            form = {"To": msg.to, "From": self.config.sender, "Body": msg.body}
            if self.config.status_callback:
                form["StatusCallback"] = self.config.status_callback
            resp, failure = _post(
                client, msg.key, url, data=form, headers={"idempotency-key": msg.key}
            )
            if failure is not None:
                results.append(failure)
                continue
            pid = None
            if 200 <= resp.status_code < 300:
                try:
                    answer = msgspec.json.decode(resp.content)
                except msgspec.DecodeError:
                    answer = None
                if isinstance(answer, dict):
                    raw = answer.get("sid") or answer.get("id")
                    pid = str(raw) if raw is not None else None
                if pid is None:
                    results.append(
                        SendResult(
                            key=msg.key,
                            status="unknown",
                            error="provider accepted the request but returned no message id",
                        )
                    )
                    continue
            results.append(
                _http_result(msg.key, resp.status_code, resp.headers.get("retry-after"), pid)
            )
        return results

    def parse_callback(self, payload: bytes, headers: Mapping[str, str]) -> list[CallbackEvent]:
        """A status callback (``MessageSid``, ``MessageStatus``) or an inbound message.

        Raises :class:`ChannelError` when the body is neither.
        """
        from urllib.parse import parse_qs

        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ChannelError("sms channel: callback body is not UTF-8 form data") from None
        form = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        if sid and status and status.lower() in _SMS_STATUS:
            mapped = _SMS_STATUS[status.lower()]
            if mapped is None:
                return []
            detail = form.get("ErrorCode")
            return [
                CallbackEvent(
                    provider_id=sid,
                    status=mapped,
                    detail=f"error code {detail}" if detail else None,
                )
            ]
        sender, body = form.get("From"), form.get("Body")
        if sender and body is not None:
            if body.strip().lower() in STOP_WORDS:
                return [CallbackEvent(unsubscribe=True, address=sender, detail="inbound stop")]
            return []
        raise ChannelError(
            "sms channel: callback is neither a status report (MessageSid, MessageStatus) "
            "nor an inbound message (From, Body)"
        )


@hookimpl
def crmkit_register_channels(register: Callable[[type[Channel]], None]) -> None:
    """Register the built-in channels."""
    register(FileChannel)
    register(EmailChannel)
    register(WebhookChannel)
    register(SmsChannel)


__all__ = [
    "STOP_WORDS",
    "EmailChannel",
    "EmailChannelConfig",
    "FileChannel",
    "FileChannelConfig",
    "OutboxEntry",
    "SmsChannel",
    "SmsChannelConfig",
    "WebhookChannel",
    "WebhookChannelConfig",
    "provider_id_for",
    "read_outbox",
    "standard_webhook_signature",
    "webhook_secret_bytes",
]
