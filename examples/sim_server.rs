//! Runs the provider simulator like `switchboard simulate` (for benchmarks:
//! `cargo run --release --example sim_server -- --listen 127.0.0.1:4490`).

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: switchboard::sim::SimulateArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard::sim::run_simulate(Cli::parse().args).await
}
