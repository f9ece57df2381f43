//! In-memory maps from upsert keys (normalized emails, a source's record ids)
//! to contact ids, and the rules that resolve a batch of rows against them.
//!
//! A bulk load into a small store resolves keys here instead of through the
//! store's unique index: the index is dropped for the load and rebuilt at its
//! end, which costs far less than keeping it up to date row by row, and a
//! lookup here costs far less than a query. A store outside a bulk load fills
//! [`Keys`] with what its indexes return for one batch and resolves the batch
//! with the same rules, so both ways end the same.

use ahash::RandomState;
use hashbrown::hash_table::Entry;
use hashbrown::{HashMap, HashTable};

/// What [`KeyMap::assign`] decided for one batch of keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The contact id of each row; `None` where the key is missing.
    pub ids: Vec<Option<i64>>,
    /// The rows that create a contact (the first row of each new key).
    pub new_rows: Vec<usize>,
    /// The ids created, in row order.
    pub created: Vec<i64>,
    /// The ids of contacts that existed before the batch, once per row that
    /// updates one.
    pub updated: Vec<i64>,
    /// The next free id after the batch.
    pub next_id: i64,
}

/// Where a key's bytes sit in a [`KeyMap`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    off: u32,
    len: u32,
}

/// One key of a [`KeyMap`]: its bytes in the arena, and its contact id.
#[derive(Debug, Clone, Copy)]
struct Slot {
    span: Span,
    id: i64,
}

/// Keys to contact ids, with fresh ids handed out in row order.
///
/// The keys' bytes live end to end in one arena and the table holds 16-byte
/// slots, so a million emails take about 40 MB rather than twice that as
/// separately allocated strings.
#[derive(Debug, Default)]
pub struct KeyMap {
    arena: Vec<u8>,
    table: HashTable<Slot>,
    hasher: RandomState,
}

impl KeyMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn bytes(&self, span: Span) -> &[u8] {
        &self.arena[span.off as usize..(span.off + span.len) as usize]
    }

    /// The key stored at `span` (a span this map handed out).
    pub fn key_at(&self, span: Span) -> &str {
        // The arena only ever receives whole `&str`s, at spans it records.
        std::str::from_utf8(self.bytes(span)).unwrap_or_default()
    }

    fn find(&self, key: &str) -> Option<&Slot> {
        let h = self.hasher.hash_one(key.as_bytes());
        self.table.find(h, |s| self.bytes(s.span) == key.as_bytes())
    }

    /// The id and the span of `key`, if held.
    pub fn locate(&self, key: &str) -> Option<(i64, Span)> {
        self.find(key).map(|s| (s.id, s.span))
    }

    /// Hold `key → id`, replacing what was held; returns the key's span.
    pub fn set(&mut self, key: &str, id: i64) -> Span {
        let h = self.hasher.hash_one(key.as_bytes());
        let (arena, hasher) = (&self.arena, &self.hasher);
        match self.table.entry(
            h,
            |s| &arena[s.span.off as usize..(s.span.off + s.span.len) as usize] == key.as_bytes(),
            |s| hasher.hash_one(&arena[s.span.off as usize..(s.span.off + s.span.len) as usize]),
        ) {
            Entry::Occupied(mut e) => {
                e.get_mut().id = id;
                e.get().span
            }
            Entry::Vacant(e) => {
                let span = Span {
                    off: u32::try_from(self.arena.len())
                        .expect("a key map holds at most 4 GiB of keys"),
                    len: u32::try_from(key.len()).expect("a key is shorter than 4 GiB"),
                };
                e.insert(Slot { span, id });
                self.arena.extend_from_slice(key.as_bytes());
                span
            }
        }
    }

    /// Record `key → id` unless the key is already held (the first wins, so
    /// live contacts loaded first take precedence over merged-away ones);
    /// returns the key's span.
    pub fn insert_first(&mut self, key: &str, id: i64) -> Span {
        match self.locate(key) {
            Some((_, span)) => span,
            None => self.set(key, id),
        }
    }

    /// The id held for `key`.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.find(key).map(|s| s.id)
    }

    /// Forget `key` (its bytes stay in the arena).
    pub fn remove(&mut self, key: &str) {
        let h = self.hasher.hash_one(key.as_bytes());
        let arena = &self.arena;
        if let Ok(e) = self.table.find_entry(h, |s| {
            &arena[s.span.off as usize..(s.span.off + s.span.len) as usize] == key.as_bytes()
        }) {
            e.remove();
        }
    }

    /// Forget every key.
    pub fn clear(&mut self) {
        self.table.clear();
        self.arena.clear();
    }

    /// Resolve one batch of keys: a held key keeps its id, a new key gets
    /// `next_id`, `next_id + 1`, … in row order and is held from then on, so a
    /// later row with the same key (in this batch or a later one) updates it.
    pub fn assign<'a, I>(&mut self, keys: I, next_id: i64) -> Assigned
    where
        I: IntoIterator<Item = Option<&'a str>>,
    {
        let first_new = next_id;
        let mut out = Assigned {
            next_id,
            ..Assigned::default()
        };
        for (i, key) in keys.into_iter().enumerate() {
            let Some(key) = key else {
                out.ids.push(None);
                continue;
            };
            let id = match self.get(key) {
                Some(id) => {
                    if id < first_new {
                        out.updated.push(id);
                    }
                    id
                }
                None => {
                    let id = out.next_id;
                    out.next_id += 1;
                    self.set(key, id);
                    out.new_rows.push(i);
                    out.created.push(id);
                    id
                }
            };
            out.ids.push(Some(id));
        }
        out
    }
}

/// What [`Keys::assign_external`] decided for one batch: as [`Assigned`],
/// and the rows whose email is kept back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AssignedExternal {
    /// Ids, new rows, created and updated ids, and the next free id.
    pub assigned: Assigned,
    /// Rows that update a contact with an email another contact holds: the
    /// contact keeps its own email (two contacts never share one).
    pub conflicts: Vec<usize>,
    /// Rows that update a contact with an email it already holds (its own,
    /// or one of a record merged into it): nothing to write.
    pub held: Vec<usize>,
}

/// The maps one upsert resolves keys with: a source's record ids, emails
/// (live contacts first, then merged-away ones resolved to their survivor),
/// and the current email of each live contact.
#[derive(Debug, Default)]
pub struct Keys {
    /// Record ids of one source to contact ids.
    pub external: KeyMap,
    /// Emails to contact ids.
    pub email: KeyMap,
    /// Each live contact's email, kept only for upserts by record id (where
    /// an email can move from one contact to another).
    current: Option<HashMap<i64, Span, RandomState>>,
}

impl Keys {
    /// Empty maps; `track_current` keeps each contact's current email, which
    /// [`Keys::assign_external`] needs.
    pub fn new(track_current: bool) -> Self {
        Self {
            current: track_current.then(HashMap::default),
            ..Self::default()
        }
    }

    /// Whether each contact's current email is kept.
    pub fn tracks_current(&self) -> bool {
        self.current.is_some()
    }

    /// Record that live contact `id` holds `email` (the first email recorded
    /// for a contact, and the first contact recorded for an email, win).
    pub fn add_current(&mut self, email: &str, id: i64) {
        let span = self.email.insert_first(email, id);
        if let Some(current) = &mut self.current {
            current.entry(id).or_insert(span);
        }
    }

    /// Rows keyed by email: see [`KeyMap::assign`]. A new contact holds its
    /// email from then on.
    pub fn assign_email<'a, I>(&mut self, keys: I, next_id: i64) -> Assigned
    where
        I: IntoIterator<Item = Option<&'a str>>,
    {
        let keys: Vec<Option<&str>> = keys.into_iter().collect();
        let out = self.email.assign(keys.iter().copied(), next_id);
        if let Some(current) = &mut self.current {
            for &i in &out.new_rows {
                if let (Some(k), Some(id)) = (keys[i], out.ids[i]) {
                    if let Some((_, span)) = self.email.locate(k) {
                        current.insert(id, span);
                    }
                }
            }
        }
        out
    }

    /// Rows keyed by a source's record id, each with its email or `None`.
    ///
    /// A row's contact is the one its record id names, else the one holding
    /// its email, else a new one (ids from `next_id` in row order), and its
    /// record id names that contact from then on. A row's email moves to its
    /// contact unless a contact holds it already: the same one (the row is
    /// `held`: nothing changes) or another (a `conflict`: the contact keeps
    /// its own email). Needs [`Keys::tracks_current`].
    pub fn assign_external(
        &mut self,
        keys: &[Option<&str>],
        emails: &[Option<&str>],
        next_id: i64,
    ) -> AssignedExternal {
        let first_new = next_id;
        let mut out = AssignedExternal {
            assigned: Assigned {
                next_id,
                ..Assigned::default()
            },
            conflicts: Vec::new(),
            held: Vec::new(),
        };
        let a = &mut out.assigned;
        for (i, key) in keys.iter().enumerate() {
            let email = emails.get(i).copied().flatten();
            let Some(key) = key else {
                a.ids.push(None);
                continue;
            };
            let found = self
                .external
                .get(key)
                .or_else(|| email.and_then(|e| self.email.get(e)));
            let id = match found {
                None => {
                    let id = a.next_id;
                    a.next_id += 1;
                    a.new_rows.push(i);
                    a.created.push(id);
                    self.external.set(key, id);
                    if let Some(e) = email {
                        let span = self.email.set(e, id);
                        if let Some(current) = &mut self.current {
                            current.insert(id, span);
                        }
                    }
                    id
                }
                Some(id) => {
                    if id < first_new {
                        a.updated.push(id);
                    }
                    self.external.insert_first(key, id);
                    if let Some(e) = email {
                        match self.email.get(e) {
                            Some(owner) if owner != id => out.conflicts.push(i),
                            Some(_) => out.held.push(i),
                            None => {
                                let span = self.email.set(e, id);
                                let old = self.current.as_mut().and_then(|c| c.insert(id, span));
                                if let Some(old) = old {
                                    let old = self.email.key_at(old).to_owned();
                                    if self.email.get(&old) == Some(id) {
                                        self.email.remove(&old);
                                    }
                                }
                            }
                        }
                    }
                    id
                }
            };
            a.ids.push(Some(id));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_resolve_by_id_then_email_and_emails_move_unless_held() {
        let mut k = Keys::new(true);
        k.add_current("a@x.org", 1);
        k.add_current("b@x.org", 2);
        k.external.insert_first("R1", 1);
        let got = k.assign_external(
            &[
                Some("R1"),
                Some("R9"),
                Some("R1"),
                Some("R5"),
                Some("R6"),
                None,
            ],
            &[
                Some("b@x.org"), // R1 → 1, but 2 holds b@x.org: kept back
                Some("b@x.org"), // R9 is new, found by email → 2
                Some("c@x.org"), // R1 → 1 moves to c@x.org
                Some("a@x.org"), // a@x.org was 1's: now free → new contact
                None,            // new, no email
                Some("z@x.org"),
            ],
            10,
        );
        assert_eq!(got.conflicts, vec![0]);
        assert_eq!(got.held, vec![1]);
        assert_eq!(
            got.assigned.ids,
            vec![Some(1), Some(2), Some(1), Some(10), Some(11), None]
        );
        assert_eq!(got.assigned.created, vec![10, 11]);
        assert_eq!(got.assigned.updated, vec![1, 2, 1]);
        assert_eq!(k.email.get("c@x.org"), Some(1));
        assert_eq!(k.email.get("a@x.org"), Some(10));
        assert_eq!(k.external.get("R9"), Some(2));
        assert_eq!(k.external.get("R6"), Some(11));
    }

    #[test]
    fn a_merged_away_email_is_not_a_current_one() {
        let mut k = Keys::new(true);
        k.add_current("a@x.org", 1);
        k.email.insert_first("old@x.org", 1); // merged away into 1
        let got = k.assign_external(&[Some("R1")], &[Some("old@x.org")], 5);
        assert_eq!(got.assigned.ids, vec![Some(1)]);
        assert!(got.conflicts.is_empty());
        assert_eq!(got.held, vec![0]); // 1 keeps a@x.org as its email
        assert_eq!(k.email.get("a@x.org"), Some(1));
    }

    #[test]
    fn assigns_new_ids_in_row_order_and_reuses_known_ones() {
        let mut m = KeyMap::new();
        m.insert_first("a@x.org", 3);
        let got = m.assign(
            [
                Some("b@x.org"),
                None,
                Some("a@x.org"),
                Some("b@x.org"),
                Some("c@x.org"),
            ],
            10,
        );
        assert_eq!(got.ids, vec![Some(10), None, Some(3), Some(10), Some(11)]);
        assert_eq!(got.new_rows, vec![0, 4]);
        assert_eq!(got.created, vec![10, 11]);
        assert_eq!(got.updated, vec![3]);
        assert_eq!(got.next_id, 12);
        // The next batch sees the keys the last one created as known.
        let again = m.assign([Some("c@x.org"), Some("a@x.org")], 12);
        assert_eq!(again.ids, vec![Some(11), Some(3)]);
        assert_eq!(again.updated, vec![11, 3]);
        assert!(again.created.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec((0u8..4, 0u8..40, 0i64..5), 0..300)) {
            let mut m = KeyMap::new();
            let mut oracle: std::collections::HashMap<String, i64> = Default::default();
            for (op, k, id) in ops {
                let key = format!("k{k}@x");
                match op {
                    0 => {
                        let span = m.set(&key, id);
                        proptest::prop_assert_eq!(m.key_at(span), key.as_str());
                        oracle.insert(key.clone(), id);
                    }
                    1 => {
                        m.insert_first(&key, id);
                        oracle.entry(key.clone()).or_insert(id);
                    }
                    2 => {
                        m.remove(&key);
                        oracle.remove(&key);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(m.get(&key), oracle.get(&key).copied());
                proptest::prop_assert_eq!(m.len(), oracle.len());
            }
            for (k, v) in &oracle {
                proptest::prop_assert_eq!(m.get(k), Some(*v));
            }
        }
    }

    #[test]
    fn the_first_insert_wins() {
        let mut m = KeyMap::new();
        m.insert_first("a@x.org", 1);
        m.insert_first("a@x.org", 2);
        assert_eq!(m.get("a@x.org"), Some(1));
        assert_eq!(m.get("b@x.org"), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn an_existing_contact_updated_twice_counts_twice() {
        let mut m = KeyMap::new();
        m.insert_first("a@x.org", 1);
        let got = m.assign([Some("a@x.org"), Some("a@x.org")], 5);
        assert_eq!(got.updated, vec![1, 1]);
        assert_eq!(got.next_id, 5);
    }
}
