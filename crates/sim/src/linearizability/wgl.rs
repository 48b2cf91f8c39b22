//! The search for a linearization of one partition: Wing and Gong's
//! algorithm with Lowe's cache of explored configurations.

use super::bitset::Bitset;
use super::explored::Explored;
use super::{Model, Operation};
use std::collections::HashMap;
use std::hash::Hash;

/// What the search of one partition found.
pub(super) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; where the search got stuck.
    NotLinearizable(Stuck),
    /// The budget ran out first.
    OutOfBudget,
}

/// Where the search of a partition that is not linearizable got stuck, as
/// indexes into the history; see [`Counterexample`](super::Counterexample)
/// for `linearized` and `next`.
pub(super) struct Stuck {
    /// A partial linearization with as many operations of known outcome as
    /// any, in linearization order.
    pub(super) linearized: Vec<usize>,
    /// The operations of known outcome that could follow it by real time,
    /// each rejected by the model; ascending.
    pub(super) next: Vec<usize>,
    /// The operations called no later than the earliest return of those
    /// not in `linearized`; ascending. They are not linearizable by
    /// themselves: they hold more operations of known outcome than
    /// `linearized`, and any partial linearization of theirs is one of the
    /// whole partition, as the others are all called later.
    pub(super) called: Vec<usize>,
}

/// The steps the search may still take, shared by all partitions and by
/// the shrinking of a counterexample.
pub(super) struct Steps {
    left: Option<u64>,
}

impl Steps {
    /// `budget` steps, or unbounded for `None`.
    pub(super) fn new(budget: Option<u64>) -> Steps {
        Steps { left: budget }
    }

    /// Spends one step; `false` when none is left.
    fn take(&mut self) -> bool {
        match &mut self.left {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

/// One event of a partition: an operation's call or its return.
#[derive(Clone, Copy)]
struct Event {
    /// When it happened (a return never before its call).
    time: u64,
    /// Whether it is a return; calls sort before returns at the same time,
    /// so operations that touch at an instant are concurrent.
    is_return: bool,
    /// The operation, as an index into the partition.
    op: usize,
}

/// How the search treats an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Of known outcome: it takes effect before its return, with the
    /// output it returned.
    Known,
    /// Of known outcome, but relaxed: it takes effect before its return,
    /// with any output, or it has no effect at all (it is then linearized
    /// as a no-op, which changes no state).
    Relaxed,
    /// Of unknown outcome: it takes effect at any instant after its call,
    /// with any output, or never.
    Unknown,
}

/// The role of each operation of `ops`, those in `relaxed` relaxed.
fn roles<I, O>(history: &[Operation<I, O>], ops: &[usize], relaxed: &Bitset) -> Vec<Role> {
    let role = |i: usize| match history[i].ret {
        None => Role::Unknown,
        Some(_) if relaxed.contains(i) => Role::Relaxed,
        Some(_) => Role::Known,
    };
    ops.iter().map(|&i| role(i)).collect()
}

/// The operations linearized so far, as indexes into the partition; those
/// of unknown outcome apart, for [`Explored`].
struct Linearized {
    known: Bitset,
    unknown: Bitset,
}

impl Linearized {
    /// None of `ops` operations.
    fn new(ops: usize) -> Linearized {
        Linearized {
            known: Bitset::new(ops),
            unknown: Bitset::new(ops),
        }
    }

    /// Adds `op`, of role `role`.
    fn insert(&mut self, op: usize, role: Role) {
        match role {
            Role::Unknown => self.unknown.insert(op),
            Role::Known | Role::Relaxed => self.known.insert(op),
        }
    }

    /// Removes `op`.
    fn remove(&mut self, op: usize) {
        self.known.remove(op);
        self.unknown.remove(op);
    }
}

/// The partition's events in time order: a call, and a return for each
/// operation whose return is known (an unknown return never arrives).
fn events<I, O>(history: &[Operation<I, O>], ops: &[usize]) -> Vec<Event> {
    let mut events = Vec::with_capacity(2 * ops.len());
    for (op, o) in ops.iter().map(|&i| &history[i]).enumerate() {
        events.push(Event {
            time: o.call,
            is_return: false,
            op,
        });
        if let Some(ret) = o.ret {
            events.push(Event {
                time: ret.max(o.call),
                is_return: true,
                op,
            });
        }
    }
    events.sort_by_key(|e| (e.time, e.is_return, e.op));
    events
}

/// The events as a doubly linked list that entries can be lifted out of and
/// put back into (in reverse order) in constant time. Node 0 is the head
/// sentinel, node `i + 1` is event `i`, and the last node the tail sentinel.
struct List {
    /// Each node's successor (the tail's is past the end).
    next: Vec<usize>,
    /// Each node's predecessor (the head's is itself).
    prev: Vec<usize>,
    /// For each node holding a call, the node holding its return, if known.
    ret_node: Vec<Option<usize>>,
    /// The events, in time order.
    events: Vec<Event>,
}

/// The head sentinel's node.
const HEAD: usize = 0;

impl List {
    /// The list of `events`, which are those of `ops` operations.
    fn new(events: Vec<Event>, ops: usize) -> List {
        let n = events.len() + 2;
        let mut ret_of_op = vec![None; ops];
        for (i, e) in events.iter().enumerate() {
            if e.is_return {
                ret_of_op[e.op] = Some(i + 1);
            }
        }
        let mut ret_node = vec![None; n];
        for (i, e) in events.iter().enumerate() {
            if !e.is_return {
                ret_node[i + 1] = ret_of_op[e.op];
            }
        }
        List {
            next: (1..=n).collect(),
            prev: (0..n).map(|i| i.saturating_sub(1)).collect(),
            ret_node,
            events,
        }
    }

    /// The event at `node`, or `None` for a sentinel.
    fn event(&self, node: usize) -> Option<Event> {
        node.checked_sub(1)
            .and_then(|i| self.events.get(i))
            .copied()
    }

    /// Takes `node` out, leaving its own links for [`List::relink`].
    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    /// Puts back `node`, whose neighbours must be as when it was taken out.
    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        self.prev[n] = node;
    }

    /// Takes the call at `node` and its return out of the list.
    fn lift(&mut self, node: usize) {
        self.unlink(node);
        if let Some(r) = self.ret_node[node] {
            self.unlink(r);
        }
    }

    /// Undoes the latest [`List::lift`], which must have been of `node`.
    fn unlift(&mut self, node: usize) {
        if let Some(r) = self.ret_node[node] {
            self.relink(r);
        }
        self.relink(node);
    }
}

/// For each operation of the partition with an unknown return, the nearest
/// one before it in list order with an equal input and an unknown return:
/// its twin. Twins are interchangeable, so the search only ever linearizes
/// the earliest twin not yet linearized.
fn twins<I: Eq + Hash, O>(
    history: &[Operation<I, O>],
    ops: &[usize],
    roles: &[Role],
    events: &[Event],
) -> Vec<Option<usize>> {
    let mut twin = vec![None; ops.len()];
    let mut latest: HashMap<&I, usize> = HashMap::new();
    for e in events.iter().filter(|e| !e.is_return) {
        if roles[e.op] == Role::Unknown {
            twin[e.op] = latest.insert(&history[ops[e.op]].input, e.op);
        }
    }
    twin
}

/// The state after `o`, of role `role`, takes effect from `state`, if
/// linearizing it there is worth exploring: the model accepts it, and, if
/// its outcome is unknown, it changes the state (one that changes nothing
/// may as well never happen).
fn apply<M: Model>(
    model: &M,
    state: &M::State,
    o: &Operation<M::Input, M::Output>,
    role: Role,
) -> Option<M::State> {
    match role {
        Role::Known => model.step(state, &o.input, o.output.as_ref()),
        Role::Relaxed => model.step(state, &o.input, None),
        Role::Unknown => model.step(state, &o.input, None).filter(|s| s != state),
    }
}

/// Searches for a linearization of the operations `ops` (indexes into
/// `history`, one partition, ascending), relaxing those of known outcome in
/// `relaxed` (history indexes): each may return anything or have no effect,
/// so that the shrinking of a counterexample can tell which are needed.
pub(super) fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    relaxed: &Bitset,
    steps: &mut Steps,
) -> Outcome {
    let roles = roles(history, ops, relaxed);
    let mut list = List::new(events(history, ops), ops.len());
    let twin = twins(history, ops, &roles, &list.events);
    // Operations with a known return not yet linearized; the search is done
    // when none is left, as the unknown ones may never take effect.
    let mut required = list.events.iter().filter(|e| e.is_return).count();
    let mut state = model.init();
    let mut linearized = Linearized::new(ops.len());
    let mut explored = Explored::new();
    // The call nodes linearized, in order, with the state before each and
    // whether it went as a no-op.
    let mut stack: Vec<(usize, M::State, bool)> = Vec::new();
    // The stack when `required` was first at its lowest.
    let mut longest: Vec<usize> = Vec::new();
    let mut fewest_required = required;
    let mut node = list.next[HEAD];
    // Whether to try `node` as a no-op: a relaxed operation whose effect
    // was tried already.
    let mut noop = false;
    loop {
        if required == 0 {
            return Outcome::Linearizable;
        }
        if !steps.take() {
            return Outcome::OutOfBudget;
        }
        let call = match list.event(node) {
            Some(call) if !call.is_return => call,
            // A return (its operation must come first) or the end of the
            // list: no further candidate, so undo the latest choice.
            _ => {
                let Some((call_node, before, was_noop)) = stack.pop() else {
                    return Outcome::NotLinearizable(stuck(&list, ops, &roles, &longest));
                };
                state = before;
                list.unlift(call_node);
                let call = list.event(call_node).map(|call| call.op);
                if let Some(op) = call {
                    linearized.remove(op);
                }
                if list.ret_node[call_node].is_some() {
                    required += 1;
                }
                // A relaxed operation's effect has been explored; its no-op
                // is next.
                noop = !was_noop && call.is_some_and(|op| roles[op] == Role::Relaxed);
                node = if noop {
                    call_node
                } else {
                    list.next[call_node]
                };
                continue;
            }
        };
        let o = &history[ops[call.op]];
        let role = roles[call.op];
        // An unknown operation waits for its earlier twin to go first.
        let twin_waits = twin[call.op].is_some_and(|t| !linearized.unknown.contains(t));
        let after = if noop {
            Some(state.clone())
        } else if twin_waits {
            None
        } else {
            apply(model, &state, o, role)
        };
        if let Some(after) = after {
            linearized.insert(call.op, role);
            if explored.insert(&linearized.known, &linearized.unknown, &after) {
                stack.push((node, std::mem::replace(&mut state, after), noop));
                list.lift(node);
                if role != Role::Unknown {
                    required -= 1;
                    if required < fewest_required {
                        fewest_required = required;
                        longest = stack.iter().map(|&(n, _, _)| n).collect();
                    }
                }
                node = list.next[HEAD];
                noop = false;
                continue;
            }
            linearized.remove(call.op);
        }
        if role == Role::Relaxed && !noop {
            noop = true;
        } else {
            node = list.next[node];
            noop = false;
        }
    }
}

/// Where the search got stuck, given `longest`, the call nodes of a
/// partial linearization with as many operations of known outcome as any.
fn stuck(list: &List, ops: &[usize], roles: &[Role], longest: &[usize]) -> Stuck {
    let mut done = Bitset::new(ops.len());
    let mut linearized = Vec::with_capacity(longest.len());
    for call in longest.iter().filter_map(|&n| list.event(n)) {
        done.insert(call.op);
        linearized.push(ops[call.op]);
    }
    // The calls before the earliest return not in `longest`.
    let calls: Vec<Event> = list
        .events
        .iter()
        .take_while(|e| !e.is_return || done.contains(e.op))
        .filter(|e| !e.is_return)
        .copied()
        .collect();
    let mut next: Vec<usize> = calls
        .iter()
        .filter(|e| !done.contains(e.op) && roles[e.op] != Role::Unknown)
        .map(|e| ops[e.op])
        .collect();
    next.sort_unstable();
    let mut called: Vec<usize> = calls.iter().map(|e| ops[e.op]).collect();
    called.sort_unstable();
    Stuck {
        linearized,
        next,
        called,
    }
}
