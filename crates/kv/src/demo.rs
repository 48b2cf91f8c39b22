//! `rudder demo`: a 3-member cluster on localhost in one process, its data
//! in a temporary folder (or one you name), until Ctrl-C.

use crate::server::{Server, ServerConfig};
use anyhow::Context;
use rudder_node::runtime::{Members, PeerInfo};
use std::path::PathBuf;
use std::time::Duration;

/// `rudder demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Keep the members' data here (one folder each) instead of in a
    /// temporary folder removed on exit.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The first member's HTTP port; members use this port and the next
    /// for HTTP and Raft, 1000 apart (2379/2380, 3379/3380, 4379/4380).
    #[arg(long, default_value_t = 2379)]
    pub base_port: u16,
}

/// The members of the demo cluster: IDs 1 to 3 on localhost.
pub fn members(base_port: u16) -> anyhow::Result<Members> {
    (0..3u16)
        .map(|i| {
            let http = base_port
                .checked_add(1000 * i)
                .filter(|p| p.checked_add(1).is_some())
                .context("--base-port leaves no room for three members")?;
            Ok((
                u64::from(i) + 1,
                PeerInfo {
                    raft_addr: format!("127.0.0.1:{}", http + 1),
                    http_addr: format!("127.0.0.1:{http}"),
                    replicated: false,
                },
            ))
        })
        .collect()
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary data folder")?),
    };
    let root = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => unreachable!("a temporary folder exists when none is named"),
    };
    let peers = members(args.base_port)?;
    let mut servers = Vec::new();
    for (&id, info) in &peers {
        let config = ServerConfig {
            id,
            cluster_id: 1,
            raft_listen: info.raft_addr.parse().context("a demo address")?,
            http_listen: info.http_addr.parse().context("a demo address")?,
            peers: peers.clone(),
            join: false,
            data_dir: root.join(id.to_string()),
            tick: Duration::from_millis(100),
            snapshot_every: 10_000,
            keep_entries: 5_000,
            max_body: 1 << 20,
        };
        let server = Server::start(config)
            .await
            .with_context(|| format!("starting member {id} (is port {} free?)", info.http_addr))?;
        servers.push(server);
    }
    let first = &peers[&1].http_addr;
    println!(
        "rudder demo: 3 members on localhost, data in {}\n\n\
         members:\n{}\n\
         try:\n  \
         curl -L -X PUT -d 'hello' http://{first}/v1/kv/greeting\n  \
         curl http://{first}/v1/kv/greeting\n  \
         curl 'http://{first}/v1/kv?prefix=gr'\n  \
         curl http://{first}/v1/cluster\n  \
         cargo run --release -p rudder-kv -- bench --clients 64 --duration 10\n\n\
         (-L follows the redirect from a follower to the leader.) Ctrl-C stops.",
        root.display(),
        peers
            .iter()
            .map(|(id, p)| format!("  {id}: http {}  raft {}\n", p.http_addr, p.raft_addr))
            .collect::<String>(),
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping the demo cluster");
    for server in servers {
        server.shutdown().await;
    }
    drop(temp);
    Ok(())
}
