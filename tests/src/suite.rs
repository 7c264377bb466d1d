//! [`run_suite`]: runs a test binary's tests against one shared fixture (a stack of real
//! processes is too slow to start per test). Output and flags are libtest's, through
//! `libtest-mimic`; a panicking test fails alone; the fixture is dropped — every process
//! stopped — before the binary exits, whatever the outcome.

use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};

/// A named test over the shared fixture.
pub type Test<S> = (&'static str, fn(&S));

/// Starts the fixture (unless only listing), runs the tests, stops the fixture, exits.
/// A fixture that cannot start fails the binary with the reason, never skips it.
pub fn run_suite<S: Send + Sync + 'static>(start: impl FnOnce() -> Result<S, String>, tests: &[Test<S>]) -> ! {
    let mut args = Arguments::from_args();
    // The tests share one fixture (one Redis, one worker): run them one at a time unless
    // the caller explicitly asks otherwise.
    args.test_threads.get_or_insert(1);
    let fixture = if args.list {
        None
    } else {
        match start() {
            Ok(fixture) => Some(Arc::new(fixture)),
            Err(error) => {
                eprintln!("error: the end-to-end fixture could not start: {error}");
                std::process::exit(1);
            }
        }
    };
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            let fixture = fixture.clone();
            Trial::test(name, move || {
                test(fixture.as_deref().expect("the fixture runs whenever tests run"));
                Ok(())
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // `exit` skips destructors: stop the processes first.
    drop(fixture);
    conclusion.exit()
}
