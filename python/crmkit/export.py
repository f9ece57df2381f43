"""Export contacts — everyone, or the members of one segment — to CSV or JSON Lines.

The export is how a segment leaves crmkit for a tool that has no plugin yet (an
ads audience, a spreadsheet, a mail-merge). It streams in chunks, so memory stays
flat at any size, and writes to a temporary file renamed into place at the end,
so an interrupted export never leaves a half-written file where the whole one
was expected.

A CSV export reads back with ``crmkit import``: lists are joined with the same
separator import splits on, booleans are ``true``/``false``, dates ISO 8601.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import msgspec

from crmkit.errors import ConfigError, NotFoundError
from crmkit.records import CONTACT_FIELDS
from crmkit.store.base import Store

ExportFormat = Literal["csv", "jsonl"]

EXPORT_CHUNK = 20_000
"""Contacts read from the store per query while exporting."""

BUILTIN_EXPORT_FIELDS: tuple[str, ...] = tuple(f for f in CONTACT_FIELDS if f != "external_id")
"""Built-in fields an export can carry (external ids belong to each source)."""


def export_fields(store: Store) -> list[str]:
    """Every field an export of ``store`` can carry: built-ins, then attributes by name."""
    custom = sorted(set(store.attribute_types()) - set(CONTACT_FIELDS))
    return [*BUILTIN_EXPORT_FIELDS, *custom]


def export_contacts(
    store: Store,
    out: Path,
    *,
    fields: Sequence[str] | None = None,
    segment: str | None = None,
    fmt: ExportFormat | None = None,
    list_separator: str = ";",
) -> int:
    """Write live contacts (or the current members of ``segment``) to ``out``.

    ``fields`` default to :func:`export_fields`; the contact id always comes
    first. ``fmt`` defaults from the suffix (``.jsonl``/``.ndjson``: JSON Lines,
    otherwise CSV). Returns the number of contacts written.
    """
    form = fmt or ("jsonl" if out.suffix.lower() in (".jsonl", ".ndjson") else "csv")
    if form not in ("csv", "jsonl"):
        raise ConfigError(f"export format must be 'csv' or 'jsonl', not {form!r}")
    known = export_fields(store)
    chosen = list(dict.fromkeys(fields)) if fields else known
    for f in chosen:
        if f not in known:
            near = get_close_matches(f, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"cannot export unknown field {f!r}{hint}")
    if segment is not None:
        if segment not in {s.name for s in store.list_segments()}:
            raise NotFoundError(f"no segment named {segment!r}")
        ids = sorted(store.resolve_ids(store.segment_members(segment)).values())
        ids = list(dict.fromkeys(ids))
    else:
        ids, _ = store.contact_columns([])
    if not out.parent.exists():
        raise ConfigError(f"{out}: folder {out.parent} does not exist")

    part = out.with_name(out.name + ".part")
    written = 0
    try:
        with part.open("w", newline="", encoding="utf-8") as fh:
            writer = _CsvRows(fh, chosen, list_separator) if form == "csv" else _JsonRows(fh)
            for start in range(0, len(ids), EXPORT_CHUNK):
                got, cols = store.contact_columns(chosen, ids=ids[start : start + EXPORT_CHUNK])
                writer.write(got, [cols[f] for f in chosen], chosen)
                written += len(got)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return written


class _CsvRows:
    def __init__(self, fh: Any, fields: list[str], sep: str) -> None:
        self.w = csv.writer(fh)
        self.w.writerow(["id", *fields])
        self.sep = sep

    def _cell(self, v: Any) -> Any:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return self.sep.join(str(x) for x in v)
        return v

    def write(self, ids: list[int], cols: list[list[Any]], fields: list[str]) -> None:
        cell = self._cell
        self.w.writerows(
            [i, *(cell(v) for v in row)]
            for i, row in zip(ids, zip(*cols, strict=True), strict=True)
        )


class _JsonRows:
    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.enc = msgspec.json.Encoder()

    def write(self, ids: list[int], cols: list[list[Any]], fields: list[str]) -> None:
        lines = []
        for i, row in zip(ids, zip(*cols, strict=True), strict=True):
            obj = {
                "id": i,
                **{f: v for f, v in zip(fields, row, strict=True) if v not in (None, [])},
            }
            lines.append(self.enc.encode(obj).decode())
        if lines:
            self.fh.write("\n".join(lines) + "\n")
