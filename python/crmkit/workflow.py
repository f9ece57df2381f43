"""Workflow files (TOML): validation of the whole file first, then the run.

Every error is collected with its path in the file (``sources[1].path: field
required``) before anything runs, including each plugin's own config and
unknown plugin names (with a "did you mean").
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmkit.dedupe import DedupeConfig
from crmkit.errors import ConfigError
from crmkit.plugins import Registry, format_validation_error
from crmkit.records import AttributeType

if TYPE_CHECKING:
    from crmkit.kernel import Kernel


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WithPluginConfig(BaseModel):
    """A step whose unknown keys are the plugin's own config."""

    model_config = ConfigDict(extra="allow")

    def plugin_config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StoreSection(_Strict):
    """Where the store is; default ``./crmkit.db`` beside the workflow file."""

    url: str | None = None


class ConsentSpec(_Strict):
    """A column of a source that carries consent (``Newsletter = yes``)."""

    column: str
    channel: str = "email"
    purpose: str = "marketing"
    opt_out: bool = False


class SourceStep(_WithPluginConfig):
    """``[[sources]]``: a source plugin and how its records are upserted."""

    use: str
    name: str | None = None
    key: Literal["email", "external_id"] = "email"
    rejects: str | None = None
    attributes: dict[str, AttributeType] = Field(default_factory=dict)
    consent: list[ConsentSpec] = Field(default_factory=list)


class CategorizeStep(_WithPluginConfig):
    """``[[categorize]]``: a categorizer plugin."""

    use: str


class CampaignStep(_Strict):
    """``[[campaigns]]``: a message to an audience over a channel.

    ``template`` and ``html`` (and each follow-up's) are file paths relative
    to the workflow file; every other key is a field of
    :class:`crmkit.outreach.Campaign` (audience, timing, trigger, follow-ups,
    unsubscribe URL, retry policy).
    """

    name: str
    channel: str
    template: str
    subject: str | None = None
    html: str | None = None
    segment: str | None = None
    contacts: list[int] | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    purpose: str = "marketing"
    require_consent: bool = False
    channel_config: dict[str, Any] = Field(default_factory=dict)
    send_at: str | None = None
    window: str | None = None
    timezone_field: str = "timezone"
    default_timezone: str = "UTC"
    trigger: dict[str, Any] | None = None
    follow_ups: list[dict[str, Any]] = Field(default_factory=list)
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    max_attempts: int = 5
    backoff_seconds: int = 60
    rate_per_second: float | None = None
    batch_size: int | None = None


class ReportStep(_WithPluginConfig):
    """``[[reports]]``: a reporter plugin and the report to render."""

    use: str
    report: str = "summary"


class DedupeSection(DedupeConfig):
    """``[dedupe]``: find duplicates after the imports and merge them (undoable).

    Takes the matching settings of :class:`crmkit.dedupe.DedupeConfig`
    (``threshold``, ``fields``, ``blocking`` …); ``apply = false`` only counts
    the clusters; ``rule``, ``survivor`` and ``sources`` choose the merged values;
    ``labels`` names a CSV of reviewed pairs (``left,right,match``, contact ids)
    that refine the model, relative to the workflow file.
    """

    labels: str | None = None
    apply: bool = True
    rule: str = "most_complete"
    survivor: Literal["oldest", "most_complete"] = "oldest"
    sources: list[str] = Field(default_factory=list)


class SegmentStep(_Strict):
    """``[[segments]]``: a segment saved and evaluated on every run."""

    name: str
    rule: str | None = None
    kind: Literal["dynamic", "static"] = "dynamic"
    description: str | None = None


class Workflow(_Strict):
    """A whole workflow file."""

    store: StoreSection = Field(default_factory=StoreSection)
    attributes: dict[str, AttributeType] = Field(default_factory=dict)
    sources: list[SourceStep] = Field(default_factory=list)
    categorize: list[CategorizeStep] = Field(default_factory=list)
    campaigns: list[CampaignStep] = Field(default_factory=list)
    reports: list[ReportStep] = Field(default_factory=list)
    dedupe: DedupeSection | None = None
    segments: list[SegmentStep] = Field(default_factory=list)
    base_dir: Path = Field(default=Path("."), exclude=True)


def load_workflow(path: Path, registry: Registry) -> Workflow:
    """Parse and validate ``path``; raise one ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        wf = Workflow.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid workflow:\n{format_validation_error(exc)}") from None
    wf.base_dir = path.resolve().parent
    errors: list[str] = []

    def check(kind: str, use: str, config: dict[str, Any], where: str) -> None:
        try:
            registry.validate(kind, use, config, where)
        except ConfigError as exc:
            msg = str(exc)
            errors.extend(msg.splitlines() if msg.startswith(where) else [f"{where}.use: {msg}"])

    for i, s in enumerate(wf.sources):
        check("source", s.use, s.plugin_config(), f"sources[{i}]")
    for i, c in enumerate(wf.categorize):
        check("categorizer", c.use, c.plugin_config(), f"categorize[{i}]")
    for i, cp in enumerate(wf.campaigns):
        check("channel", cp.channel, cp.channel_config, f"campaigns[{i}].channel_config")
    for i, g in enumerate(wf.segments):
        if g.kind == "dynamic" and not g.rule:
            errors.append(f"segments[{i}].rule: a dynamic segment needs a rule")
        elif g.rule:
            from crmkit import _core

            try:
                _core.parse_rule(g.rule)
            except _core.RuleError as exc:
                errors.append(f"segments[{i}].rule: " + str(exc).replace("\n", "\n    "))
    for i, r in enumerate(wf.reports):
        check("reporter", r.use, r.plugin_config(), f"reports[{i}]")
    if wf.dedupe is not None and wf.dedupe.labels:
        from crmkit.dedupe import read_labels
        from crmkit.errors import SourceError

        try:
            read_labels(wf.base_dir / wf.dedupe.labels)
        except SourceError as exc:
            errors.append(f"dedupe.labels: {exc}")
    names = [
        s.name or f"{s.use}:{s.plugin_config().get('path', i)}" for i, s in enumerate(wf.sources)
    ]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        errors.append(f"sources: names used twice: {', '.join(sorted(dup))}")
    if errors:
        raise ConfigError(f"{path}: invalid workflow:\n" + "\n".join(errors))
    return wf


def run_workflow(
    kernel: Kernel,
    wf: Workflow,
    *,
    dry_run: bool = False,
    progress: Any = None,
    report_stream: Any = None,
) -> dict[str, Any]:
    """Run a validated workflow; safe to re-run (imports resume, sends are keyed).

    Reports without a ``path`` go to ``report_stream`` (default stdout).
    """
    from crmkit.outreach import make_campaign, run_campaign

    run_id = kernel.new_run_id()
    summary: dict[str, Any] = {"run_id": run_id, "steps": []}
    base = wf.base_dir

    def step(name: str, fn: Any) -> Any:
        kernel.hooks.step_started(kernel, name, run_id)
        t0 = time.perf_counter()
        out = fn()
        info = {"step": name, "seconds": round(time.perf_counter() - t0, 3), **(out or {})}
        summary["steps"].append(info)
        kernel.hooks.step_finished(kernel, name, run_id, info)
        if progress is not None:
            progress(info)
        return out

    if wf.attributes and not dry_run:
        kernel.store.declare_attributes(wf.attributes, source="workflow")
    for i, s in enumerate(wf.sources):
        cfg = s.plugin_config()
        name = s.name or f"{s.use}:{cfg.get('path', i)}"
        src = kernel.plugin("source", s.use, cfg, base_dir=base, where=f"sources[{i}]")
        rejects = base / (
            s.rejects or f"rejects/{Path(str(cfg.get('path', name))).name}.rejects.csv"
        )
        attrs = {**wf.attributes, **s.attributes}

        def do_import(
            src: Any = src,
            name: str = name,
            s: SourceStep = s,
            rejects: Path = rejects,
            attrs: dict[str, AttributeType] = attrs,
        ) -> dict[str, Any]:
            from crmkit.ingest import ConsentColumn

            r = kernel.ingest(
                src,
                name=name,
                key=s.key,
                attributes=attrs,
                rejects=rejects,
                dry_run=dry_run,
                consent=[ConsentColumn(**c.model_dump()) for c in s.consent],
            )
            return {
                "source": name,
                "kind": r.kind,
                "rows": r.rows,
                "created": r.created,
                "updated": r.updated,
                "interactions": r.interactions_added,
                "companies": r.companies,
                "consents": r.consents_given + r.consents_withdrawn,
                "rejected": r.rejected_rows,
                "dropped_values": r.dropped_values,
                "rejects": r.rejects_path,
            }

        step(f"import {name}", do_import)
    if wf.dedupe is not None:
        from crmkit.dedupe import run_dedupe_step

        section = wf.dedupe
        step(
            "dedupe",
            lambda: run_dedupe_step(kernel, section, dry_run=dry_run, base_dir=base),
        )
    if not dry_run:
        for c in wf.categorize:
            step(
                f"categorize {c.use}",
                lambda c=c: {"updated": kernel.categorize([(c.use, c.plugin_config())])[c.use]},
            )
    if wf.segments and not dry_run:

        def do_segments() -> dict[str, Any]:
            from crmkit.records import Segment

            kernel.segments.add(
                [
                    Segment(name=g.name, rule=g.rule, kind=g.kind, description=g.description)
                    for g in wf.segments
                ]
            )
            r = kernel.segments.run()
            return {"counts": r.counts, "entered": r.entered, "exited": r.exited}

        step("segments", do_segments)
    for cp in wf.campaigns:

        def do_campaign(cp: CampaignStep = cp) -> dict[str, Any]:
            def read(rel: str) -> str:
                tpath = base / rel
                if not tpath.exists():
                    raise ConfigError(f"campaign {cp.name!r}: template {rel} not found")
                return tpath.read_text(encoding="utf-8")

            data = cp.model_dump(exclude_none=True)
            data["template"] = read(cp.template)
            if cp.html:
                data["html"] = read(cp.html)
            data["follow_ups"] = [
                {
                    **fu,
                    "template": read(str(fu.get("template", ""))),
                    **({"html": read(str(fu["html"]))} if fu.get("html") else {}),
                }
                for fu in cp.follow_ups
            ]
            data["base_dir"] = str(base)
            r = run_campaign(kernel, make_campaign(data), dry_run=dry_run)
            return {
                "campaign": cp.name,
                "audience": r.audience,
                "queued": r.queued,
                "already": r.already,
                "scheduled": r.scheduled,
                "sent": r.sent,
                "failed": r.failed,
                "retrying": r.retrying,
                "unknown": r.unknown,
                "excluded": r.excluded,
            }

        step(f"campaign {cp.name}", do_campaign)
    for r in wf.reports:

        def do_report(r: ReportStep = r) -> dict[str, Any]:
            rep = kernel.report(r.report)
            cfg = r.plugin_config()
            out = report_stream if not cfg.get("path") else None
            kernel.render(rep, r.use, cfg, base_dir=base, out=out)
            return {"report": r.report, "reporter": r.use}

        step(f"report {r.use}", do_report)
    return summary
