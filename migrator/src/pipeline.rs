//! What runs beside a step's main thread so Redis and the migrator's CPU work at the same
//! time: for `apply`, a [`Reader`] that scans and classifies the next pages and a [`Mover`]
//! (a [`Worker`]) that runs the move scripts of journaled batches, each on a thread with its
//! own connection; `rollback` and `verify` use a worker the same way while the main thread
//! reads the next page of the journal. The main
//! thread journals page N and hands its move to the mover while the reader is already
//! classifying page N+1, and reads batch N's answers while Redis moves batch N+1.
//!
//! Both are bounded — the reader runs at most [`READ_AHEAD`] pages ahead, the main thread
//! keeps at most [`MOVES_IN_FLIGHT`] batches unanswered — so memory stays flat, and `--rate`
//! (paced on the main thread) holds the reader back too. Overlap never weakens a move: each
//! key is still compared with its journaled original inside the script, so a key classified
//! while an earlier batch was still moving is moved, refused or recognised as already moved
//! exactly as it would be one batch later. Without a [`Connector`] (a store handed in by a
//! library caller) both run inline on the caller's connection, one step after the other.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use edgesync_core::store::{Command, Reply, Store, StoreError};
use futures_executor::block_on;

use crate::connect::{ConnectError, Connector};
use crate::entry::Entry;
use crate::families::NotOwned;
use crate::plan_error::PlanError;
use crate::rules::{RuleOptions, RuleSet};
use crate::scan::{classify, Candidate, Classified, Scanner};
use crate::sides::Sides;

/// Pages the reader classifies before the main thread takes them: one per classifier, so
/// both keep Redis busy while the main thread journals (a fifth less wall time on 1 M keys
/// than one page; three were no better — docs/benchmarks.md).
pub const READ_AHEAD: usize = 2;
/// Pages classified side by side (each on a connection of its own).
pub const CLASSIFIERS: usize = 2;
/// Batches sent to the mover and not yet answered.
pub const MOVES_IN_FLIGHT: usize = 2;

/// One SCAN page, classified.
pub struct Page {
    /// Keys the scan returned that a rule owns.
    pub owned: usize,
    pub items: Vec<Classified>,
}

/// What the reader needs, owned, to run on its own thread.
pub struct ReadPlan {
    pub set: RuleSet,
    pub rule_options: RuleOptions,
    pub page_size: usize,
    /// Where the family survey keeps its scratch files.
    pub scratch: std::path::PathBuf,
}

/// Scans and classifies pages, ahead of the main thread or inline.
pub enum Reader<'a> {
    Threaded { pages: Receiver<Result<Page, PlanError>>, thread: JoinHandle<Result<NotOwned, PlanError>> },
    Inline { plan: &'a ReadPlan, sides: Sides<'a>, scanner: Box<Scanner<'a>> },
}

impl<'a> Reader<'a> {
    /// A scanning thread and [`CLASSIFIERS`] classifying workers, each on a connection of its
    /// own: classifying waits on Redis several round trips per page (behind the mover's
    /// scripts), so pages are classified side by side and handed on in scan order.
    pub fn threaded(plan: ReadPlan, connector: Connector) -> Result<Self, PlanError> {
        let (pages, taken) = sync_channel(READ_AHEAD);
        let thread = std::thread::Builder::new()
            .name("apply-scan".into())
            .spawn(move || {
                let unavailable = |e: ConnectError| PlanError::Store(StoreError::Unavailable(e.to_string()));
                let store = connector.open().map_err(unavailable)?;
                let store = store.as_ref();
                let classifiers = (0..CLASSIFIERS)
                    .map(|i| Worker::threaded(&format!("apply-classify-{i}"), connector.clone(), classify_job))
                    .collect::<Result<Vec<_>, _>>()?;
                let plan = Arc::new(plan);
                let target_prefix = &plan.rule_options.target_prefix;
                let mut scanner = Scanner::new(&plan.set, plan.page_size).surveying(target_prefix, &plan.scratch)?;
                let mut classifying = VecDeque::new();
                let mut handed = 0;
                loop {
                    let next = block_on(scanner.next_page(store));
                    let more = matches!(next, Ok(Some(_)));
                    match next {
                        Ok(Some(candidates)) => {
                            let worker = &classifiers[handed % CLASSIFIERS];
                            classifying.push_back(block_on(worker.send((Arc::clone(&plan), candidates))));
                            handed += 1;
                        }
                        Ok(None) => {}
                        Err(error) => {
                            let _ = pages.send(Err(error));
                            return Ok(NotOwned::default()); // the main thread reports the error
                        }
                    }
                    // Hand on classified pages in scan order, keeping every classifier busy.
                    while classifying.len() > if more { CLASSIFIERS } else { 0 } {
                        let page = classifying.pop_front().expect("classifying").answer();
                        let page = page.map_err(PlanError::Store).and_then(|page| page);
                        let failed = page.is_err();
                        if pages.send(page).is_err() || failed {
                            // The main thread stopped (an error there), or will report this one.
                            return Ok(NotOwned::default());
                        }
                    }
                    if !more {
                        break;
                    }
                }
                drop(pages);
                block_on(scanner.finish_survey(store, target_prefix, &plan.scratch))
            })
            .map_err(|e| PlanError::Store(StoreError::Unavailable(format!("cannot start the reader thread: {e}"))))?;
        Ok(Reader::Threaded { pages: taken, thread })
    }

    /// A reader on the caller's connection.
    pub fn inline(plan: &'a ReadPlan, sides: Sides<'a>) -> Result<Self, PlanError> {
        let scanner =
            Scanner::new(&plan.set, plan.page_size).surveying(&plan.rule_options.target_prefix, &plan.scratch)?;
        Ok(Reader::Inline { plan, sides, scanner: Box::new(scanner) })
    }

    /// The next classified page; `None` at the end of the scan.
    pub async fn next(&mut self) -> Result<Option<Page>, PlanError> {
        match self {
            Reader::Threaded { pages, .. } => {
                match pages.recv() {
                    Ok(page) => page.map(Some),
                    Err(_) => Ok(None), // the reader finished (or failed: `finish` says)
                }
            }
            Reader::Inline { plan, sides, scanner } => read_page(plan, *sides, scanner).await,
        }
    }

    /// The families' keys no rule owns, once every page is taken.
    pub async fn finish(self) -> Result<NotOwned, PlanError> {
        match self {
            Reader::Threaded { pages, thread } => {
                drop(pages);
                thread.join().unwrap_or_else(|_| {
                    Err(PlanError::Store(StoreError::Unavailable("the reader thread panicked".into())))
                })
            }
            Reader::Inline { plan, sides, scanner } => {
                (*scanner).finish_survey(sides.source, &plan.rule_options.target_prefix, &plan.scratch).await
            }
        }
    }
}

/// One page's classification, as a worker job.
fn classify_job(
    store: &dyn Store,
    (plan, candidates): (Arc<ReadPlan>, Vec<Candidate>),
) -> Job<'_, Result<Page, PlanError>> {
    Box::pin(async move {
        let owned = candidates.len();
        let items = classify(Sides::same(store), &plan.set.rules, &plan.rule_options, candidates).await?;
        Ok(Page { owned, items })
    })
}

async fn read_page(plan: &ReadPlan, sides: Sides<'_>, scanner: &mut Scanner<'_>) -> Result<Option<Page>, PlanError> {
    let Some(candidates) = scanner.next_page(sides.source).await? else { return Ok(None) };
    let owned = candidates.len();
    let items = classify(sides, &plan.set.rules, &plan.rule_options, candidates).await?;
    Ok(Some(Page { owned, items }))
}

/// A job's future, borrowing the connection it runs on.
pub type Job<'a, Out> = Pin<Box<dyn Future<Output = Out> + 'a>>;
/// What a [`Worker`] does with each input, on its connection.
pub type Work<In, Out> = for<'a> fn(&'a dyn Store, In) -> Job<'a, Out>;

/// A job handed to a [`Worker`], answered later.
pub enum Pending<Out> {
    Threaded(Receiver<Out>),
    Answered(Out),
}

impl<Out> Pending<Out> {
    /// Waits for the answer; `Err` when the worker's thread is gone.
    pub fn answer(self) -> Result<Out, StoreError> {
        match self {
            Pending::Threaded(answer) => {
                answer.recv().map_err(|_| StoreError::Unavailable("the worker thread stopped".into()))
            }
            Pending::Answered(answer) => Ok(answer),
        }
    }
}

type Queued<In, Out> = (In, SyncSender<Out>);

/// Runs jobs in order on a connection of its own (a thread) or inline on the caller's: the
/// mover of `apply` and `rollback` (a script call per batch), the checker of `verify`.
pub enum Worker<'a, In, Out> {
    Threaded(SyncSender<Queued<In, Out>>),
    Inline(&'a dyn Store, Work<In, Out>),
}

impl<'a, In: Send + 'static, Out: Send + 'static> Worker<'a, In, Out> {
    /// A thread named `name` with its own connection; at most [`MOVES_IN_FLIGHT`] jobs queued.
    pub fn threaded(name: &str, connector: Connector, work: Work<In, Out>) -> Result<Self, StoreError> {
        let (jobs, queue) = sync_channel::<Queued<In, Out>>(MOVES_IN_FLIGHT);
        let (ready, connected) = sync_channel::<Result<(), String>>(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let store = match connector.open() {
                    Ok(store) => store,
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                for (input, answer) in queue {
                    let _ = answer.send(block_on(work(store.as_ref(), input)));
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the {name} thread: {e}")))?;
        match connected.recv() {
            Ok(Ok(())) => Ok(Worker::Threaded(jobs)),
            Ok(Err(error)) => Err(StoreError::Unavailable(error)),
            Err(_) => Err(StoreError::Unavailable(format!("the {name} thread stopped"))),
        }
    }

    pub fn inline(store: &'a dyn Store, work: Work<In, Out>) -> Self {
        Worker::Inline(store, work)
    }

    /// Hands `input` over; its answer comes with [`Pending::answer`].
    pub async fn send(&self, input: In) -> Pending<Out> {
        match self {
            Worker::Threaded(jobs) => {
                let (answer, answered) = sync_channel(1);
                // A closed queue shows as a closed answer channel in `answer`.
                let _ = jobs.send((input, answer));
                Pending::Threaded(answered)
            }
            Worker::Inline(store, work) => Pending::Answered(work(*store, input).await),
        }
    }
}

/// A batch of journaled entries whose script call was handed to a mover, not yet answered.
pub struct InFlight {
    pub entries: Vec<Entry>,
    pub sent: Pending<Result<Reply, StoreError>>,
}

/// Runs one command and answers its reply: what a mover does with a batch's script call.
pub fn execute(store: &dyn Store, command: Command) -> Job<'_, Result<Reply, StoreError>> {
    Box::pin(async move { store.execute(&command).await })
}

/// The mover: script calls in order, on a connection of its own or inline.
pub type Mover<'a> = Worker<'a, Command, Result<Reply, StoreError>>;
