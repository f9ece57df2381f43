"""Shared fixtures for crmkit's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's CRMKIT_* settings."""
    import os

    for key in list(os.environ):
        if key.startswith("CRMKIT_"):
            monkeypatch.delenv(key)
