"""The ``crmkit`` command line.

Every command finds the store the same way: ``--db PATH``, else the
``CRMKIT_DB`` environment variable, else ``./crmkit.db``. Commands that print
data take ``--json``. Errors are one line on stderr with exit code 1 (2 for
usage errors); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.plugins import PluginManager


class Ctx:
    """Per-invocation state shared by the commands."""

    def __init__(self, db: str | None, debug: bool, manager: PluginManager | None) -> None:
        self.db = db
        self.debug = debug
        self.manager = manager
        self._kernel: Kernel | None = None

    def kernel(self, db: str | Path | None = None) -> Kernel:
        if self._kernel is None:
            from crmkit.kernel import Kernel
            from crmkit.settings import load_settings

            settings = load_settings(db=db or self.db, debug=self.debug or None)
            self._kernel = Kernel(settings, manager=self.manager)
        return self._kernel

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.close()


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


def _to_builtins(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)


def _progress_bar(label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A rows-counting progress display on a TTY; silent otherwise."""
    if not sys.stderr.isatty():
        return (lambda n: None), (lambda: None)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    prog = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        transient=True,
    )
    task = prog.add_task(label, total=None)
    prog.start()
    return (lambda n: prog.advance(task, n)), prog.stop


def _consent_column(spec: str) -> Any:
    from crmkit.ingest import ConsentColumn

    parts = [p.strip() for p in spec.split(":")]
    if not parts[0] or len(parts) > 3:
        raise click.BadParameter(
            f"{spec!r} is not COLUMN[:CHANNEL[:PURPOSE]]", param_hint="--consent"
        )
    return ConsentColumn(
        column=parts[0],
        channel=parts[1] if len(parts) > 1 else "email",
        purpose=parts[2] if len(parts) > 2 else "marketing",
    )


def build_cli(manager: PluginManager | None = None) -> click.Group:
    """Build the command group; plugins add commands through ``crmkit_register_commands``."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--db", envvar="CRMKIT_DB", help="The store (SQLite path or URL). Default ./crmkit.db."
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
    @click.version_option(package_name="crmkit")
    @click.pass_context
    def cli(ctx: click.Context, db: str | None, debug: bool) -> None:
        """crmkit: collect, clean, segment, reach and report on one customer base."""
        ctx.obj = Ctx(db, debug, manager)
        ctx.call_on_close(ctx.obj.close)

    @cli.command()
    @click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
    @click.option(
        "--contacts", default=3000, show_default=True, help="Sample contacts to generate."
    )
    @click.option("--seed", default=42, show_default=True)
    @click.option("--force", is_flag=True, help="Overwrite existing files.")
    def init(folder: Path, contacts: int, seed: int, force: bool) -> None:
        """Write a starter workflow and sample data into FOLDER."""
        from crmkit.starter import write_starter

        written = write_starter(folder, contacts=contacts, seed=seed, force=force)
        for p in written:
            click.echo(f"wrote {p}")
        click.echo(f"next: cd {folder} && crmkit run workflow.toml")

    @cli.command()
    @click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--dry-run", is_flag=True, help="Validate and show what would change; write nothing."
    )
    @click.option("--check", is_flag=True, help="Only validate the file.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def run(obj: Ctx, workflow: Path, dry_run: bool, check: bool, as_json: bool) -> None:
        """Validate WORKFLOW, then run its steps (safe to re-run)."""
        from crmkit.plugins import Registry, make_plugin_manager
        from crmkit.settings import load_settings
        from crmkit.workflow import load_workflow, run_workflow

        settings = load_settings(db=obj.db)
        mgr = obj.manager or make_plugin_manager(settings)
        wf = load_workflow(workflow, Registry(mgr, strict=settings.strict_plugins))
        if check:
            click.echo(f"{workflow}: ok")
            return
        db: str | Path | None = obj.db
        if db is None and wf.store.url:
            url = wf.store.url
            db = url if "://" in url else wf.base_dir / url
        if db is None:
            db = wf.base_dir / "crmkit.db" if not os.environ.get("CRMKIT_DB") else None
        obj.manager = mgr
        kernel: Kernel = obj.kernel(db)

        def show(info: dict[str, Any]) -> None:
            if as_json:
                return
            details = ", ".join(
                f"{k}={v}"
                for k, v in info.items()
                if k not in ("step",) and v not in (None, {}, "")
            )
            click.echo(f"✓ {info['step']}: {details}", err=False)

        summary = run_workflow(
            kernel,
            wf,
            dry_run=dry_run,
            progress=show,
            report_stream=sys.stderr if as_json else None,
        )
        if as_json:
            click.echo(json.dumps(summary, indent=2, default=str))

    @cli.command("import")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--kind",
        type=click.Choice(["contacts", "companies", "interactions"]),
        help="Guessed when omitted.",
    )
    @click.option(
        "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Guessed when omitted."
    )
    @click.option(
        "--key", type=click.Choice(["email", "external_id"]), default="email", show_default=True
    )
    @click.option("--preset", type=click.Choice(["hubspot", "salesforce"]))
    @click.option(
        "--map", "maps", multiple=True, metavar="HEADER=FIELD", help="Map a header to a field."
    )
    @click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Default FILE.rejects.csv.",
    )
    @click.option(
        "--consent",
        "consents",
        multiple=True,
        metavar="COLUMN[:CHANNEL[:PURPOSE]]",
        help="Record a consent column (yes/no) in the ledger; default channel email, purpose marketing.",
    )
    @click.option(
        "--type",
        "types",
        multiple=True,
        metavar="COLUMN=TYPE",
        help="Declare a custom column's type (its header or field name): string, integer, "
        "number, boolean, date, datetime or list. Default: inferred and shown.",
    )
    @click.option("--full", is_flag=True, help="Read the whole file again, not only what is new.")
    @click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def import_(
        obj: Ctx,
        file: Path,
        kind: str | None,
        fmt: str | None,
        key: str,
        preset: str | None,
        maps: tuple[str, ...],
        rejects: Path | None,
        consents: tuple[str, ...],
        types: tuple[str, ...],
        full: bool,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        """Import a CSV or JSONL FILE of contacts, companies or interactions."""
        from crmkit.kernel import guess_format
        from crmkit.mapping import slug
        from crmkit.store.sqlite import ATTRIBUTE_TYPES

        columns = {}
        for m in maps:
            if "=" not in m:
                raise click.BadParameter(f"{m!r} is not HEADER=FIELD", param_hint="--map")
            h, f = m.split("=", 1)
            columns[h] = f
        declared: dict[str, Any] = {}
        for t in types:
            name, _, typ = t.partition("=")
            if not name.strip() or typ.strip() not in ATTRIBUTE_TYPES:
                raise click.BadParameter(
                    f"{t!r} is not COLUMN=TYPE with TYPE one of {', '.join(sorted(ATTRIBUTE_TYPES))}",
                    param_hint="--type",
                )
            declared[slug(name)] = typ.strip()
        kernel = obj.kernel()
        fmt = fmt or guess_format(file)
        src = kernel.plugin(
            "source",
            fmt,
            {
                "path": str(file.resolve()),
                **({"kind": kind} if kind else {}),
                **({"preset": preset} if preset else {}),
                **({"columns": columns} if columns else {}),
            },
        )
        info = src.discover()
        if info and not as_json:
            s = info[0]
            enc = f", encoding {s.encoding}" if s.encoding else ""
            click.echo(
                f"{file}: {s.format} of {s.kind}{enc}; fields: {', '.join(s.fields)}", err=True
            )
        advance, stop = _progress_bar(f"importing {file.name}")
        try:
            report = kernel.import_file(
                file,
                kind=kind or (info[0].kind if info else None),
                format=fmt,
                key=key,
                preset=preset,
                columns=columns or None,
                rejects=rejects,
                dry_run=dry_run,
                on_batch=advance,
                consent=[_consent_column(c) for c in consents],
                attributes=declared or None,
                full=full,
            )
        finally:
            stop()
        data = _to_builtins(report)

        def human() -> None:
            head = "would import" if dry_run else "imported"
            click.echo(
                f"{head} {report.rows:,} rows ({report.kind}): {report.created:,} created, "
                f"{report.updated:,} updated, {report.interactions_added:,} interactions, "
                f"{report.rejected_rows:,} rejected, {report.dropped_values:,} values dropped"
            )
            if report.inferred:
                types = ", ".join(f"{a}={report.attribute_types[a]}" for a in report.inferred)
                click.echo(f"inferred attribute types: {types}")
            if report.rejects_path:
                click.echo(f"rejects: {report.rejects_path}")

        _emit(data, as_json, human)

    @cli.group()
    def contacts() -> None:
        """Find and show contacts."""

    @contacts.command("find")
    @click.argument("text", required=False)
    @click.option("--email")
    @click.option("--stage", "lifecycle_stage")
    @click.option("--limit", default=20, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def contacts_find(
        obj: Ctx,
        text: str | None,
        email: str | None,
        lifecycle_stage: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """Find contacts by name, email, company or city."""
        found = obj.kernel().find_contacts(
            text, email=email, lifecycle_stage=lifecycle_stage, limit=limit
        )

        def human() -> None:
            from rich.console import Console
            from rich.table import Table

            t = Table("id", "name", "email", "phone", "company", "city", "stage")
            for c in found:
                t.add_row(
                    str(c.id),
                    c.display_name,
                    c.email or "",
                    c.phone or "",
                    c.company or "",
                    c.city or "",
                    c.lifecycle_stage or "",
                )
            Console().print(t)

        _emit(_to_builtins(found), as_json, human)

    @contacts.command("export")
    @click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--segment", help="Only the current members of this segment.")
    @click.option(
        "--fields", help="Comma-separated fields (default: every built-in field and attribute)."
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl"]),
        help="Default: from OUT's suffix (.jsonl: JSON Lines, else CSV).",
    )
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def contacts_export(
        obj: Ctx,
        out: Path,
        segment: str | None,
        fields: str | None,
        fmt: Literal["csv", "jsonl"] | None,
        as_json: bool,
    ) -> None:
        """Export contacts (or one segment's members) to a CSV or JSON Lines file."""
        chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        n = obj.kernel().export_contacts(out, fields=chosen, segment=segment, fmt=fmt)
        _emit(
            {"exported": n, "out": str(out)},
            as_json,
            lambda: click.echo(f"exported {n} contacts to {out}"),
        )

    @contacts.command("erase")
    @click.argument("contact_ids", type=int, nargs=-1, required=True)
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def contacts_erase(obj: Ctx, contact_ids: tuple[int, ...], yes: bool, as_json: bool) -> None:
        """Erase contacts for good (right to be forgotten): records, timeline, consents,
        memberships, merge history and message copies; a keyed hash of each address
        stays suppressed so that no campaign or import brings the person back."""
        if not yes:
            click.confirm(
                f"Erase {len(contact_ids)} contact(s) and everything recorded about them? "
                "This cannot be undone",
                abort=True,
                err=True,
            )
        res = obj.kernel().erase_contacts(list(contact_ids), actor="cli")
        _emit(
            _to_builtins(res),
            as_json,
            lambda: click.echo(
                f"erased {res.contacts} contact record(s), {res.interactions} interaction(s)"
            ),
        )

    @contacts.command("show")
    @click.argument("contact_id", type=int)
    @click.option("--limit", default=20, show_default=True, help="Timeline entries.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def contacts_show(obj: Ctx, contact_id: int, limit: int, as_json: bool) -> None:
        """Show one contact and its timeline."""
        k = obj.kernel()
        c = k.contact(contact_id)
        tl = k.timeline(c.id, limit=limit)

        def human() -> None:
            from rich.console import Console
            from rich.table import Table

            con = Console()
            t = Table(show_header=False, title=f"contact {c.id}")
            for f, v in _to_builtins(c).items():
                if v not in (None, "", [], {}):
                    t.add_row(f, str(v))
            con.print(t)
            tt = Table("when", "kind", "channel", "amount", "subject", title="timeline")
            for i in tl:
                tt.add_row(
                    i.occurred_at.isoformat(timespec="minutes"),
                    i.kind,
                    i.channel or "",
                    "" if i.amount is None else f"{i.amount:.2f}",
                    i.subject or "",
                )
            con.print(tt)

        _emit({"contact": _to_builtins(c), "timeline": _to_builtins(tl)}, as_json, human)

    @cli.command()
    @click.option("--use", "uses", multiple=True, help="Categorizers to run (default: all).")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def categorize(obj: Ctx, uses: tuple[str, ...], as_json: bool) -> None:
        """Run categorizers over the whole base."""
        out = obj.kernel().categorize(list(uses) or None)

        def human() -> None:
            for name, count in out.items():
                click.echo(f"{name}: {count:,} contacts")

        _emit(out, as_json, human)

    @cli.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def plugins(obj: Ctx, as_json: bool) -> None:
        """List plugins, their versions and the hooks each implements."""
        from crmkit.plugins import Registry, make_plugin_manager, plugin_version
        from crmkit.settings import load_settings

        mgr = obj.manager or make_plugin_manager(load_settings(db=obj.db))
        reg = Registry(mgr)
        rows: list[dict[str, Any]] = []
        for name, plugin in sorted(mgr.pm.list_name_plugin(), key=lambda x: x[0]):
            hooks = sorted(h.name for h in mgr.pm.get_hookcallers(plugin) or [])
            provides = sorted(
                f"{kind}:{n}"
                for kind, regs in reg.kinds.items()
                for n, r in regs.items()
                if r.owner == name
            )
            rows.append(
                {
                    "name": name,
                    "version": mgr.versions.get(name)
                    or plugin_version(mgr.pm, name)
                    or ("builtin" if name in mgr.builtin else None),
                    "hooks": hooks,
                    "provides": provides,
                }
            )
        failures = [{"name": f.name, "error": f.error} for f in reg.failures]

        def human() -> None:
            for r in rows:
                click.echo(f"{r['name']} ({r['version'] or 'unknown'})")
                click.echo(f"  provides: {', '.join(r['provides']) or '-'}")
                click.echo(f"  hooks:    {', '.join(r['hooks'])}")
            for f in failures:
                click.echo(f"{f['name']}: FAILED to load: {f['error']}")

        _emit({"plugins": rows, "failures": failures}, as_json, human)

    import importlib

    from crmkit.commands import MODULES

    for mod in MODULES:
        importlib.import_module(f"crmkit.commands.{mod}").register(cli)
    if manager is not None:
        manager.pm.hook.crmkit_register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``crmkit`` command."""
    from crmkit.errors import CrmkitError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    fast = not args or args[0] in ("--help", "-h", "--version")
    manager = None
    try:
        if not fast:
            from crmkit.plugins import make_plugin_manager
            from crmkit.settings import load_settings

            manager = make_plugin_manager(load_settings())
        cli = build_cli(manager)
        cli.main(args=args, prog_name="crmkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except CrmkitError as exc:
        if debug:
            raise
        lines = str(exc).splitlines() or [type(exc).__name__]
        click.echo(f"error: {lines[0]}", err=True)
        for line in lines[1:]:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted; re-run to continue where it stopped", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"error: internal error ({type(exc).__name__}: {exc}); re-run with --debug for details",
            err=True,
        )
        sys.exit(1)
