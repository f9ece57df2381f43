"""``crmkit init``: a starter workflow, a template and sample data in a folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crmkit.errors import ConfigError

WORKFLOW = """\
# crmkit quickstart workflow: import, clean, categorize, segment, reach, report.
# Run it with:  crmkit run workflow.toml   (safe to re-run)

[store]
url = "crmkit.db"                 # a SQLite file beside this workflow

[attributes]                      # custom attribute types (others are inferred)
plan = "string"
newsletter = "boolean"
signed_up = "date"

[[sources]]
use = "csv"
name = "contacts"
path = "data/contacts.csv"
key = "email"                      # upsert on the normalized email
consent = [{ column = "newsletter", channel = "email", purpose = "marketing" }]

[[sources]]
use = "csv"
name = "companies"
path = "data/companies.csv"
kind = "companies"

[[sources]]
use = "jsonl"
name = "interactions"
path = "data/interactions.jsonl"
kind = "interactions"

[dedupe]                          # find duplicates, merge them into golden records
rule = "most_complete"            # survivorship; `crmkit merges undo ID` undoes a merge

[[categorize]]
use = "lifecycle"
active_days = 180
churn_days = 365

[[categorize]]
use = "rfm"

[[segments]]
name = "champions"
rule = "rfm_segment in ('champions', 'loyal')"

[[segments]]
name = "vip"
rule = "count(purchase, 365 days) >= 3 and sum(purchase.amount, 365 days) > 300"

[[segments]]
name = "us_newsletter"
rule = "newsletter = true and country = 'US'"

[[segments]]
name = "going_quiet"
rule = "in_segment('vip') and not last(purchase) within 60 days"

[[campaigns]]
name = "welcome-back"
channel = "file"
where = { lifecycle_stage = "at_risk" }
subject = "We miss you, {{ contact.first_name or 'friend' }}"
template = "templates/welcome_back.txt"
channel_config = { path = "out/outbox.jsonl" }

[[reports]]
use = "terminal"
"""

TEMPLATE = """\
Hello {{ contact.first_name or 'there' }},

It has been a while since your last order. Here is 10% off your next one.

The team
"""


def write_starter(
    folder: Path, *, contacts: int = 3000, seed: int = 42, force: bool = False
) -> list[Path]:
    """Write ``workflow.toml``, a template and generated sample data into ``folder``."""
    from crmkit.sample import generate

    folder.mkdir(parents=True, exist_ok=True)
    wf = folder / "workflow.toml"
    if wf.exists() and not force:
        raise ConfigError(f"{wf} exists; use --force to overwrite")
    wf.write_text(WORKFLOW, encoding="utf-8")
    tdir = folder / "templates"
    tdir.mkdir(exist_ok=True)
    (tdir / "welcome_back.txt").write_text(TEMPLATE, encoding="utf-8")
    (folder / "out").mkdir(exist_ok=True)
    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    info = generate(folder / "data", contacts=contacts, seed=seed, as_of=as_of)
    written = [wf, tdir / "welcome_back.txt"]
    written.extend(sorted((folder / "data").iterdir()))
    _ = info
    return written
