//! `upstash-gateway`: the Upstash Redis REST protocol in front of a real redis-server.
//! See `edgesync_e2e::gateway` for the protocol it speaks.

use std::net::SocketAddr;

use clap::Parser;
use edgesync_e2e::gateway::{router, GatewayConfig};

/// Serves the Upstash Redis REST API on 127.0.0.1, backed by a Redis server.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; must be a loopback address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8079")]
    listen: SocketAddr,
    /// The Redis server behind the gateway.
    #[arg(long, env = "GATEWAY_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The bearer token clients must present.
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    token: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!("upstash-gateway: refusing to listen on {}: loopback addresses only", args.listen);
        std::process::exit(2);
    }
    let app = match router(GatewayConfig { redis_url: args.redis_url, token: args.token }).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("upstash-gateway: bad Redis URL: {error}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("upstash-gateway: cannot listen on {}: {error}", args.listen);
            std::process::exit(1);
        }
    };
    println!("upstash-gateway listening on {}", listener.local_addr().expect("bound socket has an address"));
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("upstash-gateway: {error}");
        std::process::exit(1);
    }
}
