"""Kernel settings, read from ``CRMKIT_*`` environment variables.

Secrets (SMTP passwords, API keys, signing keys) are read from the environment
only and never from files in a repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "CRMKIT_"


class Settings(BaseModel):
    """Settings of one kernel. Every field maps to ``CRMKIT_<FIELD>``.

    Values given to the constructor win over the environment. A list setting
    is read from the environment as a JSON array or as comma-separated names
    (``CRMKIT_PLUGINS_BLOCK=a,b``). The environment is read with a few lines of
    code rather than pydantic-settings, which alone would double the start-up
    time of every ``crmkit`` command.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

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
    snapshot_cache: bool = Field(
        default=True,
        description="Keep the segment snapshot in a file beside the store and bring it up to "
        "date from the store's change log, instead of rebuilding it on every run.",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None and name not in data:
                merged[name] = _list_value(raw) if _is_list(field.annotation) else raw
        merged.update(data)
        return merged

    @property
    def store_url(self) -> str:
        """The store as a URL (``sqlite:///path`` for a bare path)."""
        s = str(self.db)
        return s if "://" in s else f"sqlite:///{s}"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit ``overrides`` winning."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return get_origin(annotation) in (Union, UnionType) and any(
        _is_list(a) for a in get_args(annotation)
    )


def _list_value(raw: str) -> Any:
    """A list from the environment: a JSON array or comma-separated text."""
    text = raw.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # validation reports the bad value by the setting's name
    return [part.strip() for part in text.split(",") if part.strip()]


def env_flag(name: str) -> bool:
    """True when environment variable ``name`` is set to a truthy value."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
