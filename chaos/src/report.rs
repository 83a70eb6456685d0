//! The figures of a run and the final table.

use std::fmt;
use std::time::Duration;

/// Everything a run counted. Rows marked "goal 0" in the table make the run
/// fail when they are not zero ([`Report::is_clean`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The seed the run started from.
    pub seed: u64,
    /// Rounds run.
    pub rounds: u64,
    /// Child processes started (replacements included; pool workers not).
    pub processes_started: u64,
    /// Processes killed with SIGKILL by the runner (pool workers included).
    pub processes_killed: u64,
    /// Kills that landed inside an operation: a send or receive under way,
    /// a lock or permit held (from the victim's ledger phase word).
    pub kills_mid_operation: u64,
    /// Ring messages sent (completed sends, plus in-flight sends that were
    /// delivered or reported lost).
    pub messages_sent: u64,
    /// Ring messages received and checked.
    pub messages_received: u64,
    /// Ring messages the API reported lost (MPMC `lost`, broadcast lag).
    pub messages_lost: u64,
    /// Messages received twice (goal 0).
    pub duplicates: u64,
    /// Torn or checksum-failed messages (goal 0).
    pub torn: u64,
    /// Messages of one ordered stream received out of order (goal 0).
    pub reordered: u64,
    /// Ring rounds where `sent = received + lost` did not hold (goal 0).
    pub accounting_mismatches: u64,
    /// Mutex takeovers after a dead holder (`OwnerDied`, repaired).
    pub owner_died_recoveries: u64,
    /// Invariant violations after recovery (goal 0).
    pub invariant_violations: u64,
    /// Waiters killed while waiting.
    pub waiters_killed: u64,
    /// Surviving waiters that did not get through in bounded time (goal 0).
    pub wedged_waiters: u64,
    /// Pool tasks run.
    pub pool_tasks: u64,
    /// Pool tasks failed with `WorkerDied` (expected: their worker was killed).
    pub pool_worker_died: u64,
    /// Pool tasks with a wrong result, a missing result or another error (goal 0).
    pub pool_bad_results: u64,
    /// Calls of a hostile round that returned a typed error.
    pub hostile_typed_errors: u64,
    /// Calls of a hostile round that returned a value.
    pub hostile_ok_calls: u64,
    /// Calls that overran their timeout by more than the grace (goal 0).
    pub overlong_calls: u64,
    /// Children that crashed: a signal other than our SIGKILL, a panic or a
    /// non-zero exit (goal 0).
    pub child_failures: u64,
    /// Rounds stopped by the watchdog, or children that did not stop when
    /// told (goal 0).
    pub hangs: u64,
    /// Segments this run created and left in `/dev/shm` (goal 0).
    pub segments_left: u64,
    /// Children of the runner still running or unreaped at the end (goal 0).
    pub orphans: u64,
    /// One line per problem found: round, scenario, seed, what.
    pub failures: Vec<String>,
    /// Rounds per scenario.
    pub per_scenario: Vec<(String, u64)>,
}

impl Report {
    /// The rows whose goal is zero, by name.
    pub fn goal_rows(&self) -> [(&'static str, u64); 12] {
        [
            ("duplicates", self.duplicates),
            ("torn or checksum-failed messages", self.torn),
            ("reordered messages", self.reordered),
            (
                "sent != received + lost (rounds)",
                self.accounting_mismatches,
            ),
            (
                "invariant violations after recovery",
                self.invariant_violations,
            ),
            ("wedged waiters", self.wedged_waiters),
            ("pool tasks without result or error", self.pool_bad_results),
            ("calls overrunning their timeout", self.overlong_calls),
            ("child crashes (not our SIGKILL)", self.child_failures),
            ("hangs detected", self.hangs),
            ("segments left in /dev/shm", self.segments_left),
            ("orphan processes left", self.orphans),
        ]
    }

    /// Whether every goal row is zero.
    pub fn is_clean(&self) -> bool {
        self.goal_rows().iter().all(|&(_, v)| v == 0)
    }

    /// One line on how far a run is: time, rounds, kills, messages, and
    /// the goal rows that are not zero so far.
    pub fn progress(&self, elapsed: Duration, of: Option<Duration>) -> String {
        let time = match of {
            Some(d) => format!("{}s of {}s", elapsed.as_secs(), d.as_secs()),
            None => format!("{}s", elapsed.as_secs()),
        };
        let bad: Vec<String> = self
            .goal_rows()
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!(
            "{time}: {} rounds, {} processes killed, {} messages checked; goal rows: {}",
            self.rounds,
            self.processes_killed,
            self.messages_received,
            if bad.is_empty() {
                "all 0".to_owned()
            } else {
                bad.join(", ")
            }
        )
    }

    /// The report as JSON: every counter, the goal rows with their status,
    /// and whether the run is clean.
    pub fn to_json(&self) -> serde_json::Value {
        let goals: Vec<serde_json::Value> = self
            .goal_rows()
            .iter()
            .map(|(n, v)| serde_json::json!({ "row": n, "value": v, "goal": 0, "met": *v == 0 }))
            .collect();
        serde_json::json!({
            "report": self,
            "goals": goals,
            "clean": self.is_clean(),
        })
    }

    pub(crate) fn fail(&mut self, line: String) {
        if self.failures.len() < 200 {
            self.failures.push(line);
        }
    }

    pub(crate) fn count_scenario(&mut self, name: &str) {
        match self.per_scenario.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => self.per_scenario.push((name.to_owned(), 1)),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = "+------------------------------------------+--------------------+--------+";
        writeln!(f, "{line}")?;
        writeln!(
            f,
            "| {:<40} | {:>18} | {:<6} |",
            "ipc-chaos", "value", "goal"
        )?;
        writeln!(f, "{line}")?;
        writeln!(
            f,
            "| {:<40} | {:>18} | {:<6} |",
            "seed",
            format!("{:#x}", self.seed),
            ""
        )?;
        let info: [(&str, u64); 14] = [
            ("rounds run", self.rounds),
            ("processes started", self.processes_started),
            ("processes killed (SIGKILL)", self.processes_killed),
            ("  of which inside an operation", self.kills_mid_operation),
            ("messages sent", self.messages_sent),
            ("messages received", self.messages_received),
            ("messages reported lost by the API", self.messages_lost),
            ("mutex OwnerDied recoveries", self.owner_died_recoveries),
            ("waiters killed while waiting", self.waiters_killed),
            ("pool tasks", self.pool_tasks),
            ("pool tasks failed WorkerDied", self.pool_worker_died),
            ("hostile calls: value returned", self.hostile_ok_calls),
            ("hostile calls: typed error", self.hostile_typed_errors),
            ("failure notes", self.failures.len() as u64),
        ];
        for (name, v) in info {
            writeln!(f, "| {name:<40} | {v:>18} | {:<6} |", "")?;
        }
        writeln!(f, "{line}")?;
        for (name, v) in self.goal_rows() {
            let mark = if v == 0 { "0 ok" } else { "0 FAIL" };
            writeln!(f, "| {name:<40} | {v:>18} | {mark:<6} |")?;
        }
        writeln!(f, "{line}")?;
        let per: Vec<String> = self
            .per_scenario
            .iter()
            .map(|(n, c)| format!("{n}={c}"))
            .collect();
        writeln!(f, "rounds per scenario: {}", per.join(" "))?;
        for l in &self.failures {
            writeln!(f, "FAILURE: {l}")?;
        }
        Ok(())
    }
}
