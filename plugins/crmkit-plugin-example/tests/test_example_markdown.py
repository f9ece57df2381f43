"""The ``markdown`` reporter."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import crmkit_plugin_example
import pytest
from crmkit_plugin_example.markdown import MarkdownReporter, md_cell

from crmkit.kinds import PluginContext, Report, Table
from crmkit.plugins import Registry


def report() -> Report:
    return Report(
        title="Run summary",
        generated_at="2025-01-02",
        tables=[
            Table(
                title="Segments",
                columns=["segment", "contacts"],
                rows=[["vip", 12], ["a|b\nc", 3]],
                note="last run",
            ),
            Table(title="Empty", columns=["x"], rows=[]),
        ],
    )


def render(tmp_path: Path, **config: Any) -> str:
    rep = MarkdownReporter(
        MarkdownReporter.Config.model_validate(config), PluginContext(base_dir=tmp_path)
    )
    buf = io.StringIO()
    rep.render(report(), buf)
    return buf.getvalue()


def test_markdown_tables(tmp_path: Path) -> None:
    text = render(tmp_path)
    assert text.startswith("# Run summary\n")
    assert "## Segments\n" in text and "last run" in text
    assert "| segment | contacts |\n|---|---:|\n| vip | 12 |\n" in text
    assert "| a\\|b<br>c | 3 |" in text, "pipes and newlines cannot break the table"
    assert "_No rows._" in text


def test_max_rows(tmp_path: Path) -> None:
    text = render(tmp_path, max_rows=1)
    assert "| vip | 12 |" in text and "a\\|b" not in text
    assert "_1 more rows not shown._" in text


def test_writes_path(tmp_path: Path) -> None:
    rep = MarkdownReporter(
        MarkdownReporter.Config.model_validate({"path": "out/r.md"}),
        PluginContext(base_dir=tmp_path),
    )
    rep.render(report(), None)
    assert (tmp_path / "out" / "r.md").read_text().startswith("# Run summary")


def test_md_cell() -> None:
    assert md_cell(None) == "" and md_cell(True) == "yes" and md_cell(["a", 1]) == "a, 1"


def test_registered(crmkit_registry: Registry, crmkit_plugins: list[Any]) -> None:
    assert crmkit_registry.get("reporter", "markdown").cls is MarkdownReporter


@pytest.fixture
def crmkit_plugins() -> list[Any]:
    return [crmkit_plugin_example]
