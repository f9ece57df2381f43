"""Fixtures and conformance suites for plugin authors (a pytest plugin).

Opt in from a ``conftest.py`` or a test module::

    pytest_plugins = ["crmkit.testing"]

Fixtures:

``crmkit_tmp_workdir``
    A fresh temporary folder made the current directory for the test.
``crmkit_plugins``
    The plugin objects under test (modules or objects with hook
    implementations). Empty by default: override it in your ``conftest.py``
    or test class to return ``[my_plugin_module]``.
``crmkit_settings``
    :class:`crmkit.settings.Settings` with entry-point autoloading off, so
    the test sees the built-ins and only the plugins it registers itself.
``crmkit_plugin_manager``
    A fresh :class:`crmkit.plugins.PluginManager` built from
    ``crmkit_settings`` with every object of ``crmkit_plugins`` registered.
``crmkit_registry``
    A strict :class:`crmkit.plugins.Registry` over that manager: a plugin
    whose register hook raises fails the test.

Conformance suites, subclassed by a test class (see each module):

- :class:`crmkit.testing.sources.SourceConformance`
- :class:`crmkit.testing.channels.ChannelConformance`
- ``crmkit.testing.stores`` (the store contract any Store must pass)

This module holds fixtures only; the suites' modules get pytest's assertion
rewriting (PYTEST_DONT_REWRITE applies to this module alone, so importing a
suite before ``pytest_plugins`` is read does not warn).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite(
    "crmkit.testing.sources", "crmkit.testing.channels", "crmkit.testing.stores"
)

from crmkit.plugins import PluginManager, Registry, make_plugin_manager  # noqa: E402
from crmkit.settings import Settings  # noqa: E402


def build_plugin_manager(
    plugins: Sequence[object] = (), settings: Settings | None = None
) -> PluginManager:
    """A fresh plugin manager without entry-point autoloading, plus ``plugins``.

    Each object in ``plugins`` is registered under its ``__name__`` (or its
    class name) after the built-ins, exactly as an installed plugin would be.
    """
    manager = make_plugin_manager(settings or Settings(disable_plugin_autoload=True))
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if not manager.pm.is_registered(plugin) and manager.pm.get_plugin(name) is None:
            manager.pm.register(plugin, name=name)
    manager.pm.check_pending()
    return manager


@pytest.fixture
def crmkit_tmp_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh temporary folder, made the current directory for the test."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def crmkit_plugins() -> list[Any]:
    """Plugin objects to register in ``crmkit_plugin_manager``; override to add yours."""
    return []


@pytest.fixture
def crmkit_settings() -> Settings:
    """Settings with entry-point autoloading off."""
    return Settings(disable_plugin_autoload=True)


@pytest.fixture
def crmkit_plugin_manager(crmkit_plugins: list[Any], crmkit_settings: Settings) -> PluginManager:
    """A fresh plugin manager: built-ins plus ``crmkit_plugins``, nothing autoloaded."""
    return build_plugin_manager(crmkit_plugins, crmkit_settings)


@pytest.fixture
def crmkit_registry(crmkit_plugin_manager: PluginManager) -> Registry:
    """A strict registry of everything the plugin manager's plugins register."""
    return Registry(crmkit_plugin_manager, strict=True)


__all__ = [
    "build_plugin_manager",
    "crmkit_plugin_manager",
    "crmkit_plugins",
    "crmkit_registry",
    "crmkit_settings",
    "crmkit_tmp_workdir",
]
