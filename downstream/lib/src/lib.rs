//! Functions of a library crate that an application names to other
//! processes: spawn entries and pool functions defined away from both the
//! caller and the mechanism, and a user's serde struct with the children
//! that receive queues, pipe ends and locks in their arguments.

use multiproc_queue::{Connection, Queue};
use multiproc_sync::{LockError, Mutex};
use serde::{Deserialize, Serialize};

/// A user's struct, derived: no hand-made encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Its number.
    pub id: u64,
    /// What it is for.
    pub symbol: String,
    /// Quantities.
    pub legs: Vec<u32>,
}

/// Order `id`.
pub fn order(id: u64) -> Order {
    Order {
        id,
        symbol: format!("SYM-{id}"),
        legs: vec![1, 2, id as u32],
    }
}

/// A typed child: puts `n` orders into the queue it was given.
pub fn put_orders((q, n): (Queue<Order>, u64)) -> u64 {
    for id in 0..n {
        q.put(order(id)).expect("the queue is open");
    }
    n
}

/// A typed child: receives words on its pipe end, answers them joined.
pub fn reply(mut end: Connection) -> usize {
    let words: Vec<String> = end.recv().expect("words");
    end.send(&words.join(" ")).expect("the pipe is open");
    words.len()
}

/// A typed child: adds one under the lock it was given.
pub fn bump(m: Mutex<u64>) -> Result<u64, String> {
    let mut g = m
        .lock()
        .map_err(|e| LockError::without_guard(e).to_string())?;
    *g += 1;
    Ok(*g)
}

/// A pool function over the user's struct.
pub fn leg_total(o: Order) -> u64 {
    o.legs.iter().map(|&l| u64::from(l)).sum()
}

/// A spawn entry: exits with the sum of its argument bytes.
pub fn sum_entry(args: &[u8]) -> i32 {
    args.iter().map(|&b| i32::from(b)).sum()
}

/// A pool function.
pub fn cube(x: u64) -> u64 {
    x * x * x
}

/// A generic pool function, instantiated in the application.
pub fn pair_sum<T: std::ops::Add<Output = T>>(a: T, b: T) -> T {
    a + b
}

/// A typed child function: `name` repeated `times` times, and the length.
pub fn repeat((name, times): (String, u32)) -> (String, usize) {
    let s = name.repeat(times as usize);
    let n = s.len();
    (s, n)
}

/// Starts a child running `sum_entry` from inside this crate.
///
/// # Errors
/// As `Builder::spawn`.
pub fn spawn_sum(args: &[u8]) -> Result<multiproc_core::Process, multiproc_core::ProcessError> {
    multiproc_core::Process::builder().name("from-lib").spawn(sum_entry, args)
}
