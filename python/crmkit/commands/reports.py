"""`crmkit` commands for the reports service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from crmkit.cli import Ctx


def register(cli: click.Group) -> None:
    """Add the report commands to ``cli``."""
    from crmkit.reports import ALL, REPORTS

    @cli.command()
    @click.argument("name", default="summary", type=click.Choice([*REPORTS, ALL]), metavar="[NAME]")
    @click.option(
        "--format",
        "fmt",
        default="terminal",
        show_default=True,
        help="A reporter name: terminal, html, csv, jsonl, json or a plugin's.",
    )
    @click.option(
        "--out",
        type=click.Path(dir_okay=True, path_type=Path),
        help="Output file (a folder for csv); required for html.",
    )
    @click.option("--title", help="Page title (html).")
    @click.option(
        "--conversion-days",
        type=click.IntRange(min=1),
        default=30,
        show_default=True,
        help="A purchase within this many days after a message or click converts it.",
    )
    @click.pass_obj
    def report(
        obj: Ctx, name: str, fmt: str, out: Path | None, title: str | None, conversion_days: int
    ) -> None:
        """Render report NAME (default: summary; all: every report in one)."""
        from crmkit.reports import ReportOptions, build_report

        if fmt == "html" and out is None:
            raise click.UsageError("--out is required with --format html")
        config: dict[str, Any] = {"path": str(out)} if out else {}
        if title is not None:
            if fmt != "html":
                raise click.UsageError("--title applies to --format html only")
            config["title"] = title
        k = obj.kernel()
        show = sys.stderr.isatty()

        def progress(section: str) -> None:
            if show:
                click.echo(f"computing {section} ...", err=True)

        rep = build_report(
            k, name, options=ReportOptions(conversion_days=conversion_days), progress=progress
        )
        k.render(rep, fmt, config)
        if out is not None and show:
            click.echo(f"wrote {out}", err=True)
