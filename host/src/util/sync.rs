//! Taking a `std` lock, recovering it if a panic poisoned it.
//!
//! # Why recovering a poisoned lock is right here
//!
//! `std` marks a lock poisoned when a thread panics while holding it, in
//! case the panic interrupted an update and left the data half-changed.
//! For the locks taken through these helpers it cannot have:
//!
//! - every critical section either only reads, or makes its change in one
//!   step that leaves the value whole even if it unwinds: one `HashMap` /
//!   `BTreeMap` insert, remove, entry or drain, one `Vec` push or
//!   `retain` (which keeps the `Vec` valid if its closure panics), a plain
//!   assignment (`*accepting = false`, `Option::take`), or nothing at all
//!   (`Mutex<()>` that only orders file operations);
//! - where one section writes several fields in a row (the registry's
//!   per-module history), they are plain field updates (a counter bumped,
//!   an `Option` set to a value already built), each meaningful on its own,
//!   with nothing between them that can panic;
//! - code called while a lock is held (a call sink forwarding a stream
//!   item under the pending-calls lock, a generation expiring its calls
//!   inside the registry's `retain`) owns its own state: if it panics, the
//!   locked map or list is as it was, or as `retain` leaves it (valid).
//!
//! So the poison flag carries no information for these locks, while
//! honouring it (`.unwrap()`) would turn one contained panic, say in a
//! module's call sink, into a panic on every later call that touches the
//! lock: the whole host, not one request, would fail. A new call site must
//! keep to the rules above, or not use these helpers.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, recovering it if poisoned (see the module docs for why).
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read-locks `lock`, recovering it if poisoned (see the module docs).
pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write-locks `lock`, recovering it if poisoned (see the module docs).
pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = Mutex::new(1);
        let rw = RwLock::new(2);
        let _ = std::panic::catch_unwind(|| {
            let (_m, _w) = (m.lock().unwrap(), rw.write().unwrap());
            panic!("poison both");
        });
        assert!(m.is_poisoned() && rw.is_poisoned());
        *lock(&m) += 1;
        *write(&rw) += 1;
        assert_eq!((*lock(&m), *read(&rw)), (2, 3));
    }
}
