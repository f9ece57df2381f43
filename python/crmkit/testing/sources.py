"""The conformance suite every source plugin should pass.

Subclass :class:`SourceConformance` in a test module, name the class under
test and say how to configure it on some sample data::

    from crmkit.testing.sources import SourceConformance

    class TestMySource(SourceConformance):
        source_class = MySource
        plugin = my_plugin_module          # optional: checks registration too

        def make_config(self, tmp_path):
            (tmp_path / "data.txt").write_text("...")
            return {"path": "data.txt"}    # relative paths resolve against tmp_path

Optionally override :meth:`~SourceConformance.add_records` (to check that a
re-run reads only what is new) and
:meth:`~SourceConformance.make_broken_config` (to check that ``check()``
refuses it).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from pydantic import ValidationError

from crmkit.errors import SourceError
from crmkit.kinds import PluginConfig, PluginContext, Source, StreamInfo
from crmkit.records import Batch, Checkpoint, RecordKind, Reject

RECORD_KINDS: frozenset[str] = frozenset(typing.get_args(RecordKind))


class SourceConformance:
    """Tests any :class:`crmkit.kinds.Source` must pass. Subclass as ``Test...``."""

    source_class: ClassVar[type[Source]]
    """The source class under test."""
    plugin: ClassVar[object | None] = None
    """The plugin object (module) that registers ``source_class``, if any."""

    # -- what a subclass provides --------------------------------------------------

    def make_config(self, tmp_path: Path) -> dict[str, Any]:
        """Write sample data under ``tmp_path`` and return a config that reads it.

        The data must hold at least one record.
        """
        raise NotImplementedError("SourceConformance subclasses must define make_config")

    def add_records(self, config: Mapping[str, Any], tmp_path: Path) -> int | None:
        """Add new records to the data ``config`` reads; return how many.

        ``None`` (the default) skips the test that a re-run reads only them.
        """
        return None

    def make_broken_config(self, tmp_path: Path) -> dict[str, Any] | None:
        """A config that validates but cannot be read; ``None`` skips that test."""
        return None

    # -- helpers -------------------------------------------------------------------

    def make_source(self, config: Mapping[str, Any], tmp_path: Path) -> Source:
        """An instance of ``source_class`` configured like the host would."""
        cfg = self.source_class.Config.model_validate(dict(config))
        return self.source_class(cfg, PluginContext(base_dir=tmp_path))

    @staticmethod
    def read_all(
        source: Source, state: Mapping[str, Any] | None
    ) -> tuple[list[Batch], list[Checkpoint]]:
        """Every batch and checkpoint ``source.read(state)`` yields."""
        batches: list[Batch] = []
        checkpoints: list[Checkpoint] = []
        for item in source.read(state):
            if isinstance(item, Batch):
                batches.append(item)
            elif isinstance(item, Checkpoint):
                checkpoints.append(item)
            else:
                pytest.fail(f"read() yielded {type(item).__name__}, not a Batch or Checkpoint")
        return batches, checkpoints

    @staticmethod
    def stored_state(checkpoints: list[Checkpoint]) -> dict[str, Any]:
        """The last checkpoint's state as the host stores it: through JSON."""
        assert checkpoints, "read() must yield at least one Checkpoint"
        data = msgspec.json.encode(checkpoints[-1].state)
        state: dict[str, Any] = msgspec.json.decode(data)
        return state

    # -- the suite -----------------------------------------------------------------

    def test_source_has_name_and_config(self) -> None:
        cls = self.source_class
        assert issubclass(cls, Source)
        assert isinstance(cls.name, str) and cls.name, "a source needs a non-empty name"
        assert cls.name == cls.name.strip() and " " not in cls.name
        assert issubclass(cls.Config, PluginConfig), "Config must derive from PluginConfig"
        assert cls.__doc__, "a source needs a docstring"

    def test_source_config_forbids_unknown_keys(self, tmp_path: Path) -> None:
        config = dict(self.make_config(tmp_path))
        config["no_such_option_xyz"] = 1
        with pytest.raises(ValidationError) as info:
            self.source_class.Config.model_validate(config)
        assert "no_such_option_xyz" in str(info.value)

    def test_source_spec_is_json_schema(self) -> None:
        spec = self.source_class.spec()
        assert isinstance(spec, dict)
        assert spec.get("type") == "object"
        assert isinstance(spec.get("properties", {}), dict)
        msgspec.json.encode(spec)  # serializable

    def test_source_is_registered_by_its_plugin(self) -> None:
        if self.plugin is None:
            pytest.skip("no plugin object given")
        from crmkit.plugins import Registry
        from crmkit.testing import build_plugin_manager

        registry = Registry(build_plugin_manager([self.plugin]), strict=True)
        assert registry.get("source", self.source_class.name).cls is self.source_class

    def test_source_check_passes(self, tmp_path: Path) -> None:
        self.make_source(self.make_config(tmp_path), tmp_path).check()

    def test_source_check_fails_on_broken_config(self, tmp_path: Path) -> None:
        config = self.make_broken_config(tmp_path)
        if config is None:
            pytest.skip("no broken config given")
        with pytest.raises(SourceError):
            self.make_source(config, tmp_path).check()

    def test_source_discover_returns_stream_info(self, tmp_path: Path) -> None:
        found = self.make_source(self.make_config(tmp_path), tmp_path).discover()
        assert isinstance(found, list)
        for info in found:
            assert isinstance(info, StreamInfo)
            assert info.kind in RECORD_KINDS
            assert all(isinstance(f, str) for f in info.fields)

    def test_source_read_yields_columnar_batches(self, tmp_path: Path) -> None:
        source = self.make_source(self.make_config(tmp_path), tmp_path)
        batches, checkpoints = self.read_all(source, None)
        assert sum(len(b) for b in batches) > 0, "the sample data must yield records"
        for batch in batches:
            assert batch.kind in RECORD_KINDS
            assert all(isinstance(n, int) and n >= 1 for n in batch.lines), "lines are 1-based"
            for field, column in batch.columns.items():
                assert isinstance(field, str) and field
                assert len(column) == len(batch.lines), f"column {field!r} length != lines"
            for reject in batch.rejects:
                assert isinstance(reject, Reject)
                assert reject.line >= 1 and reject.reason
        assert checkpoints, "read() must yield a Checkpoint after its batches"
        self.stored_state(checkpoints)

    def test_source_read_is_deterministic(self, tmp_path: Path) -> None:
        config = self.make_config(tmp_path)
        first, _ = self.read_all(self.make_source(config, tmp_path), None)
        second, _ = self.read_all(self.make_source(config, tmp_path), None)
        assert [(b.kind, b.lines, b.columns) for b in first] == [
            (b.kind, b.lines, b.columns) for b in second
        ]

    def test_source_rereading_from_checkpoint_yields_nothing(self, tmp_path: Path) -> None:
        config = self.make_config(tmp_path)
        _, checkpoints = self.read_all(self.make_source(config, tmp_path), None)
        state = self.stored_state(checkpoints)
        again, _ = self.read_all(self.make_source(config, tmp_path), state)
        assert sum(len(b) for b in again) == 0, "a re-run from the last checkpoint re-read rows"

    def test_source_reads_only_new_records(self, tmp_path: Path) -> None:
        config = self.make_config(tmp_path)
        _, checkpoints = self.read_all(self.make_source(config, tmp_path), None)
        state = self.stored_state(checkpoints)
        added = self.add_records(config, tmp_path)
        if added is None:
            pytest.skip("add_records not given")
        batches, _ = self.read_all(self.make_source(config, tmp_path), state)
        assert sum(len(b) for b in batches) == added


__all__ = ["RECORD_KINDS", "SourceConformance"]
