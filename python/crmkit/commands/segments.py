"""`crmkit segments`: define, run, preview and explain segments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from crmkit.cli import Ctx

_AS_OF = click.option(
    "--as-of", "as_of", help="Evaluate at this time (YYYY-MM-DD or ISO 8601); default now."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _out(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)


def register(cli: click.Group) -> None:
    """Add the segments commands to ``cli``."""

    @cli.group()
    def segments() -> None:
        """Define, run, preview and explain segments."""

    @segments.command("list")
    @_JSON
    @click.pass_obj
    def list_(obj: Ctx, as_json: bool) -> None:
        """List segments with their rules and current sizes."""
        import msgspec

        svc = obj.kernel().segments
        rows = []
        for s in svc.definitions():
            d = msgspec.to_builtins(s)
            d["members"] = len(svc.store.segment_members(s.name))
            rows.append(d)
        _out(
            rows,
            as_json,
            [f"{r['name']} ({r['members']:,}): {r['rule'] or '(static)'}" for r in rows],
        )

    @segments.command("add")
    @click.argument("name", required=False)
    @click.argument("rule", required=False)
    @click.option(
        "--file",
        "file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Add many from a TOML, JSON or 'name: rule' text file.",
    )
    @click.option("--description")
    @click.pass_obj
    def add(
        obj: Ctx, name: str | None, rule: str | None, file: Path | None, description: str | None
    ) -> None:
        """Add or replace segment NAME with RULE (or many with --file)."""
        from crmkit.records import Segment
        from crmkit.segments import load_segment_file

        if file is not None:
            segs = load_segment_file(file)
        elif name and rule:
            segs = [Segment(name=name, rule=rule, description=description)]
        else:
            raise click.UsageError("give NAME and RULE, or --file")
        obj.kernel().segments.add(segs)
        click.echo(f"saved {len(segs)} segment{'s' if len(segs) != 1 else ''}")

    @segments.command("remove")
    @click.argument("name")
    @click.pass_obj
    def remove(obj: Ctx, name: str) -> None:
        """Remove segment NAME (its members exit now)."""
        obj.kernel().segments.remove(name)
        click.echo(f"removed {name}")

    @segments.command("run")
    @_AS_OF
    @click.option("--dry-run", is_flag=True, help="Evaluate without recording.")
    @click.option(
        "--rebuild",
        is_flag=True,
        help="Rebuild the snapshot kept beside the store from every contact first.",
    )
    @_JSON
    @click.pass_obj
    def run(obj: Ctx, as_of: str | None, dry_run: bool, rebuild: bool, as_json: bool) -> None:
        """Evaluate every segment and record who entered and exited.

        The snapshot of the store is kept beside it and brought up to date from
        the store's change log, so a run reads only what changed since the last.
        """
        import msgspec

        from crmkit.segments import parse_as_of

        kernel = obj.kernel()
        if rebuild:
            kernel.segments.drop_snapshot()
        r = kernel.segments.run(as_of=parse_as_of(as_of), dry_run=dry_run)
        lines = [
            f"{n}: {c:,} (+{r.entered.get(n, 0):,} / -{r.exited.get(n, 0):,})"
            for n, c in sorted(r.counts.items())
        ]
        _out(msgspec.to_builtins(r), as_json, [*lines, f"({r.seconds:.3f} s)"])

    @segments.command("preview")
    @click.argument("rule")
    @_AS_OF
    @click.option("--sample", default=10, show_default=True)
    @_JSON
    @click.pass_obj
    def preview(obj: Ctx, rule: str, as_of: str | None, sample: int, as_json: bool) -> None:
        """Count the contacts matching RULE now, saving nothing."""
        from crmkit.segments import parse_as_of

        p = obj.kernel().segments.preview(rule, as_of=parse_as_of(as_of), sample=sample)
        _out(p, as_json, [f"{p['count']:,} contacts", f"sample ids: {p['sample']}"])

    @segments.command("explain")
    @click.argument("contact_id", type=int)
    @click.argument("segment")
    @_AS_OF
    @_JSON
    @click.pass_obj
    def explain(obj: Ctx, contact_id: int, segment: str, as_of: str | None, as_json: bool) -> None:
        """Why CONTACT_ID is or is not in SEGMENT, clause by clause."""
        from crmkit.segments import parse_as_of

        tree = obj.kernel().segments.explain(contact_id, segment, as_of=parse_as_of(as_of))
        lines: list[str] = []

        def walk(node: dict[str, Any], depth: int) -> None:
            mark = "✓" if node["value"] else ("∅" if node.get("null") else "✗")
            lines.append(f"{'  ' * depth}{mark} {node['text']}")
            for child in node.get("children", []):
                walk(child, depth + 1)

        walk(tree, 0)
        _out(tree, as_json, lines)

    @segments.command("members")
    @click.argument("name")
    @click.option("--limit", default=50, show_default=True)
    @_JSON
    @click.pass_obj
    def members(obj: Ctx, name: str, limit: int, as_json: bool) -> None:
        """Current members of segment NAME (ids)."""
        ids = obj.kernel().segments.members(name)
        _out(
            ids[:limit] if not as_json else ids,
            as_json,
            [f"{len(ids):,} members", " ".join(map(str, ids[:limit]))],
        )

    @segments.command("history")
    @click.argument("name")
    @click.option("--since", help="Only changes since this date (YYYY-MM-DD).")
    @click.option("--limit", default=50, show_default=True)
    @_JSON
    @click.pass_obj
    def history(obj: Ctx, name: str, since: str | None, limit: int, as_json: bool) -> None:
        """Who entered and left segment NAME, newest first."""
        from datetime import UTC, datetime

        from crmkit.segments import parse_as_of

        rows = obj.kernel().segments.history(
            name, since=parse_as_of(since) if since else None, limit=limit
        )

        def day(t: int | None) -> str:
            return "" if t is None else datetime.fromtimestamp(t, UTC).date().isoformat()

        _out(
            rows,
            as_json,
            [
                f"{r['contact_id']}: entered {day(r['entered_at'])}"
                + (f", exited {day(r['exited_at'])}" if r["exited_at"] else "")
                for r in rows
            ],
        )
