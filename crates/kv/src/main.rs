//! `rudder`: run a server, a local demo cluster, client commands, or the
//! load generator. See the README for examples.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// rudder: a replicated key-value store on Raft.
#[derive(Parser, Debug)]
#[command(name = "rudder", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one server of a cluster.
    Serve(rudder_kv::server::ServeArgs),
    /// Start a 3-node cluster on localhost and print how to use it.
    Demo(rudder_kv::demo::DemoArgs),
    /// Set a key.
    Put(rudder_kv::client::PutArgs),
    /// Read a key.
    Get(rudder_kv::client::GetArgs),
    /// Delete a key.
    Del(rudder_kv::client::DelArgs),
    /// List the members of the cluster.
    Members(rudder_kv::client::EndpointArgs),
    /// Show the cluster's status.
    Status(rudder_kv::client::EndpointArgs),
    /// Load a cluster and report throughput and latency.
    Bench(rudder_kv::bench::BenchArgs),
}

fn main() -> ExitCode {
    rudder_kv::logging::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rudder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => rudder_kv::server::serve(args).await,
            Command::Demo(args) => rudder_kv::demo::run(args).await,
            Command::Put(args) => rudder_kv::client::put(args).await,
            Command::Get(args) => rudder_kv::client::get(args).await,
            Command::Del(args) => rudder_kv::client::del(args).await,
            Command::Members(args) => rudder_kv::client::members(args).await,
            Command::Status(args) => rudder_kv::client::status(args).await,
            Command::Bench(args) => rudder_kv::bench::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rudder: {e:#}");
            ExitCode::FAILURE
        }
    }
}
