"""The ``markdown`` reporter: a report as Markdown (GitHub-flavoured tables)."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TextIO

from crmkit.kinds import PluginConfig, PluginContext, Report, Reporter, Table


class MarkdownConfig(PluginConfig):
    """Configuration of the ``markdown`` reporter."""

    path: str | None = None
    """Output file, relative to the workflow folder; standard output when omitted."""
    max_rows: int | None = None
    """Write at most this many rows per table (a line says how many were left out)."""


def md_cell(value: Any) -> str:
    """A value as the text of a Markdown table cell (pipes and line breaks escaped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(md_cell(v) for v in value)
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def md_table(table: Table, max_rows: int | None = None) -> str:
    """``table`` as a Markdown table; numeric columns are right-aligned."""
    cols = table.columns
    numeric = [
        bool(vals) and all(_is_number(v) for v in vals)
        for vals in (
            [r[i] for r in table.rows if i < len(r) and r[i] is not None] for i in range(len(cols))
        )
    ]
    out = ["| " + " | ".join(md_cell(c) or " " for c in cols) + " |"]
    out.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    rows = table.rows if max_rows is None else table.rows[:max_rows]
    for row in rows:
        cells = [md_cell(row[i]) if i < len(row) else "" for i in range(len(cols))]
        out.append("| " + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n"
    if len(rows) < len(table.rows):
        text += f"\n_{len(table.rows) - len(rows)} more rows not shown._\n"
    if not table.rows:
        text += "\n_No rows._\n"
    return text


def render_markdown(report: Report, max_rows: int | None = None) -> str:
    """The whole ``report`` as one Markdown document."""
    parts = [f"# {md_cell(report.title)}\n"]
    if report.generated_at:
        parts.append(f"_Generated {md_cell(report.generated_at)}._\n")
    for table in report.tables:
        parts.append(f"## {md_cell(table.title)}\n")
        if table.note:
            parts.append(f"{md_cell(table.note)}\n")
        parts.append(md_table(table, max_rows))
    return "\n".join(parts)


class MarkdownReporter(Reporter):
    """Renders a report as Markdown: a heading per table and GitHub-flavoured tables."""

    name = "markdown"
    description = "The report as Markdown tables."
    Config: ClassVar[type[PluginConfig]] = MarkdownConfig

    config: MarkdownConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self.path: Path | None = (
            context.resolve(self.config.path) if self.config.path is not None else None
        )

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write ``report`` to ``out``, else to ``path``, else to standard output."""
        text = render_markdown(report, self.config.max_rows)
        if out is not None:
            out.write(text)
        elif self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)


__all__ = ["MarkdownConfig", "MarkdownReporter", "md_cell", "md_table", "render_markdown"]
