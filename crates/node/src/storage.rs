//! A storage the node's task reads while the application writes it.

use rudder_raft::{Entry, RaftState, Snapshot, Storage, StorageError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A [`Storage`] shared between a node's task and the application: the
/// task reads the stable log through it, the application writes what each
/// `Ready` asks to persist through [`SharedStorage::lock`].
///
/// The [`Node`](crate::Node) task owns its `RawNode`, and with it the
/// storage value; the application persisting from another task needs a
/// second way in. This is it, as in etcd, whose `MemoryStorage` carries a
/// mutex for the same reason: clone the `SharedStorage` before handing one
/// copy to the node, keep the other.
///
/// ```
/// use rudder_node::SharedStorage;
/// use rudder_raft::{ConfState, MemoryStorage, Storage};
///
/// let storage = SharedStorage::new(MemoryStorage::new_with_conf_state(ConfState::with_voters([1])));
/// let for_the_node = storage.clone();
/// storage.lock().set_conf_state(ConfState::with_voters([1, 2]));
/// assert_eq!(for_the_node.initial_state().unwrap().conf_state.voters, vec![1, 2]);
/// ```
///
/// Every read the core makes takes the lock for that one call, so keep the
/// application's critical sections short: a durable storage should write
/// and sync its files before taking the lock (or outside it) and only
/// publish the new state under it, or the node's task waits for the disk.
///
/// A lock poisoned by a panic elsewhere is taken anyway (as with
/// `parking_lot`): a panic in the application's own code while holding the
/// guard is the application's to handle.
#[derive(Debug, Default)]
pub struct SharedStorage<S> {
    inner: Arc<Mutex<S>>,
}

impl<S> Clone for SharedStorage<S> {
    fn clone(&self) -> Self {
        SharedStorage {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> SharedStorage<S> {
    /// Wraps `storage` for sharing.
    pub fn new(storage: S) -> SharedStorage<S> {
        SharedStorage {
            inner: Arc::new(Mutex::new(storage)),
        }
    }

    /// Locks the storage, to write what a `Ready` asks to persist (or to
    /// create a snapshot and compact). Do not hold the guard across an
    /// `.await`: the node's task reads through the same lock.
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Storage> Storage for SharedStorage<S> {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        self.lock().initial_state()
    }

    fn entries(
        &self,
        lo: u64,
        hi: u64,
        max_size: u64,
        out: &mut Vec<Entry>,
    ) -> Result<(), StorageError> {
        self.lock().entries(lo, hi, max_size, out)
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        self.lock().term(index)
    }

    fn first_index(&self) -> Result<u64, StorageError> {
        self.lock().first_index()
    }

    fn last_index(&self) -> Result<u64, StorageError> {
        self.lock().last_index()
    }

    fn snapshot(&self, request_index: u64) -> Result<Snapshot, StorageError> {
        self.lock().snapshot(request_index)
    }
}
