//! The in-process network: every member's inbox, and seeded loss, delay
//! (so reordering) and cuts between pairs of members.
//!
//! A message is decided when it is sent: lost (by chance, or because the
//! pair is cut or the peer is down, which is reported as unreachable), or
//! delivered after a delay drawn from the seed, into the inbox the peer
//! has then (a message in flight reaches a restarted member). A dead
//! incarnation sends nothing: its [`Port`] checks its fence.

use super::disk::Fence;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rudder_node::runtime::{Network, NetworkEvent, PeerInfo};
use rudder_raft::{Message, MessageType, SnapshotStatus};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the network does to messages now.
struct State {
    rng: SmallRng,
    inboxes: HashMap<u64, mpsc::Sender<Message>>,
    /// Directed pairs `(from, to)` that cannot talk.
    cut: BTreeSet<(u64, u64)>,
    /// The chance a message is lost.
    loss: f64,
    /// The delay of a delivered message, in microseconds, drawn from here.
    delay: (u64, u64),
}

/// The network; clones share it.
#[derive(Clone)]
pub struct Net {
    state: Arc<Mutex<State>>,
}

impl Net {
    /// A network without faults whose choices come from `seed`.
    pub fn new(seed: u64) -> Net {
        Net {
            state: Arc::new(Mutex::new(State {
                rng: SmallRng::seed_from_u64(seed),
                inboxes: HashMap::new(),
                cut: BTreeSet::new(),
                loss: 0.0,
                delay: (0, 1_000),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Member `id`'s new incarnation listens on `inbox`.
    pub fn attach(&self, id: u64, inbox: mpsc::Sender<Message>) {
        self.lock().inboxes.insert(id, inbox);
    }

    /// Member `id` is down: messages to it are lost.
    pub fn detach(&self, id: u64) {
        self.lock().inboxes.remove(&id);
    }

    /// Cuts `group` off from everyone else, both ways.
    pub fn isolate(&self, group: &[u64], all: &[u64]) {
        let mut s = self.lock();
        for &a in group {
            for &b in all.iter().filter(|b| !group.contains(b)) {
                s.cut.insert((a, b));
                s.cut.insert((b, a));
            }
        }
    }

    /// Cuts `from → to` only.
    pub fn cut_one_way(&self, from: u64, to: u64) {
        self.lock().cut.insert((from, to));
    }

    /// Sets the loss rate and the delay range.
    pub fn set_quality(&self, loss: f64, delay: (Duration, Duration)) {
        let mut s = self.lock();
        s.loss = loss;
        s.delay = (delay.0.as_micros() as u64, delay.1.as_micros() as u64);
    }

    /// Removes every cut, keeping the loss and delays.
    pub fn uncut(&self) {
        self.lock().cut.clear();
    }

    /// Removes every cut and the loss; keeps short delays.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.cut.clear();
        s.loss = 0.0;
        s.delay = (0, 1_000);
    }

    /// Member `from`'s side of the network for one incarnation.
    pub fn port(
        &self,
        from: u64,
        fence: Arc<Fence>,
        events: mpsc::UnboundedSender<NetworkEvent>,
    ) -> Port {
        Port {
            net: self.clone(),
            from,
            fence,
            events,
        }
    }
}

/// What became of one message, decided at send time.
enum Fate {
    Lost { reported: bool },
    Delivered { after: Duration },
}

impl State {
    fn fate(&mut self, from: u64, to: u64) -> Fate {
        if self.cut.contains(&(from, to)) || !self.inboxes.contains_key(&to) {
            return Fate::Lost { reported: true };
        }
        if self.loss > 0.0 && self.rng.random::<f64>() < self.loss {
            return Fate::Lost { reported: false };
        }
        let (lo, hi) = self.delay;
        Fate::Delivered {
            after: Duration::from_micros(self.rng.random_range(lo..=hi.max(lo))),
        }
    }
}

/// One incarnation's side of the network.
pub struct Port {
    net: Net,
    from: u64,
    fence: Arc<Fence>,
    events: mpsc::UnboundedSender<NetworkEvent>,
}

impl Network for Port {
    fn send(&self, msgs: Vec<Message>) {
        if !self.fence.alive() {
            return;
        }
        for m in msgs {
            let (to, snap) = (m.to, m.msg_type == MessageType::MsgSnap as i32);
            let fate = self.net.lock().fate(self.from, to);
            match fate {
                Fate::Lost { reported } => {
                    if reported {
                        let _ = self.events.send(NetworkEvent::Unreachable(to));
                    }
                    if snap {
                        let status = SnapshotStatus::Failure;
                        let _ = self.events.send(NetworkEvent::Snapshot { to, status });
                    }
                }
                Fate::Delivered { after } => {
                    let net = self.net.clone();
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let inbox = net.lock().inboxes.get(&to).cloned();
                        let delivered = inbox.is_some_and(|tx| tx.try_send(m).is_ok());
                        if snap {
                            let status = if delivered {
                                SnapshotStatus::Finish
                            } else {
                                SnapshotStatus::Failure
                            };
                            let _ = events.send(NetworkEvent::Snapshot { to, status });
                        }
                    });
                }
            }
        }
    }

    fn add_peer(&self, _id: u64, _info: &PeerInfo) {}

    fn remove_peer(&self, _id: u64) {}
}
