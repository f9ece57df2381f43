"""The root of the crmkit exception hierarchy.

Kept in its own module so that the Rust extension can derive its exception
classes from it at import time without an import cycle.
"""


class CrmkitError(Exception):
    """Base class of every error crmkit raises on purpose."""
