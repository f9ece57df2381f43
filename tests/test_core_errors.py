"""The Rust extension's error hierarchy and panic safety."""

from __future__ import annotations

import pytest

from crmkit import _core, errors


def test_engine_errors_are_crmkit_errors() -> None:
    for cls in (
        errors.EngineError,
        errors.InvalidInputError,
        errors.RuleError,
        errors.EngineConfigError,
        errors.EnginePanic,
    ):
        assert issubclass(cls, errors.CrmkitError)
        assert cls.__module__ == "crmkit._core"


def test_a_panic_raises_instead_of_aborting() -> None:
    with pytest.raises(errors.EnginePanic, match="deliberate test panic"):
        _core._panic_for_tests()
    # The interpreter is still alive and the engine still works.
    assert _core.normalize_emails(["X@Y.org"]) == ["x@y.org"]
