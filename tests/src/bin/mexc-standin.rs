//! `mexc-standin`: MEXC Spot v3's documented responses, signature checks and fault injection
//! on 127.0.0.1. See `edgesync_e2e::standin`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use edgesync_e2e::standin::{router, StandinConfig};

/// Serves a MEXC Spot v3 stand-in on 127.0.0.1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; must be a loopback address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8078")]
    listen: SocketAddr,
    /// Directory of MEXC's documented example responses.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/mexc"))]
    fixtures: PathBuf,
    /// The API key signed calls must carry.
    #[arg(long, env = "STANDIN_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The secret signatures are checked with.
    #[arg(long, env = "STANDIN_API_SECRET", hide_env_values = true)]
    api_secret: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("mexc-standin: refusing to listen on {}: loopback addresses only", args.listen);
        std::process::exit(2);
    }
    let config = StandinConfig { fixtures: args.fixtures, api_key: args.api_key, api_secret: args.api_secret };
    let app = match router(config) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("mexc-standin: {error}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mexc-standin: cannot listen on {}: {error}", args.listen);
            std::process::exit(1);
        }
    };
    println!("mexc-standin listening on {}", listener.local_addr().expect("bound socket has an address"));
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("mexc-standin: {error}");
        std::process::exit(1);
    }
}
