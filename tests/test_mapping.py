"""Typed attribute columns: the Rust column converter against the per-value oracle."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import _core
from crmkit.mapping import convert, convert_column
from crmkit.records import AttributeType
from crmkit.store.sqlite import to_epoch

TYPES: list[AttributeType] = ["integer", "number", "boolean", "date", "datetime", "list"]

# Text shaped like what exports carry, with the edge forms mixed in.
_pieces = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "\x1f",
        "0",
        "7",
        "-3",
        "+4",
        "007",
        "1_000",
        "4.0",
        "1e3",
        "1.5e-2",
        ".5",
        "5.",
        "nan",
        "inf",
        "-",
        "e",
        "99999999999999999999",
        "yes",
        "NO",
        "Off",
        "t",
        "x",
        "maybe",
        "2024-02-29",
        "2023-02-29",
        "2024-13-01",
        "2024-01-31",
        "0000-01-01",
        "T10:20",
        "T10:20:30",
        " 10:20:30",
        "Z",
        "+00:00",
        "+02:00",
        "-05:30",
        ".5",
        ".123456",
        ".1234567",
        ";",
        "a;b",
        " ; ",
        "é",
        "٣",
        "\u00a0",
    ]
)
texts = st.lists(_pieces, min_size=0, max_size=4).map("".join)


def _oracle(values: list[Any], typ: AttributeType) -> tuple[list[Any], list[tuple[int, str]]]:
    out: list[Any] = []
    errors: list[tuple[int, str]] = []
    for i, v in enumerate(values):
        try:
            out.append(convert(v, typ))
        except ValueError as exc:
            out.append(None)
            errors.append((i, str(exc)))
    return out, errors


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (a != a and b != b) or a == b
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("typ", TYPES)
@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), texts), max_size=30))
def test_column_converter_equals_per_value_conversion(
    typ: AttributeType, values: list[str | None]
) -> None:
    got, got_errors = convert_column(values, typ)
    want, want_errors = _oracle(values, typ)
    assert got_errors == want_errors
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert _same(g, w), (g, w)


def test_values_that_are_not_text_are_converted_too() -> None:
    out, errors = convert_column([True, 3, 2.0, None, "4", [1]], "integer")
    assert out[1:5] == [3, 2, None, 4]
    assert [i for i, _ in errors] == [0, 5]


def test_errors_name_the_reason_and_never_the_value() -> None:
    _, errors = convert_column(["2024-02-30", "secret@example.com"], "date")
    assert [i for i, _ in errors] == [0, 1]
    assert all("secret" not in reason and "2024" not in reason for _, reason in errors)


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.lists(st.text(), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(json_values, json_values), max_size=20))
def test_attribute_objects_encode_like_msgspec(rows: list[tuple[Any, Any]]) -> None:
    names = ["a", 'é"n']
    cols = [[r[0] for r in rows], [r[1] for r in rows]]
    got = _core.encode_json_objects(names, cols)
    assert got is not None
    for (a, b), enc in zip(rows, got, strict=True):
        want = {k: v for k, v in zip(names, (a, b), strict=True) if v is not None}
        if not want:
            assert enc is None
        else:
            assert enc is not None and msgspec.json.decode(enc) == want


def test_attribute_objects_of_other_kinds_are_left_to_the_caller() -> None:
    assert _core.encode_json_objects(["a"], [[{"x": 1}]]) is None
    assert _core.encode_json_objects(["a"], [[2**70]]) is None


_opt = st.sampled_from
times = st.builds(
    lambda *parts: "".join(parts),
    _opt(["1970-01-01", "1969-12-31", "2024-02-29", "2023-02-29", "2024-07-18", "24-07-18", " "]),
    _opt(["", "T", " ", "x"]),
    _opt(["", "09:59", "09:59:55", "9:59", "23:59:60", "00:00:00"]),
    _opt(["", ".5", ".123456", ".1234567", "."]),
    _opt(["", "Z", "+02:00", "-05:30", "+0530", "+24:00", "-00:00", "+2"]),
    _opt(["", "", " ", "\t"]),
)


@settings(max_examples=400, deadline=None)
@given(values=st.lists(st.one_of(st.none(), times, st.integers(0, 2**31)), max_size=20))
def test_epoch_parser_equals_python(values: list[Any]) -> None:
    got, unsure = _core.parse_epochs(values)
    for i, v in enumerate(values):
        if i in unsure:
            assert got[i] is None
            continue
        assert got[i] == to_epoch(v), v
