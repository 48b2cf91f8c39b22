//! The replicated state machine: the simulator's key-value store
//! ([`rudder_sim::kv`]), which also records, for every member and every
//! incarnation, which command it applied at each index.
//!
//! One [`Applied`] book is shared by the whole cluster: the first
//! application of an index fixes its command, and any later one (another
//! member, or the same member after a restart) that differs is a broken
//! state machine safety. The book also keeps, per request, when and with
//! what reply it first took effect, so operations whose clients gave up
//! can be settled ([`rudder_sim::workload::settle`]).

use super::Clock;
use bytes::Bytes;
use rudder_node::runtime::StateMachine;
use rudder_sim::kv::{self, KvStore, Reply};
use rudder_sim::workload::Effects;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What every member applied, and what went wrong.
#[derive(Default)]
pub struct Applied {
    /// The command applied at each index, and by which member first.
    by_index: BTreeMap<u64, (u64, Bytes)>,
    /// The index each request took effect at.
    request_index: BTreeMap<u64, u64>,
    /// When and how each request first took effect.
    pub effects: Effects,
    /// Broken state machine safety, as found.
    pub violations: Vec<String>,
}

/// The book, shared.
pub type Book = Arc<Mutex<Applied>>;

/// Locks the book.
pub fn lock(book: &Book) -> MutexGuard<'_, Applied> {
    book.lock().unwrap_or_else(|e| e.into_inner())
}

impl Applied {
    /// Member `member` applies `data` at `index`: checks it against what
    /// was applied there before.
    fn record(&mut self, member: u64, index: u64, data: &[u8]) {
        match self.by_index.entry(index) {
            Entry::Vacant(v) => {
                v.insert((member, Bytes::copy_from_slice(data)));
            }
            Entry::Occupied(o) if o.get().1 != data => {
                let (first, before) = o.get();
                self.violations.push(format!(
                    "state machine safety: member {member} applied {:?} at index {index}, \
                     member {first} applied {:?} there before",
                    kv::decode(data),
                    kv::decode(before)
                ));
            }
            Entry::Occupied(_) => {}
        }
    }

    /// Request `request` took effect at `index` with `reply`, at `now`.
    fn took_effect(&mut self, request: u64, index: u64, reply: &Reply, now: u64) {
        match self.request_index.entry(request) {
            Entry::Vacant(v) => {
                v.insert(index);
            }
            Entry::Occupied(o) if *o.get() != index => {
                let first = *o.get();
                self.violations.push(format!(
                    "request #{request} took effect twice: at index {first} and at {index}"
                ));
            }
            Entry::Occupied(_) => {}
        }
        self.effects
            .entry(request)
            .or_insert_with(|| (now, reply.clone()));
    }
}

/// One incarnation's state machine.
pub struct Replica {
    member: u64,
    store: KvStore,
    book: Book,
    clock: Clock,
}

impl Replica {
    /// An empty store for member `member`, recording into `book`.
    pub fn new(member: u64, book: Book, clock: Clock) -> Replica {
        Replica {
            member,
            store: KvStore::default(),
            book,
            clock,
        }
    }

    /// The value of `key`, as of the last command applied.
    pub fn get(&self, key: &str) -> Option<String> {
        self.store.get(key)
    }

    /// The whole map, for comparing members.
    pub fn contents(&self) -> KvStore {
        self.store.clone()
    }
}

impl StateMachine for Replica {
    /// `None` for an entry that is no command.
    type Response = Option<Reply>;

    fn apply(&mut self, index: u64, data: &[u8]) -> Option<Reply> {
        let mut book = lock(&self.book);
        book.record(self.member, index, data);
        let (request, op) = kv::decode(data)?;
        let reply = self.store.apply(&op);
        book.took_effect(request, index, &reply, self.clock.now());
        Some(reply)
    }

    fn snapshot(&self) -> Bytes {
        self.store.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.store = KvStore::restore(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}
