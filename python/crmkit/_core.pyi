"""Type stubs for the Rust extension ``crmkit._core``."""

from crmkit._base import CrmkitError

__version__: str

# -- errors ------------------------------------------------------------------
class CoreError(CrmkitError): ...
class InvalidInputError(CoreError): ...
class RuleError(CoreError): ...
class ConfigError(CoreError): ...
class EnginePanic(CoreError): ...

def _panic_for_tests() -> None: ...

# -- normalize ---------------------------------------------------------------
def normalize_emails(
    values: list[str | None], *, strip_plus: bool = False, fold_gmail_dots: bool = False
) -> list[str | None]: ...

# -- csv reader ----------------------------------------------------------

# -- dedupe ------------------------------------------------------------------

# -- segments ----------------------------------------------------------------
