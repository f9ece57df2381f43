"""Built-in sources: ``csv`` and ``jsonl`` files of contacts, companies or interactions.

Both map headers to crmkit fields (see :mod:`crmkit.mapping`), yield batches
of columns with each row's line number, and checkpoint a byte offset so that a
re-run reads only rows appended since (a file that changed otherwise is read
again in full; upserts make that safe).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from pydantic import Field

from crmkit.errors import SourceError
from crmkit.hookspecs import hookimpl
from crmkit.kinds import PluginConfig, Source, StreamInfo
from crmkit.mapping import guess_kind, map_headers
from crmkit.records import Batch, Checkpoint, RecordKind, Reject

_FINGERPRINT_BYTES = 65536


class FileSourceConfig(PluginConfig):
    """Settings shared by the file sources."""

    path: str = Field(description="The file to read (relative to the workflow file).")
    kind: Literal["contacts", "companies", "interactions"] | None = Field(
        default=None, description="What the file holds; guessed from the headers when omitted."
    )
    preset: Literal["hubspot", "salesforce"] | None = Field(
        default=None, description="Header map of a CRM export."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='Header → field overrides; map a header to "" to ignore it.',
    )
    batch_rows: int = Field(
        default=25_000,
        ge=1,
        le=1_000_000,
        description="Rows per batch: what an import holds in memory at once.",
    )
    max_field_bytes: int = Field(default=1_048_576, ge=16)


def _fingerprint(path: Path, length: int = _FINGERPRINT_BYTES) -> str:
    """Hash of the first ``length`` bytes: the part already read must not change."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(min(length, _FINGERPRINT_BYTES))).hexdigest()


def _state(path: Path, offset: int) -> dict[str, Any]:
    return {"offset": offset, "fingerprint": _fingerprint(path, offset)}


def _resume_offset(path: Path, state: Mapping[str, Any] | None) -> int:
    """Where to resume: the stored offset when the file only grew since."""
    if not state:
        return 0
    try:
        size = path.stat().st_size
        offset = int(state.get("offset", 0))
        if size < offset or state.get("fingerprint") != _fingerprint(path, offset):
            return 0
        return offset
    except (OSError, ValueError, TypeError):
        return 0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: not readable")


class CsvSource(Source):
    """Delimited text files (CSV, TSV, semicolon), any common encoding."""

    name = "csv"
    description = "CSV/TSV files of contacts, companies or interactions."

    class Config(FileSourceConfig):
        """Settings of the ``csv`` source."""

        encoding: str | None = Field(default=None, description="Detected when omitted.")
        delimiter: str | None = Field(default=None, description="Sniffed when omitted.")

    config: Config

    @property
    def path(self) -> Path:
        return self.context.resolve(self.config.path)

    def _reader(self, start: int = 0) -> Any:
        from crmkit import _core

        _check_file(self.path)
        try:
            return _core.CsvReader(
                str(self.path),
                encoding=self.config.encoding,
                delimiter=self.config.delimiter,
                chunk_rows=self.config.batch_rows,
                max_field_bytes=self.config.max_field_bytes,
                start_byte=start,
            )
        except (OSError, ValueError, _core.CoreError) as exc:
            raise SourceError(f"{self.path}: {exc}") from None

    def check(self) -> None:
        self._reader()

    def _kind(self, headers: list[str]) -> RecordKind:
        return self.config.kind or guess_kind(headers)

    def discover(self) -> list[StreamInfo]:
        r = self._reader()
        headers = list(r.headers)
        kind = self._kind(headers)
        fields = map_headers(
            headers, kind, preset=self.config.preset, overrides=self.config.columns
        )
        return [
            StreamInfo(
                kind=kind,
                fields=tuple(f for f in fields if f),
                file=str(self.path),
                format="csv",
                encoding=r.encoding,
            )
        ]

    def read(self, state: Mapping[str, Any] | None) -> Iterator[Batch | Checkpoint]:
        start = _resume_offset(self.path, state)
        reader = self._reader(start)
        headers = list(reader.headers)
        kind = self._kind(headers)
        fields = map_headers(
            headers, kind, preset=self.config.preset, overrides=self.config.columns
        )
        file = str(self.path)
        offset = start
        for columns, lines, byte_ends, rejects in reader:
            cols = {f: columns[i] for i, f in enumerate(fields) if f}
            batch = Batch(
                kind=kind,
                columns=cols,
                lines=list(lines),
                file=file,
                rejects=[Reject(file=file, line=ln, reason=why) for ln, why in rejects],
                trimmed=True,
            )
            if byte_ends:
                offset = max(offset, byte_ends[-1])
            yield batch
            yield Checkpoint(state=_state(self.path, offset))


class JsonlSource(Source):
    """JSON Lines files: one object per line; nested objects are kept as properties."""

    name = "jsonl"
    description = "JSON Lines files of contacts, companies or interactions."

    class Config(FileSourceConfig):
        """Settings of the ``jsonl`` source."""

    config: Config

    @property
    def path(self) -> Path:
        return self.context.resolve(self.config.path)

    def check(self) -> None:
        _check_file(self.path)

    def _peek_keys(self) -> list[str]:
        with self.path.open("rb") as f:
            for raw in f:
                if raw.strip():
                    try:
                        obj = msgspec.json.decode(raw)
                    except msgspec.DecodeError:
                        return []
                    return list(obj) if isinstance(obj, dict) else []
        return []

    def discover(self) -> list[StreamInfo]:
        self.check()
        keys = self._peek_keys()
        kind = self.config.kind or guess_kind(keys)
        fields = map_headers(keys, kind, preset=self.config.preset, overrides=self.config.columns)
        return [
            StreamInfo(
                kind=kind, fields=tuple(f for f in fields if f), file=str(self.path), format="jsonl"
            )
        ]

    def read(self, state: Mapping[str, Any] | None) -> Iterator[Batch | Checkpoint]:
        self.check()
        start = _resume_offset(self.path, state)
        kind = self.config.kind or guess_kind(self._peek_keys())
        file = str(self.path)
        decoder = msgspec.json.Decoder()
        mapping_cache: dict[str, str | None] = {}
        limit = self.config.max_field_bytes

        def field_of(key: str) -> str | None:
            if key not in mapping_cache:
                mapping_cache[key] = map_headers(
                    [key], kind, preset=self.config.preset, overrides=self.config.columns
                )[0]
            return mapping_cache[key]

        with self.path.open("rb") as f:
            f.seek(start)
            line_no = 0
            if start:
                with self.path.open("rb") as g:
                    line_no = g.read(start).count(b"\n")
            offset = start
            rows: list[dict[str, Any]] = []
            lines: list[int] = []
            rejects: list[Reject] = []

            def flush() -> Batch:
                # Columns straight from the decoded objects: one pass per key.
                union: dict[str, Any] = {}
                for r in rows:
                    union.update(r)
                sources: dict[str, list[str]] = {}
                for key in union:
                    target = field_of(key)
                    if target:
                        sources.setdefault(target, []).append(key)
                cols: dict[str, list[Any]] = {}
                for target, keys in sources.items():
                    if len(keys) == 1:
                        cols[target] = [r.get(keys[0]) for r in rows]
                    else:  # several keys map to one field: the object's last one wins
                        cols[target] = [
                            next((r[k] for k in reversed(r) if k in keys), None) for r in rows
                        ]
                b = Batch(
                    kind=kind, columns=cols, lines=list(lines), file=file, rejects=list(rejects)
                )
                rows.clear()
                lines.clear()
                rejects.clear()
                return b

            for raw in f:
                line_no += 1
                offset += len(raw)
                if not raw.strip():
                    continue
                if len(raw) > limit:
                    rejects.append(
                        Reject(file=file, line=line_no, reason="line longer than max_field_bytes")
                    )
                    continue
                try:
                    obj = decoder.decode(raw)
                except msgspec.DecodeError as exc:
                    rejects.append(Reject(file=file, line=line_no, reason=f"invalid JSON: {exc}"))
                    continue
                if not isinstance(obj, dict):
                    rejects.append(Reject(file=file, line=line_no, reason="not a JSON object"))
                    continue
                rows.append(obj)
                lines.append(line_no)
                if len(rows) >= self.config.batch_rows:
                    yield flush()
                    yield Checkpoint(state=_state(self.path, offset))
            if rows or rejects:
                yield flush()
            yield Checkpoint(state=_state(self.path, offset))


@hookimpl
def crmkit_register_sources(register):  # type: ignore[no-untyped-def]
    register(CsvSource)
    register(JsonlSource)
