"""The crmkit plugin contract.

Every hook is named ``crmkit_*`` and documented here: when it is called, what
it receives and what it returns. Plugins implement hooks with
:data:`crmkit.hookimpl`::

    from crmkit import hookimpl

    @hookimpl
    def crmkit_register_sources(register):
        register(MySource)

Registration hooks receive a ``register`` callback; the host owns names,
duplicate checks and config validation. Event hooks receive whole batches,
never one record at a time. An event hook that raises is reported by plugin
name and does not stop the run.

The contract is versioned by :data:`PLUGIN_API` (major, minor): within one
major version a hook may only gain optional arguments. Remember pluggy's rule:
an implementation may accept any subset of a hook's arguments, and an argument
that has a default value in the implementation is never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from crmkit.kernel import Kernel
    from crmkit.kinds import Categorizer, Channel, Engine, Reporter, Source, StoreBackend
    from crmkit.records import MergeEvent, Message, SegmentChange, SendResult

PLUGIN_API: tuple[int, int] = (1, 0)
"""Version of the hook contract: (major, minor)."""

PROJECT = "crmkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration ---------------------------------------------------------------


@hookspec
def crmkit_register_sources(register: Callable[[type[Source]], None]) -> None:
    """Register data source classes.

    Called once when the plugin manager is built. Call ``register(cls)`` with
    each :class:`crmkit.kinds.Source` subclass; ``cls.name`` is the name used in
    workflow files (``use = "csv"``). A name registered twice is an error that
    names both plugins.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_categorizers(register: Callable[[type[Categorizer]], None]) -> None:
    """Register categorizer classes (RFM, lifecycle, scores).

    A categorizer computes derived attributes over a whole
    :class:`crmkit.kinds.Snapshot`; it declares what it produces in
    ``cls.produces`` so that segment rules can be checked against it.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_channels(register: Callable[[type[Channel]], None]) -> None:
    """Register channel classes (email, SMS, webhook, file, ...).

    The kernel owns consent, rendering, the outbox and retries; a channel only
    talks to its provider through ``send_batch`` and ``parse_callback``.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_reporters(register: Callable[[type[Reporter]], None]) -> None:
    """Register reporter classes (terminal, HTML, CSV, JSON, ...).

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_stores(register: Callable[[type[StoreBackend]], None]) -> None:
    """Register store backends; each declares the URL ``schemes`` it opens.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_engines(register: Callable[[type[Engine]], None]) -> None:
    """Register bulk engines (the built-in ``local`` engine, Spark, ...).

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_survivorship_rules(
    register: Callable[[str, Callable[..., int | None]], None],
) -> None:
    """Register survivorship rules that choose field values when duplicates merge.

    Call ``register(name, rule)``. A rule is called once per field of each
    merged cluster as ``rule(field, candidates, options)``: ``field`` is a
    contact field or ``"address"`` (street, city, region, postcode and country
    chosen together), ``candidates`` are the stored rows that have a value
    (the survivor first) and ``options`` come from the workflow or CLI. It
    returns the id of the contact whose value wins, or ``None`` to keep the
    survivor's. Users choose a rule by name (``rule = "<name>"`` in
    ``[dedupe]``, ``crmkit dedupe --rule <name>``); a name already taken is an
    error that names the plugin.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_register_commands(cli: click.Group) -> None:
    """Add commands to the ``crmkit`` command line.

    Called by :func:`crmkit.cli.build_cli` after the built-in commands exist.
    Use ``@cli.command()`` to add a command.

    .. versionadded:: 1.0
    """


# -- events (always batches) ------------------------------------------------------


@hookspec
def crmkit_contacts_upserted(
    kernel: Kernel, created: Sequence[int], updated: Sequence[int], source: str
) -> None:
    """Contacts were created or updated by an import, after they committed.

    Called once per commit of an import (a commit holds one or more source
    batches, up to about 250,000 rows) with the ids created and updated.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_contacts_merged(kernel: Kernel, events: Sequence[MergeEvent]) -> None:
    """Duplicates were merged (after the merge transaction committed).

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_contacts_erased(kernel: Kernel, contact_ids: Sequence[int]) -> None:
    """Contacts were erased on request (right to be forgotten), after the erasure
    committed; ``contact_ids`` are every record removed (merged records included).

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_segment_changed(kernel: Kernel, changes: Sequence[SegmentChange]) -> None:
    """Segment memberships changed in a run: one entry per segment that moved.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_before_send(kernel: Kernel, messages: Sequence[Message]) -> Sequence[str] | None:
    """Veto messages before they are sent.

    Filter semantics: every implementation sees the whole batch and returns the
    ``key`` of each message it vetoes (or ``None``); a message vetoed by any
    implementation is not sent and its delivery is marked ``failed`` with the
    vetoing plugin named.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_messages_sent(kernel: Kernel, results: Sequence[SendResult]) -> None:
    """A batch of messages was handed to a channel; one result per message.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_step_started(kernel: Kernel, step: str, run_id: str) -> None:
    """A workflow step is about to start.

    .. versionadded:: 1.0
    """


@hookspec
def crmkit_step_finished(
    kernel: Kernel, step: str, run_id: str, summary: Mapping[str, Any]
) -> None:
    """A workflow step finished; ``summary`` holds its counts (no personal data).

    .. versionadded:: 1.0
    """
