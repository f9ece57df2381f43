"""Built-in reporters: ``terminal``, ``html``, ``json``, ``csv`` and ``jsonl``.

Each renders a :class:`crmkit.kinds.Report` (a title and tables of plain
values). ``render(report, out)`` writes to ``out`` when it is given, else to
the configured ``path``, else to standard output.

Exports:

- ``csv`` writes **one file per table**: with ``path`` set, ``path`` is a
  folder and each table goes to ``<slug of its title>.csv`` in it. On a stream
  (``out`` or standard output) the tables follow each other, each with its own
  header row, separated by one empty line; set ``table`` to write one table
  only, as a plain CSV.
- ``jsonl`` writes **one file**, one JSON object per row: ``{"table": <title>,
  <column>: <value>, ...}``.

Against spreadsheet formula injection, the ``csv`` reporter prefixes a text
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
with a single quote (``escape_formulas``, on by default; numbers are written
as they are). ``jsonl`` keeps values as they are by default because JSON
keeps types and spreadsheets do not evaluate it; set ``escape_formulas =
true`` when its strings will be pasted into a spreadsheet.

``html`` writes one self-contained page with inline SVG charts (see
:mod:`crmkit.builtin.html_report`); it needs ``path`` unless it is given a
stream.

Rich is imported only when the terminal reporter renders, and the HTML
renderer only when the html reporter renders, so importing this module stays
cheap.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TextIO

import msgspec

from crmkit.hookspecs import hookimpl
from crmkit.kinds import PluginConfig, PluginContext, Report, Reporter, Table

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""Starts of a text cell that a spreadsheet could read as a formula."""


def escape_formula(value: str) -> str:
    """``value`` made inert for spreadsheets: prefixed with ``'`` when it could be a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def cell_text(value: Any) -> str:
    """A table cell as text: empty for ``None``, ISO 8601 for dates, ``,``-joined lists."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


_json = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def slugify(title: str) -> str:
    """A file-name-safe slug of a table title (``"Segment sizes"`` -> ``segment-sizes``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug or "table"


class _Target:
    """Where a reporter writes: ``out``, else the configured ``path``, else stdout."""

    def __init__(self, reporter: _FileReporter, out: TextIO | None) -> None:
        self.reporter = reporter
        self.out = out

    @contextlib.contextmanager
    def open(self) -> Iterator[TextIO]:
        if self.out is not None:
            yield self.out
            return
        path = self.reporter.path
        if path is None:
            yield sys.stdout
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            yield f


class FileReporterConfig(PluginConfig):
    """Common configuration of the reporters that write text."""

    path: str | None = None
    """Output file, relative to the workflow folder; standard output when omitted."""


class _FileReporter(Reporter):
    config: FileReporterConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self.path: Path | None = (
            context.resolve(self.config.path) if self.config.path is not None else None
        )


# -- terminal ---------------------------------------------------------------------------


class TerminalReporterConfig(FileReporterConfig):
    """Configuration of the ``terminal`` reporter."""

    max_rows: int | None = None
    """Show at most this many rows per table (a note says how many were left out)."""
    width: int | None = None
    """Width in columns; the terminal's width when omitted (100 when not a terminal)."""
    color: bool | None = None
    """Force colors on or off; by default only on an interactive terminal."""


class TerminalReporter(_FileReporter):
    """Rich tables on a terminal; plain, uncolored text elsewhere.

    On an interactive terminal tables get borders, colors and the terminal's
    width (long cells wrap). Written to a file or a pipe the same tables come
    out as plain text without escape codes.
    """

    name = "terminal"
    description = "Tables on the terminal (plain text when not a terminal)."
    Config: ClassVar[type[PluginConfig]] = TerminalReporterConfig

    config: TerminalReporterConfig

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write ``report`` as tables to ``out`` (or ``path``, or stdout)."""
        with _Target(self, out).open() as stream:
            tty = bool(getattr(stream, "isatty", lambda: False)())
            color = self.config.color if self.config.color is not None else tty
            if color:
                self._render(report, stream, color=True, width=self.config.width)
            else:
                import io

                buf = io.StringIO()
                self._render(report, buf, color=False, width=self.config.width or 100)
                stream.writelines(line.rstrip() + "\n" for line in buf.getvalue().splitlines())

    def _render(self, report: Report, stream: TextIO, *, color: bool, width: int | None) -> None:
        from rich import box
        from rich.console import Console
        from rich.table import Table as RichTable
        from rich.text import Text

        console = Console(
            file=stream,
            width=width,
            force_terminal=color,
            no_color=not color,
            highlight=False,
            emoji=False,
            markup=False,
            soft_wrap=False,
        )
        style = box.ROUNDED if color else box.SIMPLE
        console.print(Text(report.title, style="bold" if color else ""))
        if report.generated_at:
            console.print(Text(f"generated {report.generated_at}", style="dim" if color else ""))
        section: str | None = None
        for table in report.tables:
            rows = table.rows
            hidden = 0
            if self.config.max_rows is not None and len(rows) > self.config.max_rows:
                hidden = len(rows) - self.config.max_rows
                rows = rows[: self.config.max_rows]
            numeric = _numeric_columns(table)
            if table.section is not None and table.section != section:
                section = table.section
                console.print()
                console.print(Text(section.upper(), style="bold underline" if color else ""))
            # Title and note go on their own lines so a narrow table does not wrap them.
            rt = RichTable(box=style, header_style="bold" if color else "")
            for i, col in enumerate(table.columns):
                rt.add_column(col, justify="right" if i in numeric else "left", overflow="fold")
            for row in rows:
                rt.add_row(*(Text(cell_text(v)) for v in row))
            console.print()
            console.print(Text(table.title, style="bold" if color else ""))
            console.print(rt)
            if not table.rows:
                console.print(Text("(no rows)", style="dim" if color else ""))
            if hidden:
                console.print(Text(f"... {hidden} more rows", style="dim" if color else ""))
            if table.note:
                console.print(Text(table.note, style="dim" if color else ""))


def _numeric_columns(table: Table) -> set[int]:
    """Indices of columns whose non-empty cells are all numbers."""
    out = set()
    for i in range(len(table.columns)):
        values = [r[i] for r in table.rows if i < len(r) and r[i] is not None]
        if values and all(
            isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
        ):
            out.add(i)
    return out


# -- json -------------------------------------------------------------------------------


class JsonReporterConfig(FileReporterConfig):
    """Configuration of the ``json`` reporter."""

    indent: int = 2
    """Spaces of indentation; 0 writes the report on one line."""


class JsonReporter(_FileReporter):
    """The report as one JSON document: ``{"title", "generated_at", "tables": [...]}``.

    Each table keeps ``title``, ``columns``, ``rows`` (lists of values),
    ``chart`` and ``note``; dates are ISO 8601 strings.
    """

    name = "json"
    description = "The report as a JSON document."
    Config: ClassVar[type[PluginConfig]] = JsonReporterConfig

    config: JsonReporterConfig

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write ``report`` as JSON to ``out`` (or ``path``, or stdout)."""
        data = _json.encode(report)
        if self.config.indent > 0:
            data = msgspec.json.format(data, indent=self.config.indent)
        with _Target(self, out).open() as stream:
            stream.write(data.decode("utf-8"))
            stream.write("\n")


# -- csv --------------------------------------------------------------------------------


class CsvReporterConfig(FileReporterConfig):
    """Configuration of the ``csv`` reporter.

    ``path`` is a **folder**: each table is written to ``<slug of title>.csv``
    in it.
    """

    table: str | None = None
    """Write only the table with this title (or slug)."""
    escape_formulas: bool = True
    """Prefix text cells that start with = + - @ tab or CR with a single quote."""
    delimiter: str = ","
    """Field delimiter, one character."""


class CsvReporter(_FileReporter):
    """One CSV per table: files in the ``path`` folder, or blocks on a stream."""

    name = "csv"
    description = "Tables as CSV files (one per table), safe to open in a spreadsheet."
    Config: ClassVar[type[PluginConfig]] = CsvReporterConfig

    config: CsvReporterConfig

    def _tables(self, report: Report) -> list[Table]:
        want = self.config.table
        if want is None:
            return report.tables
        chosen = [t for t in report.tables if want in (t.title, slugify(t.title))]
        if not chosen:
            from crmkit.errors import ConfigError

            titles = ", ".join(repr(t.title) for t in report.tables) or "none"
            raise ConfigError(f"csv reporter: no table {want!r} in the report (tables: {titles})")
        return chosen[:1]

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write each table as CSV to ``out``, or to files in the ``path`` folder."""
        if len(self.config.delimiter) != 1:
            from crmkit.errors import ConfigError

            raise ConfigError("csv reporter: delimiter must be one character")
        tables = self._tables(report)
        if out is None and self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            used: dict[str, int] = {}
            for table in tables:
                slug = slugify(table.title)
                used[slug] = used.get(slug, 0) + 1
                name = slug if used[slug] == 1 else f"{slug}-{used[slug]}"
                with open(self.path / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
                    self._write_table(table, f)
            return
        stream = out if out is not None else sys.stdout
        for i, table in enumerate(tables):
            if i:
                stream.write("\r\n")
            self._write_table(table, stream)

    def _cell(self, value: Any) -> str:
        text = cell_text(value)
        if self.config.escape_formulas and isinstance(value, str | list | tuple):
            return escape_formula(text)
        return text

    def _write_table(self, table: Table, stream: TextIO) -> None:
        import csv

        writer = csv.writer(stream, delimiter=self.config.delimiter, lineterminator="\r\n")
        writer.writerow([self._cell(c) for c in table.columns])
        for row in table.rows:
            writer.writerow([self._cell(v) for v in row])


# -- jsonl ------------------------------------------------------------------------------


class JsonlReporterConfig(FileReporterConfig):
    """Configuration of the ``jsonl`` reporter."""

    escape_formulas: bool = False
    """Prefix strings that start with = + - @ tab or CR with a single quote."""


class JsonlReporter(_FileReporter):
    """One JSON object per row, every table in one file, tagged with ``table``."""

    name = "jsonl"
    description = "Every table's rows as JSON lines, tagged with the table title."
    Config: ClassVar[type[PluginConfig]] = JsonlReporterConfig

    config: JsonlReporterConfig

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write one line per row of every table to ``out`` (or ``path``, or stdout)."""
        esc = self.config.escape_formulas
        with _Target(self, out).open() as stream:
            for table in report.tables:
                for row in table.rows:
                    obj: dict[str, Any] = {"table": table.title}
                    for col, value in zip(table.columns, row, strict=False):
                        if esc and isinstance(value, str):
                            value = escape_formula(value)
                        obj[col] = value
                    stream.write(_json.encode(obj).decode("utf-8"))
                    stream.write("\n")


# -- html -------------------------------------------------------------------------------


class HtmlReporterConfig(PluginConfig):
    """Configuration of the ``html`` reporter."""

    path: str
    """Output file, relative to the workflow folder."""
    title: str | None = None
    """Page title; the report's title when omitted."""


class HtmlReporter(Reporter):
    """One self-contained HTML page: inline SVG charts, no script, no network request.

    Readable on a phone and when printed; every chart has a title, a
    description and its numbers as a table.
    """

    name = "html"
    description = "One self-contained HTML page with charts (no network requests)."
    Config: ClassVar[type[PluginConfig]] = HtmlReporterConfig

    config: HtmlReporterConfig

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        super().__init__(config, context)
        self.path: Path = context.resolve(self.config.path)

    def render(self, report: Report, out: TextIO | None) -> None:
        """Write ``report`` as an HTML page to ``out``, else to ``path``."""
        from crmkit.builtin.html_report import render_html

        page = render_html(report, title=self.config.title)
        if out is not None:
            out.write(page)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(self.path)


@hookimpl
def crmkit_register_reporters(register: Callable[[type[Reporter]], None]) -> None:
    """Register the built-in reporters."""
    for cls in (TerminalReporter, HtmlReporter, JsonReporter, CsvReporter, JsonlReporter):
        register(cls)


__all__ = [
    "FORMULA_PREFIXES",
    "CsvReporter",
    "CsvReporterConfig",
    "HtmlReporter",
    "HtmlReporterConfig",
    "JsonReporter",
    "JsonReporterConfig",
    "JsonlReporter",
    "JsonlReporterConfig",
    "TerminalReporter",
    "TerminalReporterConfig",
    "cell_text",
    "escape_formula",
    "slugify",
]
