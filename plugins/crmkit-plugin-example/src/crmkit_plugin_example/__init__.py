"""crmkit-plugin-example: a ``vcard`` source and a ``markdown`` reporter.

This module is the plugin: ``pyproject.toml`` names it in the ``crmkit``
entry-point group, and crmkit registers it with its plugin manager. It holds
only hook implementations; the classes live in their own modules.
"""

from __future__ import annotations

from collections.abc import Callable

from crmkit import hookimpl
from crmkit.kinds import Reporter, Source
from crmkit_plugin_example.markdown import MarkdownReporter
from crmkit_plugin_example.vcard import VCardSource

__version__ = "0.1.0"


@hookimpl
def crmkit_register_sources(register: Callable[[type[Source]], None]) -> None:
    """Register the ``vcard`` source."""
    register(VCardSource)


@hookimpl
def crmkit_register_reporters(register: Callable[[type[Reporter]], None]) -> None:
    """Register the ``markdown`` reporter."""
    register(MarkdownReporter)


__all__ = [
    "MarkdownReporter",
    "VCardSource",
    "crmkit_register_reporters",
    "crmkit_register_sources",
]
