"""The built-in ``file`` channel: the conformance suite plus its own behaviour."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from crmkit.builtin import channels
from crmkit.builtin.channels import FileChannel, provider_id_for, read_outbox
from crmkit.errors import ChannelError
from crmkit.kinds import PluginContext
from crmkit.records import Message
from crmkit.testing.channels import ChannelConformance

pytest_plugins = ["crmkit.testing"]


class TestFileChannelConformance(ChannelConformance):
    channel_class = FileChannel
    plugin = channels

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"path": "out/outbox.jsonl", "fsync": False}

    def make_channel(self, config: Any, tmp_path: Path) -> Any:
        (tmp_path / "out").mkdir(exist_ok=True)
        return super().make_channel(config, tmp_path)


def _channel(tmp_path: Path, **config: Any) -> FileChannel:
    cfg = FileChannel.Config.model_validate({"path": "outbox.jsonl", **config})
    return FileChannel(cfg, PluginContext(base_dir=tmp_path))


def _messages(n: int, prefix: str = "k") -> list[Message]:
    return [
        Message(
            key=f"{prefix}{i}",
            contact_id=i,
            channel="file",
            to=f"p{i}@example.com",
            subject="Hi",
            body=f"body {i}",
            headers={"X-Campaign": "welcome"},
            metadata={"segment": "vip", "n": i},
        )
        for i in range(n)
    ]


def test_file_channel_is_registered_by_builtins(crmkit_registry: Any) -> None:
    reg = crmkit_registry.get("channel", "file")
    assert reg.cls is FileChannel
    assert reg.owner == "builtin.channels"


def test_send_batch_appends_one_line_per_message(tmp_path: Path) -> None:
    ch = _channel(tmp_path)
    msgs = _messages(3)
    results = ch.send_batch(msgs)
    assert [r.status for r in results] == ["sent"] * 3
    lines = (tmp_path / "outbox.jsonl").read_bytes().splitlines()
    assert len(lines) == 3
    entries = read_outbox(tmp_path / "outbox.jsonl")
    for msg, entry, result in zip(msgs, entries, results, strict=True):
        assert entry["key"] == msg.key
        assert entry["to"] == msg.to
        assert entry["body"] == msg.body
        assert entry["headers"] == {"X-Campaign": "welcome"}
        assert entry["metadata"]["n"] == msg.metadata["n"]
        assert entry["provider_id"] == result.provider_id
        sent_at = datetime.fromisoformat(entry["sent_at"])
        assert sent_at.tzinfo is not None


def test_second_batch_is_appended(tmp_path: Path) -> None:
    ch = _channel(tmp_path)
    ch.send_batch(_messages(2, "a"))
    ch.send_batch(_messages(3, "b"))
    keys = [e["key"] for e in read_outbox(tmp_path / "outbox.jsonl")]
    assert keys == ["a0", "a1", "b0", "b1", "b2"]


def test_provider_id_is_stable_and_distinct() -> None:
    assert provider_id_for("k1") == provider_id_for("k1")
    assert provider_id_for("k1") != provider_id_for("k2")
    assert "k1" not in provider_id_for("k1")


def test_provider_id_same_across_instances(tmp_path: Path) -> None:
    a = _channel(tmp_path).send_batch(_messages(1))
    b = _channel(tmp_path, path="other.jsonl").send_batch(_messages(1))
    assert a[0].provider_id == b[0].provider_id


def test_batch_is_written_in_one_write_call(tmp_path: Path, monkeypatch: Any) -> None:
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(channels.os, "write", counting_write)
    _channel(tmp_path).send_batch(_messages(50))
    assert len(writes) == 1
    assert writes[0] == (tmp_path / "outbox.jsonl").stat().st_size


def test_fsync_is_called_unless_disabled(tmp_path: Path, monkeypatch: Any) -> None:
    calls: list[int] = []
    monkeypatch.setattr(channels.os, "fsync", lambda fd: calls.append(fd))
    _channel(tmp_path).send_batch(_messages(2))
    assert len(calls) == 1
    _channel(tmp_path, fsync=False).send_batch(_messages(2, "z"))
    assert len(calls) == 1


def test_failed_write_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: Any) -> None:
    ch = _channel(tmp_path)
    ch.send_batch(_messages(2, "ok"))
    before = (tmp_path / "outbox.jsonl").read_bytes()
    real_write = os.write

    def torn_write(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(channels.os, "write", torn_write)
    with pytest.raises(ChannelError, match="No space left"):
        ch.send_batch(_messages(5, "bad"))
    assert (tmp_path / "outbox.jsonl").read_bytes() == before


def test_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    ch = _channel(tmp_path)
    ch.send_batch(_messages(2, "a"))
    path = tmp_path / "outbox.jsonl"
    with open(path, "ab") as f:  # what a crash in the middle of a write leaves
        f.write(b'{"key": "half", "bo')
    ch.send_batch(_messages(1, "b"))
    keys = [e["key"] for e in read_outbox(path)]
    assert keys == ["a0", "a1", "b0"]


def test_torn_only_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_bytes(b'{"key": "half"')
    _channel(tmp_path).send_batch(_messages(1))
    assert [e["key"] for e in read_outbox(path)] == ["k0"]


def test_batch_larger_than_max_batch_is_refused(tmp_path: Path) -> None:
    ch = _channel(tmp_path)
    with pytest.raises(ChannelError, match="max_batch"):
        ch.send_batch(_messages(FileChannel.max_batch + 1))
    assert not (tmp_path / "outbox.jsonl").exists()


def test_check_fails_when_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="does not exist"):
        _channel(tmp_path, path="missing/outbox.jsonl").check()


def test_check_fails_when_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ChannelError):
        _channel(tmp_path, path="afile/outbox.jsonl").check()


def test_check_fails_when_outbox_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "outbox.jsonl").mkdir()
    with pytest.raises(ChannelError, match="not a file"):
        _channel(tmp_path).check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_fails_when_folder_not_writable(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ChannelError, match="not writable"):
            _channel(tmp_path, path="ro/outbox.jsonl").check()
    finally:
        ro.chmod(0o755)


def test_write_error_is_a_channel_error_without_addresses(tmp_path: Path) -> None:
    ch = _channel(tmp_path, path="missing/outbox.jsonl")
    with pytest.raises(ChannelError) as info:
        ch.send_batch(_messages(1))
    assert "@" not in str(info.value)


def test_check_passes_on_writable_folder(tmp_path: Path) -> None:
    _channel(tmp_path).check()


def test_parse_callback_by_key_and_provider_id(tmp_path: Path) -> None:
    ch = _channel(tmp_path)
    events = ch.parse_callback(b'{"key": "k1", "status": "delivered"}', {})
    assert len(events) == 1
    assert events[0].key == "k1" and events[0].status == "delivered"
    events = ch.parse_callback(
        msgspec.json.encode(
            [
                {"provider_id": "file-abc", "status": "bounced", "detail": "mailbox full"},
                {"key": "k2", "unsubscribe": True},
            ]
        ),
        {},
    )
    assert [e.provider_id for e in events] == ["file-abc", None]
    assert events[0].status == "bounced" and events[0].detail == "mailbox full"
    assert events[1].unsubscribe and events[1].status is None


@pytest.mark.parametrize(
    "body",
    [b"", b"nope", b'{"status": "delivered"}', b'{"key": "k"}', b'{"key": "k", "status": "x"}'],
)
def test_parse_callback_rejects_invalid(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(ChannelError):
        _channel(tmp_path).parse_callback(body, {})
