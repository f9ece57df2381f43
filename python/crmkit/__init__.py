"""crmkit: a pluggable CRM framework with a Rust core.

The public API::

    from crmkit import Kernel, hookimpl, PLUGIN_API

Names are imported lazily so that ``crmkit --help`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmkit.hookspecs import PLUGIN_API, hookimpl

if TYPE_CHECKING:
    from crmkit import records
    from crmkit.kernel import Kernel

__version__ = "0.1.0"

__all__ = ["PLUGIN_API", "Kernel", "__version__", "hookimpl", "records"]


def __getattr__(name: str) -> Any:
    if name == "Kernel":
        from crmkit.kernel import Kernel

        return Kernel
    if name == "records":
        from crmkit import records

        return records
    raise AttributeError(f"module 'crmkit' has no attribute {name!r}")
