//! Captures log lines, to check that a refusal or a bad frame is logged.
//!
//! A global subscriber (installed once per test binary): thread-local ones
//! miss events from tasks on other threads, and mix badly with the
//! callsite cache when tests run in parallel.

use std::fmt::{Debug, Write as _};
use std::sync::{Mutex, Once};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Starts capturing (every test that checks logs calls it first).
pub fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other subscriber");
    });
}

/// Whether a line was logged at `level` containing every one of `parts`.
/// A line reads `WARN message=... field=value ...`.
pub fn logged(level: tracing::Level, parts: &[&str]) -> bool {
    let prefix = level.to_string();
    LINES
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.starts_with(&prefix) && parts.iter().all(|p| line.contains(p)))
}

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = event.metadata().level().to_string();
        event.record(&mut Line(&mut line));
        LINES.lock().unwrap().push(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}
