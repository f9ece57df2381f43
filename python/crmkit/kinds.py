"""Base classes for the kinds of plugin: sources, categorizers, channels,
reporters, stores and engines.

A plugin registers a *class* through a ``crmkit_register_*`` hook. The host
owns names and duplicate checks, validates the user's configuration with the
class's pydantic ``Config`` model (``extra="forbid"``, so a typo names the
field) and instantiates the class with the validated config and a
:class:`PluginContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import msgspec
from pydantic import BaseModel, ConfigDict

from crmkit.records import (
    AttributeType,
    Batch,
    Checkpoint,
    DeliveryStatus,
    Message,
    RecordKind,
    Report,
    SendResult,
    Table,
)

if TYPE_CHECKING:
    from crmkit.kernel import Kernel
    from crmkit.store.base import Store


class PluginConfig(BaseModel):
    """Base of every plugin's ``Config``: unknown keys are errors.

    Validators are built on first use (``defer_build``), so that loading many
    plugins costs nothing until one of them is configured.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class PluginContext(msgspec.Struct, kw_only=True):
    """What the host gives a plugin instance besides its config."""

    base_dir: Path
    """Folder that relative paths in the config are resolved against."""
    kernel: Kernel | None = None
    """The kernel that created the instance, when there is one."""

    def resolve(self, path: str | Path) -> Path:
        """``path`` resolved against :attr:`base_dir` (absolute paths unchanged)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class Plugin(ABC):
    """Common base: a registered name, a config model and a description."""

    name: ClassVar[str]
    """Registered name, used as ``use = "<name>"`` in workflow files."""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """The pydantic model the host validates the user's config with."""
    description: ClassVar[str] = ""

    def __init__(self, config: PluginConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def spec(cls) -> dict[str, Any]:
        """JSON schema of this plugin's config."""
        return cls.Config.model_json_schema()


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Source.discover` finds: a kind of record and its fields."""

    kind: RecordKind
    fields: tuple[str, ...]
    file: str | None = None
    format: str | None = None
    encoding: str | None = None
    rows: int | None = None


class Source(Plugin):
    """Reads records from somewhere and yields them as columnar batches."""

    def check(self) -> None:
        """Raise :class:`crmkit.errors.SourceError` when the source cannot be read."""

    def discover(self) -> list[StreamInfo]:
        """Describe what :meth:`read` would produce, without reading it all."""
        return []

    @abstractmethod
    def read(self, state: Mapping[str, Any] | None) -> Iterator[Batch | Checkpoint]:
        """Yield batches and checkpoints.

        ``state`` is the last checkpoint stored for this source (``None`` on the
        first run). The host writes each batch in its own transaction and saves
        a checkpoint only after every batch before it is stored, so an
        interrupted run re-reads at most what was not yet committed.
        """


class Snapshot(msgspec.Struct, kw_only=True):
    """A columnar view of contacts and their interactions, for bulk work.

    ``contacts`` maps a field to one value per contact in ``ids`` order;
    ``interactions`` holds parallel columns ``contact_index`` (index into
    ``ids``), ``kind``, ``occurred_at`` (epoch seconds) and ``amount``.
    """

    ids: list[int]
    contacts: dict[str, list[Any]]
    interactions: dict[str, list[Any]]
    as_of: float
    """The evaluation time, epoch seconds (UTC)."""


class Categorizer(Plugin):
    """Computes derived attributes (RFM, lifecycle, scores) for a whole snapshot."""

    produces: ClassVar[Mapping[str, AttributeType]] = {}
    """Attribute names this categorizer writes, with their types."""

    @abstractmethod
    def categorize(self, snapshot: Snapshot) -> Mapping[str, Sequence[Any]]:
        """Return one column per produced attribute, aligned with ``snapshot.ids``."""


class CallbackEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's status report or inbound message, parsed by a channel."""

    provider_id: str | None = None
    key: str | None = None
    status: DeliveryStatus | None = None
    unsubscribe: bool = False
    address: str | None = None
    detail: str | None = None


class Channel(Plugin):
    """Sends rendered messages to a provider, in batches."""

    max_batch: ClassVar[int] = 100
    """Largest batch :meth:`send_batch` accepts."""
    rate_per_second: ClassVar[float | None] = None
    """Default send rate limit; ``None`` for unlimited."""
    address_field: ClassVar[str] = "email"
    """Contact field holding the address this channel sends to."""

    def check(self) -> None:
        """Raise :class:`crmkit.errors.ChannelError` when the channel cannot send."""

    @abstractmethod
    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send a batch; return one result per message, matched by ``key``."""

    def parse_callback(self, payload: bytes, headers: Mapping[str, str]) -> list[CallbackEvent]:
        """Parse a provider callback (delivery status, inbound STOP)."""
        return []

    def reconcile(self, messages: Sequence[Message]) -> list[SendResult]:
        """Settle messages whose outcome was left unknown (a crash mid-send).

        Return a result for each message the provider can answer for (``sent``
        when it got it, ``failed`` when it refused it); leave out the others,
        which stay ``unknown`` until a callback or ``crmkit outbox resolve``.
        The kernel never re-sends an unknown message blindly.
        """
        return []

    def close(self) -> None:
        """Release connections; called after each outbox pass."""


class Reporter(Plugin):
    """Renders a :class:`Report` somewhere (terminal, HTML, CSV, JSON)."""

    @abstractmethod
    def render(self, report: Report, out: TextIO | None) -> None:
        """Write ``report`` to ``out`` (or where the config says when ``None``)."""


class StoreBackend(Plugin):
    """Opens stores for URLs of its schemes (``sqlite``, ``postgresql``, ...)."""

    schemes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def open(self, url: str) -> Store:
        """Open (creating and migrating when needed) the store at ``url``."""


class Engine(Plugin):
    """A bulk executor for dedupe and segment work (local Rust, Spark, ...)."""


__all__ = [
    "CallbackEvent",
    "Categorizer",
    "Channel",
    "Engine",
    "Plugin",
    "PluginConfig",
    "PluginContext",
    "Report",
    "Reporter",
    "Snapshot",
    "Source",
    "StoreBackend",
    "StreamInfo",
    "Table",
]
