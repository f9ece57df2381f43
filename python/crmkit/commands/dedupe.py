"""`crmkit dedupe` and `crmkit merges`: find duplicates, review, merge, undo."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from crmkit.cli import Ctx


def _status(quiet: bool) -> tuple[Callable[[str], None], Callable[[], None]]:
    """A spinner naming the current step on a TTY; silent otherwise."""
    if quiet or not sys.stderr.isatty():
        return (lambda step: None), (lambda: None)
    from rich.console import Console

    status = Console(stderr=True).status("dedupe")
    status.start()
    return (lambda step: status.update(f"dedupe: {step}")), status.stop


def _config(threshold: float | None, fields: str | None, blocking: tuple[str, ...]) -> Any:
    from crmkit.dedupe import parse_config

    data: dict[str, Any] = {}
    if threshold is not None:
        data["threshold"] = threshold
    if fields:
        data["fields"] = [f.strip() for f in fields.split(",") if f.strip()]
    if blocking:
        data["blocking"] = [[p.strip() for p in rule.split(",") if p.strip()] for rule in blocking]
    return parse_config(data, where="options")


def _overrides(maps: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for m in maps:
        if "=" not in m:
            raise click.BadParameter(f"{m!r} is not HEADER=FIELD", param_hint="--map")
        h, f = m.split("=", 1)
        out[h] = f
    return out


def _fmt(v: Any) -> str:
    if v is None or v == "" or v == [] or v == {}:
        return "∅"
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


_THRESHOLD = click.option("--threshold", type=float, help="Match probability, 0-1 (default 0.5).")
_FIELDS = click.option("--fields", help="Comma-separated fields to compare (default: all present).")


def register(cli: click.Group) -> None:
    """Add the dedupe commands to ``cli``."""

    @cli.command("match")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--out",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write FILE's rows here with match_id and match_probability.",
    )
    @_THRESHOLD
    @_FIELDS
    @click.option(
        "--labels",
        type=click.Path(dir_okay=False, path_type=Path),
        help="CSV of reviewed pairs of contact ids (left,right,match) for training.",
    )
    @click.option(
        "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Guessed when omitted."
    )
    @click.option("--preset", help="Column preset of FILE: hubspot or salesforce.")
    @click.option("--map", "maps", multiple=True, metavar="HEADER=FIELD")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def match(
        obj: Ctx,
        file: Path,
        out: Path,
        threshold: float | None,
        fields: str | None,
        labels: Path | None,
        fmt: str | None,
        preset: str | None,
        maps: tuple[str, ...],
        as_json: bool,
    ) -> None:
        """Match each row of FILE (CSV or JSON Lines) against the contacts in the store.

        Writes every row to --out with the id of the contact it most likely is
        (match_id, blank when none reaches the threshold) and the probability:
        which of these leads are already customers. Nothing is imported.
        """
        from crmkit import dedupe as dd

        cfg = _config(threshold, fields, ())
        pairs = dd.labels_from(labels)
        kernel = obj.kernel()
        step, stop = _status(as_json)
        try:
            index = dd.build_index(kernel.store, cfg, labels=pairs, progress=step)
            rep = dd.match_file(
                index,
                file,
                out,
                threshold=threshold,
                format=fmt,
                preset=preset,
                columns=_overrides(maps) or None,
                progress=step,
            )
        finally:
            stop()
        if rep.rejected:
            click.echo(
                f"warning: {rep.rejected} unreadable rows were left out of {rep.out}", err=True
            )
        if as_json:
            import msgspec

            click.echo(json.dumps(msgspec.to_builtins(rep), indent=2))
        else:
            click.echo(
                f"{rep.rows:,} rows: {rep.matched:,} match a contact in the store; wrote {rep.out}"
            )

    @cli.command()
    @click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        help="With FILE: write its rows here with a cluster_id column.",
    )
    @_THRESHOLD
    @_FIELDS
    @click.option(
        "--blocking",
        multiple=True,
        metavar="PART[,PART]",
        help="A blocking rule, e.g. 'last_name:phonetic,postcode'; repeat for more.",
    )
    @click.option(
        "--labels",
        type=click.Path(dir_okay=False, path_type=Path),
        help="CSV of reviewed pairs (left,right,match) that refine the model: "
        "contact ids, or row numbers with FILE.",
    )
    @click.option(
        "--distinct",
        nargs=2,
        type=int,
        metavar="A B",
        help="Record that contacts A and B are different people: never merged together.",
    )
    @click.option(
        "--same", nargs=2, type=int, metavar="A B", help="Record that A and B are one person."
    )
    @click.option("--show", type=int, default=0, metavar="N", help="Show N clusters.")
    @click.option("--explain", nargs=2, type=int, metavar="A B", help="Explain contacts A and B.")
    @click.option("--dry-run", is_flag=True, help="Show the merge plan as a diff; write nothing.")
    @click.option("--apply", "do_apply", is_flag=True, help="Merge every cluster found.")
    @click.option("--values", is_flag=True, help="Show field values (personal data) in output.")
    @click.option(
        "--rule",
        default="most_complete",
        show_default=True,
        help="Survivorship rule: most_complete, most_recent, source_priority or a plugin's.",
    )
    @click.option(
        "--survivor",
        type=click.Choice(["oldest", "most_complete"]),
        default="oldest",
        show_default=True,
    )
    @click.option("--sources", help="Source priority for --rule source_priority (comma-separated).")
    @click.option("--map", "maps", multiple=True, metavar="HEADER=FIELD", help="With FILE.")
    @click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="With FILE.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def dedupe(
        obj: Ctx,
        file: Path | None,
        out: Path | None,
        threshold: float | None,
        fields: str | None,
        blocking: tuple[str, ...],
        labels: Path | None,
        distinct: tuple[int, int] | None,
        same: tuple[int, int] | None,
        show: int,
        explain: tuple[int, int] | None,
        dry_run: bool,
        do_apply: bool,
        values: bool,
        rule: str,
        survivor: str,
        sources: str | None,
        maps: tuple[str, ...],
        fmt: str | None,
        as_json: bool,
    ) -> None:
        """Find duplicate contacts in the store (or in FILE with --out) and merge them.

        Without options it summarizes the clusters found. --dry-run shows what a
        merge would change; --apply merges (undo with `crmkit merges undo ID`).
        """
        from crmkit import dedupe as dd
        from crmkit.errors import ConfigError

        cfg = _config(threshold, fields, blocking)
        pairs = dd.labels_from(labels)
        step, stop = _status(as_json)
        if file is not None:
            if out is None:
                raise ConfigError("dedupe FILE needs --out FILE for the rows with cluster_id")
            if do_apply or dry_run or explain or distinct or same:
                raise ConfigError(
                    "--apply, --dry-run, --explain, --same and --distinct work on the store, "
                    "not a FILE"
                )
            try:
                rep = dd.dedupe_file(
                    file,
                    out,
                    cfg,
                    format=fmt,
                    columns=_overrides(maps) or None,
                    progress=step,
                    labels=pairs,
                )
            finally:
                stop()
            for w in rep.warnings:
                click.echo(f"warning: {w}", err=True)
            if rep.rejected:
                click.echo(
                    f"warning: {rep.rejected} unreadable rows were left out of {rep.out}",
                    err=True,
                )
            if as_json:
                import msgspec

                click.echo(json.dumps(msgspec.to_builtins(rep), indent=2))
            else:
                click.echo(
                    f"{rep.rows:,} rows: {rep.clusters:,} clusters of duplicates, "
                    f"{rep.duplicates:,} duplicate rows; wrote {rep.out}"
                )
            return
        if out is not None:
            raise ConfigError("--out needs a FILE to read")
        if distinct or same:
            reviewed = [(*p, p is same) for p in (distinct, same) if p]
            n = obj.kernel().label_pairs(
                [dd.LabelledPair(a, b, m) for a, b, m in reviewed], actor="cli"
            )
            if as_json:
                click.echo(json.dumps({"labelled": n}))
            else:
                for a, b, m in reviewed:
                    verdict = "one person" if m else "different people: never merged together"
                    click.echo(f"recorded: {a} and {b} are {verdict}")
            return
        if do_apply and dry_run:
            raise ConfigError("choose one of --apply and --dry-run")
        kernel = obj.kernel()
        try:
            res = dd.find_duplicates(kernel.store, cfg, progress=step, labels=pairs)
            plan = None
            if dry_run or do_apply:
                from crmkit.merge import build_plan

                opts = {"sources": [s.strip() for s in sources.split(",")]} if sources else {}
                plan = build_plan(
                    kernel.store,
                    res,
                    rule=rule,
                    survivor=survivor,  # type: ignore[arg-type]
                    options=opts,
                    progress=step,
                    rules=kernel.survivorship_rules,
                )
            events = []
            if do_apply and plan is not None and len(plan):
                from crmkit.merge import apply_plan

                step("merging")
                events = apply_plan(kernel, plan, actor="cli")
        finally:
            stop()
        for w in res.warnings:
            click.echo(f"warning: {w}", err=True)
        data: dict[str, Any] = {"summary": res.summary()}
        if explain:
            data["explain"] = dd.explain(res, explain[0], explain[1])
        if show:
            data["clusters"] = [
                {"cluster_id": c, "ids": ids} for c, ids in list(res.clusters.items())[:show]
            ]
        if plan is not None:
            data["plan"] = plan.diff(values=values)
        if events:
            data["merges"] = [e.id for e in events]

        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        s = data["summary"]
        click.echo(
            f"{s['records']:,} contacts: {s['clusters']:,} clusters of duplicates, "
            f"{s['duplicates']:,} duplicates"
        )
        labelled, apart = (
            int(s["stats"].get(k, 0)) for k in ("labelled_pairs", "links_kept_apart")
        )
        if labelled or apart:
            click.echo(
                f"reviewed pairs used: {labelled:,}; matches kept apart "
                f"(reviewed as different people, or an undone merge): {apart:,}"
            )
        if show:
            rows = (
                kernel.store.get_contacts([i for c in data["clusters"] for i in c["ids"]])
                if values
                else []
            )
            names = {c.id: c.display_name for c in rows}
            for c in data["clusters"]:
                ids = c["ids"]
                shown = ", ".join(f"{i} ({names.get(i)})" if values else str(i) for i in ids)
                click.echo(f"cluster {c['cluster_id']}: {shown}")
        if explain:
            e = data["explain"]
            click.echo(f"contacts {explain[0]} and {explain[1]}:")
            for f in e.get("fields", []):
                click.echo(
                    f"  {f.get('field', '?'):<12} {f.get('level', '')!s:<14} "
                    f"{f.get('weight', 0.0):+7.2f}  tf {f.get('tf_adjustment', 0.0):+.2f}"
                )
            click.echo(
                f"  total weight {e.get('total_weight', 0.0):+.2f}, "
                f"probability {e.get('probability', 0.0):.4f}"
            )
        if plan is not None:
            verb = "merged" if events else "would merge"
            click.echo(f"{verb} {plan.merged:,} contacts into {len(plan):,} survivors")
            if dry_run:
                for c in plan.diff(values=values):
                    merged = ", ".join(map(str, c["merged"]))
                    click.echo(f"cluster {c['cluster_id']}: keep {c['survivor']} ← {merged}")
                    for ch in c["changes"]:
                        src = "combined" if ch["from"] is None else f"from {ch['from']}"
                        if values:
                            click.echo(
                                f"  {ch['field']}: {_fmt(ch['old'])} → {_fmt(ch['new'])} ({src})"
                            )
                        else:
                            click.echo(f"  {ch['field']} ({src})")
                if not values:
                    click.echo("(add --values to see the field values)")
        if events:
            click.echo(
                f"merge ids {events[0].id}-{events[-1].id}; undo one with `crmkit merges undo ID`"
            )

    @cli.group(invoke_without_command=True)
    @click.option("--limit", default=50, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def merges(ctx: click.Context, limit: int, as_json: bool) -> None:
        """List merges (newest first); `show ID` and `undo ID` below."""
        if ctx.invoked_subcommand is not None:
            return
        evs = ctx.obj.kernel().store.list_merges(limit=limit)
        if as_json:
            import msgspec

            click.echo(json.dumps(msgspec.to_builtins(evs), indent=2))
            return
        if not evs:
            click.echo("no merges")
        for e in evs:
            state = f"undone {e.undone_at:%Y-%m-%d %H:%M}" if e.undone_at else "in force"
            merged = ", ".join(map(str, e.merged_ids))
            when = f"{e.created_at:%Y-%m-%d %H:%M}" if e.created_at else "?"
            click.echo(f"{e.id:>6}  {when}  {e.survivor_id} ← {merged}  ({state})")

    @merges.command("show")
    @click.argument("merge_id", type=int)
    @click.option("--values", is_flag=True, help="Show the field values before the merge.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def merges_show(obj: Ctx, merge_id: int, values: bool, as_json: bool) -> None:
        """Show merge MERGE_ID: ids, score, where each field came from."""
        import msgspec

        store = obj.kernel().store
        e = store.get_merge(merge_id)
        data: dict[str, Any] = msgspec.to_builtins(e)
        data["undo"] = dict(store.undo_check(merge_id))
        if values:
            data["before"] = store.merge_before(merge_id)["contacts"]
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        click.echo(
            f"merge {e.id}: kept {e.survivor_id}, merged {', '.join(map(str, e.merged_ids))}"
        )
        if e.score is not None:
            click.echo(f"weakest link probability {e.score:.4f}")
        for f, src in sorted((e.provenance.get("fields") or {}).items()):
            click.echo(f"  {f:<16} from {src}")
        state = "undone" if e.undone_at else "in force"
        reason = data["undo"]["reason"]
        click.echo(f"{state}" + (f"; cannot undo: {reason}" if reason and not e.undone_at else ""))
        if values:
            for row in data["before"]:
                shown = {k: v for k, v in row.items() if v is not None and not isinstance(v, dict)}
                click.echo(f"  before {row['id']}: {shown}")

    @merges.command("undo")
    @click.argument("merge_id", type=int)
    @click.option("--force", is_flag=True, help="Restore even if the survivor changed since.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def merges_undo(obj: Ctx, merge_id: int, force: bool, as_json: bool) -> None:
        """Undo merge MERGE_ID: every row it touched goes back as it was."""
        from crmkit.merge import undo

        e = undo(obj.kernel(), merge_id, actor="cli", force=force)
        if as_json:
            click.echo(json.dumps({"undone": e.id, "restored": [e.survivor_id, *e.merged_ids]}))
        else:
            click.echo(
                f"undid merge {e.id}: contacts {', '.join(map(str, e.merged_ids))} "
                f"split from {e.survivor_id} again"
            )
