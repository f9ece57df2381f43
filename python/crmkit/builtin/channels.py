"""Built-in channels.

``file``: an outbox channel that appends every message it is given as one JSON
line to a file. It sends nothing anywhere, which makes it the channel for
quickstarts, dry runs and tests, and a hand-off point for tools that read the
file and deliver the messages themselves.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import msgspec

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


@hookimpl
def crmkit_register_channels(register: Callable[[type[Channel]], None]) -> None:
    """Register the built-in channels."""
    register(FileChannel)


__all__ = ["FileChannel", "FileChannelConfig", "OutboxEntry", "provider_id_for", "read_outbox"]
