"""Every hook is tested: a ``test_hook_<name>`` exists for each, and these test them.

``<name>`` is the hook's name without the ``crmkit_`` prefix
(``crmkit_register_sources`` -> ``test_hook_register_sources``). The event hooks
are tested here through the typed :class:`crmkit.plugins.Hooks` facade; the
kernel's own firing of them is tested with the kernel.
"""

from __future__ import annotations

import ast
import inspect
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import click
import pytest
from click.testing import CliRunner

from crmkit import hookimpl, hookspecs
from crmkit.errors import ConfigError, PluginError
from crmkit.kinds import (
    Categorizer,
    Channel,
    Engine,
    PluginConfig,
    Report,
    Reporter,
    Snapshot,
    Source,
    StoreBackend,
)
from crmkit.plugins import Hooks, PluginManager, Registry
from crmkit.records import Batch, Checkpoint, MergeEvent, Message, SegmentChange, SendResult
from crmkit.testing import build_plugin_manager

TESTS = Path(__file__).resolve().parent
KERNEL: Any = SimpleNamespace(name="a stand-in kernel")


def _hooks() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return [n for n, f in vars(hookspecs).items() if n.startswith("crmkit_") and hasattr(f, marker)]


def _test_functions() -> set[str]:
    names: set[str] = set()
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def test_every_hook_has_a_test() -> None:
    tests = _test_functions()
    hooks = _hooks()
    assert hooks
    missing = [h for h in hooks if "test_hook_" + h.removeprefix("crmkit_") not in tests]
    assert not missing, f"hooks without a test_hook_<name> test in tests/: {missing}"


def test_every_hook_test_names_a_real_hook() -> None:
    hooks = {h.removeprefix("crmkit_") for h in _hooks()}
    stale = [t for t in _test_functions() if t.startswith("test_hook_") and t[10:] not in hooks]
    assert not stale, f"test_hook_* tests for hooks that do not exist: {stale}"


def test_every_hookspec_is_typed_and_documented() -> None:
    for name in _hooks():
        fn = getattr(hookspecs, name)
        assert inspect.getdoc(fn), f"{name} has no docstring"
        assert ".. versionadded::" in (fn.__doc__ or ""), f"{name} lacks versionadded"
        sig = inspect.signature(fn)
        for param in sig.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) untyped"
            assert param.default is inspect.Parameter.empty, f"{name}({param.name}) has a default"
        assert sig.return_annotation is not inspect.Signature.empty, f"{name} return untyped"


def test_plugin_api_version() -> None:
    import crmkit

    major, minor = crmkit.PLUGIN_API
    assert isinstance(major, int) and isinstance(minor, int) and major >= 1


# -- helpers ----------------------------------------------------------------------------


def _manager(*plugins: object) -> PluginManager:
    return build_plugin_manager(plugins)


def _plugin(name: str, **impls: Any) -> object:
    """A plugin object named ``name`` whose attributes are the given hook implementations."""
    ns = SimpleNamespace(__name__=name)
    for hook, fn in impls.items():
        setattr(ns, hook, hookimpl(fn))
    return ns


class _NoConfig(PluginConfig):
    pass


class _WithPath(PluginConfig):
    path: str


def _registers(hook: str, cls: type[Any]) -> object:
    def impl(register: Any) -> None:
        register(cls)

    return _plugin(f"test-{cls.name}", **{hook: impl})


# -- registration hooks -----------------------------------------------------------------


class ToySource(Source):
    """Yields two contacts."""

    name = "toy-source"
    Config = _WithPath

    def read(self, state: Any) -> Iterator[Batch | Checkpoint]:
        yield Batch(kind="contacts", columns={"email": ["a@x.test", "b@x.test"]}, lines=[1, 2])
        yield Checkpoint(state={"done": True})


def test_hook_register_sources(tmp_path: Path) -> None:
    registry = Registry(_manager(_registers("crmkit_register_sources", ToySource)), strict=True)
    reg = registry.get("source", "toy-source")
    assert reg.cls is ToySource and reg.owner == "test-toy-source"
    source = registry.create("source", "toy-source", {"path": "x"}, base_dir=tmp_path)
    assert isinstance(source, ToySource) and source.context.base_dir == tmp_path
    items = list(source.read(None))
    assert isinstance(items[0], Batch) and len(items[0]) == 2
    with pytest.raises(ConfigError, match=r"sources\[0\]\.pathh: unknown field"):
        registry.create("source", "toy-source", {"path": "x", "pathh": "y"}, where="sources[0]")


class ToyCategorizer(Categorizer):
    """Counts interactions."""

    name = "toy-categorizer"
    Config = _NoConfig
    produces: ClassVar[Mapping[str, Any]] = {"n_interactions": "integer"}

    def categorize(self, snapshot: Snapshot) -> dict[str, list[int]]:
        counts = [0] * len(snapshot.ids)
        for idx in snapshot.interactions["contact_index"]:
            counts[idx] += 1
        return {"n_interactions": counts}


def test_hook_register_categorizers() -> None:
    hook = "crmkit_register_categorizers"
    registry = Registry(_manager(_registers(hook, ToyCategorizer)), strict=True)
    cat = registry.create("categorizer", "toy-categorizer", {})
    snap = Snapshot(ids=[10, 20], contacts={}, interactions={"contact_index": [1, 1, 0]}, as_of=0.0)
    assert cat.categorize(snap) == {"n_interactions": [1, 2]}


class ToyChannel(Channel):
    """Accepts everything."""

    name = "toy-channel"
    Config = _NoConfig

    def send_batch(self, messages: Any) -> list[SendResult]:
        return [SendResult(key=m.key, status="sent") for m in messages]


def test_hook_register_channels() -> None:
    registry = Registry(_manager(_registers("crmkit_register_channels", ToyChannel)), strict=True)
    assert "toy-channel" in registry.names("channel")
    assert "file" in registry.names("channel"), "built-ins register through the same hook"
    ch = registry.create("channel", "toy-channel", {})
    msg = Message(key="k", contact_id=1, channel="toy-channel", to="x", body="b")
    assert ch.send_batch([msg]) == [SendResult(key="k", status="sent")]


class ToyReporter(Reporter):
    """Writes the title."""

    name = "toy-reporter"
    Config = _NoConfig

    def render(self, report: Report, out: Any) -> None:
        out.write(report.title)


def test_hook_register_reporters() -> None:
    import io

    registry = Registry(_manager(_registers("crmkit_register_reporters", ToyReporter)), strict=True)
    assert {"toy-reporter", "terminal", "json", "csv", "jsonl"} <= set(registry.names("reporter"))
    buf = io.StringIO()
    registry.create("reporter", "toy-reporter", {}).render(Report(title="T", tables=[]), buf)
    assert buf.getvalue() == "T"


class ToyStoreBackend(StoreBackend):
    """Opens toy:// URLs."""

    name = "toy-store"
    Config = _NoConfig
    schemes = ("toy",)

    def open(self, url: str) -> Any:
        return {"opened": url}


def test_hook_register_stores() -> None:
    hook = "crmkit_register_stores"
    registry = Registry(_manager(_registers(hook, ToyStoreBackend)), strict=True)
    backend = registry.create("store", "toy-store", {})
    assert backend.schemes == ("toy",)
    assert backend.open("toy://x") == {"opened": "toy://x"}


class ToyEngine(Engine):
    """Does nothing, fast."""

    name = "toy-engine"
    Config = _NoConfig


def test_hook_register_engines() -> None:
    registry = Registry(_manager(_registers("crmkit_register_engines", ToyEngine)), strict=True)
    assert isinstance(registry.create("engine", "toy-engine", {}), ToyEngine)


def test_register_rejects_a_class_of_the_wrong_kind() -> None:
    plugin = _registers("crmkit_register_sources", ToyChannel)
    with pytest.raises(PluginError, match=r"test-toy-channel.*not a Source subclass"):
        Registry(_manager(plugin), strict=True)


def test_hook_register_commands() -> None:
    def impl(cli: click.Group) -> None:
        @cli.command()
        @click.argument("who")
        def greet(who: str) -> None:
            """Greet someone."""
            click.echo(f"hello {who}")

    manager = _manager(_plugin("greeter", crmkit_register_commands=impl))
    cli = click.Group("crmkit")
    manager.pm.hook.crmkit_register_commands(cli=cli)
    result = CliRunner().invoke(cli, ["greet", "world"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"


# -- event hooks through the Hooks facade -----------------------------------------------


class Recorder:
    """A plugin that records every event it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _rec(self, hook: str, **kw: Any) -> None:
        self.calls.append((hook, kw))

    @hookimpl
    def crmkit_contacts_upserted(
        self, kernel: Any, created: Any, updated: Any, source: str
    ) -> None:
        self._rec("upserted", kernel=kernel, created=created, updated=updated, source=source)

    @hookimpl
    def crmkit_contacts_merged(self, events: Any) -> None:
        self._rec("merged", events=events)

    @hookimpl
    def crmkit_contacts_erased(self, contact_ids: Any) -> None:
        self._rec("erased", contact_ids=contact_ids)

    @hookimpl
    def crmkit_segment_changed(self, changes: Any) -> None:
        self._rec("segment", changes=changes)

    @hookimpl
    def crmkit_messages_sent(self, results: Any) -> None:
        self._rec("sent", results=results)

    @hookimpl
    def crmkit_step_started(self, step: str, run_id: str) -> None:
        self._rec("started", step=step, run_id=run_id)

    @hookimpl
    def crmkit_step_finished(self, step: str, run_id: str, summary: Any) -> None:
        self._rec("finished", step=step, run_id=run_id, summary=summary)


class Exploder:
    """A plugin whose every event hook raises."""

    @hookimpl
    def crmkit_contacts_upserted(self, created: Any) -> None:
        raise RuntimeError("boom with a@b.test")

    @hookimpl
    def crmkit_contacts_merged(self, events: Any) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_contacts_erased(self, contact_ids: Any) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_segment_changed(self, changes: Any) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_messages_sent(self, results: Any) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_step_started(self, step: str) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_step_finished(self, step: str) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def crmkit_before_send(self, messages: Any) -> list[str]:
        raise RuntimeError("boom")


@pytest.fixture
def events() -> tuple[Hooks, Recorder, Recorder]:
    """A Hooks facade over two recorders with an exploding plugin registered between them."""
    first, second = Recorder(), Recorder()
    manager = build_plugin_manager([])
    manager.pm.register(first, name="first")
    manager.pm.register(Exploder(), name="exploder")
    manager.pm.register(second, name="second")
    return Hooks(manager), first, second


def _check_isolated(hooks: Hooks, first: Recorder, second: Recorder, hook: str) -> dict[str, Any]:
    """Both recorders got the event once; the exploder was reported by name."""
    assert [c[0] for c in first.calls] == [hook]
    assert second.calls == first.calls
    assert len(hooks.errors) == 1
    err = hooks.errors[0]
    assert err.plugin == "exploder"
    assert "exploder" in str(err) and "RuntimeError" in str(err)
    assert "@" not in str(err), "errors never repeat the exception text (it may hold PII)"
    return first.calls[0][1]


def test_hook_contacts_upserted(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    hooks.contacts_upserted(KERNEL, created=[1, 2, 3], updated=[7], source="csv")
    kw = _check_isolated(hooks, first, second, "upserted")
    assert kw == {"kernel": KERNEL, "created": [1, 2, 3], "updated": [7], "source": "csv"}


def test_hook_contacts_merged(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    batch = [
        MergeEvent(id=1, survivor_id=1, merged_ids=(2, 3), score=0.97),
        MergeEvent(id=2, survivor_id=4, merged_ids=(5,)),
    ]
    hooks.contacts_merged(KERNEL, batch)
    assert _check_isolated(hooks, first, second, "merged")["events"] == batch


def test_hook_contacts_erased(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    hooks.contacts_erased(KERNEL, [4, 5])
    assert _check_isolated(hooks, first, second, "erased")["contact_ids"] == [4, 5]


def test_hook_segment_changed(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    changes = [SegmentChange(segment="vip", run_id=3, entered=(1, 2), exited=(9,))]
    hooks.segment_changed(KERNEL, changes)
    assert _check_isolated(hooks, first, second, "segment")["changes"] == changes


def test_hook_messages_sent(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    results = [SendResult(key="a", status="sent"), SendResult(key="b", status="failed")]
    hooks.messages_sent(KERNEL, results)
    assert _check_isolated(hooks, first, second, "sent")["results"] == results


def test_hook_step_started(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    hooks.step_started(KERNEL, "import", "run-1")
    kw = _check_isolated(hooks, first, second, "started")
    assert kw == {"step": "import", "run_id": "run-1"}


def test_hook_step_finished(events: tuple[Hooks, Recorder, Recorder]) -> None:
    hooks, first, second = events
    hooks.step_finished(KERNEL, "import", "run-1", {"imported": 10, "rejected": 1})
    kw = _check_isolated(hooks, first, second, "finished")
    assert kw["summary"] == {"imported": 10, "rejected": 1}


def test_event_hook_failure_is_logged_by_name(
    events: tuple[Hooks, Recorder, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, _, _ = events
    with caplog.at_level(logging.WARNING, logger="crmkit.plugins"):
        hooks.contacts_erased(KERNEL, [1])
    assert any("exploder" in r.getMessage() for r in caplog.records)


def _messages(*keys: str) -> list[Message]:
    return [
        Message(key=k, contact_id=i, channel="file", to="t", body="b") for i, k in enumerate(keys)
    ]


def test_hook_before_send() -> None:
    seen: dict[str, list[str]] = {}

    def veto(name: str, keys: set[str]) -> object:
        def impl(messages: Any) -> list[str] | None:
            seen[name] = [m.key for m in messages]
            out = [m.key for m in messages if m.key in keys]
            return out or None

        return _plugin(name, crmkit_before_send=impl)

    manager = build_plugin_manager([])
    manager.pm.register(veto("quiet-hours", {"a", "b"}), name="quiet-hours")
    manager.pm.register(Exploder(), name="exploder")
    manager.pm.register(veto("blocklist", {"b", "c"}), name="blocklist")
    manager.pm.register(veto("nothing", set()), name="nothing")
    hooks = Hooks(manager)
    vetoed = hooks.before_send(KERNEL, _messages("a", "b", "c", "d"))
    assert set(vetoed) == {"a", "b", "c"}, "vetoes of every implementation are unioned"
    assert vetoed["a"] == "quiet-hours"
    assert vetoed["c"] == "blocklist"
    assert vetoed["b"] in {"quiet-hours", "blocklist"}
    assert all(v == ["a", "b", "c", "d"] for v in seen.values()), "each sees the whole batch"
    assert set(seen) == {"quiet-hours", "blocklist", "nothing"}
    assert [e.plugin for e in hooks.errors] == ["exploder"], "a raising veto vetoes nothing"


def test_before_send_without_implementations_vetoes_nothing() -> None:
    hooks = Hooks(build_plugin_manager([]))
    assert hooks.before_send(KERNEL, _messages("a")) == {}
    assert hooks.errors == []


def test_facade_covers_every_event_hook() -> None:
    registration = {h for h in _hooks() if h.startswith("crmkit_register_")}
    for hook in set(_hooks()) - registration:
        method = hook.removeprefix("crmkit_")
        assert callable(getattr(Hooks, method, None)), f"Hooks has no method {method}"
        spec = set(inspect.signature(getattr(hookspecs, hook)).parameters)
        facade = set(inspect.signature(getattr(Hooks, method)).parameters) - {"self"}
        assert spec == facade, f"Hooks.{method} arguments differ from the spec"


def test_kernel_stand_in_is_passed_through() -> None:
    rec = Recorder()
    manager = build_plugin_manager([])
    manager.pm.register(rec, name="rec")
    Hooks(manager).contacts_upserted(cast(Any, KERNEL), [1], [], "csv")
    assert rec.calls[0][1]["kernel"] is KERNEL
