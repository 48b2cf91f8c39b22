//! The commands of the script language, typed and checked: a directive
//! becomes a [`Command`], or an error naming what is wrong with it.

use super::parse::{Directive, Value};
use bytes::Bytes;
use rudder_raft::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, Config, MessageType,
    ReadOnlyOption, SnapshotStatus,
};
use std::str::FromStr;
use thiserror::Error;

/// A command line that does not make a valid command.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CommandError {
    /// No command has this name.
    #[error("unknown command `{0}`")]
    Unknown(String),
    /// A required argument is missing.
    #[error("`{command}` needs {what}")]
    Missing {
        /// The command.
        command: String,
        /// What is missing.
        what: &'static str,
    },
    /// An argument whose value does not parse.
    #[error("`{command}`: `{arg}` is not {expected}")]
    BadValue {
        /// The command.
        command: String,
        /// The argument as written.
        arg: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An argument the command does not take.
    #[error("`{command}` does not take `{arg}`")]
    Unexpected {
        /// The command.
        command: String,
        /// The argument as written.
        arg: String,
    },
    /// Input lines given to a command that reads none.
    #[error("`{0}` takes no input lines")]
    Input(String),
}

/// A command of the script language; see the module docs of
/// [`scenario`](super) for what each does.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `add-nodes`: new nodes, founding or joining.
    AddNodes(AddNodes),
    /// `campaign id`.
    Campaign(u64),
    /// `propose id data`.
    Propose(u64, Bytes),
    /// `propose-conf-change id v4 l5 r1 [transition=...]`.
    ProposeConfChange(u64, ConfChangeV2),
    /// `tick id... [times=n]`.
    Tick(Vec<u64>, usize),
    /// `tick-heartbeat id`.
    TickHeartbeat(u64),
    /// `tick-election id`.
    TickElection(u64),
    /// `transfer-leadership from to`.
    TransferLeadership(u64, u64),
    /// `forget-leader id`.
    ForgetLeader(u64),
    /// `read-index id ctx`.
    ReadIndex(u64, Bytes),
    /// `report-unreachable leader peer`.
    ReportUnreachable(u64, u64),
    /// `report-snapshot leader peer [failure]`.
    ReportSnapshot(u64, u64, SnapshotStatus),
    /// `compact id index`.
    Compact(u64, u64),
    /// `process-ready [id...]`.
    ProcessReady(Vec<u64>),
    /// `deliver-msgs [id...] [type=T] [from=id] [drop]`.
    DeliverMsgs(MsgFilter),
    /// `stabilize [id...]`.
    Stabilize(Vec<u64>),
    /// `partition (ids) (ids)...`.
    Partition(Vec<Vec<u64>>),
    /// `cut from to`.
    Cut(u64, u64),
    /// `heal`.
    Heal,
    /// `crash id`.
    Crash(u64),
    /// `restart id`.
    Restart(u64),
    /// `status id`.
    Status(u64),
    /// `raft-log id`.
    RaftLog(u64),
    /// `raft-state`.
    RaftState,
}

/// The arguments of `add-nodes`.
#[derive(Clone, Debug, PartialEq)]
pub struct AddNodes {
    /// How many nodes, numbered on from the highest existing ID.
    pub count: u64,
    /// The founding voters; empty for nodes that join later.
    pub voters: Vec<u64>,
    /// With `voters`: start from a log of entries with these terms
    /// instead of bootstrapping.
    pub log: Option<Vec<u64>>,
    /// With `log`: the term to start in (default: the last entry's).
    pub term: Option<u64>,
    /// The settings, with ID and seed filled in per node.
    pub config: Config,
}

/// Which queued messages `deliver-msgs` takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsgFilter {
    /// Receivers (empty: any).
    pub to: Vec<u64>,
    /// Sender, if given.
    pub from: Option<u64>,
    /// Type, if given.
    pub kind: Option<MessageType>,
    /// Drop them instead of delivering.
    pub drop: bool,
}

impl MsgFilter {
    /// Whether the message `(from, to, kind)` is selected.
    pub fn matches(&self, from: u64, to: u64, kind: Option<MessageType>) -> bool {
        (self.to.is_empty() || self.to.contains(&to))
            && self.from.is_none_or(|f| f == from)
            && self.kind.is_none_or(|k| Some(k) == kind)
    }
}

impl Command {
    /// The command a directive names, with its arguments checked.
    pub fn parse(d: &Directive, input: &[String]) -> Result<Command, CommandError> {
        if !input.is_empty() {
            return Err(CommandError::Input(d.name.clone()));
        }
        let mut a = Args::new(d);
        let cmd = match d.name.as_str() {
            "add-nodes" => Command::AddNodes(add_nodes(&mut a)?),
            "campaign" => Command::Campaign(a.id("a node ID")?),
            "propose" => Command::Propose(a.id("a node ID")?, a.data("the data to propose")?),
            "propose-conf-change" => {
                let id = a.id("a node ID")?;
                Command::ProposeConfChange(id, conf_change(&mut a)?)
            }
            "tick" => {
                let times = a.key("times", "a number of ticks")?.unwrap_or(1);
                Command::Tick(a.ids_at_least_one("node IDs")?, times)
            }
            "tick-heartbeat" => Command::TickHeartbeat(a.id("a node ID")?),
            "tick-election" => Command::TickElection(a.id("a node ID")?),
            "transfer-leadership" => {
                Command::TransferLeadership(a.id("the leader's ID")?, a.id("the transferee's ID")?)
            }
            "forget-leader" => Command::ForgetLeader(a.id("a node ID")?),
            "read-index" => Command::ReadIndex(a.id("a node ID")?, a.data("a request context")?),
            "report-unreachable" => {
                Command::ReportUnreachable(a.id("the leader's ID")?, a.id("the peer's ID")?)
            }
            "report-snapshot" => {
                let failed = a.flag("failure");
                let status = if failed {
                    SnapshotStatus::Failure
                } else {
                    SnapshotStatus::Finish
                };
                Command::ReportSnapshot(a.id("the leader's ID")?, a.id("the peer's ID")?, status)
            }
            "compact" => Command::Compact(a.id("a node ID")?, a.id("the index to compact to")?),
            "process-ready" => Command::ProcessReady(a.ids()?),
            "deliver-msgs" => Command::DeliverMsgs(msg_filter(&mut a)?),
            "stabilize" => Command::Stabilize(a.ids()?),
            "partition" => Command::Partition(a.groups()?),
            "cut" => Command::Cut(a.id("the sender's ID")?, a.id("the receiver's ID")?),
            "heal" => Command::Heal,
            "crash" => Command::Crash(a.id("a node ID")?),
            "restart" => Command::Restart(a.id("a node ID")?),
            "status" => Command::Status(a.id("a node ID")?),
            "raft-log" => Command::RaftLog(a.id("a node ID")?),
            "raft-state" => Command::RaftState,
            other => return Err(CommandError::Unknown(other.to_string())),
        };
        a.finish()?;
        Ok(cmd)
    }
}

fn add_nodes(a: &mut Args) -> Result<AddNodes, CommandError> {
    let count = a.id("a number of nodes")?;
    let voters = a.list("voters")?.unwrap_or_default();
    let log = a.list("log")?;
    let term = a.key("term", "a term")?;
    let mut c = Config::new(1);
    if let Some(v) = a.key("pre-vote", "true or false")? {
        c.pre_vote = v;
    }
    if let Some(v) = a.key("check-quorum", "true or false")? {
        c.check_quorum = v;
    }
    if let Some(v) = a.key("step-down-on-removal", "true or false")? {
        c.step_down_on_removal = v;
    }
    if let Some(v) = a.key("election", "a number of ticks")? {
        c.election_tick = v;
    }
    if let Some(v) = a.key("heartbeat", "a number of ticks")? {
        c.heartbeat_tick = v;
    }
    if let Some(v) = a.key("max-size", "a number of bytes")? {
        c.max_size_per_msg = v;
    }
    if let Some(v) = a.key("max-inflight", "a number of messages")? {
        c.max_inflight_msgs = v;
    }
    if let Some(v) = a.key::<ReadOnly>("read-only", "safe or lease")? {
        c.read_only_option = v.0;
    }
    if voters.is_empty() && (log.is_some() || term.is_some()) {
        return Err(a.missing("voters=(...) with log= or term="));
    }
    Ok(AddNodes {
        count,
        voters,
        log,
        term,
        config: c,
    })
}

fn conf_change(a: &mut Args) -> Result<ConfChangeV2, CommandError> {
    let transition = match a.key::<String>("transition", "auto, implicit or explicit")? {
        None => ConfChangeTransition::Auto,
        Some(t) => match t.as_str() {
            "auto" => ConfChangeTransition::Auto,
            "implicit" => ConfChangeTransition::Implicit,
            "explicit" => ConfChangeTransition::Explicit,
            _ => return Err(a.bad(format!("transition={t}"), "auto, implicit or explicit")),
        },
    };
    let mut changes = Vec::new();
    for word in a.words() {
        let mut chars = word.chars();
        let change_type = match chars.next() {
            Some('v') => Some(ConfChangeType::AddNode),
            Some('l') => Some(ConfChangeType::AddLearnerNode),
            Some('r') => Some(ConfChangeType::RemoveNode),
            _ => None,
        };
        let (Some(change_type), Ok(node_id)) = (change_type, chars.as_str().parse()) else {
            return Err(a.bad(word, "a change like v4, l5 or r1"));
        };
        changes.push(ConfChangeSingle {
            change_type: change_type as i32,
            node_id,
        });
    }
    Ok(ConfChangeV2 {
        transition: transition as i32,
        changes,
        context: Bytes::new(),
    })
}

fn msg_filter(a: &mut Args) -> Result<MsgFilter, CommandError> {
    let drop = a.flag("drop");
    let from = a.key("from", "a node ID")?;
    let kind = match a.key::<String>("type", "a message type")? {
        None => None,
        Some(t) => {
            let name = t.strip_prefix("Msg").unwrap_or(&t);
            let found = (0..64)
                .filter_map(|i| MessageType::try_from(i).ok())
                .find(|k| k.short_name() == name);
            Some(found.ok_or_else(|| a.bad(format!("type={t}"), "a message type like MsgApp"))?)
        }
    };
    Ok(MsgFilter {
        to: a.ids()?,
        from,
        kind,
        drop,
    })
}

/// `safe` or `lease`.
struct ReadOnly(ReadOnlyOption);

impl FromStr for ReadOnly {
    type Err = ();
    fn from_str(s: &str) -> Result<ReadOnly, ()> {
        match s {
            "safe" => Ok(ReadOnly(ReadOnlyOption::Safe)),
            "lease" => Ok(ReadOnly(ReadOnlyOption::LeaseBased)),
            _ => Err(()),
        }
    }
}

/// A directive's arguments, consumed as a command reads them; whatever is
/// left at the end is an error.
struct Args {
    command: String,
    /// Positional arguments, in order.
    positional: Vec<Value>,
    /// `key=value` arguments.
    keyed: Vec<(String, Value)>,
}

impl Args {
    fn new(d: &Directive) -> Args {
        let mut positional = Vec::new();
        let mut keyed = Vec::new();
        for arg in &d.args {
            match &arg.key {
                Some(k) => keyed.push((k.clone(), arg.value.clone())),
                None => positional.push(arg.value.clone()),
            }
        }
        Args {
            command: d.name.clone(),
            positional,
            keyed,
        }
    }

    fn missing(&self, what: &'static str) -> CommandError {
        CommandError::Missing {
            command: self.command.clone(),
            what,
        }
    }

    fn bad(&self, arg: String, expected: &'static str) -> CommandError {
        CommandError::BadValue {
            command: self.command.clone(),
            arg,
            expected,
        }
    }

    /// The next positional argument, a number.
    fn id(&mut self, what: &'static str) -> Result<u64, CommandError> {
        match self.positional.first() {
            None => Err(self.missing(what)),
            Some(Value::Word(w)) => {
                let n = w.parse().map_err(|_| self.bad(w.clone(), what))?;
                self.positional.remove(0);
                Ok(n)
            }
            Some(Value::List(l)) => Err(self.bad(format!("({})", l.join(",")), what)),
        }
    }

    /// The next positional argument, as bytes.
    fn data(&mut self, what: &'static str) -> Result<Bytes, CommandError> {
        match self.positional.first() {
            Some(Value::Word(w)) => {
                let b = Bytes::from(w.clone());
                self.positional.remove(0);
                Ok(b)
            }
            _ => Err(self.missing(what)),
        }
    }

    /// All remaining positional numbers.
    fn ids(&mut self) -> Result<Vec<u64>, CommandError> {
        let mut out = Vec::new();
        while !self.positional.is_empty() {
            out.push(self.id("node IDs")?);
        }
        Ok(out)
    }

    /// All remaining positional numbers, at least one.
    fn ids_at_least_one(&mut self, what: &'static str) -> Result<Vec<u64>, CommandError> {
        let ids = self.ids()?;
        if ids.is_empty() {
            return Err(self.missing(what));
        }
        Ok(ids)
    }

    /// All remaining positional words.
    fn words(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.positional.retain(|v| match v {
            Value::Word(w) => {
                out.push(w.clone());
                false
            }
            Value::List(_) => true,
        });
        out
    }

    /// All remaining positional lists of numbers (at least one).
    fn groups(&mut self) -> Result<Vec<Vec<u64>>, CommandError> {
        let mut out = Vec::new();
        for v in std::mem::take(&mut self.positional) {
            match v {
                Value::List(items) => out.push(self.numbers(&items)?),
                Value::Word(w) => return Err(self.bad(w, "a group of node IDs like (1 2)")),
            }
        }
        if out.is_empty() {
            return Err(self.missing("groups of node IDs like (1) (2 3)"));
        }
        Ok(out)
    }

    fn numbers(&self, items: &[String]) -> Result<Vec<u64>, CommandError> {
        items
            .iter()
            .map(|s| s.parse().map_err(|_| self.bad(s.clone(), "a number")))
            .collect()
    }

    /// Whether the bare word `name` is among the positional arguments
    /// (removing it).
    fn flag(&mut self, name: &str) -> bool {
        let before = self.positional.len();
        self.positional
            .retain(|v| !matches!(v, Value::Word(w) if w == name));
        self.positional.len() != before
    }

    fn take_key(&mut self, key: &str) -> Option<Value> {
        let i = self.keyed.iter().position(|(k, _)| k == key)?;
        Some(self.keyed.remove(i).1)
    }

    /// `key=value`, parsed.
    fn key<T: FromStr>(
        &mut self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, CommandError> {
        match self.take_key(key) {
            None => Ok(None),
            Some(Value::Word(w)) => w
                .parse()
                .map(Some)
                .map_err(|_| self.bad(format!("{key}={w}"), expected)),
            Some(Value::List(l)) => Err(self.bad(format!("{key}=({})", l.join(",")), expected)),
        }
    }

    /// `key=(1,2,3)`.
    fn list(&mut self, key: &str) -> Result<Option<Vec<u64>>, CommandError> {
        match self.take_key(key) {
            None => Ok(None),
            Some(Value::List(items)) => self.numbers(&items).map(Some),
            Some(Value::Word(w)) => Err(self.bad(format!("{key}={w}"), "a list like (1,2,3)")),
        }
    }

    /// Fails on any argument not consumed.
    fn finish(self) -> Result<(), CommandError> {
        let leftover = self
            .keyed
            .first()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .or_else(|| self.positional.first().map(show));
        match leftover {
            Some(arg) => Err(CommandError::Unexpected {
                command: self.command,
                arg,
            }),
            None => Ok(()),
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Word(w) => w.clone(),
        Value::List(l) => format!("({})", l.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse::parse_directive;

    fn command(line: &str) -> Result<Command, CommandError> {
        Command::parse(&parse_directive(line).unwrap(), &[])
    }

    #[test]
    fn commands_check_their_arguments() {
        assert_eq!(
            command("tick 1 2 times=3"),
            Ok(Command::Tick(vec![1, 2], 3))
        );
        let Ok(Command::DeliverMsgs(f)) = command("deliver-msgs 2 type=MsgApp from=1 drop") else {
            panic!("deliver-msgs parses");
        };
        assert_eq!(f.kind, Some(MessageType::MsgApp));
        assert!(f.drop && f.matches(1, 2, Some(MessageType::MsgApp)));
        assert!(!f.matches(3, 2, Some(MessageType::MsgApp)));
        assert_eq!(
            command("campain 1").unwrap_err().to_string(),
            "unknown command `campain`"
        );
        assert_eq!(
            command("campaign one").unwrap_err().to_string(),
            "`campaign`: `one` is not a node ID"
        );
        assert_eq!(
            command("tick 1 time=3").unwrap_err().to_string(),
            "`tick` does not take `time=3`"
        );
        assert_eq!(
            command("propose-conf-change 1 x4").unwrap_err().to_string(),
            "`propose-conf-change`: `x4` is not a change like v4, l5 or r1"
        );
        assert_eq!(
            command("add-nodes 1 log=(1,2)").unwrap_err().to_string(),
            "`add-nodes` needs voters=(...) with log= or term="
        );
    }
}
