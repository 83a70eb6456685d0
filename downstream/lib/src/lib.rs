//! Functions of a library crate that an application names to other
//! processes: spawn entries and pool functions defined away from both the
//! caller and the mechanism.

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
pub fn spawn_sum(args: &[u8]) -> Result<ipc_core::Process, ipc_core::ProcessError> {
    ipc_core::Process::builder().name("from-lib").spawn(sum_entry, args)
}
