"""Write the quickstart's sample customer base.

Usage::

    python examples/quickstart/generate.py --out examples/quickstart/data --contacts 3000 --seed 42

The same arguments always give byte-identical files; see :func:`crmkit.sample.generate`
for what each file holds.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from crmkit.sample import MAX_DUPLICATE_RATE, generate


@click.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Directory to write the files into.",
)
@click.option("--contacts", type=click.IntRange(min=0), default=3000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--years", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
    help="Years of interaction history before --as-of.",
)  # fmt: skip
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="The 'now' of the data (UTC). Default: a fixed date, for reproducible runs.",
)
@click.option(
    "--duplicate-rate",
    type=click.FloatRange(0, MAX_DUPLICATE_RATE),
    default=0.29,
    show_default=True,
    help="Share of contact rows that are duplicates of another row's person.",
)
@click.option("--interactions/--no-interactions", default=True, show_default=True)
@click.option("--companies/--no-companies", default=True, show_default=True)
def main(
    out: Path,
    contacts: int,
    seed: int,
    years: float,
    as_of: datetime | None,
    duplicate_rate: float,
    interactions: bool,
    companies: bool,
) -> None:
    """Generate a messy sample customer base with its ground truth."""
    info = generate(
        out,
        contacts=contacts,
        seed=seed,
        years=years,
        as_of=as_of,
        duplicate_rate=duplicate_rate,
        with_interactions=interactions,
        with_companies=companies,
    )
    click.echo(
        f"{info.contacts} contacts ({info.entities} people, {info.duplicate_rows} duplicate rows), "
        f"{info.companies} companies, {info.interactions} interactions -> {info.out_dir}"
    )


if __name__ == "__main__":
    sys.exit(main())
