//! Log output: `tracing` to standard error, filtered by `RUST_LOG`
//! (default `info` for rudder's crates, `warn` for the rest).

use std::io::IsTerminal;

/// Installs the subscriber; a second call does nothing. Colours only on a
/// terminal.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,rudder_kv=info,rudder_node=info,rudder_transport=info,rudder_storage=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
