"""The SQLite schema and its migrations.

Each migration is a list of statements applied in one transaction; the
``meta`` table holds the schema version. Never edit a released migration:
append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: the initial schema
    [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE contacts (
            id INTEGER PRIMARY KEY,
            email TEXT,
            first_name TEXT,
            last_name TEXT,
            phone TEXT,
            company TEXT,
            job_title TEXT,
            street TEXT,
            city TEXT,
            region TEXT,
            postcode TEXT,
            country TEXT,
            birth_date TEXT,
            lifecycle_stage TEXT,
            tags TEXT,
            attrs TEXT,
            source TEXT,
            source_file TEXT,
            source_line INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            merged_into INTEGER,
            erased_at INTEGER
        )""",
        "CREATE UNIQUE INDEX contacts_email ON contacts(email) WHERE merged_into IS NULL",
        "CREATE INDEX contacts_phone ON contacts(phone)",
        "CREATE INDEX contacts_merged ON contacts(merged_into) WHERE merged_into IS NOT NULL",
        """CREATE TABLE identities (
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            contact_id INTEGER NOT NULL,
            PRIMARY KEY (source, external_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX identities_contact ON identities(contact_id)",
        """CREATE TABLE attributes (
            name TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            source TEXT NOT NULL,
            declared_at INTEGER NOT NULL
        )""",
        """CREATE TABLE companies (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            domain TEXT UNIQUE,
            industry TEXT,
            size INTEGER,
            country TEXT,
            attrs TEXT,
            source TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX companies_name ON companies(name)",
        """CREATE TABLE interactions (
            id INTEGER PRIMARY KEY,
            contact_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            channel TEXT,
            occurred_at INTEGER NOT NULL,
            amount REAL,
            subject TEXT,
            props TEXT,
            key TEXT UNIQUE,
            source TEXT,
            source_file TEXT,
            source_line INTEGER
        )""",
        "CREATE INDEX interactions_contact ON interactions(contact_id, occurred_at)",
        """CREATE TABLE consents (
            id INTEGER PRIMARY KEY,
            contact_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            purpose TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('given', 'withdrawn')),
            source TEXT NOT NULL,
            evidence TEXT,
            recorded_at INTEGER NOT NULL
        )""",
        "CREATE INDEX consents_contact ON consents(contact_id, channel, purpose, id)",
        """CREATE TABLE suppressions (
            hash TEXT NOT NULL,
            channel TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (hash, channel)
        ) WITHOUT ROWID""",
        """CREATE TABLE segments (
            name TEXT PRIMARY KEY,
            rule TEXT,
            kind TEXT NOT NULL DEFAULT 'dynamic',
            description TEXT,
            owner TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE segment_runs (
            id INTEGER PRIMARY KEY,
            started_at INTEGER NOT NULL,
            as_of INTEGER NOT NULL,
            finished_at INTEGER,
            summary TEXT
        )""",
        """CREATE TABLE memberships (
            id INTEGER PRIMARY KEY,
            segment TEXT NOT NULL,
            contact_id INTEGER NOT NULL,
            entered_at INTEGER NOT NULL,
            entered_run INTEGER,
            exited_at INTEGER,
            exited_run INTEGER
        )""",
        "CREATE INDEX memberships_current ON memberships(segment, contact_id) WHERE exited_at IS NULL",
        "CREATE INDEX memberships_contact ON memberships(contact_id)",
        """CREATE TABLE merges (
            id INTEGER PRIMARY KEY,
            survivor_id INTEGER NOT NULL,
            merged_ids TEXT NOT NULL,
            score REAL,
            explanation TEXT,
            provenance TEXT,
            before TEXT,
            created_at INTEGER NOT NULL,
            undone_at INTEGER
        )""",
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            campaign TEXT,
            step INTEGER,
            contact_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            provider_id TEXT,
            error TEXT,
            payload TEXT,
            next_attempt_at INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        "CREATE INDEX deliveries_status ON deliveries(status, next_attempt_at)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            ids TEXT,
            details TEXT
        )""",
        """CREATE TABLE source_state (
            name TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )""",
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            workflow TEXT,
            started_at INTEGER NOT NULL,
            finished_at INTEGER,
            status TEXT NOT NULL,
            summary TEXT
        )""",
    ],
    # 2: look up a merged-away record's email by index (the unique index only
    # holds live records), so that an upsert never scans the contacts table.
    [
        "CREATE INDEX contacts_email_merged ON contacts(email) WHERE merged_into IS NOT NULL",
    ],
    # 3: the change log that keeps derived data (the segment snapshot and
    # the last run's members) up to date. Every contact write stamps the row with a new ``rev`` from meta;
    # anything the log cannot replay (a row removed or merged away, an
    # interaction moved or removed, a write that forgot its stamp) bumps the
    # ``generation`` instead, which tells readers to rebuild.
    [
        "ALTER TABLE contacts ADD COLUMN rev INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS contacts_rev ON contacts(rev)",
        "INSERT OR IGNORE INTO meta(key, value) VALUES "
        "('rev', '0'), ('generation', '0'), ('memberships', '0')",
        """CREATE TRIGGER contacts_unstamped_insert AFTER INSERT ON contacts
            WHEN NEW.rev = 0 BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END""",
        """CREATE TRIGGER contacts_unstamped_update AFTER UPDATE ON contacts
            WHEN NEW.rev IS OLD.rev BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END""",
        """CREATE TRIGGER contacts_removed AFTER DELETE ON contacts
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END""",
        """CREATE TRIGGER interactions_changed AFTER UPDATE ON interactions
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END""",
        """CREATE TRIGGER interactions_removed AFTER DELETE ON interactions
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END""",
        # Current memberships change with each recorded run and deleted
        # segment (which bump ``memberships`` themselves) and when rows are
        # relinked by a merge or removed by an erasure (these triggers).
        """CREATE TRIGGER memberships_moved AFTER UPDATE OF segment, contact_id ON memberships
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'memberships'; END""",
        """CREATE TRIGGER memberships_removed AFTER DELETE ON memberships
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'memberships'; END""",
    ],
    # 4: pairs of contacts a person has reviewed (the same person or not),
    # which dedupe trains on and, for "not", keeps apart.
    [
        """CREATE TABLE match_labels (
            left_id INTEGER NOT NULL,
            right_id INTEGER NOT NULL,
            same INTEGER NOT NULL,
            actor TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (left_id, right_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX match_labels_right ON match_labels(right_id)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this crmkit writes."""

DEFERRABLE_INDEXES: dict[str, str] = {
    "contacts_phone": "CREATE INDEX IF NOT EXISTS contacts_phone ON contacts(phone)",
    "identities_contact": "CREATE INDEX IF NOT EXISTS identities_contact ON identities(contact_id)",
    "contacts_rev": "CREATE INDEX IF NOT EXISTS contacts_rev ON contacts(rev)",
}
"""Indexes a bulk load may drop and rebuild at its end: no upsert reads them,
and building one over sorted data at the end is several times cheaper than
keeping it up to date row by row. Opening a store rebuilds any that are missing
(a bulk load that was killed)."""

KEY_INDEXES: dict[str, str] = {
    "contacts_email": (
        "CREATE UNIQUE INDEX IF NOT EXISTS contacts_email ON contacts(email) "
        "WHERE merged_into IS NULL"
    ),
}
"""Indexes a bulk load may drop while it resolves upsert keys in memory (see
``SQLiteStore.bulk_load``), rebuilt at the end of the load, before any other
write of contacts in it, and when a store is opened (a bulk load that was
killed)."""
