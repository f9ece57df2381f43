"""Built-in reporters."""

from __future__ import annotations
