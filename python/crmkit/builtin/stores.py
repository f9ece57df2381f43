"""Built-in stores."""

from __future__ import annotations
