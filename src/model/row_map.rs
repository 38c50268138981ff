//! Values by row id, stored the way the ids fall: a vector while they are
//! dense (a whole structure: ids are handed out in sequence and never
//! reused), a hash map while they are sparse (a pass's neighbourhood: a few
//! hundred rows of a structure of a million, whose vector would be as long
//! as the whole structure's).

use foldhash::HashMap;

use super::RowId;

#[derive(Clone, Debug)]
pub enum RowMap<T> {
    Dense(Vec<Option<T>>),
    Sparse(HashMap<RowId, T>),
}

impl<T> Default for RowMap<T> {
    fn default() -> Self {
        RowMap::Dense(Vec::new())
    }
}

fn slot(id: RowId) -> usize {
    usize::try_from(id).expect("row ids fit in memory")
}

impl<T> RowMap<T> {
    /// A map for `len` rows with ids below `next_id`: sparse when fewer
    /// than one id in eight has a row.
    pub fn for_rows(len: usize, next_id: RowId) -> RowMap<T> {
        if (len as u64).saturating_mul(8) < next_id {
            RowMap::Sparse(HashMap::default())
        } else {
            RowMap::Dense(Vec::new())
        }
    }

    /// An empty map of the same kind.
    pub fn like<U>(other: &RowMap<U>) -> RowMap<T> {
        match other {
            RowMap::Dense(_) => RowMap::Dense(Vec::new()),
            RowMap::Sparse(_) => RowMap::Sparse(HashMap::default()),
        }
    }

    pub fn get(&self, id: RowId) -> Option<&T> {
        match self {
            RowMap::Dense(values) => values.get(slot(id))?.as_ref(),
            RowMap::Sparse(values) => values.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: RowId) -> Option<&mut T> {
        match self {
            RowMap::Dense(values) => values.get_mut(slot(id))?.as_mut(),
            RowMap::Sparse(values) => values.get_mut(&id),
        }
    }

    pub fn insert(&mut self, id: RowId, value: T) {
        match self {
            RowMap::Dense(values) => {
                let slot = slot(id);
                if values.len() <= slot {
                    values.resize_with(slot + 1, || None);
                }
                values[slot] = Some(value);
            }
            RowMap::Sparse(values) => {
                values.insert(id, value);
            }
        }
    }

    pub fn remove(&mut self, id: RowId) -> Option<T> {
        match self {
            RowMap::Dense(values) => values.get_mut(slot(id))?.take(),
            RowMap::Sparse(values) => values.remove(&id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_keep_what_is_put_in() {
        for mut map in [RowMap::for_rows(10, 10), RowMap::for_rows(10, 1_000_000)] {
            map.insert(999_999, "far");
            map.insert(3, "near");
            assert_eq!(map.get(3), Some(&"near"));
            assert_eq!(map.get(999_999), Some(&"far"));
            assert_eq!(map.get(4), None);
            *map.get_mut(3).unwrap() = "moved";
            assert_eq!(map.remove(3), Some("moved"));
            assert_eq!(map.get(3), None);
        }
        assert!(matches!(
            RowMap::<()>::for_rows(10, 1_000_000),
            RowMap::Sparse(_)
        ));
        assert!(matches!(
            RowMap::<()>::for_rows(100_000, 100_001),
            RowMap::Dense(_)
        ));
    }
}
