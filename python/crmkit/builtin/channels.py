"""Built-in channels."""

from __future__ import annotations
