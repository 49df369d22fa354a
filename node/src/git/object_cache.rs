//! A process-wide cache of small immutable objects (commits, tags, trees)
//! read from packs. Object contents never change for an id, so the only
//! care needed is scoping entries to one opened repository (an object that
//! exists in one repository may be missing in another).
//!
//! Two generations approximate LRU at the cost of two lookups: when the
//! young generation fills half the budget it becomes the old one, and hits
//! in the old generation are promoted.

use super::objects::{Kind, ObjectId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Total bytes of object data kept (both generations).
const BUDGET: usize = 64 * 1024 * 1024;
/// Larger objects are not worth a slot.
pub const MAX_OBJECT: usize = 256 * 1024;

type Key = (u64, ObjectId);
type Entry = (Kind, Arc<[u8]>);

#[derive(Default)]
struct Generations {
    young: HashMap<Key, Entry>,
    young_bytes: usize,
    old: HashMap<Key, Entry>,
}

fn cache() -> &'static Mutex<Generations> {
    static CACHE: OnceLock<Mutex<Generations>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Whether objects of `kind` and `size` are cached.
pub fn cacheable(kind: Kind, size: usize) -> bool {
    matches!(kind, Kind::Commit | Kind::Tag | Kind::Tree) && size <= MAX_OBJECT
}

pub fn get(serial: u64, id: &ObjectId) -> Option<Entry> {
    let mut c = cache().lock().expect("object cache lock is never poisoned");
    let key = (serial, *id);
    if let Some(e) = c.young.get(&key) {
        return Some(e.clone());
    }
    let e = c.old.remove(&key)?;
    insert_locked(&mut c, key, e.clone());
    Some(e)
}

pub fn put(serial: u64, id: ObjectId, kind: Kind, data: Arc<[u8]>) {
    let mut c = cache().lock().expect("object cache lock is never poisoned");
    insert_locked(&mut c, (serial, id), (kind, data));
}

fn insert_locked(c: &mut Generations, key: Key, entry: Entry) {
    c.young_bytes += entry.1.len() + std::mem::size_of::<(Key, Entry)>();
    if c.young.insert(key, entry).is_none() && c.young_bytes > BUDGET / 2 {
        c.old = std::mem::take(&mut c.young);
        c.young_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_scoped_to_a_repository_opening() {
        let id = ObjectId::from_hex(b"0123456789012345678901234567890123456789").expect("hex");
        put(u64::MAX, id, Kind::Commit, Arc::from(&b"tree x"[..]));
        assert!(get(u64::MAX, &id).is_some());
        assert!(get(u64::MAX - 1, &id).is_none());
    }
}
