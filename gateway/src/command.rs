//! A request's arguments (bytes, `args[0]` the name) as the driver sends them: one place,
//! for the single-Redis path ([`crate::server`]) and the cluster's ([`crate::cluster`]).

/// `args` as a driver command; binary arguments pass unchanged.
pub fn command(args: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::cmd(&String::from_utf8_lossy(&args[0]));
    for arg in &args[1..] {
        cmd.arg(arg.as_slice());
    }
    cmd
}
