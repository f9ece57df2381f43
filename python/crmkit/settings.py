"""Kernel settings, read from ``CRMKIT_*`` environment variables.

Secrets (SMTP passwords, API keys, signing keys) are read from the environment
only and never from files in a repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of one kernel. Every field maps to ``CRMKIT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CRMKIT_", extra="forbid")

    db: Path = Field(default=Path("crmkit.db"), description="The store: a SQLite path or a URL.")
    plugins_allow: list[str] | None = Field(
        default=None, description="Only these external plugins are loaded (names)."
    )
    plugins_block: list[str] = Field(
        default_factory=list, description="External plugins never loaded (names)."
    )
    strict_plugins: bool = Field(
        default=False, description="Fail instead of skipping a plugin that does not load."
    )
    disable_plugin_autoload: bool = Field(
        default=False, description="Do not load plugins from the 'crmkit' entry-point group."
    )
    default_region: str = Field(
        default="US", description="Region used to read phone numbers written without +country."
    )
    debug: bool = Field(default=False, description="Show tracebacks on errors.")

    @property
    def store_url(self) -> str:
        """The store as a URL (``sqlite:///path`` for a bare path)."""
        s = str(self.db)
        return s if "://" in s else f"sqlite:///{s}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit ``overrides`` winning."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]


def env_flag(name: str) -> bool:
    """True when environment variable ``name`` is set to a truthy value."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
