"""`crmkit` commands for the segments service."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add the segments commands to ``cli``."""
