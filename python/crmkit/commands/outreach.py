"""`crmkit` commands for the outreach service.

``crmkit campaigns`` (list, preview, send), ``crmkit outbox`` (run, status,
callbacks, resolve), ``crmkit unsubscribe TOKEN`` and ``crmkit consent``
(grant, withdraw, show). Output names contacts by id only.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from crmkit.cli import Ctx
    from crmkit.outreach import Campaign


def campaign_from_toml(path: Path) -> Campaign:
    """A campaign from a TOML file; ``template``/``html`` paths are relative to it."""
    from crmkit.errors import ConfigError
    from crmkit.outreach import make_campaign

    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    base = path.resolve().parent

    def read(rel: Any, what: str) -> str:
        p = base / str(rel)
        if not p.is_file():
            raise ConfigError(f"{path}: {what} {rel} not found")
        return p.read_text(encoding="utf-8")

    if "template" in data:
        data["template"] = read(data["template"], "template")
    if data.get("html"):
        data["html"] = read(data["html"], "html template")
    for fu in data.get("follow_ups", []):
        if isinstance(fu, dict) and "template" in fu:
            fu["template"] = read(fu["template"], "follow-up template")
        if isinstance(fu, dict) and fu.get("html"):
            fu["html"] = read(fu["html"], "follow-up html template")
    data.setdefault("base_dir", str(base))
    return make_campaign(data)


def _resolve(obj: Ctx, spec: str) -> Campaign:
    from crmkit.outreach import load_campaign

    p = Path(spec)
    if p.suffix == ".toml" and p.exists():
        return campaign_from_toml(p)
    return load_campaign(obj.kernel(), spec)


def register(cli: click.Group) -> None:
    """Add the outreach commands to ``cli``."""
    from crmkit.cli import _emit, _to_builtins

    @cli.group()
    def campaigns() -> None:
        """List, preview and send campaigns."""

    @campaigns.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def campaigns_list(obj: Ctx, as_json: bool) -> None:
        """Stored campaigns and their deliveries per status."""
        from crmkit.outreach import list_campaigns

        k = obj.kernel()
        rows: list[dict[str, Any]] = []
        for c in list_campaigns(k):
            audience = (
                f"segment {c.segment}"
                if c.segment
                else "static list"
                if c.contacts is not None
                else "rule"
                if c.where
                else "everyone"
            )
            rows.append(
                {
                    "name": c.name,
                    "channel": c.channel,
                    "purpose": c.purpose,
                    "audience": audience,
                    "trigger": c.trigger.model_dump() if c.trigger else None,
                    "follow_ups": len(c.follow_ups),
                    "deliveries": k.store.delivery_counts(campaign=c.name, scheduled=True),
                }
            )

        def human() -> None:
            if not rows:
                click.echo("no campaigns")
            for r in rows:
                counts = ", ".join(f"{s} {n:,}" for s, n in r["deliveries"].items()) or "none"
                trig = (
                    f", trigger {r['trigger']['segment']}+{r['trigger']['delay']}"
                    if r["trigger"]
                    else ""
                )
                click.echo(
                    f"{r['name']}: {r['channel']} ({r['purpose']}), {r['audience']}{trig}; "
                    f"deliveries: {counts}"
                )

        _emit(rows, as_json, human)

    def _show_result(res: Any, as_json: bool, show_samples: bool) -> None:
        data = _to_builtins(res)

        def human() -> None:
            head = "would queue" if res.dry_run else "queued"
            click.echo(
                f"campaign {res.campaign}: audience {res.audience:,}, {head} {res.queued:,}"
                + (f" ({res.scheduled:,} scheduled)" if res.scheduled else "")
                + (f", already queued {res.already:,}" if res.already else "")
                + (
                    ""
                    if res.dry_run
                    else f", sent {res.sent:,}, failed {res.failed:,}, retrying {res.retrying:,}, "
                    f"unknown {res.unknown:,}"
                )
            )
            if res.exclusions:
                click.echo(f"excluded {len(res.exclusions):,}:")
                for cid, why in res.exclusions:
                    click.echo(f"  contact {cid}: {why}")
            if show_samples:
                for s in res.samples:
                    click.echo(f"--- sample: contact {s['contact_id']}")
                    if s.get("subject") is not None:
                        click.echo(f"Subject: {s['subject']}")
                    click.echo(s["body"])

        _emit(data, as_json, human)

    @campaigns.command("preview")
    @click.argument("campaign")
    @click.option("--samples", default=3, show_default=True, help="Rendered messages to show.")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def campaigns_preview(obj: Ctx, campaign: str, samples: int, as_json: bool) -> None:
        """Render CAMPAIGN (a stored name or a .toml file) for everyone; send nothing.

        Lists every excluded contact (id and reason).
        """
        from crmkit.outreach import run_campaign

        res = run_campaign(obj.kernel(), _resolve(obj, campaign), dry_run=True, samples=samples)
        _show_result(res, as_json, True)

    @campaigns.command("send")
    @click.argument("campaign")
    @click.option("--dry-run", is_flag=True, help="Render and list exclusions; send nothing.")
    @click.option(
        "--queue-only", is_flag=True, help="Write the outbox; leave sending to `outbox run`."
    )
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def campaigns_send(
        obj: Ctx, campaign: str, dry_run: bool, queue_only: bool, as_json: bool
    ) -> None:
        """Queue and send CAMPAIGN (a stored name or a .toml file). Safe to re-run."""
        from crmkit.outreach import run_campaign

        res = run_campaign(
            obj.kernel(), _resolve(obj, campaign), dry_run=dry_run, send=not queue_only
        )
        _show_result(res, as_json, dry_run)

    @cli.group()
    def outbox() -> None:
        """Process and inspect the outbox."""

    @outbox.command("run")
    @click.option("--campaign", help="Only this campaign.")
    @click.option(
        "--loop", type=float, default=None, help="Keep running, pausing this many seconds."
    )
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def outbox_run(obj: Ctx, campaign: str | None, loop: float | None, as_json: bool) -> None:
        """Send what is due: scheduled, retried, triggered and follow-up messages.

        Safe from cron and beside another `outbox run`: rows are claimed
        atomically, a crashed sender's rows are reconciled, never re-sent blindly.
        """
        from crmkit.outreach import process_outbox

        k = obj.kernel()
        while True:
            s = process_outbox(k, campaign=campaign)
            data: dict[str, int] = _to_builtins(s)
            line = ", ".join(f"{key} {v:,}" for key, v in data.items())
            _emit(data, as_json, lambda line=line: click.echo(line))  # type: ignore[misc]
            if loop is None:
                break
            time.sleep(loop)

    @outbox.command("status")
    @click.option("--campaign")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def outbox_status(obj: Ctx, campaign: str | None, as_json: bool) -> None:
        """Deliveries per status (``scheduled``: queued, not yet due)."""
        counts = obj.kernel().store.delivery_counts(campaign=campaign, scheduled=True)
        _emit(
            counts,
            as_json,
            lambda: click.echo(
                "\n".join(f"{s}: {n:,}" for s, n in counts.items()) or "outbox empty"
            ),
        )

    @outbox.command("callbacks")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--channel", required=True, help="The channel whose provider sent them.")
    @click.option(
        "--lines", is_flag=True, help="FILE holds one callback body per line (else one body)."
    )
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def outbox_callbacks(obj: Ctx, file: Path, channel: str, lines: bool, as_json: bool) -> None:
        """Apply provider status callbacks (delivered, bounced, complained, STOP) from FILE."""
        from crmkit.outreach import CallbackSummary, apply_callback

        k = obj.kernel()
        raw = file.read_bytes()
        bodies = [b for b in raw.splitlines() if b.strip()] if lines else [raw]
        total = CallbackSummary()
        for body in bodies:
            s = apply_callback(k, channel, body)
            for f in ("events", "updated", "unmatched", "suppressed", "withdrawn"):
                setattr(total, f, getattr(total, f) + getattr(s, f))
        data = _to_builtins(total)
        _emit(data, as_json, lambda: click.echo(", ".join(f"{a} {v:,}" for a, v in data.items())))

    @outbox.command("resolve")
    @click.option("--campaign", help="Only this campaign.")
    @click.option(
        "--as",
        "outcome",
        type=click.Choice(["sent", "resend", "failed"]),
        required=True,
        help="What the provider says happened to the unknown deliveries.",
    )
    @click.pass_obj
    def outbox_resolve(obj: Ctx, campaign: str | None, outcome: str) -> None:
        """Settle deliveries whose outcome is unknown, after checking with the provider."""
        from crmkit.outreach import resolve_unknown

        n = resolve_unknown(obj.kernel(), campaign=campaign, outcome=outcome)  # type: ignore[arg-type]
        click.echo(f"resolved {n:,} unknown deliveries as {outcome}")

    @cli.command("unsubscribe")
    @click.argument("token")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def unsubscribe_cmd(obj: Ctx, token: str, as_json: bool) -> None:
        """Process an unsubscribe TOKEN: consent is withdrawn at once."""
        from crmkit.outreach import unsubscribe

        req = unsubscribe(obj.kernel(), token, source="cli")
        data = _to_builtins(req)
        _emit(
            data,
            as_json,
            lambda: click.echo(
                f"contact {req.contact_id}: {req.channel}/{req.purpose} consent withdrawn"
            ),
        )

    @cli.group("consent")
    def consent_group() -> None:
        """Record and show consent (an append-only ledger)."""

    def _record(
        obj: Ctx,
        ids: tuple[int, ...],
        channel: str,
        purpose: str,
        evidence: str | None,
        status: str,
    ) -> None:
        from crmkit import consent

        n = consent.record(
            obj.kernel().store, list(ids), channel=channel, purpose=purpose,
            status=status, source="cli", evidence=evidence,  # type: ignore[arg-type]
        )  # fmt: skip
        click.echo(f"{status}: {n:,} contacts ({channel}/{purpose})")

    for status, verb in (("given", "grant"), ("withdrawn", "withdraw")):

        @consent_group.command(verb)
        @click.argument("contact_ids", type=int, nargs=-1, required=True)
        @click.option("--channel", required=True)
        @click.option("--purpose", default="marketing", show_default=True)
        @click.option("--evidence", help="Where the consent comes from (form id, ticket…).")
        @click.pass_obj
        def _cmd(
            obj: Ctx,
            contact_ids: tuple[int, ...],
            channel: str,
            purpose: str,
            evidence: str | None,
            status: str = status,
        ) -> None:
            _record(obj, contact_ids, channel, purpose, evidence, status)

        _cmd.help = f"Record consent {status} for CONTACT_IDS."

    @consent_group.command("show")
    @click.argument("contact_id", type=int)
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_obj
    def consent_show(obj: Ctx, contact_id: int, as_json: bool) -> None:
        """A contact's consent ledger, oldest first."""
        from crmkit import consent

        rows = consent.history(obj.kernel().store, contact_id)

        def human() -> None:
            if not rows:
                click.echo(f"contact {contact_id}: no consent recorded")
            for r in rows:
                click.echo(
                    f"{r['recorded_at']}: {r['channel']}/{r['purpose']} {r['status']} "
                    f"({r['source']}{', ' + r['evidence'] if r['evidence'] else ''})"
                )

        _emit(rows, as_json, human)
