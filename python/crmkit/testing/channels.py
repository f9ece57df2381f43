"""The conformance suite every channel plugin should pass.

Subclass :class:`ChannelConformance` in a test module::

    from crmkit.testing.channels import ChannelConformance

    class TestMyChannel(ChannelConformance):
        channel_class = MyChannel
        plugin = my_plugin_module          # optional: checks registration too

        def make_config(self, tmp_path):
            return {"url": fake_provider.url}

A channel that talks to a provider must be pointed at a fake one here (a local
server, a stub transport): the suite really sends. Override
:meth:`~ChannelConformance.make_messages` when the channel's addresses are not
email addresses.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from pydantic import ValidationError

from crmkit.errors import ChannelError
from crmkit.kinds import CallbackEvent, Channel, PluginConfig, PluginContext
from crmkit.records import Message, SendResult, SendStatus

SEND_STATUSES: frozenset[str] = frozenset(typing.get_args(SendStatus))

GARBAGE_CALLBACKS: tuple[bytes, ...] = (
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b"[1, 2, 3]",
    b'{"status": 5}',
    b'{"key": null, "status": "delivered"}',
    b'{"key": "k", "status": "no-such-status"}',
    b"{",
    b"\x00\xff\xfe garbage \x80",
    b"<xml>not json</xml>",
    b"a=1&b=2",
    b'"just a string"',
    b"9" * 5000,
)
"""Callback bodies that no channel should accept, nor crash on."""

MAX_TEST_BATCH = 1000
"""The largest batch the suite sends (``max_batch`` when it is smaller)."""


class ChannelConformance:
    """Tests any :class:`crmkit.kinds.Channel` must pass. Subclass as ``Test...``."""

    channel_class: ClassVar[type[Channel]]
    """The channel class under test."""
    plugin: ClassVar[object | None] = None
    """The plugin object (module) that registers ``channel_class``, if any."""

    # -- what a subclass provides --------------------------------------------------

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        """A config under which the channel can send (to a fake provider if need be)."""
        raise NotImplementedError("ChannelConformance subclasses must define make_config")

    def make_messages(self, n: int, prefix: str = "m") -> list[Message]:
        """``n`` messages with distinct keys, addressed for this channel."""
        return [
            Message(
                key=f"{prefix}-{i:05d}",
                contact_id=i + 1,
                channel=self.channel_class.name,
                to=f"person{i}@example.com",
                subject=f"Hello {i}",
                body=f"Hello number {i}\nSee you soon.",
            )
            for i in range(n)
        ]

    # -- helpers -------------------------------------------------------------------

    def make_channel(self, config: Mapping[str, Any], tmp_path: Path) -> Channel:
        """An instance of ``channel_class`` configured like the host would."""
        cfg = self.channel_class.Config.model_validate(dict(config))
        return self.channel_class(cfg, PluginContext(base_dir=tmp_path))

    def send(self, channel: Channel, messages: list[Message]) -> list[SendResult]:
        """``send_batch`` plus the checks every result list must pass."""
        results = channel.send_batch(messages)
        assert isinstance(results, list)
        assert len(results) == len(messages), "one result per message"
        assert sorted(r.key for r in results) == sorted(m.key for m in messages), (
            "results must be matched to messages by key"
        )
        by_key = {m.key: m for m in messages}
        for r in results:
            assert isinstance(r, SendResult)
            assert r.status in SEND_STATUSES
            if r.error is not None:
                assert by_key[r.key].to not in r.error, "errors must not carry addresses"
        return results

    # -- the suite -----------------------------------------------------------------

    def test_channel_has_name_and_config(self) -> None:
        cls = self.channel_class
        assert issubclass(cls, Channel)
        assert isinstance(cls.name, str) and cls.name and " " not in cls.name
        assert issubclass(cls.Config, PluginConfig), "Config must derive from PluginConfig"
        assert cls.__doc__, "a channel needs a docstring"
        assert isinstance(cls.max_batch, int) and cls.max_batch >= 1
        assert cls.rate_per_second is None or cls.rate_per_second > 0
        assert isinstance(cls.address_field, str) and cls.address_field

    def test_channel_config_forbids_unknown_keys(self, tmp_path: Path) -> None:
        config = dict(self.make_config(tmp_path))
        config["no_such_option_xyz"] = 1
        with pytest.raises(ValidationError) as info:
            self.channel_class.Config.model_validate(config)
        assert "no_such_option_xyz" in str(info.value)

    def test_channel_spec_is_json_schema(self) -> None:
        spec = self.channel_class.spec()
        assert isinstance(spec, dict) and spec.get("type") == "object"
        msgspec.json.encode(spec)

    def test_channel_is_registered_by_its_plugin(self) -> None:
        if self.plugin is None:
            pytest.skip("no plugin object given")
        from crmkit.plugins import Registry
        from crmkit.testing import build_plugin_manager

        registry = Registry(build_plugin_manager([self.plugin]), strict=True)
        assert registry.get("channel", self.channel_class.name).cls is self.channel_class

    def test_channel_check_passes(self, tmp_path: Path) -> None:
        self.make_channel(self.make_config(tmp_path), tmp_path).check()

    def test_channel_empty_batch(self, tmp_path: Path) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        assert channel.send_batch([]) == []

    def test_channel_one_result_per_message(self, tmp_path: Path) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        n = min(7, self.channel_class.max_batch)
        self.send(channel, self.make_messages(n))

    def test_channel_results_matched_by_key_not_order(self, tmp_path: Path) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        messages = self.make_messages(min(5, self.channel_class.max_batch))[::-1]
        results = self.send(channel, messages)
        assert {r.key for r in results} == {m.key for m in messages}

    def test_channel_accepts_a_full_batch(self, tmp_path: Path) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        n = min(self.channel_class.max_batch, MAX_TEST_BATCH)
        results = self.send(channel, self.make_messages(n, prefix="full"))
        assert len(results) == n

    def test_channel_successive_batches(self, tmp_path: Path) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        n = min(3, self.channel_class.max_batch)
        self.send(channel, self.make_messages(n, prefix="a"))
        self.send(channel, self.make_messages(n, prefix="b"))

    @pytest.mark.parametrize("payload", GARBAGE_CALLBACKS)
    def test_channel_parse_callback_survives_garbage(self, tmp_path: Path, payload: bytes) -> None:
        channel = self.make_channel(self.make_config(tmp_path), tmp_path)
        try:
            events = channel.parse_callback(payload, {"content-type": "application/json"})
        except ChannelError:
            return
        assert isinstance(events, list)
        assert all(isinstance(e, CallbackEvent) for e in events)


__all__ = ["GARBAGE_CALLBACKS", "MAX_TEST_BATCH", "SEND_STATUSES", "ChannelConformance"]
