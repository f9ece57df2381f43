"""Consent ledger helpers, the suppression list and signed unsubscribe tokens.

**The secret key.** Suppression entries are keyed hashes (HMAC-SHA256) of
normalized addresses and unsubscribe tokens are signed with the same key.
The key comes from the ``CRMKIT_SECRET_KEY`` environment variable (at least
16 characters). When it is not set, a random key is generated once per store
and kept in the store itself (``source_state`` entry ``outreach:secret``): this
keeps a single-machine setup working, but anyone holding the database file can
then test guessed addresses against the suppression list, so set
``CRMKIT_SECRET_KEY`` in production. The key's fingerprint is recorded in the
store the first time it is used; a different key later is refused with a
clear error, because the suppression hashes written under the old key would
silently stop matching.

**Scopes.** A suppression applies to a *scope*: a channel name (``email``:
every purpose, e.g. after a hard bounce, a complaint or an SMS ``STOP``) or
``channel/purpose`` (``email/marketing``: after an unsubscribe).

**The ledger** is append-only (``consents`` table): the newest entry for a
(contact, channel, purpose) decides.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from crmkit.errors import ConfigError
from crmkit.records import Consent, ConsentStatus

if TYPE_CHECKING:
    from crmkit.store.base import Store

SECRET_ENV = "CRMKIT_SECRET_KEY"
"""Environment variable holding the key for suppression hashes and tokens."""

_SECRET_STATE = "outreach:secret"
_FINGERPRINT_STATE = "outreach:secret-fingerprint"

GIVEN_WORDS = frozenset(
    {"1", "y", "yes", "true", "given", "opt-in", "optin", "opted-in", "subscribed"}
)
"""Cell values read as consent given by :func:`consent_from_column`."""
WITHDRAWN_WORDS = frozenset(
    {
        "0",
        "n",
        "no",
        "false",
        "withdrawn",
        "opt-out",
        "optout",
        "opted-out",
        "unsubscribed",
        "do not email",
        "donotemail",
    }
)
"""Cell values read as consent withdrawn by :func:`consent_from_column`."""


class SecretKey:
    """The store's HMAC key, with helpers for address hashes and tokens."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError(f"{SECRET_ENV} must be at least 16 characters long")
        self._key = key

    @property
    def fingerprint(self) -> str:
        """A short public fingerprint of the key (safe to store and log)."""
        return hmac.new(self._key, b"crmkit-fingerprint", hashlib.sha256).hexdigest()[:16]

    def address_hash(self, address: str) -> str:
        """Keyed hash of a normalized address (lower-case, no surrounding space)."""
        norm = normalize_address(address).encode("utf-8")
        return hmac.digest(self._key, norm, "sha256").hex()

    def sign(self, data: bytes) -> str:
        """URL-safe base64 HMAC-SHA256 of ``data`` (no padding)."""
        return _b64url(hmac.digest(self._key, data, "sha256")).decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Hmac:
    """HMAC-SHA256 with the key's padded states computed once (RFC 2104), for bulk use."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, msg: bytes) -> bytes:
        """HMAC-SHA256 of ``msg``."""
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _b64url(data: bytes) -> bytes:
    """URL-safe base64 without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def normalize_address(address: str) -> str:
    """The form an address is hashed in: trimmed, lower-case, no inner spaces."""
    return (
        "".join(address.split()).lower()
        if " " in address or "\t" in address
        else address.strip().lower()
    )


def load_secret(store: Store) -> SecretKey:
    """The secret key for ``store``: from ``CRMKIT_SECRET_KEY`` or generated per store.

    Raises :class:`ConfigError` when the key differs from the one this store's
    suppression list was written with.
    """
    env = os.environ.get(SECRET_ENV)
    if env:
        key = SecretKey(env.encode("utf-8"))
    else:
        state = store.get_state(_SECRET_STATE)
        if state is None:
            state = {"key": secrets.token_urlsafe(32)}
            with store.transaction():
                again = store.get_state(_SECRET_STATE)
                if again is None:
                    store.set_state(_SECRET_STATE, state)
                else:
                    state = again
        key = SecretKey(str(state["key"]).encode("utf-8"))
    seen = store.get_state(_FINGERPRINT_STATE)
    if seen is None:
        store.set_state(_FINGERPRINT_STATE, {"fingerprint": key.fingerprint})
    elif seen.get("fingerprint") != key.fingerprint:
        raise ConfigError(
            f"the secret key ({SECRET_ENV} or the store's generated key) is not the one this "
            "store's suppression list was written with; restore the old key"
        )
    return key


# -- unsubscribe tokens -------------------------------------------------------------


class UnsubscribeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a valid unsubscribe token says: who opts out of what (ids only)."""

    contact_id: int
    channel: str
    purpose: str
    campaign: str | None = None
    issued_at: int = 0


_token_dec = msgspec.json.Decoder(tuple[int, str, str, str | None, int])


class TokenSigner:
    """Signs unsubscribe tokens for one (channel, purpose, campaign) quickly, in bulk.

    A token is ``<body>.<signature>``: ``body`` is the URL-safe base64 of the
    JSON array ``[contact_id, channel, purpose, campaign, issued_at]`` and the
    signature an HMAC-SHA256 of ``v1.<body>`` with the store's key.
    """

    def __init__(
        self,
        key: SecretKey,
        *,
        channel: str,
        purpose: str,
        campaign: str | None = None,
        issued_at: int | None = None,
    ) -> None:
        issued = int(time.time()) if issued_at is None else issued_at
        self._tail = msgspec.json.encode([channel, purpose, campaign, issued])[1:]
        self._mac = _Hmac(key._key)

    def token(self, contact_id: int) -> str:
        """The token for ``contact_id``."""
        raw = b"[" + str(int(contact_id)).encode() + b"," + self._tail
        body = _b64url(raw)
        sig = _b64url(self._mac.digest(b"v1." + body))
        return (body + b"." + sig).decode("ascii")

    def tokens(self, contact_ids: Sequence[int]) -> list[str]:
        """The tokens for ``contact_ids``, in order (the same as :meth:`token` for each)."""
        b64, urlsafe, tail = binascii.b2a_base64, _URLSAFE, b"," + self._tail
        inner0, outer0 = self._mac._inner, self._mac._outer
        out: list[str] = []
        append = out.append
        for cid in contact_ids:
            body = b64(b"[%d%s" % (cid, tail), newline=False).translate(urlsafe).rstrip(b"=")
            inner = inner0.copy()
            inner.update(b"v1." + body)
            outer = outer0.copy()
            outer.update(inner.digest())
            sig = b64(outer.digest(), newline=False).translate(urlsafe).rstrip(b"=")
            append((body + b"." + sig).decode("ascii"))
        return out


def make_token(key: SecretKey, req: UnsubscribeRequest) -> str:
    """A signed, URL-safe unsubscribe token for ``req`` (no personal data inside)."""
    return TokenSigner(
        key,
        channel=req.channel,
        purpose=req.purpose,
        campaign=req.campaign,
        issued_at=req.issued_at,
    ).token(req.contact_id)


def read_token(key: SecretKey, token: str) -> UnsubscribeRequest:
    """Verify ``token`` and return its request; :class:`ConfigError` when invalid."""
    token = token.strip()
    body, _, sig = token.partition(".")
    if not body or not sig:
        raise ConfigError("not an unsubscribe token")
    expected = key.sign(b"v1." + body.encode("ascii", "replace"))
    if not hmac.compare_digest(expected, sig):
        raise ConfigError("unsubscribe token signature is invalid (wrong key or altered token)")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        cid, channel, purpose, campaign, issued = _token_dec.decode(raw)
    except (ValueError, msgspec.DecodeError):
        raise ConfigError("unsubscribe token is malformed") from None
    return UnsubscribeRequest(
        contact_id=cid, channel=channel, purpose=purpose, campaign=campaign, issued_at=issued
    )


# -- ledger ---------------------------------------------------------------------------


def record(
    store: Store,
    contact_ids: Sequence[int],
    *,
    channel: str,
    purpose: str,
    status: ConsentStatus,
    source: str,
    evidence: str | None = None,
) -> int:
    """Append one ledger entry per contact; returns how many were written."""
    store.record_consents(
        [
            Consent(
                contact_id=cid,
                channel=channel,
                purpose=purpose,
                status=status,
                source=source,
                evidence=evidence,
            )
            for cid in contact_ids
        ]
    )
    return len(contact_ids)


def history(store: Store, contact_id: int) -> list[dict[str, Any]]:
    """A contact's ledger entries, oldest first."""
    return [
        {
            "channel": e.channel,
            "purpose": e.purpose,
            "status": e.status,
            "source": e.source,
            "evidence": e.evidence,
            "recorded_at": int(e.recorded_at.timestamp()) if e.recorded_at else None,
        }
        for e in store.consent_history(contact_id)
    ]


def consent_from_column(
    store: Store,
    contact_ids: Sequence[int | None],
    values: Sequence[Any],
    *,
    channel: str,
    purpose: str,
    source: str,
    file: str | None = None,
    lines: Sequence[int] | None = None,
    opt_out: bool = False,
) -> dict[str, int]:
    """Record consent from an import column (``email_opt_in`` or an opt-out flag).

    Each recognised value (see :data:`GIVEN_WORDS`, :data:`WITHDRAWN_WORDS`)
    becomes a ledger entry whose evidence is ``file:line``; ``opt_out`` flips
    the reading (a ``true`` in a "do not email" column withdraws). Blank and
    unrecognised cells record nothing. Returns counts per status and
    ``ignored``.
    """
    out = {"given": 0, "withdrawn": 0, "ignored": 0}
    entries: list[Consent] = []
    for i, (cid, value) in enumerate(zip(contact_ids, values, strict=True)):
        if cid is None or value is None:
            continue
        word = str(value).strip().lower()
        if word in GIVEN_WORDS:
            given = True
        elif word in WITHDRAWN_WORDS:
            given = False
        else:
            if word:
                out["ignored"] += 1
            continue
        status: ConsentStatus = "withdrawn" if given == opt_out else "given"
        line = lines[i] if lines is not None else None
        evidence = f"{file or '?'}:{line}" if line is not None else file
        entries.append(
            Consent(
                contact_id=cid,
                channel=channel,
                purpose=purpose,
                status=status,
                source=source,
                evidence=evidence,
            )
        )
        out[status] += 1
    if entries:
        store.record_consents(entries)
    return out


# -- suppressions ----------------------------------------------------------------------


def suppress(
    store: Store,
    key: SecretKey,
    addresses: Iterable[str],
    *,
    scope: str,
    reason: str,
) -> int:
    """Add addresses to the suppression list for ``scope``; returns how many were new."""
    return store.add_suppressions(
        [key.address_hash(a) for a in addresses if a], scope=scope, reason=reason
    )


def suppressed_addresses(
    store: Store, key: SecretKey, addresses: Sequence[str | None], *, scopes: Sequence[str]
) -> list[bool]:
    """For each address, whether it is suppressed in any of ``scopes``."""
    if not store.has_suppressions(scopes=scopes):
        return [False] * len(addresses)
    hashes = [key.address_hash(a) if a else None for a in addresses]
    hit = store.suppressed_hashes([h for h in hashes if h], scopes=scopes)
    return [h is not None and h in hit for h in hashes]


__all__ = [
    "GIVEN_WORDS",
    "SECRET_ENV",
    "WITHDRAWN_WORDS",
    "SecretKey",
    "TokenSigner",
    "UnsubscribeRequest",
    "consent_from_column",
    "history",
    "load_secret",
    "make_token",
    "normalize_address",
    "read_token",
    "record",
    "suppress",
    "suppressed_addresses",
]
