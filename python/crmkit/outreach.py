"""Campaigns: audience → consent → render → outbox → send, never twice.

Each message has an idempotency key per (campaign, step, contact, channel);
the outbox row is written before anything is sent, so a re-run sends only
what is still queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from crmkit.errors import ConfigError
from crmkit.kinds import Channel
from crmkit.records import Message

if TYPE_CHECKING:
    from crmkit.kernel import Kernel


class CampaignResult(msgspec.Struct, kw_only=True):
    """Counts of one campaign run (no personal data)."""

    campaign: str
    audience: int = 0
    excluded: dict[str, int] = msgspec.field(default_factory=dict)
    queued: int = 0
    sent: int = 0
    failed: int = 0
    dry_run: bool = False


def render_template(text: str) -> Any:
    """Compile a template in a sandbox with strict undefined variables."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    return env.from_string(text)


def run_campaign(
    kernel: Kernel,
    *,
    name: str,
    channel: str,
    channel_config: Mapping[str, Any],
    template: str,
    subject: str | None = None,
    where: Mapping[str, Any] | None = None,
    purpose: str = "marketing",
    require_consent: bool = False,
    dry_run: bool = False,
    base_dir: Path | None = None,
) -> CampaignResult:
    """Send ``template`` to the contacts matching ``where`` over ``channel``."""
    from jinja2 import TemplateError

    store = kernel.store
    ch: Channel = kernel.plugin("channel", channel, channel_config, base_dir=base_dir)
    ch.check()
    fields = [
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "city",
        "country",
        "lifecycle_stage",
    ]
    where = dict(where or {})
    extra = [k for k in where if k not in fields]
    ids, cols = store.contact_columns(fields + extra)
    res = CampaignResult(campaign=name, dry_run=dry_run)
    chosen = [i for i in range(len(ids)) if all(cols[k][i] == v for k, v in where.items())]
    res.audience = len(chosen)
    consent = store.consent_status([ids[i] for i in chosen], channel=channel, purpose=purpose)
    tmpl = render_template(template)
    subj = render_template(subject) if subject else None
    addr_field = ch.address_field
    rows: list[dict[str, Any]] = []
    for i in chosen:
        cid = ids[i]
        status = consent.get(cid)
        why = None
        if status == "withdrawn":
            why = "consent withdrawn"
        elif status is None and require_consent:
            why = "no consent"
        elif not cols.get(addr_field, [None] * len(ids))[i]:
            why = f"no {addr_field}"
        if why:
            res.excluded[why] = res.excluded.get(why, 0) + 1
            continue
        data = {f: cols[f][i] for f in fields + extra}
        data["id"] = cid
        try:
            body = tmpl.render(contact=data)
            sub = subj.render(contact=data) if subj else None
        except TemplateError as exc:
            raise ConfigError(f"campaign {name!r}: template error: {exc}") from None
        key = f"{name}:0:{cid}:{channel}"
        rows.append(
            {
                "key": key,
                "campaign": name,
                "step": 0,
                "contact_id": cid,
                "channel": channel,
                "payload": {"to": cols[addr_field][i], "subject": sub, "body": body},
            }
        )
    if dry_run:
        res.queued = len(rows)
        return res
    res.queued = store.enqueue_deliveries(rows)
    sent, failed = send_queued(kernel, ch, campaign=name)
    res.sent, res.failed = sent, failed
    return res


def send_queued(kernel: Kernel, ch: Channel, *, campaign: str | None = None) -> tuple[int, int]:
    """Send queued deliveries of ``campaign`` through ``ch`` in batches."""
    store = kernel.store
    sent = failed = 0
    while True:
        queued = [
            d
            for d in store.queued_deliveries(campaign=campaign, limit=ch.max_batch)
            if d["channel"] == ch.name
        ]
        if not queued:
            break
        msgs = [
            Message(
                key=d["key"],
                contact_id=d["contact_id"],
                channel=d["channel"],
                to=d["payload"]["to"],
                subject=d["payload"].get("subject"),
                body=d["payload"]["body"],
            )
            for d in queued
        ]
        vetoed = kernel.hooks.before_send(kernel, msgs)
        to_send = [m for m in msgs if m.key not in vetoed]
        updates: list[dict[str, Any]] = [
            {"key": k, "status": "failed", "error": f"vetoed by plugin {owner!r}"}
            for k, owner in vetoed.items()
        ]
        results = ch.send_batch(to_send) if to_send else []
        by_key = {r.key: r for r in results}
        interactions: dict[str, list[Any]] = {
            "contact_id": [],
            "kind": [],
            "occurred_at": [],
            "channel": [],
            "subject": [],
            "key": [],
        }
        import time

        now = int(time.time())
        for m in to_send:
            r = by_key.get(m.key)
            if r is None:
                updates.append(
                    {"key": m.key, "status": "unknown", "error": "no result from channel"}
                )
                continue
            status = {"sent": "sent", "failed": "failed", "retry": "queued", "unknown": "unknown"}[
                r.status
            ]
            updates.append(
                {"key": m.key, "status": status, "provider_id": r.provider_id, "error": r.error}
            )
            if status == "sent":
                sent += 1
                interactions["contact_id"].append(m.contact_id)
                interactions["kind"].append("message")
                interactions["occurred_at"].append(now)
                interactions["channel"].append(ch.name)
                interactions["subject"].append(m.subject)
                interactions["key"].append(f"delivery:{m.key}")
            elif status == "failed":
                failed += 1
        with store.transaction():
            store.update_deliveries(updates)
            if interactions["contact_id"]:
                store.add_interactions(interactions, source=f"channel:{ch.name}")
        kernel.hooks.messages_sent(kernel, results)
        if all(u["status"] == "queued" for u in updates):
            break  # everything asked for a retry: leave it for the next run
    return sent, failed
