//! Fail closed and stay up: what a hostile client, a broken disk or a
//! careless administrator does to a running daemon, each against the real
//! binary. Every test names what an admin relies on: answered or dropped,
//! never a wrong Accept; the cause in a metric and a log line; `/readyz`
//! telling the truth; service back by itself when the fault ends.

mod database;
mod directory;
mod hostile;
mod nas;
mod push_and_duo;
mod store;
mod texts_and_calls;
