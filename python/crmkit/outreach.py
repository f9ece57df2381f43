"""Campaigns: audience → consent and suppression → render → outbox → send, never twice.

The send path, in order:

1. **Audience**: a segment's current members (``memberships``), a static list
   of contact ids, equality rules on contact fields (``where``), or everyone.
2. **Exclusions**: no address, consent withdrawn (or missing when
   ``require_consent``), suppressed address, duplicate address. Each excluded
   contact is listed by id with its reason (``--dry-run`` shows them all).
3. **Render** in a Jinja2 sandbox with strict undefined variables (HTML bodies
   autoescaped). A template that reaches for Python internals is refused when
   compiled; a variable missing for any contact fails the whole campaign at
   preview time, naming the campaign, the variable and how many contacts lack
   it (never a value).
4. **Outbox**: one ``deliveries`` row per message, keyed
   ``campaign:step:contact:channel`` and written before anything is sent.
5. **Send** (:func:`process_outbox`): claim due rows atomically (two senders
   never get the same row), re-check consent and suppression, send in batches
   at the channel's rate, record each result on the delivery and as a
   ``message`` interaction. Retryable failures get exponential backoff stored
   in ``next_attempt_at`` (it survives a restart); a result the provider left
   unknown, or a claim whose process died, becomes ``unknown`` and is
   reconciled through the channel's optional ``reconcile(messages)``, never
   blindly re-sent.

Campaign definitions are kept in the store (``source_state`` entries
``campaign:<name>``), so ``crmkit outbox run`` (from cron or as a loop) can
send scheduled, retried, triggered and follow-up messages later.

**Triggered campaigns** (``trigger = {segment = "at_risk", delay = "2d"}``)
enqueue a message for each contact who entered the segment (``memberships.entered_at``)
after the campaign was defined, due ``delay`` after entering. The segments
service should call :func:`process_outbox` (or ``crmkit outbox run``) after a
segment run; the ``crmkit_segment_changed`` hook is the natural place.
**Follow-ups** send step *n* ``after`` the first message unless the contact
had an interaction of one of the ``unless`` kinds since.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmkit import consent as consent_mod
from crmkit.errors import ChannelError, ConfigError
from crmkit.kinds import Channel
from crmkit.plugins import format_validation_error
from crmkit.records import CONTACT_FIELDS, Message, SendResult
from crmkit.store.base import OutboxRow, owner_token

if TYPE_CHECKING:
    from jinja2 import Template

    from crmkit.kernel import Kernel
    from crmkit.store.base import Store

log = logging.getLogger("crmkit.outreach")

_STATE_PREFIX = "campaign:"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_FIELDS = tuple(f for f in CONTACT_FIELDS if f != "external_id")


class TemplateProblem(ConfigError):
    """A template cannot be compiled or rendered (names the campaign and variable)."""


def parse_duration(text: str) -> int:
    """Seconds in ``"90s"``, ``"15m"``, ``"12h"``, ``"2d"`` or ``"1w"``."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 12h, 2d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


# -- campaign definitions --------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(_Model):
    """Send when a contact enters ``segment``, ``delay`` later."""

    segment: str
    delay: str = "0s"
    include_existing: bool = False
    """Also send to members who entered before the campaign was defined."""

    @field_validator("delay")
    @classmethod
    def _check_delay(cls, v: str) -> str:
        parse_duration(v)
        return v


class FollowUp(_Model):
    """A later message: ``after`` the first one, unless the contact reacted."""

    after: str
    template: str
    subject: str | None = None
    html: str | None = None
    unless: list[str] = Field(default_factory=lambda: ["purchase", "message_reply"])
    """Interaction kinds that cancel the follow-up when they happen after the first send."""

    @field_validator("after")
    @classmethod
    def _check_after(cls, v: str) -> str:
        parse_duration(v)
        return v


class Campaign(_Model):
    """A campaign: audience, channel, templates, purpose and timing."""

    name: str
    channel: str
    channel_config: dict[str, Any] = Field(default_factory=dict)
    template: str
    """The body template (text)."""
    subject: str | None = None
    html: str | None = None
    """An HTML body template (autoescaped), sent beside the text body."""
    purpose: str = "marketing"
    require_consent: bool = False
    """Send only to contacts whose latest consent for (channel, purpose) is ``given``."""
    segment: str | None = None
    contacts: list[int] | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    send_at: datetime | None = None
    window: str | None = None
    """Daily send window ``"09:00-17:00"`` in each contact's time zone."""
    timezone_field: str = "timezone"
    default_timezone: str = "UTC"
    trigger: Trigger | None = None
    follow_ups: list[FollowUp] = Field(default_factory=list)
    unsubscribe_url: str | None = None
    """``https://…/{token}``: becomes ``{{ unsubscribe_url }}`` and the List-Unsubscribe header."""
    unsubscribe_mailto: str | None = None
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: int = Field(default=60, ge=0)
    lease_seconds: int = Field(default=600, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    rate_per_second: float | None = Field(default=None, gt=0)
    base_dir: str | None = None
    defined_at: int | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("campaign names use letters, digits, '.', '_' and '-'")
        return v

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: str | None) -> str | None:
        if v is not None:
            _parse_window(v)
        return v

    @field_validator("unsubscribe_url")
    @classmethod
    def _check_unsub(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "{token}" not in v:
            raise ValueError("unsubscribe_url must contain {token}")
        local = v.startswith(("http://localhost", "http://127.0.0.1"))
        if not v.startswith("https://") and not local:
            raise ValueError("unsubscribe_url must be an https:// URL (RFC 8058)")
        return v


def _parse_window(text: str) -> tuple[dtime, dtime]:
    try:
        a, b = text.split("-")
        start, end = dtime.fromisoformat(a.strip()), dtime.fromisoformat(b.strip())
    except ValueError:
        raise ValueError(f"not a window: {text!r} (use e.g. 09:00-17:00)") from None
    if start == end:
        raise ValueError("window start and end are equal")
    return start, end


def make_campaign(data: Mapping[str, Any]) -> Campaign:
    """Validate a campaign definition; :class:`ConfigError` names each bad field."""
    try:
        return Campaign.model_validate(dict(data))
    except ValidationError as exc:
        where = f"campaign {data.get('name')!r}" if data.get("name") else "campaign"
        raise ConfigError(format_validation_error(exc, where)) from None


def save_campaign(kernel: Kernel, campaign: Campaign) -> Campaign:
    """Store the definition (keeping the first ``defined_at``) and return it."""
    old = kernel.store.get_state(_STATE_PREFIX + campaign.name)
    defined = (old or {}).get("defined_at") or campaign.defined_at or int(time.time())
    campaign = campaign.model_copy(update={"defined_at": defined})
    kernel.store.set_state(_STATE_PREFIX + campaign.name, campaign.model_dump(mode="json"))
    return campaign


def load_campaign(kernel: Kernel, name: str) -> Campaign:
    """A stored campaign by name."""
    from crmkit.errors import NotFoundError

    state = kernel.store.get_state(_STATE_PREFIX + name)
    if state is None:
        raise NotFoundError(f"no campaign named {name!r}")
    return make_campaign(state)


def list_campaigns(kernel: Kernel) -> list[Campaign]:
    """Every stored campaign, by name."""
    names = [n[len(_STATE_PREFIX) :] for n in kernel.store.state_names(_STATE_PREFIX)]
    return [load_campaign(kernel, n) for n in names]


# -- templates ---------------------------------------------------------------------------


def _envs() -> tuple[Any, Any]:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Missing(StrictUndefined):
        """Strict undefined that may still be tested for truth.

        Printing, iterating or comparing a missing field is an error, but
        ``{{ contact.first_name or 'friend' }}`` and ``{% if contact.city %}``
        work, as ``| default(...)`` and ``is defined`` do.
        """

        __slots__ = ()

        def __bool__(self) -> bool:  # type: ignore[override]
            return False

    text = ImmutableSandboxedEnvironment(undefined=Missing, autoescape=False)
    html = ImmutableSandboxedEnvironment(undefined=Missing, autoescape=True)
    return text, html


_ENV: tuple[Any, Any] | None = None


def compile_template(text: str, *, campaign: str, part: str, html: bool = False) -> Template:
    """Compile ``text`` in the sandbox; refuse any reach for Python internals.

    Names, attributes and keys starting with ``_`` are refused when compiled
    (``{{ contact.__class__ }}``, ``''.__class__.__mro__``); the sandbox
    also blocks unsafe calls at render time.
    """
    global _ENV
    from jinja2 import TemplateSyntaxError, nodes

    if _ENV is None:
        _ENV = _envs()
    env = _ENV[1] if html else _ENV[0]
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"campaign {campaign!r}: {part} template: syntax error on line {exc.lineno}: "
            f"{exc.message}"
        ) from None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Name):
            name = node.name
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateProblem(
                f"campaign {campaign!r}: {part} template refused: it reaches for "
                f"{name!r} (names starting with '_' are not allowed)"
            )
    tmpl: Template = env.from_string(text)
    return tmpl


_RENDER_BATCH = 1000


_REC_SEP = "\x1e"
_FIELD_SEP = "\x1f"


def _batch_template(body: str, subject: str | None, html: str | None, *, unsub: bool) -> Template:
    """One template that renders body, subject and HTML for a whole batch of contacts.

    Rendering a batch in one call avoids a Jinja context per message. The
    user's templates were compiled (and checked) alone first; each loses one
    trailing newline here, as Jinja does for a whole template.
    """
    global _ENV
    if _ENV is None:
        _ENV = _envs()

    def part(src: str | None) -> str:
        if not src:
            return ""
        return src[:-1] if src.endswith("\n") else src

    with_ = "contact=crmkit_item_['contact']" + (
        ", unsubscribe_url=crmkit_item_['unsubscribe_url']" if unsub else ""
    )
    src = (
        "{% for crmkit_item_ in crmkit_batch_ %}{% with "
        + with_
        + " %}"
        + part(body)
        + _FIELD_SEP
        + part(subject)
        + _FIELD_SEP
        + ("{% autoescape true %}" + part(html) + "{% endautoescape %}" if html else "")
        + "{% endwith %}"
        + _REC_SEP
        + "{% endfor %}"
    )
    return _compile_fast(_ENV[0], src)


def _compile_fast(env: Any, source: str) -> Template:
    """Compile ``source`` with ``contact.x`` read as ``contact['x']``.

    ``contact`` is a plain dict: an item lookup finds the field at once where
    the sandbox's attribute lookup would first fail on the dict type. A
    missing field is undefined either way.
    """
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class ItemLookups(NodeTransformer):
        def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
            self.generic_visit(node)
            if isinstance(node.node, nodes.Name) and node.node.name == "contact":
                return nodes.Getitem(
                    node.node, nodes.Const(node.attr), node.ctx, lineno=node.lineno
                )
            return node

    tree = ItemLookups().visit(env.parse(source))
    code = env.compile(tree)
    tmpl: Template = env.template_class.from_code(env, code, env.make_globals(None))
    return tmpl


def _missing_name(exc: Exception) -> str:
    msg = str(exc)
    m = re.search(r"has no attribute '([^']+)'", msg) or re.search(r"'([^']+)' is undefined", msg)
    return m.group(1) if m else "?"


# -- results -----------------------------------------------------------------------------


class CampaignResult(msgspec.Struct, kw_only=True):
    """Counts of one campaign run, and every excluded contact by id (no personal data)."""

    campaign: str
    audience: int = 0
    excluded: dict[str, int] = msgspec.field(default_factory=dict)
    exclusions: list[tuple[int, str]] = msgspec.field(default_factory=list)
    """``(contact_id, reason)`` for every contact left out."""
    queued: int = 0
    already: int = 0
    """Messages already in the outbox from an earlier run (not queued again)."""
    scheduled: int = 0
    """Queued messages due later (``send_at``, a window, a trigger delay)."""
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    dry_run: bool = False
    samples: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """A few rendered messages (dry runs only)."""


class SendSummary(msgspec.Struct, kw_only=True):
    """What one :func:`process_outbox` pass did."""

    enqueued: int = 0
    recovered: int = 0
    reconciled: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    skipped: int = 0
    """Claimed rows not sent because consent or suppression changed since enqueue."""


class Plan(msgspec.Struct, kw_only=True):
    """Rendered outbox rows for one campaign step, and who was left out."""

    rows: list[tuple[Any, ...]]
    """``(key, campaign, step, contact_id, channel, payload JSON, next_attempt_at)``
    per message, enqueued as columns with :meth:`Store.enqueue_deliveries`."""
    exclusions: list[tuple[int, str]]
    audience: int
    already: int
    scheduled: int
    samples: list[dict[str, Any]]


# -- audience ------------------------------------------------------------------------------


def resolve_audience(kernel: Kernel, campaign: Campaign) -> list[int] | None:
    """Contact ids of the segment or static list (``None``: everyone, before ``where``)."""
    store = kernel.store
    ids: list[int] | None = None
    if campaign.segment is not None:
        ids = store.segment_members(campaign.segment)
    if campaign.contacts is not None:
        resolved = store.resolve_ids(campaign.contacts)
        static = sorted({resolved.get(c, c) for c in campaign.contacts})
        ids = static if ids is None else sorted(set(ids) & set(static))
    return ids


def entered_segment(
    kernel: Kernel, segment: str, *, since: int | None = None
) -> list[tuple[int, int]]:
    """``(contact_id, entered_at)`` of current members who entered at or after ``since``."""
    return kernel.store.segment_entries(segment, since=since or 0)


# -- planning --------------------------------------------------------------------------------


def _step_parts(campaign: Campaign, step: int) -> tuple[str, str | None, str | None]:
    if step == 0:
        return campaign.template, campaign.subject, campaign.html
    fu = campaign.follow_ups[step - 1]
    return fu.template, fu.subject, fu.html


def _used_fields(sources: Sequence[str | None]) -> set[str] | None:
    """The contact fields the templates read (``contact.x``, ``contact['x']``).

    ``None`` when a template uses ``contact`` another way (loops over it,
    passes it on, rebinds it): then every field is given.
    """
    global _ENV
    from jinja2 import nodes

    if _ENV is None:
        _ENV = _envs()
    used: set[str] = set()
    for src in sources:
        if not src:
            continue
        tree = _ENV[0].parse(src)
        bare = sum(1 for n in tree.find_all(nodes.Name) if n.name == "contact")
        direct = 0
        for n in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if not (isinstance(n.node, nodes.Name) and n.node.name == "contact"):
                continue
            if isinstance(n, nodes.Getattr):
                used.add(n.attr)
                direct += 1
            elif isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str):
                used.add(n.arg.value)
                direct += 1
        if bare != direct:
            return None
    return used


def plan_step(
    kernel: Kernel,
    campaign: Campaign,
    channel: Channel,
    *,
    step: int = 0,
    contact_ids: Sequence[int] | None = None,
    due: Mapping[int, int] | None = None,
    now: int | None = None,
    samples: int = 0,
) -> Plan:
    """Resolve, filter and render one step of ``campaign`` (nothing is written).

    ``contact_ids`` narrows the audience (triggers, follow-ups); ``due`` gives
    a per-contact earliest send time. Only the contact fields the templates
    read are loaded (all of them when a template uses ``contact`` as a whole).
    """
    store = kernel.store
    now = int(time.time()) if now is None else now
    name, chan = campaign.name, campaign.channel
    body_src, subj_src, html_src = _step_parts(campaign, step)
    body_t = compile_template(body_src, campaign=name, part="body")
    subj_t = compile_template(subj_src, campaign=name, part="subject") if subj_src else None
    html_t = compile_template(html_src, campaign=name, part="html", html=True) if html_src else None

    ids = resolve_audience(kernel, campaign)
    if contact_ids is not None:
        ids = sorted(set(contact_ids) if ids is None else set(ids) & set(contact_ids))
    attrs = [a for a in store.attribute_types() if a.replace("_", "").isalnum()]
    addr = channel.address_field
    known = list(dict.fromkeys([*_FIELDS, *attrs]))
    used = _used_fields([body_src, subj_src, html_src])
    tpl_fields = known if used is None else [f for f in known if f in used]
    fields = list(dict.fromkeys([*tpl_fields, *campaign.where]))
    if addr != "id" and addr not in fields:
        fields.append(addr)
    window = _parse_window(campaign.window) if campaign.window else None
    if window is not None and campaign.timezone_field in known:
        fields = list(dict.fromkeys([*fields, campaign.timezone_field]))
    all_ids, cols = store.contact_columns(fields, ids=ids)
    n = len(all_ids)
    keep = (
        [i for i in range(n) if all(cols[k][i] == v for k, v in campaign.where.items())]
        if campaign.where
        else list(range(n))
    )
    exclusions: list[tuple[int, str]] = []
    chosen_ids = [all_ids[i] for i in keep]
    status = store.consent_status(chosen_ids, channel=chan, purpose=campaign.purpose)
    addr_col = cols[addr] if addr != "id" else None
    addresses: list[str | None] = (
        [str(c) for c in chosen_ids] if addr_col is None else [addr_col[i] for i in keep]
    )
    secret = consent_mod.load_secret(store)
    supp = consent_mod.suppressed_addresses(
        store, secret, addresses, scopes=[chan, f"{chan}/{campaign.purpose}"]
    )
    prefix = f"{name}:{step}:"
    suffix = f":{chan}"
    keys_all = [f"{prefix}{cid}{suffix}" for cid in chosen_ids]
    existing = (
        store.existing_delivery_keys(keys_all)
        if store.has_deliveries(campaign=name, step=step)
        else set()
    )
    base_at = int(campaign.send_at.timestamp()) if campaign.send_at else None
    tz_col = cols.get(campaign.timezone_field) if window is not None else None
    signer = (
        consent_mod.TokenSigner(
            secret, channel=chan, purpose=campaign.purpose, campaign=name, issued_at=now
        )
        if campaign.unsubscribe_url
        else None
    )
    url_parts = (campaign.unsubscribe_url or "").split("{token}")
    mailto = campaign.unsubscribe_mailto if addr == "email" else None
    one_click = addr == "email"
    require = campaign.require_consent
    tpl_cols = [(f, cols[f]) for f in tpl_fields]
    no_status = not status

    # 1. exclusions
    seen_addr: set[str] = set()
    already = 0
    targets: list[int] = []  # positions into chosen_ids
    for j, cid in enumerate(chosen_ids):
        a = addresses[j]
        st = None if no_status else status.get(cid)
        why = None
        if not a:
            why = f"no {addr}"
        elif st == "withdrawn":
            why = "consent withdrawn"
        elif st is None and require:
            why = "no consent"
        elif supp[j]:
            why = "suppressed"
        else:
            norm = consent_mod.normalize_address(a)
            if norm in seen_addr:
                why = "duplicate address"
            else:
                seen_addr.add(norm)
        if why:
            exclusions.append((cid, why))
        elif existing and keys_all[j] in existing:
            already += 1
        else:
            targets.append(j)

    # 2. per-contact data, unsubscribe links and headers
    urls: list[str] | None = None
    lus: list[str] | None = None
    if signer is not None:
        tokens = signer.tokens([chosen_ids[j] for j in targets])
        urls = [tok.join(url_parts) for tok in tokens]
        if one_click:
            lus = (
                [
                    f"<{u}>, <mailto:{mailto}?subject=unsubscribe-{t}>"
                    for u, t in zip(urls, tokens, strict=True)
                ]
                if mailto
                else [f"<{u}>" for u in urls]
            )
    per_contact_at = due is not None or window is not None
    items: list[dict[str, Any]] = []
    meta: list[tuple[int, int, dict[str, str] | None, int | None]] = []  # (j, cid, headers, at)
    headers: dict[str, str] | None = None
    at = base_at
    for t, j in enumerate(targets):
        cid = chosen_ids[j]
        i = keep[j]
        data = {f: v for f, col in tpl_cols if (v := col[i]) is not None}
        data["id"] = cid
        if urls is not None:
            items.append({"contact": data, "unsubscribe_url": urls[t]})
            if lus is not None:
                headers = {"List-Unsubscribe": lus[t], "List-Unsubscribe-Post": _ONE_CLICK}
        else:
            items.append({"contact": data})
        if per_contact_at:
            at = base_at
            if due is not None and cid in due:
                at = max(at or 0, due[cid])
            if window is not None:
                tz = tz_col[i] if tz_col is not None and tz_col[i] else campaign.default_timezone
                at = next_in_window(max(at or now, now), window, str(tz), campaign.default_timezone)
        meta.append((j, cid, headers, at))

    # 3. render in batches (one template call per batch); per contact only on error
    from jinja2 import TemplateError, UndefinedError
    from jinja2.exceptions import SecurityError

    batch_t = _batch_template(body_src, subj_src, html_src, unsub=signer is not None)
    glob = {"campaign": name, "step": step}
    missing: dict[str, list[int]] = {}
    rendered: list[tuple[str, str | None, str | None] | None] = []
    for start in range(0, len(items), _RENDER_BATCH):
        chunk = items[start : start + _RENDER_BATCH]
        parts: list[str] | None = None
        try:
            out = batch_t.render(crmkit_batch_=chunk, **glob)
            parts = out.split(_REC_SEP)
            if len(parts) != len(chunk) + 1 or out.count(_FIELD_SEP) != 2 * len(chunk):
                parts = None  # a separator inside the data: render one by one
        except TemplateError:
            parts = None
        if parts is not None:
            for p_ in parts[:-1]:
                b_, s_, h_ = p_.split(_FIELD_SEP)
                rendered.append((b_, s_ if subj_t else None, h_ if html_t else None))
            continue
        for it, (_, cid, _, _) in zip(chunk, meta[start : start + _RENDER_BATCH], strict=True):
            ctx = {**it, **glob}
            try:
                rendered.append(
                    (
                        body_t.render(ctx),
                        subj_t.render(ctx) if subj_t else None,
                        html_t.render(ctx) if html_t else None,
                    )
                )
            except UndefinedError as exc:
                missing.setdefault(_missing_name(exc), []).append(cid)
                rendered.append(None)
            except SecurityError:
                raise TemplateProblem(
                    f"campaign {name!r}: template refused: it reaches for Python internals"
                ) from None
            except TemplateError as exc:
                raise TemplateProblem(
                    f"campaign {name!r}: template error ({type(exc).__name__}) for contact {cid}"
                ) from None
    if missing:
        what = ", ".join(
            f"{var!r} (missing for {len(ids_)} contact{'s' if len(ids_) != 1 else ''}, "
            f"e.g. id {ids_[0]})"
            for var, ids_ in sorted(missing.items())
        )
        raise TemplateProblem(
            f"campaign {name!r}: template uses undefined variable {what}; use "
            "'| default(...)' or narrow the audience"
        )

    # 4. outbox rows: the payload holds what varies per message (metadata comes
    # from the row's columns and the campaign when it is sent)
    enc = _PAYLOAD_ENC.encode
    rows: list[tuple[Any, ...]] = []
    sample_out: list[dict[str, Any]] = []
    scheduled = 0
    md = {"campaign": name, "step": step, "purpose": campaign.purpose}
    for (j, cid, headers, at), r in zip(meta, rendered, strict=True):
        if r is None:
            continue
        if at is not None and at > now:
            scheduled += 1
        else:
            at = None
        payload = _Payload(
            to=addresses[j] or "", body=r[0], subject=r[1], html=r[2], headers=headers
        )
        if len(sample_out) < samples:
            sample_out.append(
                {
                    "contact_id": cid,
                    "key": keys_all[j],
                    "to": addresses[j],
                    "subject": r[1],
                    "body": r[0],
                    "html": r[2],
                    "headers": headers or {},
                    "metadata": md,
                }
            )
        rows.append((keys_all[j], name, step, cid, chan, enc(payload).decode(), at))
    return Plan(
        rows=rows,
        exclusions=exclusions,
        audience=len(chosen_ids),
        already=already,
        scheduled=scheduled,
        samples=sample_out,
    )


_ONE_CLICK = "List-Unsubscribe=One-Click"


class _Payload(msgspec.Struct, omit_defaults=True):
    """The stored message of an outbox row (``None`` fields are left out)."""

    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] | None = None


_PAYLOAD_ENC = msgspec.json.Encoder()


_TZ_CACHE: dict[str, ZoneInfo] = {}


def next_in_window(at: int, window: tuple[dtime, dtime], tz: str, fallback: str = "UTC") -> int:
    """The first epoch second ≥ ``at`` inside the daily ``window`` in time zone ``tz``."""
    zone = _TZ_CACHE.get(tz)
    if zone is None:
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(fallback)
        _TZ_CACHE[tz] = zone
    start, end = window
    local = datetime.fromtimestamp(at, tz=zone)
    t = local.timetz().replace(tzinfo=None)
    overnight = end < start
    inside = (start <= t < end) if not overnight else (t >= start or t < end)
    if inside:
        return at
    day = local.date()
    if not overnight and t >= end:
        day = day + timedelta(days=1)
    nxt = datetime.combine(day, start, tzinfo=zone)
    return int(nxt.timestamp())


# -- running ------------------------------------------------------------------------------


def _channel_for(kernel: Kernel, campaign: Campaign) -> Channel:
    base = Path(campaign.base_dir) if campaign.base_dir else None
    ch: Channel = kernel.plugin("channel", campaign.channel, campaign.channel_config, base_dir=base)
    return ch


def run_campaign(
    kernel: Kernel,
    campaign: Campaign | Mapping[str, Any] | None = None,
    *,
    dry_run: bool = False,
    send: bool = True,
    now: int | None = None,
    samples: int = 3,
    **fields: Any,
) -> CampaignResult:
    """Define (or update) a campaign, enqueue its first step and send what is due.

    ``campaign`` is a :class:`Campaign`, a mapping, or given as keyword
    arguments (``name=…, channel=…, template=…``). With ``dry_run`` nothing
    is written or sent: the result lists every excluded contact with its
    reason and a few rendered samples. A triggered campaign is only defined
    (its messages are enqueued by :func:`process_outbox` as contacts enter
    the segment); a dry run of it previews the current members.
    """
    if campaign is None:
        campaign = make_campaign(fields)
    elif not isinstance(campaign, Campaign):
        campaign = make_campaign({**campaign, **fields})
    ch = _channel_for(kernel, campaign)
    try:
        return _run_campaign(
            kernel, campaign, ch, dry_run=dry_run, send=send, now=now, samples=samples
        )
    finally:
        close_channel(ch)


def _run_campaign(
    kernel: Kernel,
    campaign: Campaign,
    ch: Channel,
    *,
    dry_run: bool,
    send: bool,
    now: int | None,
    samples: int,
) -> CampaignResult:
    if not dry_run:
        ch.check()
    res = CampaignResult(campaign=campaign.name, dry_run=dry_run)
    for fu in campaign.follow_ups:  # compile follow-ups now: a bad one fails early
        for src, part, html in (
            (fu.template, "follow-up body", False),
            (fu.subject, "follow-up subject", False),
            (fu.html, "follow-up html", True),
        ):
            if src:
                compile_template(src, campaign=campaign.name, part=part, html=html)
    if campaign.trigger is not None and not dry_run:
        save_campaign(kernel, campaign)
        summary = process_outbox(kernel, campaign=campaign.name, now=now) if send else None
        if summary is not None:
            res.queued = summary.enqueued
            res.sent, res.failed = summary.sent, summary.failed
            res.retrying, res.unknown = summary.retrying, summary.unknown
        return res
    plan = plan_step(kernel, campaign, ch, now=now, samples=samples if dry_run else 0)
    res.audience = plan.audience
    res.exclusions = plan.exclusions
    for _, why in plan.exclusions:
        res.excluded[why] = res.excluded.get(why, 0) + 1
    res.already = plan.already
    res.scheduled = plan.scheduled
    res.samples = plan.samples
    if dry_run:
        res.queued = len(plan.rows)
        return res
    campaign = save_campaign(kernel, campaign)
    store = kernel.store
    res.queued = _enqueue(store, plan.rows)
    store.audit(
        "campaign.enqueue",
        actor="outreach",
        details={"campaign": campaign.name, "queued": res.queued, "excluded": res.excluded},
    )
    if send:
        s = process_outbox(kernel, campaign=campaign.name, now=now, channel=ch)
        res.sent, res.failed, res.retrying, res.unknown = s.sent, s.failed, s.retrying, s.unknown
    return res


def schedule_due(kernel: Kernel, campaign: Campaign, *, now: int | None = None) -> int:
    """Enqueue triggered first messages and due follow-ups of ``campaign``."""
    store = kernel.store
    now = int(time.time()) if now is None else now
    ch: Channel | None = None
    total = 0
    if campaign.trigger is not None:
        t = campaign.trigger
        since = None if t.include_existing else campaign.defined_at
        entered = entered_segment(kernel, t.segment, since=since)
        if entered:
            delay = parse_duration(t.delay)
            keys = [f"{campaign.name}:0:{cid}:{campaign.channel}" for cid, _ in entered]
            have = store.existing_delivery_keys(keys)
            todo = {
                cid: at + delay for (cid, at), k in zip(entered, keys, strict=True) if k not in have
            }
            if todo:
                ch = _channel_for(kernel, campaign)
                p = plan_step(kernel, campaign, ch, contact_ids=list(todo), due=todo, now=now)
                total += _enqueue(store, p.rows)
    for step in range(1, len(campaign.follow_ups) + 1):
        fu = campaign.follow_ups[step - 1]
        after = parse_duration(fu.after)
        prefix = f"delivery:{campaign.name}:{step - 1}:"
        first = store.first_interactions(kind="message", key_prefix=prefix, until=now - after)
        if not first:
            continue
        keys = [f"{campaign.name}:{step}:{cid}:{campaign.channel}" for cid, _ in first]
        have = store.existing_delivery_keys(keys)
        cand = [(cid, at) for (cid, at), k in zip(first, keys, strict=True) if k not in have]
        reacted: set[int] = set()
        if fu.unless and cand:
            reacted = store.contacts_with_interactions(dict(cand), kinds=fu.unless)
        todo_ids = [cid for cid, _ in cand if cid not in reacted]
        if todo_ids:
            ch = ch or _channel_for(kernel, campaign)
            p = plan_step(kernel, campaign, ch, step=step, contact_ids=todo_ids, now=now)
            total += _enqueue(store, p.rows)
    return total


_ROW_COLUMNS = ("key", "campaign", "step", "contact_id", "channel", "payload", "next_attempt_at")
_OUTCOME_COLUMNS = ("status", "provider_id", "error", "next_attempt_at", "key")


def _enqueue(store: Store, rows: Sequence[tuple[Any, ...]]) -> int:
    """Enqueue :attr:`Plan.rows` (tuples in :data:`_ROW_COLUMNS` order) as columns."""
    if not rows:
        return 0
    return store.enqueue_deliveries(
        dict(zip(_ROW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    )


def _outcomes(updates: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Send outcomes (tuples in :data:`_OUTCOME_COLUMNS` order) as columns."""
    if not updates:
        return {c: [] for c in _OUTCOME_COLUMNS}
    return dict(zip(_OUTCOME_COLUMNS, map(list, zip(*updates, strict=True)), strict=True))


class _Pacer:
    """Sleeps so that no more than ``rate`` messages per second leave."""

    def __init__(
        self,
        rate: float | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.sleep = sleep
        self.clock = clock
        self.next_at = clock()

    def wait(self, n: int) -> None:
        """Block until ``n`` more messages may leave."""
        if not self.rate:
            return
        now = self.clock()
        if self.next_at > now:
            self.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + n / self.rate


def process_outbox(
    kernel: Kernel,
    *,
    campaign: str | None = None,
    now: int | None = None,
    channel: Channel | None = None,
    max_batches: int | None = None,
) -> SendSummary:
    """One pass over the outbox: schedule, recover, reconcile, then send what is due.

    Safe to run concurrently with itself (rows are claimed atomically) and
    from cron. ``campaign`` limits the pass to one campaign.
    """
    store = kernel.store
    now_s = int(time.time()) if now is None else now
    summary = SendSummary()
    campaigns = [load_campaign(kernel, campaign)] if campaign else list_campaigns(kernel)
    by_name = {c.name: c for c in campaigns}
    for c in campaigns:
        summary.enqueued += schedule_due(kernel, c, now=now_s)
    summary.recovered = store.recover_stale_deliveries(now=now_s)
    owner = owner_token()
    for camp_name, chan_name in store.due_delivery_campaigns(now=now_s):
        if camp_name is None or camp_name not in by_name:
            continue
        c = by_name[camp_name]
        if c.channel != chan_name:
            continue
        mine = channel is None or channel.name != chan_name
        ch = _channel_for(kernel, c) if mine or channel is None else channel
        try:
            summary.reconciled += _reconcile(kernel, store, ch, c)
            _send_due(kernel, store, ch, c, owner, summary, now=now, max_batches=max_batches)
        finally:
            if mine:
                close_channel(ch)
    return summary


def close_channel(ch: Channel) -> None:
    """Call the channel's optional ``close()`` (open connections, pools)."""
    fn = getattr(ch, "close", None)
    if callable(fn):
        fn()


def _message(row: OutboxRow, purpose: str | None = None) -> Message:
    p = row.payload
    md = p.get("metadata") or {"campaign": row.campaign, "step": row.step, "purpose": purpose}
    return Message(
        key=row.key,
        contact_id=row.contact_id,
        channel=row.channel,
        to=p.get("to") or "",
        body=p.get("body") or "",
        subject=p.get("subject"),
        html=p.get("html"),
        headers=p.get("headers") or {},
        metadata=md,
    )


def _reconcile(kernel: Kernel, store: Store, ch: Channel, c: Campaign) -> int:
    """Ask the channel about ``unknown`` rows; settle those it can answer for."""
    fn = getattr(ch, "reconcile", None)
    if fn is None:
        return 0
    unknown = store.delivery_rows(statuses=["unknown"], campaign=c.name)
    if not unknown:
        return 0
    results: list[SendResult] = fn([_message(r, c.purpose) for r in unknown])
    by_key = {r.key: r for r in unknown}
    settled = 0
    updates: list[tuple[Any, ...]] = []
    sent_rows: list[tuple[OutboxRow, SendResult]] = []
    for r in results:
        row = by_key.get(r.key)
        if row is None or r.status == "unknown":
            continue
        settled += 1
        if r.status == "sent":
            updates.append(("sent", r.provider_id, None, None, r.key))
            sent_rows.append((row, r))
        elif r.status == "retry":
            updates.append(("queued", None, "reconciled: never reached the provider", None, r.key))
        else:
            updates.append(("failed", None, r.error or "reconciled: failed", None, r.key))
    with store.transaction():
        store.finish_deliveries(_outcomes(updates))
        _record_interactions(store, ch.name, sent_rows)
    return settled


def _record_interactions(
    store: Store, channel: str, sent: Sequence[tuple[OutboxRow, SendResult]]
) -> None:
    if not sent:
        return
    now = int(time.time())
    store.add_interactions(
        {
            "contact_id": [r.contact_id for r, _ in sent],
            "kind": ["message"] * len(sent),
            "occurred_at": [now] * len(sent),
            "channel": [channel] * len(sent),
            "subject": [r.payload.get("subject") for r, _ in sent],
            "key": [f"delivery:{r.key}" for r, _ in sent],
            "properties": [
                {"campaign": r.campaign, "step": r.step, "provider_id": res.provider_id}
                for r, res in sent
            ],
        },
        source=f"channel:{channel}",
    )


def _send_due(
    kernel: Kernel,
    store: Store,
    ch: Channel,
    c: Campaign,
    owner: str,
    summary: SendSummary,
    *,
    now: int | None,
    max_batches: int | None,
) -> None:
    limit = min(ch.max_batch, c.batch_size or ch.max_batch)
    rate = c.rate_per_second or getattr(ch.config, "rate_per_second", None) or ch.rate_per_second
    pacer = _Pacer(rate)
    secret = consent_mod.load_secret(store)
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        claimed = store.claim_deliveries(
            owner=owner,
            limit=limit,
            lease=c.lease_seconds,
            campaign=c.name,
            channel=ch.name,
            now=now,
        )
        if not claimed:
            break
        # Consent or suppression may have changed since the row was queued.
        status = store.consent_status(
            [r.contact_id for r in claimed], channel=ch.name, purpose=c.purpose
        )
        supp = consent_mod.suppressed_addresses(
            store,
            secret,
            [r.payload.get("to") for r in claimed],
            scopes=[ch.name, f"{ch.name}/{c.purpose}"],
        )
        updates: list[tuple[Any, ...]] = []
        ready: list[OutboxRow] = []
        for r, sup in zip(claimed, supp, strict=True):
            st = status.get(r.contact_id)
            why = (
                "consent withdrawn before send"
                if st == "withdrawn"
                else "no consent at send time"
                if st is None and c.require_consent
                else "address suppressed before send"
                if sup
                else None
            )
            if why:
                updates.append(("failed", None, why, None, r.key))
                summary.skipped += 1
            else:
                ready.append(r)
        msgs = [_message(r, c.purpose) for r in ready]
        vetoed = kernel.hooks.before_send(kernel, msgs) if msgs else {}
        for k, who in vetoed.items():
            updates.append(("failed", None, f"vetoed by plugin {who!r}", None, k))
            summary.failed += 1
        to_send = [m for m in msgs if m.key not in vetoed]
        results: list[SendResult] = []
        if to_send:
            pacer.wait(len(to_send))
            try:
                results = ch.send_batch(to_send)
            except ChannelError as exc:
                # The channel contract: raising means nothing of the batch was handed over.
                results = [SendResult(key=m.key, status="retry", error=str(exc)) for m in to_send]
            except BaseException:
                store.set_delivery_status(
                    [m.key for m in to_send],
                    "unknown",
                    error="channel raised while sending: outcome unknown",
                    only_from=["sending"],
                )
                raise
        by_key = {r.key: r for r in results}
        rows_by_key = {r.key: r for r in ready}
        sent_rows: list[tuple[OutboxRow, SendResult]] = []
        t = int(time.time()) if now is None else now
        for m in to_send:
            res = by_key.get(m.key)
            row = rows_by_key[m.key]
            if res is None:
                updates.append(("unknown", None, "no result from channel", None, m.key))
                summary.unknown += 1
            elif res.status == "sent":
                updates.append(("sent", res.provider_id, None, None, m.key))
                sent_rows.append((row, res))
                summary.sent += 1
            elif res.status == "failed":
                updates.append(("failed", res.provider_id, res.error, None, m.key))
                summary.failed += 1
            elif res.status == "unknown":
                updates.append(("unknown", res.provider_id, res.error, None, m.key))
                summary.unknown += 1
            else:  # retry
                if row.attempts >= c.max_attempts:
                    err = f"gave up after {row.attempts} attempts: {res.error or 'retry'}"
                    updates.append(("failed", None, err, None, m.key))
                    summary.failed += 1
                else:
                    back = c.backoff_seconds * (2 ** (row.attempts - 1))
                    wait = max(int(res.retry_after or 0), min(back, 6 * 3600))
                    updates.append(("queued", None, res.error, t + wait, m.key))
                    summary.retrying += 1
        with store.transaction():
            store.finish_deliveries(_outcomes(updates))
            _record_interactions(store, ch.name, sent_rows)
        if results:
            kernel.hooks.messages_sent(kernel, results)


# -- callbacks and unsubscribes -------------------------------------------------------------


class CallbackSummary(msgspec.Struct, kw_only=True):
    """What a batch of provider callbacks changed."""

    events: int = 0
    updated: int = 0
    unmatched: int = 0
    suppressed: int = 0
    withdrawn: int = 0


_TERMINAL_SUPPRESS = {"bounced", "complained"}


def apply_callback(
    kernel: Kernel,
    channel: str | Channel,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    channel_config: Mapping[str, Any] | None = None,
) -> CallbackSummary:
    """Parse a provider callback with the channel and apply it.

    Status reports update their delivery; a bounce or complaint suppresses the
    address on that channel (a complaint also withdraws consent for the
    delivery's purpose); an inbound opt-out (``STOP``) suppresses the address on
    the channel and withdraws consent of every contact with that address.
    """
    store = kernel.store
    ch: Channel = (
        channel
        if isinstance(channel, Channel)
        else kernel.plugin("channel", channel, channel_config or _callback_config(kernel, channel))
    )
    events = ch.parse_callback(payload, dict(headers or {}))
    out = CallbackSummary(events=len(events))
    secret = consent_mod.load_secret(store)
    by_pid = store.deliveries_by_provider_id([e.provider_id for e in events if e.provider_id])
    keyed = store.delivery_rows(keys=[e.key for e in events if e.key])
    by_key = {r.key: r for r in keyed}
    purposes_of: dict[str, str | None] = {}
    for e in events:
        row = by_key.get(e.key or "") or by_pid.get(e.provider_id or "")
        purpose = _row_purpose(kernel, row, purposes_of) if row else None
        if row is not None and e.status is not None:
            store.set_delivery_status([row.key], e.status, error=e.detail)
            out.updated += 1
            if e.status in _TERMINAL_SUPPRESS and row.payload.get("to"):
                out.suppressed += consent_mod.suppress(
                    store, secret, [row.payload["to"]], scope=ch.name, reason=e.status
                )
            if e.status == "complained" and purpose:
                consent_mod.record(
                    store,
                    [row.contact_id],
                    channel=ch.name,
                    purpose=purpose,
                    status="withdrawn",
                    source=f"callback:{ch.name}",
                    evidence=f"complaint on {row.key}",
                )
                out.withdrawn += 1
        elif row is None and e.status is not None:
            out.unmatched += 1
        if e.unsubscribe:
            addr = e.address or (row.payload.get("to") if row else None)
            ids: list[int] = []
            if row is not None:
                ids.append(row.contact_id)
            if addr:
                out.suppressed += consent_mod.suppress(
                    store, secret, [addr], scope=ch.name, reason="opt-out"
                )
                field = "phone" if ch.address_field == "phone" else "email"
                ids.extend(store.lookup_contacts(field, [addr]).values())
            purposes = store.consent_purposes(ch.name) or ["marketing"]
            for cid in sorted(set(ids)):
                for p in purposes:
                    consent_mod.record(
                        store,
                        [cid],
                        channel=ch.name,
                        purpose=p,
                        status="withdrawn",
                        source=f"callback:{ch.name}",
                        evidence="inbound opt-out",
                    )
                out.withdrawn += 1
    return out


def _row_purpose(kernel: Kernel, row: OutboxRow, cache: dict[str, str | None]) -> str | None:
    """The consent purpose of an outbox row: from its payload, else its campaign."""
    from crmkit.errors import NotFoundError

    md = row.payload.get("metadata")
    if isinstance(md, dict) and md.get("purpose"):
        return str(md["purpose"])
    if row.campaign is None:
        return None
    if row.campaign not in cache:
        try:
            cache[row.campaign] = load_campaign(kernel, row.campaign).purpose
        except (NotFoundError, ConfigError):
            cache[row.campaign] = None
    return cache[row.campaign]


def _callback_config(kernel: Kernel, channel: str) -> dict[str, Any]:
    for c in list_campaigns(kernel):
        if c.channel == channel:
            return dict(c.channel_config)
    return {}


def unsubscribe(
    kernel: Kernel, token: str, *, source: str = "unsubscribe"
) -> consent_mod.UnsubscribeRequest:
    """Verify ``token`` and withdraw that consent at once (and suppress the address).

    Idempotent: processing the same token twice leaves one withdrawal in effect.
    """
    store = kernel.store
    secret = consent_mod.load_secret(store)
    req = consent_mod.read_token(secret, token)
    live = store.resolve_ids([req.contact_id]).get(req.contact_id, req.contact_id)
    with store.transaction():
        consent_mod.record(
            store,
            [live],
            channel=req.channel,
            purpose=req.purpose,
            status="withdrawn",
            source=source,
            evidence=f"token campaign={req.campaign}",
        )
        found = store.get_contacts([live])
        if found:
            c = found[0]
            addr = c.phone if req.channel == "sms" else c.email
            if addr:
                consent_mod.suppress(
                    store,
                    secret,
                    [addr],
                    scope=f"{req.channel}/{req.purpose}",
                    reason="unsubscribe",
                )
        store.audit(
            "consent.unsubscribe", actor=source, ids=[live], details={"purpose": req.purpose}
        )
    return req


def resolve_unknown(
    kernel: Kernel, *, campaign: str | None, outcome: Literal["sent", "resend", "failed"]
) -> int:
    """Settle ``unknown`` deliveries by hand after checking with the provider."""
    store = kernel.store
    keys = [r.key for r in store.delivery_rows(statuses=["unknown"], campaign=campaign)]
    status = {"sent": "sent", "resend": "queued", "failed": "failed"}[outcome]
    return store.set_delivery_status(
        keys, status, error=f"resolved by hand as {outcome}", only_from=["unknown"]
    )


__all__ = [
    "CallbackSummary",
    "Campaign",
    "CampaignResult",
    "FollowUp",
    "Plan",
    "SendSummary",
    "TemplateProblem",
    "Trigger",
    "apply_callback",
    "compile_template",
    "entered_segment",
    "list_campaigns",
    "load_campaign",
    "make_campaign",
    "next_in_window",
    "parse_duration",
    "plan_step",
    "process_outbox",
    "resolve_audience",
    "resolve_unknown",
    "run_campaign",
    "save_campaign",
    "schedule_due",
    "unsubscribe",
]
