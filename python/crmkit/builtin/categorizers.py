"""Built-in categorizers."""

from __future__ import annotations
