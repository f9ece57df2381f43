"""`crmkit` commands for the reports service."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add the reports commands to ``cli``."""
