//! The simulated network: messages in flight ordered by delivery time, with
//! per-link loss, delay with jitter (so messages reorder), duplication, and
//! cuts in one direction or both (any partition is a set of cuts).
//!
//! All randomness comes from the caller's generator, so a run is a function
//! of its seed.

use rand::rngs::SmallRng;
use rand::Rng;
use rudder_raft::Message;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// How one link (or every link, by default) misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Fewest time units a message takes.
    pub min_delay: u64,
    /// Most time units a message takes; the delay is uniform in between,
    /// so messages sent close together can arrive in either order.
    pub max_delay: u64,
}

impl Default for LinkFaults {
    /// A healthy link: no loss, no duplicates, 1 to 3 time units.
    fn default() -> LinkFaults {
        LinkFaults {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: 1,
            max_delay: 3,
        }
    }
}

/// What became of a message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// In flight, to arrive at this time.
    InFlight(u64),
    /// In flight twice, arriving at these times.
    Duplicated(u64, u64),
    /// Lost on a lossy link.
    Dropped,
    /// The link is cut.
    Cut,
}

/// A message whose delivery time came.
#[derive(Clone, Debug, PartialEq)]
pub enum Arrival {
    /// It reached its receiver.
    Arrived(Message),
    /// Its link was cut while it was in flight.
    Lost(Message),
}

#[derive(Debug)]
struct InFlight {
    at: u64,
    seq: u64,
    message: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Messages in flight between simulated nodes.
#[derive(Debug, Default)]
pub struct Network {
    /// Faults of every link without its own entry in `links`.
    pub faults: LinkFaults,
    /// Faults of particular links `(from, to)`.
    pub links: BTreeMap<(u64, u64), LinkFaults>,
    cut: BTreeSet<(u64, u64)>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
}

impl Network {
    /// The faults of the link `from -> to`.
    pub fn link(&self, from: u64, to: u64) -> LinkFaults {
        self.links.get(&(from, to)).copied().unwrap_or(self.faults)
    }

    /// Cuts `from -> to` (one way): what is in flight on it is lost too.
    pub fn cut(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    /// Cuts every link between the groups `a` and `b`, both ways.
    pub fn partition(&mut self, a: &[u64], b: &[u64]) {
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    /// Whether `from -> to` is cut.
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Restores every cut link (lossy links stay lossy).
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Hands `m` to the network at time `now`.
    pub fn send(&mut self, now: u64, m: Message, rng: &mut SmallRng) -> Sent {
        if self.is_cut(m.from, m.to) {
            return Sent::Cut;
        }
        let f = self.link(m.from, m.to);
        if f.drop > 0.0 && rng.random_bool(f.drop) {
            return Sent::Dropped;
        }
        let delays = f.min_delay..=f.max_delay.max(f.min_delay);
        let at = now + rng.random_range(delays.clone());
        if f.duplicate > 0.0 && rng.random_bool(f.duplicate) {
            let again = now + rng.random_range(delays);
            self.push(again, m.clone());
            self.push(at, m);
            return Sent::Duplicated(at, again);
        }
        self.push(at, m);
        Sent::InFlight(at)
    }

    fn push(&mut self, at: u64, message: Message) {
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq: self.seq,
            message,
        }));
    }

    /// The next message due at or before `now`: it arrives, or is lost if
    /// its link was cut while it was in flight (a sender's transport would
    /// notice, so the sender can be told).
    pub fn next_due(&mut self, now: u64) -> Option<Arrival> {
        if self.in_flight.peek().is_none_or(|f| f.0.at > now) {
            return None;
        }
        let Reverse(f) = self.in_flight.pop()?;
        Some(if self.is_cut(f.message.from, f.message.to) {
            Arrival::Lost(f.message)
        } else {
            Arrival::Arrived(f.message)
        })
    }

    /// How many messages are in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rudder_raft::MessageType;

    fn msg(from: u64, to: u64, index: u64) -> Message {
        let mut m = Message::new(MessageType::MsgApp, from, to);
        m.index = index;
        m
    }

    #[test]
    fn jitter_reorders_and_cuts_lose() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::default();
        net.faults.max_delay = 10;
        for i in 0..50 {
            assert!(matches!(
                net.send(0, msg(1, 2, i), &mut rng),
                Sent::InFlight(_)
            ));
        }
        let mut order = Vec::new();
        while let Some(Arrival::Arrived(m)) = net.next_due(10) {
            order.push(m.index);
        }
        assert_eq!(order.len(), 50, "all arrive by the largest delay");
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "some reordered: {order:?}"
        );

        net.send(0, msg(1, 2, 0), &mut rng);
        net.cut(1, 2);
        assert!(
            matches!(net.next_due(100), Some(Arrival::Lost(_))),
            "cut while in flight"
        );
        assert_eq!(net.next_due(100), None);
        assert_eq!(net.send(0, msg(1, 2, 0), &mut rng), Sent::Cut);
        assert!(
            matches!(net.send(0, msg(2, 1, 0), &mut rng), Sent::InFlight(_)),
            "one way"
        );
    }

    #[test]
    fn loss_and_duplication_follow_their_probabilities() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut net = Network::default();
        net.faults.drop = 0.5;
        net.faults.duplicate = 0.5;
        let outcomes: Vec<Sent> = (0..1000)
            .map(|i| net.send(0, msg(1, 2, i), &mut rng))
            .collect();
        let dropped = outcomes.iter().filter(|s| **s == Sent::Dropped).count();
        let dup = outcomes
            .iter()
            .filter(|s| matches!(s, Sent::Duplicated(..)))
            .count();
        assert!((400..600).contains(&dropped), "{dropped} of 1000 dropped");
        assert!((180..320).contains(&dup), "{dup} of 1000 duplicated");
    }
}
