//! Python's `log_to_stderr`: the lifecycle records of the workspace on
//! stderr, in one call.
//!
//! The crates of the workspace log through the `log` facade: segments
//! created and removed, processes started, signalled and exited, pool
//! workers replaced. A program that has no logger of its own can send those
//! records to stderr with [`log_to_stderr`]; children started by spawn then
//! log too (forked children inherit the logger with the rest of memory).
//!
//! ```
//! multiproc_core::process::init();
//! multiproc_core::log_to_stderr(log::LevelFilter::Debug);
//! // [INFO  multiproc_core::process::child] MainProcess 4242: process "Process-1" started by spawn: pid 4243
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that asks a spawned child to log to stderr at
/// the given level (set by the parent when it logs so).
pub(crate) const LOG_ENV: &str = "IPC_CORE_LOG_STDERR";

/// The level [`log_to_stderr`] installed (0: none), for spawned children.
static LEVEL: AtomicU8 = AtomicU8::new(0);

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let me = crate::process::current_process();
        let mut line = Vec::with_capacity(160);
        let _ = writeln!(
            line,
            "[{:<5} {}] {} {}: {}",
            r.level(),
            r.target(),
            me.name,
            me.pid,
            r.args()
        );
        // One write per record, straight to the descriptor: lines from
        // several processes never interleave mid-line, and no lock is taken
        // that a thread which vanished in a fork could hold.
        // SAFETY: writes `line.len()` bytes from a valid buffer to fd 2.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Sends the `log` records at `level` and above to stderr, each line with
/// its level, target, process name and pid; children this process spawns
/// afterwards log the same way. Returns `false`, and changes nothing, if
/// the program already installed another logger.
pub fn log_to_stderr(level: log::LevelFilter) -> bool {
    if log::set_logger(&LOGGER).is_err() {
        return false;
    }
    log::set_max_level(level);
    LEVEL.store(level as u8, Ordering::Relaxed);
    true
}

/// The level to hand to a spawned child, if this process logs to stderr.
pub(crate) fn child_level() -> Option<String> {
    match LEVEL.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n.to_string()),
    }
}

/// In a spawned child: log to stderr if the parent did.
pub(crate) fn inherit_from_parent() {
    let Some(v) = std::env::var_os(LOG_ENV) else {
        return;
    };
    std::env::remove_var(LOG_ENV);
    let level = match v.to_str().and_then(|s| s.parse::<u8>().ok()) {
        Some(1) => log::LevelFilter::Error,
        Some(2) => log::LevelFilter::Warn,
        Some(3) => log::LevelFilter::Info,
        Some(4) => log::LevelFilter::Debug,
        Some(5) => log::LevelFilter::Trace,
        _ => return,
    };
    log_to_stderr(level);
}
