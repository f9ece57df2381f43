//! An in-memory map from an upsert key (a normalized email) to a contact id.
//!
//! A bulk load into a small store resolves keys here instead of through the
//! store's unique index: the index is dropped for the load and rebuilt at its
//! end, which costs far less than keeping it up to date row by row, and a
//! lookup here costs far less than a query.

use ahash::RandomState;
use hashbrown::HashMap;

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

/// Keys to contact ids, with fresh ids handed out in row order.
#[derive(Debug, Default)]
pub struct KeyMap {
    map: HashMap<Box<str>, i64, RandomState>,
}

impl KeyMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Record `key → id` unless the key is already held (the first wins, so
    /// live contacts loaded first take precedence over merged-away ones).
    pub fn insert_first(&mut self, key: &str, id: i64) {
        if !self.map.contains_key(key) {
            self.map.insert(key.into(), id);
        }
    }

    /// The id held for `key`.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.map.get(key).copied()
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
            let id = match self.map.get(key) {
                Some(&id) => {
                    if id < first_new {
                        out.updated.push(id);
                    }
                    id
                }
                None => {
                    let id = out.next_id;
                    out.next_id += 1;
                    self.map.insert(key.into(), id);
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

#[cfg(test)]
mod tests {
    use super::*;

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
