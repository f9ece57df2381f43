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


class SourceStep(_WithPluginConfig):
    """``[[sources]]``: a source plugin and how its records are upserted."""

    use: str
    name: str | None = None
    key: Literal["email", "external_id"] = "email"
    rejects: str | None = None
    attributes: dict[str, AttributeType] = Field(default_factory=dict)


class CategorizeStep(_WithPluginConfig):
    """``[[categorize]]``: a categorizer plugin."""

    use: str


class CampaignStep(_Strict):
    """``[[campaigns]]``: a message to an audience over a channel."""

    name: str
    channel: str
    template: str
    subject: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    purpose: str = "marketing"
    require_consent: bool = False
    channel_config: dict[str, Any] = Field(default_factory=dict)


class ReportStep(_WithPluginConfig):
    """``[[reports]]``: a reporter plugin and the report to render."""

    use: str
    report: str = "summary"


class Workflow(_Strict):
    """A whole workflow file."""

    store: StoreSection = Field(default_factory=StoreSection)
    attributes: dict[str, AttributeType] = Field(default_factory=dict)
    sources: list[SourceStep] = Field(default_factory=list)
    categorize: list[CategorizeStep] = Field(default_factory=list)
    campaigns: list[CampaignStep] = Field(default_factory=list)
    reports: list[ReportStep] = Field(default_factory=list)
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
    for i, r in enumerate(wf.reports):
        check("reporter", r.use, r.plugin_config(), f"reports[{i}]")
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
    from crmkit.outreach import run_campaign

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
            r = kernel.ingest(
                src, name=name, key=s.key, attributes=attrs, rejects=rejects, dry_run=dry_run
            )
            return {
                "source": name,
                "kind": r.kind,
                "rows": r.rows,
                "created": r.created,
                "updated": r.updated,
                "interactions": r.interactions_added,
                "companies": r.companies,
                "rejected": r.rejected_rows,
                "dropped_values": r.dropped_values,
                "rejects": r.rejects_path,
            }

        step(f"import {name}", do_import)
    if not dry_run:
        for c in wf.categorize:
            step(
                f"categorize {c.use}",
                lambda c=c: {"updated": kernel.categorize([(c.use, c.plugin_config())])[c.use]},
            )
    for cp in wf.campaigns:

        def do_campaign(cp: CampaignStep = cp) -> dict[str, Any]:
            tpath = base / cp.template
            if not tpath.exists():
                raise ConfigError(f"campaign {cp.name!r}: template {cp.template} not found")
            r = run_campaign(
                kernel,
                name=cp.name,
                channel=cp.channel,
                channel_config=cp.channel_config,
                template=tpath.read_text(encoding="utf-8"),
                subject=cp.subject,
                where=cp.where,
                purpose=cp.purpose,
                require_consent=cp.require_consent,
                dry_run=dry_run,
                base_dir=base,
            )
            return {
                "campaign": cp.name,
                "audience": r.audience,
                "queued": r.queued,
                "sent": r.sent,
                "failed": r.failed,
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
