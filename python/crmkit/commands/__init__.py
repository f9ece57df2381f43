"""Built-in CLI command groups, one module per service.

Each module has ``register(cli)`` which adds its commands to the ``crmkit`` group.
"""

MODULES: tuple[str, ...] = ("dedupe", "segments", "outreach", "reports")
