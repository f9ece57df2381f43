"""crmkit.bulk: the cycle collector pause around bulk steps."""

from __future__ import annotations

import gc

from crmkit.bulk import collector_paused


def test_pause_restores_the_collector_after_nesting_and_errors() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause does not resume the outer one"
    assert gc.isenabled()
    try:
        with collector_paused():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def test_pause_decorates_each_call() -> None:
    seen: list[bool] = []

    @collector_paused()
    def step(n: int) -> int:
        seen.append(gc.isenabled())
        return n * 2

    assert step(2) == 4 and step(3) == 6
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        step(1)
        assert not gc.isenabled(), "a collector paused before the call stays paused"
    finally:
        gc.enable()
