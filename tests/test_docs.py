"""The documentation is held to the code: every hook has a section in docs/hooks.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from crmkit import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS_MD = DOCS / "hooks.md"


def hook_names() -> list[str]:
    """Every hook declared in crmkit.hookspecs (functions carrying the spec marker)."""
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if name.startswith("crmkit_") and callable(obj) and hasattr(obj, marker)
    )


def sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``## `` heading."""
    parts = re.split(r"^## +(.+?) *$", text, flags=re.MULTILINE)
    return {parts[i].strip("` "): parts[i + 1] for i in range(1, len(parts), 2)}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


HOOKS = hook_names()
SECTIONS = sections(HOOKS_MD.read_text(encoding="utf-8"))


def test_hookspecs_found() -> None:
    assert len(HOOKS) >= 15
    assert "crmkit_register_sources" in HOOKS and "crmkit_before_send" in HOOKS


def test_every_hook_has_a_section() -> None:
    missing = [h for h in HOOKS if h not in SECTIONS]
    assert not missing, f"docs/hooks.md has no '## <hook>' section for: {missing}"


def test_every_hook_section_names_a_real_hook() -> None:
    unknown = [s for s in SECTIONS if s.startswith("crmkit_") and s not in HOOKS]
    assert not unknown, f"docs/hooks.md documents hooks that do not exist: {unknown}"


def test_sections_follow_the_order_of_hookspecs() -> None:
    declared = [n for n in vars(hookspecs) if n in HOOKS]
    documented = [s for s in SECTIONS if s in HOOKS]
    assert documented == declared


@pytest.mark.parametrize("hook", HOOKS)
def test_section_of_hook_is_complete(hook: str) -> None:
    body = SECTIONS.get(hook)
    if body is None:
        pytest.fail(f"no section for {hook}")
    for part in ("**Called**", "**Arguments:**", "**Returns:**"):
        assert part in body, f"section {hook} lacks {part}"
    blocks = python_blocks(body)
    assert blocks, f"section {hook} has no python example"
    defined = {
        node.name
        for block in blocks
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.FunctionDef)
    }
    assert hook in defined, f"the example in section {hook} does not implement it"


def test_example_arguments_exist_in_the_spec() -> None:
    """An example may take a subset of a hook's arguments, never an unknown one."""
    import inspect

    for hook in HOOKS:
        spec_args = set(inspect.signature(getattr(hookspecs, hook)).parameters)
        for block in python_blocks(SECTIONS[hook]):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.FunctionDef) and node.name == hook:
                    args = {a.arg for a in node.args.args}
                    assert args <= spec_args, f"{hook} example takes {args - spec_args}"
                    assert not node.args.defaults, f"{hook} example gives an argument a default"


@pytest.mark.parametrize("name", ["hooks.md", "plugins.md"])
def test_python_examples_compile(name: str) -> None:
    text = (DOCS / name).read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert blocks
    for block in blocks:
        compile(block, f"{name} example", "exec")


def test_plugins_guide_example_passes_its_conformance_suite(tmp_path: Path) -> None:
    """The guide's plugin, conftest and tests, written out as files, pass as written."""
    import os
    import subprocess
    import sys

    blocks = python_blocks((DOCS / "plugins.md").read_text(encoding="utf-8"))
    plugin = next(b for b in blocks if "class LinesSource" in b)
    hook = next(b for b in blocks if "def crmkit_register_sources" in b)
    conftest = next(b for b in blocks if b.startswith("# tests/conftest.py"))
    tests = [b for b in blocks if "crmkit_plugin_lines" in b and b is not hook]
    (tmp_path / "crmkit_plugin_lines.py").write_text(plugin + "\n" + hook, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(conftest, encoding="utf-8")
    (tmp_path / "tests" / "test_lines.py").write_text("\n".join(tests), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout
