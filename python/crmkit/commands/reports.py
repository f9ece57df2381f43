"""`crmkit` commands for the reports service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from crmkit.cli import Ctx


def register(cli: click.Group) -> None:
    """Add the report commands to ``cli``."""

    @cli.command()
    @click.argument("name", default="summary")
    @click.option("--format", "fmt", default="terminal", show_default=True, help="A reporter name.")
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
    @click.pass_obj
    def report(obj: Ctx, name: str, fmt: str, out: Path | None) -> None:
        """Render report NAME (default: summary)."""
        k = obj.kernel()
        k.render(k.report(name), fmt, {"path": str(out)} if out else {})
