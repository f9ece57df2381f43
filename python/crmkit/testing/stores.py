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

from crmkit.errors import ConfigError
from crmkit.records import Consent
from crmkit.store.base import ContactQuery, Store


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
