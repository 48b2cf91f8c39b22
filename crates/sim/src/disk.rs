//! What the randomized simulator's node ([`crate::node`]) and the scripted
//! scenario's node ([`crate::scenario`]) share: a server's life, running
//! or down with only its disk left; whether a disk holds an entry; and how
//! a disk that refuses a Ready, or a committed change that does not apply,
//! is reported as a [`Violation`].
//!
//! The two nodes differ on purpose in how they handle a Ready and keep
//! their state machine, so that part stays with each of them.

use crate::invariants::Violation;
use rudder_raft::confchange::decode_conf_change;
use rudder_raft::{
    ConfChangeV2, ConfState, Config, Entry, MemoryStorage, RawNode, Storage, StorageError,
};
use std::fmt::Display;

/// A server is running, or down with only its disk left. A `MemoryStorage`
/// stands for the disk: a running node's storage holds exactly what was
/// made durable, so a crash keeps it and loses everything else.
pub enum Life {
    /// Running: the node, on its disk.
    Up(Box<RawNode<MemoryStorage>>),
    /// Crashed: only the disk is left.
    Down(Box<MemoryStorage>),
}

impl Life {
    /// A node that runs on `raw`.
    pub fn up(raw: RawNode<MemoryStorage>) -> Life {
        Life::Up(Box::new(raw))
    }

    /// The running node, or `None` while it is down.
    pub fn raw(&self) -> Option<&RawNode<MemoryStorage>> {
        match self {
            Life::Up(raw) => Some(raw),
            Life::Down(_) => None,
        }
    }

    /// The running node, mutably, or `None` while it is down.
    pub fn raw_mut(&mut self) -> Option<&mut RawNode<MemoryStorage>> {
        match self {
            Life::Up(raw) => Some(raw),
            Life::Down(_) => None,
        }
    }

    /// What is on the disk, up or down.
    pub fn disk(&self) -> &MemoryStorage {
        match self {
            Life::Up(raw) => raw.storage(),
            Life::Down(disk) => disk,
        }
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        matches!(self, Life::Up(_))
    }

    /// Crashes a running node: only its disk is kept.
    pub fn crash(&mut self) {
        if let Life::Up(raw) = self {
            *self = Life::Down(Box::new(raw.storage().clone()));
        }
    }

    /// Starts a node that is down again from its disk with `config`; a
    /// node that is up is left alone. If the start fails, the node stays
    /// down with its disk unchanged.
    pub fn restart(&mut self, config: &Config) -> rudder_raft::Result<()> {
        if let Life::Down(disk) = self {
            *self = Life::up(RawNode::new(config, (**disk).clone())?);
        }
        Ok(())
    }
}

/// Whether `disk` holds the entry at `index` with `term`, or a snapshot
/// past it (a safe cluster only snapshots committed entries, so the entry
/// was there when it was compacted away). This is what a leader may count
/// on when it counts a follower's copy towards a commit.
pub fn holds(disk: &impl Storage, index: u64, term: u64) -> bool {
    match disk.term(index) {
        Ok(t) => t == term,
        Err(StorageError::Compacted { .. }) => true,
        Err(_) => false,
    }
}

/// Node `node`'s disk refused what a Ready handed it (`e` says why): the
/// core broke its side of the Ready contract.
pub fn contract(node: u64, e: impl Display) -> Violation {
    Violation {
        property: "the Ready contract (storage accepts what a Ready hands out)",
        node,
        detail: e.to_string(),
    }
}

/// Applies the configuration change that the committed entry `e` carries,
/// if it carries one, to `raw`: returns the change and the configuration
/// it leads to, or `None` for a normal entry. A change that does not
/// decode or that `raw` refuses is a violation: every node must be able to
/// apply what was committed.
pub fn apply_conf_change(
    raw: &mut RawNode<MemoryStorage>,
    e: &Entry,
) -> Result<Option<(ConfChangeV2, ConfState)>, Violation> {
    let node = raw.raft().id;
    let failed = |why: String| Violation {
        property: "committed configuration changes apply",
        node,
        detail: format!("change at {}: {why}", e.index),
    };
    let cc = match decode_conf_change(e) {
        Ok(None) => return Ok(None),
        Ok(Some(cc)) => cc,
        Err(err) => return Err(failed(err.to_string())),
    };
    match raw.apply_conf_change(&cc) {
        Ok(cs) => Ok(Some((cc, cs))),
        Err(err) => Err(failed(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_with(terms: &[u64]) -> MemoryStorage {
        let mut disk = MemoryStorage::new();
        let entries: Vec<Entry> = (1..)
            .zip(terms)
            .map(|(index, &t)| Entry::new(t, index, bytes::Bytes::new()))
            .collect();
        disk.append(&entries).expect("append to an empty disk");
        disk
    }

    #[test]
    fn holds_the_entry_with_its_term_only() {
        let disk = disk_with(&[1, 1, 2]);
        assert!(holds(&disk, 3, 2));
        assert!(!holds(&disk, 3, 1));
        assert!(!holds(&disk, 4, 2));
    }

    #[test]
    fn a_snapshot_past_an_entry_holds_it() {
        let mut disk = disk_with(&[1, 1, 2, 2]);
        disk.create_snapshot(3, None, bytes::Bytes::new())
            .expect("snapshot of a held entry");
        disk.compact(3).expect("compact through the snapshot");
        assert!(holds(&disk, 1, 1), "compacted away");
        assert!(holds(&disk, 3, 2), "the snapshot's own index and term");
        assert!(!holds(&disk, 3, 1));
    }

    #[test]
    fn a_crash_keeps_the_disk_and_a_restart_runs_on_it() {
        let config = Config::new(1);
        let raw = RawNode::bootstrap(&config, MemoryStorage::new(), &[1])
            .expect("bootstrap on an empty disk");
        let mut life = Life::up(raw);
        let last = life.disk().last_index().expect("last index");
        life.crash();
        assert!(!life.is_up() && life.raw().is_none());
        assert_eq!(life.disk().last_index().expect("last index"), last);
        life.restart(&config).expect("restart from the disk");
        assert!(life.is_up());
        assert_eq!(life.disk().last_index().expect("last index"), last);
    }
}
