"""The built-in ``local`` engine: the Rust core on this machine's cores."""

from __future__ import annotations

from crmkit.hookspecs import hookimpl
from crmkit.kinds import Engine


class LocalEngine(Engine):
    """Runs dedupe and segment matching in-process with Rust and rayon."""

    name = "local"
    description = "In-process Rust engine using every core (rayon)."


@hookimpl
def crmkit_register_engines(register):  # type: ignore[no-untyped-def]
    register(LocalEngine)
