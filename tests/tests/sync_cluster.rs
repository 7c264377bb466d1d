//! The `sync` suite's own assertions with a Redis Cluster (3 masters, a replica each) behind
//! the gateway instead of one redis-server: `Backing::of_suite` reads this crate's name.

#[path = "sync.rs"]
mod on_either;

fn main() {
    on_either::main()
}
