//! Segment members by contact id: what a run compares its result with to
//! find who entered and who exited, kept in a file between runs so that a
//! run does not read every current membership back from the store.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use roaring::RoaringTreemap;

use super::codec::{Reader, Writer};
use super::eval::EvalResult;
use super::snapshot::Snapshot;
use crate::{CoreError, CoreResult};

const MAGIC: &[u8; 8] = b"CRMKMEM1";

/// Members of each segment, as contact ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberSets {
    /// Segment name -> contact ids.
    pub sets: BTreeMap<String, RoaringTreemap>,
}

fn id_key(id: i64) -> CoreResult<u64> {
    u64::try_from(id).map_err(|_| CoreError::InvalidInput("a contact id is negative".into()))
}

impl MemberSets {
    /// From lists of ids per segment.
    pub fn from_lists(lists: Vec<(String, Vec<i64>)>) -> CoreResult<MemberSets> {
        let mut sets = BTreeMap::new();
        for (name, ids) in lists {
            let mut keys = ids
                .into_iter()
                .map(id_key)
                .collect::<CoreResult<Vec<u64>>>()?;
            keys.sort_unstable();
            keys.dedup();
            let set = RoaringTreemap::from_sorted_iter(keys).expect("sorted, distinct");
            sets.insert(name, set);
        }
        Ok(MemberSets { sets })
    }

    /// The members of every segment of a result, mapped from rows to ids.
    pub fn of_result(result: &EvalResult, snap: &Snapshot) -> CoreResult<MemberSets> {
        let ids = &snap.ids;
        let sets = result
            .names
            .par_iter()
            .zip(&result.bitmaps)
            .map(|(name, bm)| {
                let mut keys = Vec::with_capacity(bm.len() as usize);
                for r in bm {
                    let id = *ids.get(r as usize).ok_or_else(|| {
                        CoreError::InvalidInput("result of another snapshot".into())
                    })?;
                    keys.push(id_key(id)?);
                }
                // Rows of a kept snapshot are in id order except for rows
                // appended later: sort only when needed.
                if !keys.windows(2).all(|w| w[0] < w[1]) {
                    keys.sort_unstable();
                    keys.dedup();
                }
                Ok((
                    name.clone(),
                    RoaringTreemap::from_sorted_iter(keys).expect("sorted, distinct"),
                ))
            })
            .collect::<CoreResult<BTreeMap<_, _>>>()?;
        Ok(MemberSets { sets })
    }

    /// For each segment of `names`: ids that are members in `new` and not
    /// here (entered), and here but not in `new` (exited), ascending. A
    /// segment missing from either side counts as empty there.
    pub fn diff(&self, new: &MemberSets, names: &[String]) -> Vec<(String, Vec<i64>, Vec<i64>)> {
        let empty = RoaringTreemap::new();
        names
            .par_iter()
            .map(|n| {
                let old = self.sets.get(n).unwrap_or(&empty);
                let cur = new.sets.get(n).unwrap_or(&empty);
                let entered = (cur - old).iter().map(|x| x as i64).collect();
                let exited = (old - cur).iter().map(|x| x as i64).collect();
                (n.clone(), entered, exited)
            })
            .collect()
    }

    /// Write to `path` with a `meta` text (a temporary file renamed over it).
    pub fn save(&self, path: &Path, meta: &str) -> CoreResult<()> {
        let blobs: Vec<Vec<u8>> = self
            .sets
            .par_iter()
            .map(|(_, s)| {
                let mut b = Vec::with_capacity(s.serialized_size());
                s.serialize_into(&mut b).expect("writing to memory");
                b
            })
            .collect();
        super::codec::write_atomically(path, MAGIC, |w: &mut Writer<'_>| {
            w.str(meta)?;
            w.u64(self.sets.len() as u64)?;
            for (name, blob) in self.sets.keys().zip(&blobs) {
                w.str(name)?;
                w.slice(blob)?;
            }
            Ok(())
        })
    }

    /// Read a file written by [`MemberSets::save`], with its meta text.
    pub fn load(path: &Path) -> CoreResult<(MemberSets, String)> {
        let mut r = Reader::open(path, MAGIC)?;
        let meta = r.str()?;
        let n = r.u64()?;
        let mut raw = Vec::new();
        for _ in 0..n {
            let name = r.str()?;
            let blob: Vec<u8> = r.vec()?;
            raw.push((name, blob));
        }
        r.finish()?;
        let mut sets = BTreeMap::new();
        for (name, blob) in raw {
            let set = RoaringTreemap::deserialize_from(&blob[..]).map_err(|_| {
                CoreError::InvalidInput(format!("member file {} is damaged", path.display()))
            })?;
            if sets.insert(name, set).is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "member file {} is damaged (a segment twice)",
                    path.display()
                )));
            }
        }
        Ok((MemberSets { sets }, meta))
    }
}
