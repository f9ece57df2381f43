"""`crmkit` commands for the dedupe service."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add the dedupe commands to ``cli``."""
