"""Plugin loading and the registry of plugin kinds.

:func:`make_plugin_manager` builds a fresh :class:`pluggy.PluginManager`: the
built-in plugins first (through the same hooks a third party uses), then the
``crmkit`` entry-point group one plugin at a time, so one broken plugin is
named and skipped (or fails the run when ``strict_plugins`` is set). Settings
give an allow-list, a block-list and an autoload switch
(``CRMKIT_DISABLE_PLUGIN_AUTOLOAD=1``).

:class:`Registry` collects what the registration hooks register and creates
configured instances; :class:`Hooks` is a typed facade over event hooks that
isolates each implementation, so an event hook that raises is reported by
plugin name and never takes the host down.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from pydantic import ValidationError

from crmkit import hookspecs
from crmkit.errors import ConfigError, PluginError
from crmkit.kinds import (
    Categorizer,
    Channel,
    Engine,
    Plugin,
    PluginContext,
    Reporter,
    Source,
    StoreBackend,
)
from crmkit.settings import Settings, env_flag

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.records import MergeEvent, Message, SegmentChange, SendResult

log = logging.getLogger("crmkit.plugins")

ENTRY_POINT_GROUP = "crmkit"

BUILTIN_MODULES: tuple[str, ...] = (
    "crmkit.builtin.sources",
    "crmkit.builtin.categorizers",
    "crmkit.builtin.channels",
    "crmkit.builtin.reporters",
    "crmkit.builtin.stores",
    "crmkit.builtin.engines",
)

KINDS: dict[str, type[Plugin]] = {
    "source": Source,
    "categorizer": Categorizer,
    "channel": Channel,
    "reporter": Reporter,
    "store": StoreBackend,
    "engine": Engine,
}

P = TypeVar("P", bound=Plugin)


@dataclass
class LoadFailure:
    """A plugin that did not load, and why (no traceback, no personal data)."""

    name: str
    error: str


@dataclass
class PluginManager:
    """The pluggy manager plus what loading found out."""

    pm: pluggy.PluginManager
    failures: list[LoadFailure] = field(default_factory=list)
    builtin: set[str] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)


def make_plugin_manager(settings: Settings | None = None) -> PluginManager:
    """Build a fresh plugin manager with the built-ins and the allowed entry points."""
    settings = settings or Settings()
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    out = PluginManager(pm=pm)
    for modname in BUILTIN_MODULES:
        mod = importlib.import_module(modname)
        name = modname.rsplit(".", 1)[-1]
        pm.register(mod, name=f"builtin.{name}")
        out.builtin.add(f"builtin.{name}")
    autoload = not (settings.disable_plugin_autoload or env_flag("CRMKIT_DISABLE_PLUGIN_AUTOLOAD"))
    if autoload:
        _load_entry_points(out, settings)
    pm.check_pending()
    return out


def _load_entry_points(out: PluginManager, settings: Settings) -> None:
    allow = set(settings.plugins_allow) if settings.plugins_allow is not None else None
    block = set(settings.plugins_block)
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in block or (allow is not None and ep.name not in allow):
            continue
        if out.pm.get_plugin(ep.name) is not None or out.pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            out.pm.register(plugin, name=ep.name)
            if ep.dist is not None:
                out.versions[ep.name] = f"{ep.dist.name} {ep.dist.version}"
        except Exception as exc:  # one broken plugin must not take the host down
            failure = LoadFailure(ep.name, f"{type(exc).__name__}: {exc}")
            if settings.strict_plugins:
                raise PluginError(ep.name, f"failed to load: {failure.error}") from exc
            log.warning("plugin %r failed to load and was skipped: %s", ep.name, failure.error)
            out.failures.append(failure)


def plugin_version(pm: pluggy.PluginManager, name: str) -> str | None:
    """The distribution version of a registered plugin, when it has one."""
    for plugin, dist in pm.list_plugin_distinfo():
        if pm.get_name(plugin) == name:
            return str(dist.version)
    return None


@dataclass
class Registered:
    """A registered plugin class and the plugin (pluggy name) that registered it."""

    cls: type[Plugin]
    owner: str


class Registry:
    """Everything the ``crmkit_register_*`` hooks registered, by kind and name."""

    def __init__(self, manager: PluginManager, *, strict: bool = False) -> None:
        self.manager = manager
        self.kinds: dict[str, dict[str, Registered]] = {k: {} for k in KINDS}
        self.failures: list[LoadFailure] = list(manager.failures)
        hooks = {
            "source": "crmkit_register_sources",
            "categorizer": "crmkit_register_categorizers",
            "channel": "crmkit_register_channels",
            "reporter": "crmkit_register_reporters",
            "store": "crmkit_register_stores",
            "engine": "crmkit_register_engines",
        }
        self.survivorship: dict[str, tuple[Any, str]] = {}
        for impl in manager.pm.hook.crmkit_register_survivorship_rules.get_hookimpls():
            owner = impl.plugin_name
            try:
                impl.function(register=self._rule_registrar(owner))
            except Exception as exc:
                if strict:
                    raise PluginError(
                        owner, f"crmkit_register_survivorship_rules failed: {exc}"
                    ) from exc
                log.warning(
                    "plugin %r failed in crmkit_register_survivorship_rules: %s",
                    owner,
                    type(exc).__name__,
                )
                self.failures.append(
                    LoadFailure(owner, f"crmkit_register_survivorship_rules: {exc}")
                )
        for kind, hookname in hooks.items():
            caller = getattr(manager.pm.hook, hookname)
            for impl in caller.get_hookimpls():
                owner = impl.plugin_name
                try:
                    impl.function(register=self._registrar(kind, owner))
                except Exception as exc:
                    if strict:
                        raise PluginError(owner, f"{hookname} failed: {exc}") from exc
                    log.warning("plugin %r failed in %s: %s", owner, hookname, exc)
                    self.failures.append(LoadFailure(owner, f"{hookname}: {exc}"))

    def _registrar(self, kind: str, owner: str) -> Any:
        base = KINDS[kind]

        def register(cls: type[Plugin]) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise PluginError(owner, f"registered {cls!r}, not a {base.__name__} subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(owner, f"{cls.__name__} has no name")
            seen = self.kinds[kind].get(name)
            if seen is not None:
                raise PluginError(
                    owner, f"{kind} {name!r} is already registered by plugin {seen.owner!r}"
                )
            self.kinds[kind][name] = Registered(cls, owner)

        return register

    def _rule_registrar(self, owner: str) -> Any:
        def register(name: str, rule: Any) -> None:
            from crmkit.merge import RULES

            if not callable(rule):
                raise PluginError(owner, f"survivorship rule {name!r} is not callable")
            if name in RULES:
                raise PluginError(owner, f"survivorship rule {name!r} is built in")
            seen = self.survivorship.get(name)
            if seen is not None:
                raise PluginError(
                    owner, f"survivorship rule {name!r} is already registered by plugin {seen[1]!r}"
                )
            self.survivorship[name] = (rule, owner)

        return register

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self.kinds[kind])

    def get(self, kind: str, name: str) -> Registered:
        """The registered class of ``kind`` called ``name``; names close matches if absent."""
        try:
            return self.kinds[kind][name]
        except KeyError:
            import difflib

            known = self.names(kind)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"
            ) from None

    def validate(self, kind: str, name: str, config: Mapping[str, Any], where: str = "") -> Any:
        """Validate ``config`` with the plugin's Config model; errors name the field path."""
        reg = self.get(kind, name)
        try:
            return reg.cls.Config.model_validate(dict(config))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, where)) from None

    def create(
        self,
        kind: str,
        name: str,
        config: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        kernel: Kernel | None = None,
        where: str = "",
    ) -> Any:
        """A configured instance of the plugin ``name`` of ``kind``."""
        reg = self.get(kind, name)
        cfg = self.validate(kind, name, config, where)
        ctx = PluginContext(base_dir=base_dir or Path.cwd(), kernel=kernel)
        try:
            return reg.cls(cfg, ctx)
        except Exception as exc:
            if isinstance(exc, PluginError | ConfigError):
                raise
            raise PluginError(reg.owner, f"{kind} {name!r} failed to start: {exc}") from exc


def format_validation_error(exc: ValidationError, where: str = "") -> str:
    """One line per pydantic error, each with its dotted path (prefixed by ``where``)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        path = ".".join(p for p in (where, loc) if p)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path or '<root>'}: {msg}")
    return "\n".join(lines)


class Hooks:
    """Typed calls of the event hooks, each implementation isolated.

    pluggy cannot type hook calls; this facade can. Each implementation runs in
    its own ``try``: one that raises is logged with its plugin name and
    recorded in :attr:`errors`, and the others still run.
    """

    def __init__(self, manager: PluginManager) -> None:
        self.pm = manager.pm
        self.errors: list[PluginError] = []

    def _each(self, hookname: str, **kwargs: Any) -> list[tuple[str, Any]]:
        caller = getattr(self.pm.hook, hookname)
        out: list[tuple[str, Any]] = []
        for impl in reversed(caller.get_hookimpls()):
            args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
            try:
                out.append((impl.plugin_name, impl.function(**args)))
            except Exception as exc:
                # The exception text may quote record data: log its type only.
                err = PluginError(impl.plugin_name, f"{hookname} raised {type(exc).__name__}")
                log.warning("%s", err)
                self.errors.append(err)
        return out

    def contacts_upserted(
        self, kernel: Kernel, created: Sequence[int], updated: Sequence[int], source: str
    ) -> None:
        self._each(
            "crmkit_contacts_upserted",
            kernel=kernel,
            created=created,
            updated=updated,
            source=source,
        )

    def contacts_merged(self, kernel: Kernel, events: Sequence[MergeEvent]) -> None:
        self._each("crmkit_contacts_merged", kernel=kernel, events=events)

    def contacts_erased(self, kernel: Kernel, contact_ids: Sequence[int]) -> None:
        self._each("crmkit_contacts_erased", kernel=kernel, contact_ids=contact_ids)

    def segment_changed(self, kernel: Kernel, changes: Sequence[SegmentChange]) -> None:
        self._each("crmkit_segment_changed", kernel=kernel, changes=changes)

    def before_send(self, kernel: Kernel, messages: Sequence[Message]) -> dict[str, str]:
        """Vetoed message keys, each mapped to the plugin that vetoed it."""
        vetoed: dict[str, str] = {}
        for owner, keys in self._each("crmkit_before_send", kernel=kernel, messages=messages):
            if keys is None:
                continue
            if isinstance(keys, str | bytes) or not all(isinstance(k, str) for k in keys):
                err = PluginError(
                    owner, "crmkit_before_send must return a sequence of message keys"
                )
                log.warning("%s", err)
                self.errors.append(err)
                continue
            for key in keys:
                vetoed.setdefault(key, owner)
        return vetoed

    def messages_sent(self, kernel: Kernel, results: Sequence[SendResult]) -> None:
        self._each("crmkit_messages_sent", kernel=kernel, results=results)

    def step_started(self, kernel: Kernel, step: str, run_id: str) -> None:
        self._each("crmkit_step_started", kernel=kernel, step=step, run_id=run_id)

    def step_finished(
        self, kernel: Kernel, step: str, run_id: str, summary: Mapping[str, Any]
    ) -> None:
        self._each("crmkit_step_finished", kernel=kernel, step=step, run_id=run_id, summary=summary)
