"""The crmkit exception hierarchy.

Every error crmkit raises on purpose derives from :class:`CrmkitError`. The CLI
prints such errors as one line on stderr (exit code 1) and shows a traceback
only with ``--debug``. Messages name the file, line and field involved and never
carry personal data (no email addresses, names or phone numbers).

The engine errors raised by the Rust extension (``crmkit._core``) are
re-exported here and are subclasses of :class:`CrmkitError` through
:class:`EngineError`.
"""

from __future__ import annotations

from crmkit import _core
from crmkit._base import CrmkitError


class ConfigError(CrmkitError):
    """Invalid settings, workflow file or plugin configuration."""


class PluginError(CrmkitError):
    """A plugin failed to load, register or run. The message names the plugin."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


class StoreError(CrmkitError):
    """The store cannot be opened, is locked or read-only, or a write failed."""


class SourceError(CrmkitError):
    """A data source cannot be read (missing file, unknown format, bad header)."""


class ChannelError(CrmkitError):
    """A channel cannot send (bad configuration, provider refused)."""


class NotFoundError(CrmkitError):
    """A contact, segment, merge or other object does not exist."""


# Errors raised by the Rust engines. They share one base so callers can catch
# every engine failure at once; EngineError is also a CrmkitError.
EngineError = _core.CoreError
InvalidInputError = _core.InvalidInputError
RuleError = _core.RuleError
EngineConfigError = _core.ConfigError
EnginePanic = _core.EnginePanic

__all__ = [
    "ChannelError",
    "ConfigError",
    "CrmkitError",
    "EngineConfigError",
    "EngineError",
    "EnginePanic",
    "InvalidInputError",
    "NotFoundError",
    "PluginError",
    "RuleError",
    "SourceError",
    "StoreError",
]
