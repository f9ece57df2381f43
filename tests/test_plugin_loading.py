"""Loading plugins from the ``crmkit`` entry-point group, with real installed distributions.

Each test installs tiny distributions the way an installer lays them out (a
module plus a ``.dist-info`` folder with ``entry_points.txt``) on a fresh
``sys.path`` entry, then builds a plugin manager.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from crmkit.errors import PluginError
from crmkit.plugins import Registry, make_plugin_manager
from crmkit.settings import Settings

_counter = itertools.count()

GOOD = """
from crmkit import hookimpl
from crmkit.kinds import Source

class {cls}(Source):
    \"\"\"A source that reads nothing.\"\"\"
    name = {source!r}
    def read(self, state):
        return iter(())

@hookimpl
def crmkit_register_sources(register):
    register({cls})
"""

BROKEN_IMPORT = """
raise RuntimeError("this plugin cannot be imported")
"""

BROKEN_HOOK = """
from crmkit import hookimpl

@hookimpl
def crmkit_register_sources(register):
    raise ValueError("register failed on purpose")
"""


class Site:
    """A folder on ``sys.path`` where tests install distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(self, ep_name: str, code: str, *, version: str = "0.1") -> str:
        """Install a distribution with one ``crmkit`` entry point; return its module name."""
        n = next(_counter)
        module = f"crmkit_test_plugin_{ep_name.replace('-', '_')}_{n}"
        dist = f"crmkit_test_dist_{n}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        info = self.root / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[crmkit]\n{ep_name} = {module}\n", encoding="utf-8"
        )
        (info / "RECORD").write_text("", encoding="utf-8")
        return module

    def good(self, ep_name: str, source: str | None = None) -> str:
        cls = "Src" + str(next(_counter))
        return self.install(ep_name, GOOD.format(cls=cls, source=source or f"{ep_name}-src"))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return Site(root)


def _loaded(settings: Settings | None = None) -> tuple[set[str], dict[str, str]]:
    manager = make_plugin_manager(settings or Settings())
    names = {manager.pm.get_name(p) or "" for p in manager.pm.get_plugins()}
    return names - manager.builtin, {f.name: f.error for f in manager.failures}


def test_good_plugin_is_loaded_from_its_entry_point(site: Site) -> None:
    site.good("alpha")
    manager = make_plugin_manager(Settings())
    assert manager.pm.get_plugin("alpha") is not None
    registry = Registry(manager, strict=True)
    assert registry.get("source", "alpha-src").owner == "alpha"


def test_plugin_raising_on_import_is_skipped_and_named(site: Site) -> None:
    site.good("alpha")
    site.install("broken", BROKEN_IMPORT)
    loaded, failures = _loaded()
    assert "alpha" in loaded, "a broken plugin does not stop the others"
    assert "broken" not in loaded
    assert "broken" in failures
    assert "RuntimeError" in failures["broken"]


def test_plugin_raising_on_import_fails_when_strict(site: Site) -> None:
    site.install("broken", BROKEN_IMPORT)
    with pytest.raises(PluginError, match="'broken'") as info:
        make_plugin_manager(Settings(strict_plugins=True))
    assert info.value.plugin == "broken"


def test_strict_from_the_environment(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install("broken", BROKEN_IMPORT)
    monkeypatch.setenv("CRMKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'broken'"):
        make_plugin_manager()


def test_block_list_skips_a_plugin(site: Site) -> None:
    site.good("alpha")
    site.install("broken", BROKEN_IMPORT)
    loaded, failures = _loaded(Settings(plugins_block=["broken"], strict_plugins=True))
    assert "alpha" in loaded
    assert "broken" not in loaded and "broken" not in failures


def test_allow_list_loads_only_named_plugins(site: Site) -> None:
    site.good("alpha")
    site.good("beta")
    site.install("broken", BROKEN_IMPORT)
    loaded, failures = _loaded(Settings(plugins_allow=["beta"], strict_plugins=True))
    assert loaded == {"beta"}
    assert failures == {}


@pytest.mark.parametrize("raw", ["broken, beta", '["broken", "beta"]'])
def test_block_list_from_the_environment(
    site: Site, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    site.good("alpha")
    site.good("beta")
    site.install("broken", BROKEN_IMPORT)
    monkeypatch.setenv("CRMKIT_PLUGINS_BLOCK", raw)
    monkeypatch.setenv("CRMKIT_STRICT_PLUGINS", "yes")
    loaded, failures = _loaded(Settings())
    assert "alpha" in loaded and failures == {}
    assert not loaded & {"beta", "broken"}


def test_settings_given_in_code_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMKIT_DEFAULT_REGION", "FR")
    monkeypatch.setenv("CRMKIT_DEBUG", "true")
    assert Settings().default_region == "FR" and Settings().debug is True
    assert Settings(default_region="DE").default_region == "DE"
    monkeypatch.setenv("CRMKIT_DEBUG", "perhaps")
    with pytest.raises(ValueError, match="debug"):
        Settings()


def test_block_list_wins_over_allow_list(site: Site) -> None:
    site.good("alpha")
    loaded, _ = _loaded(Settings(plugins_allow=["alpha"], plugins_block=["alpha"]))
    assert loaded == set()


def test_autoload_switch_in_the_environment_loads_none(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.good("alpha")
    site.install("broken", BROKEN_IMPORT)
    monkeypatch.setenv("CRMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    loaded, failures = _loaded()
    assert loaded == set() and failures == {}
    manager = make_plugin_manager()
    assert len(manager.builtin) >= 6, "built-ins are still registered"


def test_autoload_switch_in_settings_loads_none(site: Site) -> None:
    site.good("alpha")
    loaded, _ = _loaded(Settings(disable_plugin_autoload=True))
    assert loaded == set()


def test_plugin_whose_register_hook_raises_is_named(site: Site) -> None:
    site.good("alpha")
    site.install("badhook", BROKEN_HOOK)
    manager = make_plugin_manager(Settings())
    registry = Registry(manager)
    failures = {f.name: f.error for f in registry.failures}
    assert "badhook" in failures
    assert "crmkit_register_sources" in failures["badhook"]
    assert "alpha-src" in registry.names("source"), "the other plugins still register"
    with pytest.raises(PluginError, match="'badhook'") as info:
        Registry(manager, strict=True)
    assert info.value.plugin == "badhook"


def test_duplicate_name_names_both_plugins(site: Site) -> None:
    site.good("first", source="same-name")
    site.good("second", source="same-name")
    manager = make_plugin_manager(Settings())
    with pytest.raises(PluginError) as info:
        Registry(manager, strict=True)
    message = str(info.value)
    assert "'first'" in message and "'second'" in message and "same-name" in message
    registry = Registry(manager)
    assert registry.get("source", "same-name").owner == "first", "loaded in name order"
    assert [f.name for f in registry.failures] == ["second"]


def test_a_plugin_may_not_take_a_builtin_name(site: Site) -> None:
    site.install(
        "thief",
        """
        from crmkit import hookimpl
        from crmkit.builtin.channels import FileChannel

        class Other(FileChannel):
            \"\"\"Same name as the built-in.\"\"\"

        @hookimpl
        def crmkit_register_channels(register):
            register(Other)
        """,
    )
    with pytest.raises(PluginError, match=r"'thief'.*'file'.*'builtin.channels'"):
        Registry(make_plugin_manager(Settings()), strict=True)


def test_every_plugin_module_imports_cheaply() -> None:
    """Built-in plugin modules import without rich (CLI start-up stays fast)."""
    import subprocess

    code = (
        "import sys; from crmkit.plugins import make_plugin_manager; "
        "from crmkit.settings import Settings; "
        "make_plugin_manager(Settings(disable_plugin_autoload=True)); "
        "print('rich' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(
    importlib.util.find_spec("crmkit_plugin_example") is None,
    reason="plugins/crmkit-plugin-example is not installed",
)
def test_installed_example_plugin_loads() -> None:
    manager = make_plugin_manager(Settings(strict_plugins=True))
    assert manager.pm.get_plugin("example") is not None
    registry = Registry(manager, strict=True)
    assert registry.get("source", "vcard").owner == "example"
    assert registry.get("reporter", "markdown").owner == "example"


EXAMPLE = Path(__file__).resolve().parent.parent / "plugins" / "crmkit-plugin-example"


@pytest.mark.skipif(
    importlib.util.find_spec("crmkit_plugin_example") is None,
    reason="plugins/crmkit-plugin-example is not installed",
)
def test_example_plugin_own_test_suite_passes() -> None:
    """The example plugin's tests (conformance suite included) pass, run as its author would."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
