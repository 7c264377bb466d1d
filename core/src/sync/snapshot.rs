//! [`Snapshot`]: what one cron invocation reads from MEXC, each call made once and shared by
//! the tasks that need it. The balance and cost tasks both need `/api/v3/account`, the price
//! and cost tasks both need each symbol's 24 h ticker; running concurrently, they await the
//! same in-flight call, so a cron firing costs one subrequest per endpoint and the cost task
//! needs nothing from Redis (its one Redis request is its write).
//!
//! The first task to ask for a call is its *owner* and stores its raw response; the others
//! only use the value, so each response lands in the raw history once. A failed call fails
//! every task that asked for it. Fills (`myTrades`) are not shared: only the cost task reads
//! them, through [`Snapshot::exchange`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::{FutureExt, LocalBoxFuture, Shared};

use crate::exchange::client::Fetched;
use crate::exchange::model::{Account, Ticker24h};
use crate::exchange::{ExchangeError, MexcClient};
use crate::keys::Segment;

type SharedCall<'c, T> = Shared<LocalBoxFuture<'c, Result<Rc<Fetched<T>>, ExchangeError>>>;

/// A response a task asked for, and whether that task is the one that stores it raw.
pub struct Response<T> {
    pub fetched: Rc<Fetched<T>>,
    pub owner: bool,
}

pub struct Snapshot<'c> {
    pub exchange: &'c MexcClient<'c>,
    account: RefCell<Option<SharedCall<'c, Account>>>,
    tickers: RefCell<HashMap<String, Option<SharedCall<'c, Ticker24h>>>>,
}

impl<'c> Snapshot<'c> {
    pub fn new(exchange: &'c MexcClient<'c>) -> Self {
        Self { exchange, account: RefCell::new(None), tickers: RefCell::new(HashMap::new()) }
    }

    /// `/api/v3/account`, fetched by the first task that asks.
    pub async fn account(&self) -> Result<Response<Account>, ExchangeError> {
        let exchange = self.exchange;
        let (call, owner) = join_or_start(&mut self.account.borrow_mut(), || {
            async move { exchange.account().await.map(Rc::new) }.boxed_local().shared()
        });
        Ok(Response { fetched: call.await?, owner })
    }

    /// `/api/v3/ticker/24hr?symbol=…`, fetched by the first task that asks for that symbol.
    pub async fn ticker_24hr(&self, symbol: &Segment) -> Result<Response<Ticker24h>, ExchangeError> {
        let exchange = self.exchange;
        let (call, owner) = {
            let mut tickers = self.tickers.borrow_mut();
            let slot = tickers.entry(symbol.as_str().to_owned()).or_default();
            join_or_start(slot, || {
                let symbol = symbol.clone();
                async move { exchange.ticker_24hr(&symbol).await.map(Rc::new) }.boxed_local().shared()
            })
        };
        Ok(Response { fetched: call.await?, owner })
    }
}

/// The call in `slot`, or a new one started there; `true` when this caller started it.
fn join_or_start<F: Clone>(slot: &mut Option<F>, start: impl FnOnce() -> F) -> (F, bool) {
    match slot {
        Some(call) => (call.clone(), false),
        None => (slot.insert(start()).clone(), true),
    }
}
