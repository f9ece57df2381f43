"""Conformance tests every :class:`crmkit.store.Store` backend must pass.

Subclass :class:`StoreConformance` and provide a ``store`` fixture that yields
a fresh, empty store::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(...)
            yield s
            s.close()
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crmkit.errors import ConfigError, NotFoundError
from crmkit.records import Consent, Segment
from crmkit.store.base import ContactQuery, ErasureCounts, MergeConflictError, Store


def _contacts(n: int, offset: int = 0) -> dict[str, list[Any]]:
    return {
        "email": [f"user{i + offset}@example.com" for i in range(n)],
        "first_name": [f"First{i + offset}" for i in range(n)],
        "last_name": ["Lee"] * n,
        "city": [None if i % 3 == 0 else "Springfield" for i in range(n)],
        "plan": ["pro" if i % 2 else None for i in range(n)],
    }


class StoreConformance:
    """The store contract as tests. Provide a ``store`` fixture in a subclass."""

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert store.schema_version() >= 1

    def test_upsert_creates_then_updates(self, store: Store) -> None:
        r = store.upsert_contacts(
            _contacts(5), key="email", source="t", file="a.csv", lines=[2, 3, 4, 5, 6]
        )
        assert len(r.created) == 5 and r.updated == []
        assert store.count_contacts() == 5
        again = store.upsert_contacts(
            {"email": ["user1@example.com", "new@example.com"], "city": ["Shelbyville", None]},
            key="email",
            source="t",
        )
        assert again.updated == [r.ids[1]]
        assert len(again.created) == 1
        c = store.get_contacts([r.ids[1]])[0]  # type: ignore[list-item]
        assert c.city == "Shelbyville"
        assert c.first_name == "First1", "a None value must not overwrite a stored one"
        assert c.attributes == {"plan": "pro"}

    def test_rows_sharing_a_key_update_one_contact(self, store: Store) -> None:
        r = store.upsert_contacts(
            {
                "email": ["a@x.com", "a@x.com", None],
                "first_name": ["Ann", None, "Zed"],
                "last_name": [None, "Lee", None],
            },
            key="email",
            source="t",
        )
        assert r.ids[0] == r.ids[1] and r.ids[2] is None
        c = store.get_contacts([r.ids[0]])[0]  # type: ignore[list-item]
        assert (c.first_name, c.last_name) == ("Ann", "Lee")
        assert store.count_contacts() == 1

    def test_external_id_identity(self, store: Store) -> None:
        r1 = store.upsert_contacts(
            {"external_id": ["R1", "R2"], "email": ["a@x.com", None], "first_name": ["A", "B"]},
            key="external_id",
            source="crm",
        )
        r2 = store.upsert_contacts(
            {"external_id": ["R2"], "first_name": ["Bea"]}, key="external_id", source="crm"
        )
        assert r2.updated == [r1.ids[1]]
        # Another source with the same external id is another identity.
        r3 = store.upsert_contacts(
            {"external_id": ["R2"], "first_name": ["Other"]}, key="external_id", source="shop"
        )
        assert r3.created and r3.ids[0] != r1.ids[1]
        assert store.lookup_contacts("external_id", ["R1"], source="crm") == {"R1": r1.ids[0]}
        assert store.get_contacts([r1.ids[0]])[0].external_ids == {"crm": "R1"}  # type: ignore[list-item]

    def test_an_email_another_contact_holds_is_kept_back(self, store: Store) -> None:
        r1 = store.upsert_contacts(
            {"external_id": ["R1", "R2"], "email": ["a@x.com", "b@x.com"]},
            key="external_id",
            source="crm",
        )
        # R1 claims R2's email and moves its city; R2 moves to a free email.
        r2 = store.upsert_contacts(
            {
                "external_id": ["R1", "R2"],
                "email": ["b@x.com", "c@x.com"],
                "city": ["Oslo", None],
            },
            key="external_id",
            source="crm",
        )
        assert r2.ids == r1.ids
        assert r2.conflicts == [0]
        a, b = store.get_contacts(r1.ids)  # type: ignore[arg-type]
        assert (a.email, a.city, b.email) == ("a@x.com", "Oslo", "c@x.com")

    def test_bad_calls_are_config_errors(self, store: Store) -> None:
        with pytest.raises(ConfigError):
            store.upsert_contacts({"email": ["a@x.com"]}, key="phone", source="t")
        with pytest.raises(ConfigError):
            store.upsert_contacts({"email": ["a@x.com"], "city": []}, key="email", source="t")

    def test_transaction_rolls_back_everything(self, store: Store) -> None:
        store.upsert_contacts(_contacts(2), key="email", source="t")
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert_contacts(_contacts(3, offset=10), key="email", source="t")
            store.set_state("s", {"offset": 10})
            raise RuntimeError("boom")
        assert store.count_contacts() == 2
        assert store.get_state("s") is None

    def test_bulk_load_reads_and_writes_as_usual(self, store: Store) -> None:
        before = store.upsert_contacts(_contacts(3), key="email", source="t")
        with store.bulk_load(), store.bulk_load():
            r = store.upsert_contacts(
                {**_contacts(4, offset=2), "phone": ["+15550001", None, None, "+15550004"]},
                key="email",
                source="t",
            )
            assert r.updated == before.ids[2:] and len(r.created) == 3
            store.upsert_contacts(
                {"external_id": ["X1"], "email": ["user5@example.com"]},
                key="external_id",
                source="crm",
            )
            assert store.lookup_contacts("phone", ["+15550004"]) == {"+15550004": r.ids[3]}
        assert store.count_contacts() == 6
        assert store.lookup_contacts("phone", ["+15550001"]) == {"+15550001": r.ids[0]}
        assert store.lookup_contacts("external_id", ["X1"], source="crm") == {"X1": r.ids[3]}
        found = store.find_contacts(ContactQuery(phone="+15550004"))
        assert [c.id for c in found] == [r.ids[3]]

    def test_find_and_columns(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(6), key="email", source="t")
        found = store.find_contacts(ContactQuery(text="first3"))
        assert [c.id for c in found] == [r.ids[3]]
        assert store.find_contacts(ContactQuery(email="USER2@example.com"))[0].id == r.ids[2]
        store.declare_attributes({"plan": "string"}, source="t")
        ids, cols = store.contact_columns(["city", "plan"])
        assert ids == sorted(i for i in r.ids if i is not None)
        assert cols["plan"] == [None, "pro", None, "pro", None, "pro"]

    def test_change_log_lists_what_changed(self, store: Store) -> None:
        start = store.change_position()
        r = store.upsert_contacts(_contacts(3), key="email", source="t")
        ids = sorted(i for i in r.ids if i is not None)
        c1 = store.changes_since(start)
        assert c1 is not None and c1.contact_ids == ids
        assert c1.position != start
        store.set_attributes([ids[1]], {"city": ["Paris"]})
        store.add_interactions(
            {
                "contact_id": [ids[2]],
                "kind": ["purchase"],
                "occurred_at": [datetime(2026, 1, 1, tzinfo=UTC)],
                "key": ["cl-1"],
            },
            source="t",
        )
        c2 = store.changes_since(c1.position)
        assert c2 is not None and c2.contact_ids == [ids[1]]
        assert c2.interactions["contact_id"] == [ids[2]]
        # Reads bounded by a position leave out what came after it.
        assert store.interaction_columns(upto=c1.position)["contact_id"] == []
        assert store.interaction_columns(upto=c2.position)["contact_id"] == [ids[2]]
        c3 = store.changes_since(c2.position)
        assert c3 is not None and c3.position == c2.position
        assert c3.contact_ids == [] and c3.interactions["contact_id"] == []
        # Created and updated times are readable columns.
        _, cols = store.contact_columns(["created_at", "updated_at"], ids=ids)
        assert all(isinstance(v, int) for v in cols["created_at"] + cols["updated_at"])

    def test_attribute_types(self, store: Store) -> None:
        store.declare_attributes({"score": "integer"}, source="t")
        assert store.attribute_types()["score"] == "integer"
        with pytest.raises(ConfigError):
            store.declare_attributes({"score": "string"}, source="t")
        with pytest.raises(ConfigError):
            store.declare_attributes({"email": "string"}, source="t")

    def test_interactions_are_idempotent(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(2), key="email", source="t")
        cid = r.ids[0]
        cols: dict[str, list[Any]] = {
            "contact_id": [cid, cid],
            "kind": ["purchase", "call"],
            "occurred_at": [datetime(2026, 1, 2, tzinfo=UTC), 1_767_400_000],
            "amount": [12.5, None],
            "key": ["k1", "k2"],
        }
        assert store.add_interactions(cols, source="t") == 2
        assert store.add_interactions(cols, source="t") == 0
        tl = store.timeline(cid)  # type: ignore[arg-type]
        assert [i.kind for i in tl] == ["call", "purchase"]
        assert tl[1].amount == 12.5
        cols2 = store.interaction_columns(kinds=["purchase"])
        assert cols2["contact_id"] == [cid] and cols2["amount"] == [12.5]

    def test_consent_ledger_latest_wins(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(2), key="email", source="t")
        a, b = r.ids
        assert a is not None and b is not None
        store.record_consents(
            [
                Consent(
                    contact_id=a, channel="email", purpose="marketing", status="given", source="t"
                ),
                Consent(
                    contact_id=a,
                    channel="email",
                    purpose="marketing",
                    status="withdrawn",
                    source="t",
                ),
                Consent(
                    contact_id=b, channel="email", purpose="marketing", status="given", source="t"
                ),
            ]
        )
        st = store.consent_status([a, b], channel="email", purpose="marketing")
        assert st == {a: "withdrawn", b: "given"}
        assert store.consent_status([a], channel="sms", purpose="marketing") == {}

    def test_state_and_audit(self, store: Store) -> None:
        store.set_state("src", {"offset": 5})
        assert store.get_state("src") == {"offset": 5}
        store.set_state("src", None)
        assert store.get_state("src") is None
        store.audit("import", actor="source:x", ids=[1, 2], details={"rows": 2})
        log = store.audit_log()
        assert log[0].action == "import" and log[0].ids == (1, 2)

    def test_outbox_keys_are_unique(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(1), key="email", source="t")
        row = {
            "key": "c:0:1:file",
            "campaign": "c",
            "contact_id": r.ids[0],
            "channel": "file",
            "payload": {"to": "x", "body": "hi"},
        }
        assert store.enqueue_deliveries([row]) == 1
        assert store.enqueue_deliveries([row]) == 0
        q = store.queued_deliveries(campaign="c")
        assert [d["key"] for d in q] == ["c:0:1:file"]
        store.update_deliveries([{"key": "c:0:1:file", "status": "sent", "provider_id": "p1"}])
        assert store.queued_deliveries(campaign="c") == []
        assert store.delivery_counts(campaign="c") == {"sent": 1}

    # -- outbox --------------------------------------------------------------------------

    def _outbox(self, store: Store, n: int = 4, *, campaign: str = "c") -> list[int]:
        r = store.upsert_contacts(_contacts(n), key="email", source="t")
        ids = [i for i in r.ids if i is not None]
        cols: dict[str, list[Any]] = {
            "key": [f"{campaign}:0:{i}:file" for i in ids],
            "campaign": [campaign] * n,
            "step": [0] * n,
            "contact_id": ids,
            "channel": ["file"] * n,
            "payload": ['{"to":"x","body":"hi"}'] + [{"to": "y", "body": "yo"}] * (n - 1),
            "next_attempt_at": [None] * n,
        }
        assert store.enqueue_deliveries(cols) == n
        return ids

    def test_enqueue_columns_and_scheduled_counts(self, store: Store) -> None:
        ids = self._outbox(store, 3)
        assert store.enqueue_deliveries({"key": [], "contact_id": [], "channel": []}) == 0
        assert store.enqueue_deliveries([]) == 0
        later: dict[str, list[Any]] = {
            "key": ["c:1:x:file", f"c:0:{ids[0]}:file"],
            "campaign": ["c", "c"],
            "step": [1, 0],
            "contact_id": [ids[0], ids[0]],
            "channel": ["file", "file"],
            "payload": [{"to": "z", "body": "later"}, {"to": "dup", "body": "dup"}],
            "next_attempt_at": [4_000_000_000, None],
        }
        assert store.enqueue_deliveries(later) == 1, "a key already present is left alone"
        with pytest.raises(ConfigError):
            store.enqueue_deliveries({**later, "key": ["c:7:x:file"], "channel": ["file"]})
        assert not store.has_deliveries(campaign="c", step=7)
        assert store.delivery_counts(campaign="c") == {"queued": 4}
        assert store.delivery_counts(campaign="c", scheduled=True) == {
            "queued": 3,
            "scheduled": 1,
        }
        assert store.delivery_counts(campaign="other") == {}
        rows = store.delivery_rows(campaign="c")
        assert [r.payload["to"] for r in rows] == ["x", "y", "y", "z"]
        assert rows[3].step == 1 and rows[3].next_attempt_at == 4_000_000_000
        assert store.has_deliveries(campaign="c", step=1)
        assert not store.has_deliveries(campaign="c", step=2)
        assert store.existing_delivery_keys(["c:1:x:file", "nope"]) == {"c:1:x:file"}
        assert store.existing_delivery_keys([]) == set()

    def test_claim_is_exclusive_and_counts_an_attempt(self, store: Store) -> None:
        self._outbox(store, 5)
        a = store.claim_deliveries(owner="claim:h:1:aa", lease=60, limit=3, now=1000)
        b = store.claim_deliveries(owner="claim:h:2:bb", lease=60, limit=3, now=1000)
        assert [r.id for r in a] == sorted(r.id for r in a) and len(a) == 3 and len(b) == 2
        assert not {r.key for r in a} & {r.key for r in b}
        assert all(r.status == "sending" and r.attempts == 1 for r in a + b)
        assert all(r.error == "claim:h:1:aa" and r.next_attempt_at == 1060 for r in a)
        assert store.claim_deliveries(owner="claim:h:3:cc", lease=60, limit=3, now=1000) == []
        assert store.delivery_counts() == {"sending": 5}

    def test_claim_filters_and_skips_rows_not_due(self, store: Store) -> None:
        ids = self._outbox(store, 2)
        store.enqueue_deliveries(
            {
                "key": ["d:0:1:sms", "d:0:2:sms"],
                "campaign": ["d", "d"],
                "contact_id": ids,
                "channel": ["sms", "sms"],
                "payload": [{"to": "1"}, {"to": "2"}],
                "next_attempt_at": [None, 5000],
            }
        )
        got = store.claim_deliveries(owner="o", lease=10, limit=10, campaign="d", now=1000)
        assert [r.key for r in got] == ["d:0:1:sms"]
        assert store.claim_deliveries(owner="o", lease=10, limit=10, channel="sms", now=1000) == []
        later = store.claim_deliveries(owner="o", lease=10, limit=10, channel="sms", now=5000)
        assert [r.key for r in later] == ["d:0:2:sms"]
        assert store.due_delivery_campaigns(now=1000) == [("c", "file")]

    def test_finish_records_outcomes(self, store: Store) -> None:
        self._outbox(store, 3)
        got = store.claim_deliveries(owner="o", lease=10, limit=3, now=1000)
        keys = [r.key for r in got]
        store.finish_deliveries(
            {
                "key": keys,
                "status": ["sent", "queued", "failed"],
                "provider_id": ["p1", None, None],
                "error": [None, "try later", "bad address"],
                "next_attempt_at": [None, 2000, None],
            }
        )
        store.finish_deliveries({"key": [], "status": []})
        rows = {r.key: r for r in store.delivery_rows(keys=keys)}
        assert (rows[keys[0]].status, rows[keys[0]].provider_id) == ("sent", "p1")
        assert (rows[keys[1]].status, rows[keys[1]].next_attempt_at) == ("queued", 2000)
        assert (rows[keys[2]].status, rows[keys[2]].error) == ("failed", "bad address")
        # A later outcome without a provider id keeps the stored one.
        store.finish_deliveries({"key": [keys[0]], "status": ["sent"]})
        assert store.delivery_rows(keys=[keys[0]])[0].provider_id == "p1"
        assert store.deliveries_by_provider_id(["p1", "p9"])["p1"].key == keys[0]
        assert store.deliveries_by_provider_id([]) == {}
        assert store.due_delivery_campaigns(now=1500) == []
        assert store.due_delivery_campaigns(now=2000) == [("c", "file")]

    def test_finish_joins_the_callers_transaction(self, store: Store) -> None:
        self._outbox(store, 1)
        (row,) = store.claim_deliveries(owner="o", lease=10, limit=1, now=1000)
        with pytest.raises(RuntimeError), store.transaction():
            store.finish_deliveries({"key": [row.key], "status": ["sent"], "provider_id": ["p"]})
            raise RuntimeError("boom")
        assert store.delivery_rows(keys=[row.key])[0].status == "sending"

    def test_set_status_only_from_and_rows_filters(self, store: Store) -> None:
        self._outbox(store, 3)
        keys = [r.key for r in store.delivery_rows()]
        store.claim_deliveries(owner="o", lease=10, limit=1, now=1000)
        n = store.set_delivery_status(keys, "unknown", error="lost", only_from=["sending"])
        assert n == 1
        assert [r.key for r in store.delivery_rows(statuses=["unknown"])] == keys[:1]
        assert store.delivery_rows(statuses=["unknown"])[0].error == "lost"
        assert store.set_delivery_status(keys[1:], "failed") == 2
        assert store.delivery_rows(keys=[]) == []
        assert len(store.delivery_rows(statuses=["failed", "unknown"], limit=2)) == 2
        assert store.delivery_rows(campaign="c", keys=[keys[2]])[0].status == "failed"
        assert store.set_delivery_status([], "sent") == 0
        assert store.due_delivery_campaigns(now=0) == [("c", "file")], "unknown rows are due"

    def test_recover_stale_claims_of_another_host_after_the_lease(self, store: Store) -> None:
        self._outbox(store, 2)
        store.claim_deliveries(owner="claim:elsewhere:1:ab", lease=600, limit=2, now=1000)
        assert store.recover_stale_deliveries(now=1599) == 0
        assert store.recover_stale_deliveries(now=1600) == 2
        assert store.delivery_counts() == {"unknown": 2}
        assert store.recover_stale_deliveries(now=9999) == 0

    def test_recover_keeps_claims_of_a_live_local_process(self, store: Store) -> None:
        from crmkit.store.base import owner_token

        self._outbox(store, 2)
        store.claim_deliveries(owner=owner_token(), lease=1, limit=2, now=1000)
        assert store.recover_stale_deliveries(now=10**9) == 0
        assert store.delivery_counts() == {"sending": 2}

    # -- suppressions --------------------------------------------------------------------

    def test_suppressions(self, store: Store) -> None:
        assert not store.has_suppressions(scopes=["email"])
        assert store.add_suppressions(["h1", "h2", "h1"], scope="email", reason="bounced") == 2
        assert store.add_suppressions(["h2"], scope="email", reason="again") == 0
        assert store.add_suppressions(["h2"], scope="email/marketing", reason="unsub") == 1
        assert store.add_suppressions([], scope="sms", reason="x") == 0
        assert store.has_suppressions(scopes=["sms", "email"])
        assert not store.has_suppressions(scopes=["sms"])
        assert store.suppressed_hashes(["h1", "h2", "h3"], scopes=["email"]) == {"h1", "h2"}
        assert store.suppressed_hashes(["h1", "h2"], scopes=["email/marketing"]) == {"h2"}
        assert store.suppressed_hashes([], scopes=["email"]) == set()

    def test_suppressions_roll_back_with_the_transaction(self, store: Store) -> None:
        with pytest.raises(RuntimeError), store.transaction():
            store.add_suppressions(["h1"], scope="email", reason="x")
            raise RuntimeError("boom")
        assert not store.has_suppressions(scopes=["email"])

    # -- consent, segments, interactions, state -----------------------------------------

    def test_consent_history_and_purposes(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(2), key="email", source="t")
        a, b = r.ids
        assert a is not None and b is not None
        assert store.consent_history(a) == [] and store.consent_purposes("email") == []
        at = datetime(2026, 3, 1, tzinfo=UTC)
        store.record_consents(
            [
                Consent(
                    contact_id=a,
                    channel="email",
                    purpose="news",
                    status="given",
                    source="form",
                    evidence="f1",
                    recorded_at=at,
                ),
                Consent(contact_id=b, channel="email", purpose="ads", status="given", source="t"),
                Consent(
                    contact_id=a, channel="email", purpose="news", status="withdrawn", source="t"
                ),
                Consent(contact_id=a, channel="sms", purpose="alerts", status="given", source="t"),
            ]
        )
        h = store.consent_history(a)
        assert [(e.channel, e.purpose, e.status) for e in h] == [
            ("email", "news", "given"),
            ("email", "news", "withdrawn"),
            ("sms", "alerts", "given"),
        ]
        assert h[0].recorded_at == at and h[0].evidence == "f1" and h[0].source == "form"
        assert all(e.contact_id == a and e.recorded_at is not None for e in h)
        assert store.consent_purposes("email") == ["ads", "news"]
        assert store.consent_purposes("sms") == ["alerts"]

    def test_segment_entries(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(4), key="email", source="t")
        ids = [i for i in r.ids if i is not None]
        store.record_segment_run(100, {"vip": (ids[:3], [])})
        store.record_segment_run(200, {"vip": ([ids[3]], [ids[0]])})
        assert store.segment_entries("vip") == [(ids[1], 100), (ids[2], 100), (ids[3], 200)]
        assert store.segment_entries("vip", since=150) == [(ids[3], 200)]
        assert store.segment_entries("nope") == []

    def test_segment_history_orders_changes_of_one_time_by_contact(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(4), key="email", source="t")
        a, b, c, d = (i for i in r.ids if i is not None)
        # Recorded out of id order: the history does not depend on it.
        store.record_segment_run(100, {"vip": ([c, a, d], [])})
        store.record_segment_run(200, {"vip": ([b], [d, a])})
        assert store.segment_history("vip") == [
            (a, 100, 200),
            (b, 200, None),
            (d, 100, 200),
            (c, 100, None),
        ]

    def test_first_interactions_and_reactions(self, store: Store) -> None:
        r = store.upsert_contacts(_contacts(3), key="email", source="t")
        a, b, c = (i for i in r.ids if i is not None)
        store.add_interactions(
            {
                "contact_id": [a, a, b, c, b, a],
                "kind": ["message", "message", "message", "call", "purchase", "purchase"],
                "occurred_at": [100, 50, 300, 100, 400, 40],
                "key": ["delivery:x:0:1", "delivery:x:0:2", "delivery:x:0:3", "k4", "k5", "k6"],
            },
            source="t",
        )
        got = store.first_interactions(kind="message", key_prefix="delivery:x:0:", until=1000)
        assert got == [(a, 50), (b, 300)]
        assert store.first_interactions(kind="message", key_prefix="delivery:x:0:", until=200) == [
            (a, 50)
        ]
        assert store.first_interactions(kind="message", key_prefix="delivery:y:", until=10**9) == []
        since = {a: 50, b: 300, c: 0}
        assert store.contacts_with_interactions(since, kinds=["purchase"]) == {b}
        assert store.contacts_with_interactions(since, kinds=["purchase", "call"]) == {b, c}
        assert store.contacts_with_interactions({}, kinds=["purchase"]) == set()
        assert store.contacts_with_interactions(since, kinds=[]) == set()

    def test_state_names(self, store: Store) -> None:
        for name in ("campaign:b", "campaign:a", "campaigns", "src", "Campaign:x"):
            store.set_state(name, {"n": name})
        assert store.state_names("campaign:") == ["campaign:a", "campaign:b"]
        assert store.state_names("none:") == []
        assert len(store.state_names("")) == 5

    # -- merges --------------------------------------------------------------------------

    def _merge_setup(self, store: Store) -> list[int]:
        r = store.upsert_contacts(
            {
                "email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com"],
                "first_name": ["Ann", "Anne", None, "Dan"],
                "tags": [["vip"], None, None, None],
                "plan": ["pro", None, "free", None],
            },
            key="email",
            source="t",
        )
        ids = [i for i in r.ids if i is not None]
        store.add_interactions(
            {"contact_id": [ids[1]], "kind": ["call"], "occurred_at": [100], "key": ["m1"]},
            source="t",
        )
        store.record_consents(
            [Consent(contact_id=ids[1], channel="email", purpose="m", status="given", source="t")]
        )
        return ids

    def test_contact_rows(self, store: Store) -> None:
        a, b, *_ = self._merge_setup(store)
        rows = store.contact_rows([b, a, b, 999_999])
        assert sorted(rows) == [a, b]
        assert rows[a]["email"] == "a@x.com" and rows[a]["tags"] == ["vip"]
        assert rows[a]["attrs"] == {"plan": "pro"} and rows[b]["attrs"] == {}
        assert rows[a]["merged_into"] is None and rows[a]["source"] == "t"
        assert isinstance(rows[a]["updated_at"], int) and isinstance(rows[a]["created_at"], int)
        assert store.contact_rows([]) == {}

    def test_apply_and_undo_merges(self, store: Store) -> None:
        from crmkit.store.base import MergeSpec

        a, b, c, d = self._merge_setup(store)
        assert store.undone_merges() == []
        progress: list[int] = []
        events = store.apply_merges(
            [
                MergeSpec(
                    survivor_id=a,
                    merged_ids=(b,),
                    values={"first_name": "Anne", "attrs": {"plan": "pro", "x": 1}},
                    score=0.97,
                    provenance={"fields": {"first_name": b}},
                ),
                MergeSpec(survivor_id=c, merged_ids=(d,), score=0.9),
            ],
            actor="test",
            on_merge=progress.append,
        )
        assert progress == [1, 2]
        assert [e.survivor_id for e in events] == [a, c]
        assert store.count_contacts() == 2
        assert store.resolve_ids([b, d]) == {b: a, d: c}
        assert store.timeline(a)[0].kind == "call"
        assert store.consent_status([a], channel="email", purpose="m") == {a: "given"}
        got = store.contact_rows([a])[a]
        assert got["first_name"] == "Anne" and got["attrs"] == {"plan": "pro", "x": 1}
        listed = store.list_merges()
        assert [e.id for e in listed] == [events[1].id, events[0].id]
        one = store.get_merge(events[0].id)
        assert one.merged_ids == (b,) and one.score == 0.97 and one.undone_at is None
        assert one.provenance["fields"] == {"first_name": b}
        before = store.merge_before(events[0].id)
        assert sorted(r["id"] for r in before["contacts"]) == [a, b]
        assert store.undo_check(events[0].id) == {"ok": True, "reason": None}

        undone = store.undo_merge(events[0].id, actor="test")
        assert undone.undone_at is not None
        assert store.count_contacts() == 3
        assert store.timeline(b)[0].kind == "call" and store.timeline(a) == []
        back = store.contact_rows([a])[a]
        assert back["first_name"] == "Ann" and back["attrs"] == {"plan": "pro"}
        assert store.undo_check(events[0].id)["ok"] is False
        assert [e.id for e in store.list_merges(include_undone=False)] == [events[1].id]
        assert store.undone_merges() == [(a, b)]
        with pytest.raises(MergeConflictError):
            store.undo_merge(events[0].id)
        actions = [e.action for e in store.audit_log()]
        assert "contacts.merge" in actions and "contacts.merge.undo" in actions

    def test_merge_conflicts_write_nothing(self, store: Store) -> None:
        from crmkit.store.base import MergeSpec

        a, b, c, _ = self._merge_setup(store)
        with pytest.raises(MergeConflictError):
            store.apply_merges(
                [
                    MergeSpec(survivor_id=a, merged_ids=(b,)),
                    MergeSpec(survivor_id=b, merged_ids=(c,)),
                ]
            )
        with pytest.raises(MergeConflictError):
            store.apply_merges(
                [
                    MergeSpec(survivor_id=a, merged_ids=(b,)),
                    MergeSpec(survivor_id=c, merged_ids=(999_999,)),
                ]
            )
        assert store.count_contacts() == 4 and store.list_merges() == []

        def stop(n: int) -> None:
            raise RuntimeError("stop")

        with pytest.raises(RuntimeError):
            store.apply_merges([MergeSpec(survivor_id=a, merged_ids=(b,))], on_merge=stop)
        assert store.count_contacts() == 4 and store.list_merges() == []
        (ev,) = store.apply_merges([MergeSpec(survivor_id=a, merged_ids=(b,))])
        with pytest.raises(MergeConflictError):
            store.apply_merges([MergeSpec(survivor_id=c, merged_ids=(b,))])
        (later,) = store.apply_merges([MergeSpec(survivor_id=c, merged_ids=(a,))])
        assert store.undo_check(ev.id)["ok"] is False
        with pytest.raises(MergeConflictError):
            store.undo_merge(ev.id)
        store.undo_merge(later.id)
        store.undo_merge(ev.id)
        assert store.count_contacts() == 4
        assert store.apply_merges([]) == []

    def test_reviewed_pairs(self, store: Store) -> None:
        a, b, c, d = self._merge_setup(store)
        assert store.labelled_pairs() == []
        assert store.label_pairs([(b, a, False), (c, d, True)], actor="test") == 2
        assert store.labelled_pairs() == [(a, b, False), (c, d, True)]
        # The latest verdict on a pair wins, whichever way round it is given.
        store.label_pairs([(a, b, True)], actor="test")
        assert store.labelled_pairs() == [(a, b, True), (c, d, True)]
        with pytest.raises(NotFoundError, match="999999"):
            store.label_pairs([(a, c, False), (a, 999_999, False)], actor="test")
        with pytest.raises(ConfigError):
            store.label_pairs([(a, a, False)], actor="test")
        assert len(store.labelled_pairs()) == 2
        assert "dedupe.label" in [e.action for e in store.audit_log()]
        store.erase_contacts([d])
        assert store.labelled_pairs() == [(a, b, True)]

    def test_unknown_merge_is_not_found(self, store: Store) -> None:
        for call in (store.get_merge, store.merge_before, store.undo_check, store.undo_merge):
            with pytest.raises(NotFoundError):
                call(12345)

    # -- erasure -------------------------------------------------------------------------

    def test_erase_contacts_and_their_family(self, store: Store) -> None:
        from crmkit.store.base import MergeSpec

        a, b, c, _ = self._merge_setup(store)
        store.apply_merges([MergeSpec(survivor_id=a, merged_ids=(b,))])
        store.record_segment_run(100, {"vip": ([a, c], [])})
        store.enqueue_deliveries(
            [
                {
                    "key": "k-a",
                    "campaign": "c",
                    "contact_id": a,
                    "channel": "file",
                    "payload": {"to": "a"},
                },
                {
                    "key": "k-c",
                    "campaign": "c",
                    "contact_id": c,
                    "channel": "file",
                    "payload": {"to": "c"},
                },
            ]
        )
        assert store.merged_family([a]) == [a, b]
        assert store.merged_family([c, a]) == [a, b, c]
        assert store.merged_family([]) == []
        with pytest.raises(RuntimeError), store.transaction():
            store.erase_contacts([a, b])
            raise RuntimeError("boom")
        assert store.count_contacts(include_merged=True) == 4
        got = store.erase_contacts(store.merged_family([a]))
        assert (got.contacts, got.interactions, got.consents) == (2, 1, 1)
        assert (got.memberships, got.merges, got.deliveries_scrubbed) == (1, 1, 1)
        assert store.get_contacts([a, b]) == [] and store.count_contacts() == 2
        assert store.segment_members("vip") == [c]
        rows = {r.key: r for r in store.delivery_rows()}
        assert rows["k-a"].status == "failed" and rows["k-a"].payload == {}
        assert rows["k-c"].status == "queued" and rows["k-c"].payload == {"to": "c"}
        assert store.list_merges() == []
        assert store.erase_contacts([]) == ErasureCounts()

    # -- report aggregates ---------------------------------------------------------------

    def test_report_aggregates_of_an_empty_store(self, store: Store) -> None:
        assert store.contact_breakdown("country") == []
        assert store.contacts_added_by_month() == []
        assert store.attribute_months("signed_up") == []
        assert store.filled_counts(["email", "plan"]) == [0, 0]
        assert store.filled_counts([]) == []
        assert store.duplicate_groups(["phone"]) == (0, 0)
        assert store.interaction_kinds() == []
        assert store.purchase_totals("purchase") == (None, 0, 0)
        assert store.delivery_status_counts() == []
        assert store.merge_totals() == (0, 0, 0, None)
        assert store.merges_by_month() == []
        assert store.merge_score_range() == (None, None)
        assert store.merge_score_bins(0.0, 0.1, 10) == {}
        assert store.segment_sizes() == [] and store.segment_runs() == []
        assert store.segment_moves([]) == [] and store.segment_moves(["a"]) == []
        assert store.segment_overlap([]) == [] and store.segment_overlap(["a"]) == []
        assert store.rfm_cells("r", "f", kind="purchase") == []
        funnel = store.campaign_funnel(
            sent=["sent"], delivered=["delivered"], kind="purchase", window=10
        )
        assert funnel == []
        assert store.email_engagement(kind="purchase", window=10, limit=5) == []
        assert store.purchasers("purchase") == 0
        assert store.first_touch_by_month("purchase") == []
        assert store.revenue_by_month("purchase") == []
        assert store.property_values("purchase", "currency") == []
        assert store.revenue_by_stage("purchase") == []
        assert store.revenue_by_segment("purchase", limit=5) == []
        assert store.purchase_cohorts("purchase") == []
        assert store.feedback_by_month("feedback", "score") == []
        with pytest.raises(ConfigError):
            store.contact_breakdown("not_a_column")

    def _report_base(self, store: Store) -> list[int]:
        jan, feb, mar = 1_767_225_600, 1_769_904_000, 1_772_323_200  # 2026-01/02/03-01 UTC
        r = store.upsert_contacts(
            {
                "email": [f"r{i}@x.com" for i in range(6)],
                "first_name": ["Ann", "ann", "Bob", "Cy", None, "Dee"],
                "last_name": ["Lee", "LEE", "Ray", None, None, "Fox"],
                "postcode": ["1", "1", "2", None, None, "3"],
                "phone": ["+1", "+1", "+2", "", None, "+3"],
                "country": ["US", "US", "FR", "", None, "US"],
                "lifecycle_stage": ["customer", "lead", "customer", None, None, "lead"],
                "rfm_r": [5, 5, 1, None, None, 5],
                "rfm_f": [2, 2, 1, None, None, 3],
            },
            key="email",
            source="shop",
        )
        ids = [i for i in r.ids if i is not None]
        store.declare_attributes({"rfm_r": "integer", "rfm_f": "integer"}, source="t")
        store.add_interactions(
            {
                "contact_id": [ids[0], ids[0], ids[2], ids[0], ids[5], ids[1]],
                "kind": ["purchase", "purchase", "purchase", "call", "feedback", "feedback"],
                "occurred_at": [jan, mar, feb, jan, feb, feb + 60],
                "amount": [10.0, 5.0, 20.0, None, None, None],
                "properties": [
                    {"currency": "EUR"},
                    {"currency": "USD"},
                    None,
                    None,
                    {"score": 10},
                    {"score": 3},
                ],
                "key": [f"rk{i}" for i in range(6)],
            },
            source="t",
        )
        return ids

    def test_report_aggregates_of_contacts_and_interactions(self, store: Store) -> None:
        ids = self._report_base(store)
        assert store.contact_breakdown("country") == [["US", 3], ["", 1], ["(none)", 1], ["FR", 1]]
        assert store.contact_breakdown("country", blank_as_none=True, limit=2) == [
            ["US", 3],
            ["(none)", 2],
        ]
        assert store.contact_breakdown("source") == [["shop", 6]]
        assert store.filled_counts(["phone", "country", "rfm_r", "email"]) == [4, 4, 4, 6]
        assert store.duplicate_groups(["phone"]) == (1, 2)
        names = ("first_name", "last_name")
        assert store.duplicate_groups([*names, "postcode"], ignore_case=names) == (1, 2)
        assert store.duplicate_groups([*names, "postcode"]) == (0, 0)
        (month, added), *_ = store.contacts_added_by_month()
        assert len(month) == 7 and added == 6
        assert store.interaction_kinds() == [
            ["purchase", 3, 35.0],
            ["feedback", 2, None],
            ["call", 1, None],
        ]
        assert store.purchase_totals("purchase") == (35.0, 3, 2)
        assert store.purchasers("purchase") == 2
        assert store.revenue_by_month("purchase") == [
            ["2026-01", 10.0, 1, 1],
            ["2026-02", 20.0, 1, 1],
            ["2026-03", 5.0, 1, 1],
        ]
        assert store.first_touch_by_month("purchase") == [["2026-01", 1, 1], ["2026-02", 3, 1]]
        assert store.property_values("purchase", "currency") == ["EUR", "USD"]
        jan = 2026 * 12
        assert sorted(store.purchase_cohorts("purchase")) == [
            (jan, 0, 1),
            (jan, 2, 1),
            (jan + 1, 0, 1),
        ]
        assert store.revenue_by_stage("purchase") == [
            ["customer", 2, 2, 35.0],
            ["(none)", 2, 0, 0.0],
            ["lead", 2, 0, 0.0],
        ]
        cells = {
            (r, f): (n, v) for r, f, n, v in store.rfm_cells("rfm_r", "rfm_f", kind="purchase")
        }
        assert cells == {(5, 2): (2, 15.0), (1, 1): (1, 20.0), (5, 3): (1, 0.0)}
        (fb,) = store.feedback_by_month("feedback", "score")
        assert fb[:2] == ["2026-02", 2] and fb[2] == 6.5 and fb[3:] == [1, 1, 1, 1, 10]
        # A merged contact's purchases count for its survivor.
        from crmkit.store.base import MergeSpec

        store.apply_merges([MergeSpec(survivor_id=ids[1], merged_ids=(ids[0],), score=0.8)])
        assert store.purchasers("purchase") == 2
        assert store.revenue_by_stage("purchase")[0][:3] == ["customer", 1, 1]
        assert store.merge_totals() == (1, 0, 1, 0.8)
        assert store.merge_score_range() == (0.8, 0.8)
        assert store.merge_score_bins(0.0, 0.1, 10) == {8: 1}
        assert [r[1:] for r in store.merges_by_month()] == [[1, 0]]

    def test_report_aggregates_of_segments_and_campaigns(self, store: Store) -> None:
        ids = self._report_base(store)
        a, b, c, d = ids[:4]
        store.save_segments([Segment(name="vip", rule="true"), Segment(name="new", rule="true")])
        store.record_segment_run(100, {"vip": ([a, b, c], []), "new": ([a], [])})
        store.record_segment_run(200, {"vip": ([d], [a]), "old": ([b], [])})
        assert store.segment_sizes() == [
            ["vip", "dynamic", 3],
            ["new", "dynamic", 1],
            ["old", "(unknown)", 1],
        ]
        runs = store.segment_runs()
        assert [t for _, t in runs] == [100, 200]
        r1, r2 = (r for r, _ in runs)
        assert sorted(store.segment_moves(["vip", "new"])) == sorted(
            [("vip", r1, 3, 0), ("new", r1, 1, 0), ("vip", r2, 1, 1)]
        )
        assert sorted(store.segment_overlap(["vip", "new", "old"])) == [
            ("new", "new", 1),
            ("old", "old", 1),
            ("old", "vip", 1),
            ("vip", "vip", 3),
        ]
        assert store.revenue_by_segment("purchase", limit=5) == [
            ["vip", 3, 1, 20.0],
            ["new", 1, 1, 15.0],
            ["old", 1, 0, 0.0],
        ]
        assert store.revenue_by_segment("purchase", limit=1) == [["vip", 3, 1, 20.0]]
        rows = [
            {"key": f"k{i}", "campaign": "spring", "contact_id": cid, "channel": "email"}
            for i, cid in enumerate((a, b, c))
        ]
        rows.append({"key": "k9", "contact_id": d, "channel": "sms"})
        store.enqueue_deliveries(rows)
        store.finish_deliveries(
            {"key": ["k0", "k1", "k2"], "status": ["delivered", "bounced", "sent"]}
        )
        assert store.delivery_status_counts() == [
            ["email", "bounced", 1],
            ["email", "delivered", 1],
            ["email", "sent", 1],
            ["sms", "queued", 1],
        ]
        funnel = store.campaign_funnel(
            sent=["sent", "delivered", "bounced"],
            delivered=["delivered"],
            kind="purchase",
            window=10**10,
        )
        assert funnel == [
            ["(none)", "sms", 1, 0, 0, 0, 0, 0, 0],
            ["spring", "email", 3, 3, 1, 1, 0, 0, 0],
        ]
        store.add_interactions(
            {
                "contact_id": [a, a, b, c, a],
                "kind": ["email_open", "email_click", "email_open", "email_click", "purchase"],
                "occurred_at": [
                    2_000_000_000,
                    2_000_000_100,
                    2_000_000_000,
                    2_000_000_200,
                    2_000_000_150,
                ],
                "properties": [{"campaign": "spring"}] * 4 + [None],
                "key": ["e1", "e2", "e3", "e4", "e5"],
            },
            source="t",
        )
        assert store.email_engagement(kind="purchase", window=3600, limit=5) == [
            ["spring", 2, 2, 1]
        ]
        funnel = store.campaign_funnel(
            sent=["sent", "delivered", "bounced"],
            delivered=["delivered"],
            kind="purchase",
            window=10**10,
        )
        assert funnel[1][-1] == 1, "the delivered message to a converted (a purchase after)"
