"""`crmkit` commands for the outreach service."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add the outreach commands to ``cli``."""
