"""Built-in sources."""

from __future__ import annotations
