//! The round loop: scenario selection, child processes, kills, the watchdog
//! and the end-of-run hygiene checks.

use crate::child::{self, ChildArgs};
use crate::ledger::{field, global, Ledger};
use crate::report::Report;
use crate::rng::{mix, Rng};
use crate::scenario::{self, Scenario};
use multiproc_core::process::{ExitStatus, Process};
use std::ffi::OsString;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar as StdCondvar, Mutex as StdMutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stop starting rounds after this long (`None`: rounds only).
    pub duration: Option<Duration>,
    /// Stop after this many rounds (`None`: duration only).
    pub rounds: Option<u64>,
    /// The seed; every round's seed derives from it.
    pub seed: u64,
    /// Only scenarios whose name contains one of these (empty: all).
    pub scenarios: Vec<String>,
    /// How long the chaos phase of one round lasts.
    pub round_len: Duration,
    /// How long a round may take, chaos and wind-down, before the watchdog
    /// calls it a hang and kills its processes.
    pub round_deadline: Duration,
    /// Arguments for re-executed children (`None`: this process's own, which
    /// suits a binary that calls `multiproc_core::process::init()` first in
    /// `main`; in a test, `multiproc_core::process::test_exec_args(..)`).
    pub exec_args: Option<Vec<OsString>>,
    /// Print one line per round.
    pub verbose: bool,
    /// Print a progress line on stderr this often (`None`: never).
    pub progress: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            duration: Some(Duration::from_secs(60)),
            rounds: None,
            seed: seed_from_clock(),
            scenarios: Vec::new(),
            round_len: Duration::from_millis(700),
            round_deadline: Duration::from_secs(60),
            exec_args: None,
            verbose: false,
            progress: None,
        }
    }
}

/// A seed from the clock and the pid.
pub fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix(nanos ^ u64::from(std::process::id()).rotate_left(40))
}

/// Watches the deadline of the current round; on expiry it SIGKILLs every
/// registered child so the runner's bounded waits return, and counts a hang.
struct Watchdog {
    state: Arc<(StdMutex<WatchState>, StdCondvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct WatchState {
    deadline: Option<Instant>,
    label: String,
    pids: Vec<u32>,
    fired: bool,
    quit: bool,
}

impl Watchdog {
    fn start() -> Watchdog {
        let state = Arc::new((StdMutex::new(WatchState::default()), StdCondvar::new()));
        let s = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("chaos-watchdog".into())
            .spawn(move || watch(&s))
            .ok();
        Watchdog { state, thread }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arm(&self, deadline: Instant, label: String) {
        let mut s = self.lock();
        s.deadline = Some(deadline);
        s.label = label;
        s.fired = false;
        s.pids.clear();
        self.state.1.notify_all();
    }

    /// Disarms; returns whether it fired during the round.
    fn disarm(&self) -> bool {
        let mut s = self.lock();
        s.deadline = None;
        s.pids.clear();
        std::mem::take(&mut s.fired)
    }

    fn register(&self, pid: u32) {
        self.lock().pids.push(pid);
    }

    fn unregister(&self, pid: u32) {
        self.lock().pids.retain(|&p| p != pid);
    }

    fn fired(&self) -> bool {
        self.lock().fired
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.lock().quit = true;
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(state: &(StdMutex<WatchState>, StdCondvar)) {
    let mut s = state.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if s.quit {
            return;
        }
        let now = Instant::now();
        match s.deadline {
            Some(d) if now >= d && !s.fired => {
                s.fired = true;
                eprintln!(
                    "ipc-chaos: watchdog: {} passed its deadline; killing {} processes",
                    s.label,
                    s.pids.len()
                );
                for &pid in &s.pids {
                    // SAFETY: kill has no memory-safety preconditions; the pid
                    // is an unreaped child of this process (registered at
                    // spawn, unregistered before it is reaped), so it cannot
                    // name another process.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
            Some(d) if s.fired && now >= d + Duration::from_secs(120) => {
                eprintln!(
                    "ipc-chaos: watchdog: {} still wedges the runner 120 s after its deadline; \
                     giving up (exit 3)",
                    s.label
                );
                std::process::exit(3);
            }
            _ => {}
        }
        let (g, _) = state
            .1
            .wait_timeout(s, Duration::from_millis(50))
            .unwrap_or_else(|p| p.into_inner());
        s = g;
    }
}

/// A child process of a round.
pub(crate) struct Child {
    pub(crate) proc: Process,
    pub(crate) args: ChildArgs,
}

/// One round: its seed, its names, its children, and the report it adds to.
pub(crate) struct Round<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) rng: Rng,
    pub(crate) report: &'a mut Report,
    pub(crate) scenario: &'static str,
    pub(crate) index: u64,
    pub(crate) seed: u64,
    prefix: &'a str,
    watchdog: &'a Watchdog,
    pids: &'a mut Vec<u32>,
    pub(crate) deadline: Instant,
    names: u32,
}

impl Round<'_> {
    /// A fresh segment name under this run's prefix.
    pub(crate) fn name(&mut self, what: &str) -> String {
        self.names += 1;
        format!("{}-{}-{what}-{}", self.prefix, self.index, self.names)
    }

    /// Records a problem with enough to replay it.
    pub(crate) fn fail(&mut self, what: impl std::fmt::Display) {
        let line = format!(
            "round {} scenario {} seed {:#x}: {what}",
            self.index, self.scenario, self.seed
        );
        eprintln!("ipc-chaos: {line}");
        self.report.fail(line);
    }

    /// Whether the watchdog fired in this round.
    pub(crate) fn timed_out(&self) -> bool {
        self.watchdog.fired()
    }

    /// Time left before the watchdog.
    pub(crate) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Starts a child running `args`.
    pub(crate) fn spawn(&mut self, args: ChildArgs) -> Option<Child> {
        let mut b = Process::builder().name(args.role.name()).daemon(true);
        if let Some(a) = &self.cfg.exec_args {
            b = b.exec_args(a.clone());
        }
        match b.spawn(child::child_main, &args.encode()) {
            Ok(proc) => {
                self.watchdog.register(proc.pid());
                self.pids.push(proc.pid());
                self.report.processes_started += 1;
                Some(Child { proc, args })
            }
            Err(e) => {
                self.fail(format!("cannot start {}: {e}", args.role.name()));
                self.report.child_failures += 1;
                None
            }
        }
    }

    /// SIGKILLs a child and reaps it. Returns whether it was still running
    /// when killed (a child that had already exited is judged by its status).
    pub(crate) fn kill(&mut self, c: Child) -> bool {
        let alive = c.proc.kill().is_ok();
        let status = c.proc.join_timeout(Duration::from_secs(10));
        self.watchdog.unregister(c.proc.pid());
        match status {
            Ok(Some(ExitStatus::Signal(libc::SIGKILL))) if alive => {
                self.report.processes_killed += 1;
                true
            }
            Ok(Some(s)) => {
                self.judge(&c, s);
                false
            }
            Ok(None) | Err(_) => {
                self.fail(format!("{} did not die of SIGKILL", c.args.role.name()));
                self.report.hangs += 1;
                false
            }
        }
    }

    /// Waits for a child told to stop; kills it (a hang) if it has not
    /// exited within `grace`.
    pub(crate) fn finish(&mut self, c: Child, grace: Duration) {
        let wait = grace.min(self.left().max(Duration::from_millis(100)));
        match c.proc.join_timeout(wait) {
            Ok(Some(s)) => {
                self.watchdog.unregister(c.proc.pid());
                self.judge(&c, s);
            }
            _ => {
                self.fail(format!(
                    "{} (pid {}) did not exit within {wait:?} of being told to stop",
                    c.args.role.name(),
                    c.proc.pid()
                ));
                self.report.hangs += 1;
                let _ = c.proc.kill();
                let _ = c.proc.join_timeout(Duration::from_secs(10));
                self.watchdog.unregister(c.proc.pid());
            }
        }
    }

    fn judge(&mut self, c: &Child, s: ExitStatus) {
        match s {
            ExitStatus::Code(0) => {}
            // The watchdog's kill: counted as a hang when the round ends.
            ExitStatus::Signal(libc::SIGKILL) if self.watchdog.fired() => {}
            other => {
                self.fail(format!(
                    "{} (pid {}) ended with {other}",
                    c.args.role.name(),
                    c.proc.pid()
                ));
                self.report.child_failures += 1;
            }
        }
    }

    /// Registers a pid the round did not spawn itself (a pool worker) as
    /// one of its processes, for the leftover-segment check.
    pub(crate) fn note_pid(&mut self, pid: u32) {
        if !self.pids.contains(&pid) {
            self.pids.push(pid);
        }
    }

    /// A random pause in `lo..hi` milliseconds, cut at the chaos end.
    pub(crate) fn pause_ms(&mut self, lo: u64, hi: u64) {
        let ms = self.rng.range(lo, hi);
        std::thread::sleep(Duration::from_millis(ms));
    }

    /// Tells every child of `ledger` to stop.
    pub(crate) fn stop(&self, ledger: &Ledger) {
        ledger.global(global::STOP).store(1, Ordering::Release);
    }

    /// Waits until `slot` of `ledger` reports READY, at most `max`.
    pub(crate) fn wait_ready(&self, ledger: &Ledger, slot: usize, max: Duration) -> bool {
        let end = Instant::now() + max;
        while Instant::now() < end {
            if ledger.get(slot, field::READY) != 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// Runs the chaos suite as configured and returns its figures. The caller
/// prints them ([`Report`] implements `Display`) and fails when
/// [`Report::is_clean`] is false.
///
/// Children re-execute the current program: call
/// `multiproc_core::process::init()` first thing in `main` (in a test: first thing
/// in the test, with [`Config::exec_args`] from
/// `multiproc_core::process::test_exec_args`).
pub fn run(cfg: &Config) -> Report {
    let mut report = Report {
        seed: cfg.seed,
        ..Report::default()
    };
    let scenarios: Vec<&'static Scenario> = scenario::ALL
        .iter()
        .filter(|s| {
            cfg.scenarios.is_empty() || cfg.scenarios.iter().any(|f| s.name.contains(f.as_str()))
        })
        .collect();
    if scenarios.is_empty() {
        report.fail(format!("no scenario matches {:?}", cfg.scenarios));
        report.hangs += 0;
        return report;
    }
    let prefix = multiproc_core::name::unique_name("chaos");
    let watchdog = Watchdog::start();
    let mut pids = vec![std::process::id()];
    let started = Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = Vec::new();
    let mut index = 0u64;
    let mut last_progress = Instant::now();
    loop {
        if cfg.progress.is_some_and(|p| last_progress.elapsed() >= p) {
            last_progress = Instant::now();
            eprintln!(
                "ipc-chaos: {}",
                report.progress(started.elapsed(), cfg.duration)
            );
        }
        if cfg.rounds.is_some_and(|n| index >= n) {
            break;
        }
        if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if order.is_empty() {
            // A shuffled pass over every scenario, so each gets its share.
            order = (0..scenarios.len()).collect();
            for i in (1..order.len()).rev() {
                let j = rng.range(0, i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
        let sc = scenarios[order.pop().unwrap_or(0)];
        let seed = mix(cfg.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let deadline = Instant::now() + cfg.round_deadline;
        watchdog.arm(
            deadline,
            format!("round {index} ({}, seed {seed:#x})", sc.name),
        );
        let mut round = Round {
            cfg,
            rng: Rng::new(seed),
            report: &mut report,
            scenario: sc.name,
            index,
            seed,
            prefix: &prefix,
            watchdog: &watchdog,
            pids: &mut pids,
            deadline,
            names: 0,
        };
        let t0 = Instant::now();
        (sc.run)(&mut round);
        if watchdog.disarm() {
            report.hangs += 1;
            report.fail(format!(
                "round {index} scenario {} seed {seed:#x}: the watchdog fired",
                sc.name
            ));
        }
        report.rounds += 1;
        report.count_scenario(sc.name);
        if cfg.verbose {
            eprintln!(
                "ipc-chaos: round {index} {} seed {seed:#x} took {:?}",
                sc.name,
                t0.elapsed()
            );
        }
        index += 1;
    }
    drop(watchdog);
    report.orphans = count_orphans(Duration::from_secs(5));
    report.segments_left = leftover_segments(&prefix, &pids).len() as u64;
    for s in leftover_segments(&prefix, &pids) {
        report.fail(format!("segment left in /dev/shm: {s}"));
    }
    report
}

/// Children of this process still running or unreaped, after waiting up to
/// `grace` for reaper threads to finish.
pub fn count_orphans(grace: Duration) -> u64 {
    let end = Instant::now() + grace;
    loop {
        let n = children_of(std::process::id()).len() as u64;
        if n == 0 || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids whose parent is `ppid` (from `/proc/*/stat`), zombies included.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let _state = f.next();
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Segments in `/dev/shm` this run created: its prefix, or a unique name
/// made by one of its processes (`-<pid>-` in the name).
pub fn leftover_segments(prefix: &str, pids: &[u32]) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let ours = format!("{}{prefix}", multiproc_core::name::PREFIX);
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(&ours)
                || (n.starts_with(multiproc_core::name::PREFIX)
                    && pids.iter().any(|p| n.contains(&format!("-{p}-"))))
        })
        .collect()
}

impl Round<'_> {
    /// The chaos phase: for [`Config::round_len`], waits a random
    /// `lo_ms..hi_ms`, SIGKILLs a random child of `kids` (those `killable`
    /// says yes to), lets `killed` look at what it left behind, and starts a
    /// replacement with the same instructions. Returns the number of kills.
    pub(crate) fn chaos(
        &mut self,
        kids: &mut [Option<Child>],
        lo_ms: u64,
        hi_ms: u64,
        killable: impl Fn(&ChildArgs) -> bool,
        mut killed: impl FnMut(&ChildArgs),
    ) -> u64 {
        let end = Instant::now() + self.cfg.round_len;
        let mut kills = 0;
        // A third of the rounds kill in quick succession, so kills also land
        // on children still starting and attaching.
        let hi_ms = if self.rng.chance(1, 3) {
            (hi_ms / 8).max(lo_ms + 1)
        } else {
            hi_ms
        };
        while Instant::now() < end && !self.timed_out() {
            self.pause_ms(lo_ms, hi_ms);
            let candidates: Vec<usize> = (0..kids.len())
                .filter(|&i| kids[i].as_ref().is_some_and(|c| killable(&c.args)))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let i = candidates[self.rng.range(0, candidates.len() as u64) as usize];
            let Some(victim) = kids[i].take() else {
                continue;
            };
            let mut args = victim.args.clone();
            if self.kill(victim) {
                kills += 1;
                killed(&args);
            }
            args.seed = self.rng.next_u64();
            kids[i] = self.spawn(args);
        }
        kills
    }

    /// Stops every child in `kids` (they were told through their ledger)
    /// and judges how they ended.
    pub(crate) fn finish_all(&mut self, kids: &mut [Option<Child>], grace: Duration) {
        for k in kids.iter_mut() {
            if let Some(c) = k.take() {
                self.finish(c, grace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_kills_the_registered_processes_of_an_overdue_round() {
        let w = Watchdog::start();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        w.arm(
            Instant::now() + Duration::from_millis(50),
            "test round".into(),
        );
        w.register(child.id());
        let end = Instant::now() + Duration::from_secs(10);
        while !w.fired() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(w.fired());
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(w.disarm(), "disarm reports the hang");
        assert!(!w.fired());
    }

    #[test]
    fn any_goal_row_makes_the_report_dirty() {
        assert!(Report::default().is_clean());
        let rows = Report::default().goal_rows().len();
        for i in 0..rows {
            let mut r = Report::default();
            match i {
                0 => r.duplicates = 1,
                1 => r.torn = 1,
                2 => r.reordered = 1,
                3 => r.accounting_mismatches = 1,
                4 => r.invariant_violations = 1,
                5 => r.wedged_waiters = 1,
                6 => r.pool_bad_results = 1,
                7 => r.overlong_calls = 1,
                8 => r.child_failures = 1,
                9 => r.hangs = 1,
                10 => r.segments_left = 1,
                _ => r.orphans = 1,
            }
            assert!(!r.is_clean(), "row {i}");
            assert!(r.to_string().contains("FAIL"));
        }
    }
}
