//! What machine the figures come from, and pinning to its cores.

use serde_json::{json, Value};

/// The machine a run measured, as the header and the JSON describe it.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Online CPUs the harness may run on.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The two cores the measurements use.
    pub pair: (usize, usize),
    /// Whether the two cores are hyper-thread siblings (`None`: unknown).
    pub siblings: Option<bool>,
    /// Whether a hypervisor is present (the `hypervisor` cpu flag).
    pub virtualized: bool,
    /// The clock used for latencies and its rate.
    pub clock: String,
    /// The 1-minute load average when the run started (`/proc/loadavg`):
    /// other work on the machine shows in every figure.
    pub load_average: Option<f64>,
}

impl Machine {
    /// Reads `/proc` and `/sys` for the machine, for the core pair `pair`.
    pub fn detect(pair: (usize, usize), clock: &crate::clock::Clock) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let cpu_model = field("model name").unwrap_or_else(|| "unknown".into());
        let virtualized =
            field("flags").is_some_and(|f| f.split_whitespace().any(|w| w == "hypervisor"));
        Machine {
            cpu_model,
            cores: multiproc_core::cpu_count(),
            kernel: kernel_release(),
            pair,
            siblings: are_siblings(pair.0, pair.1),
            virtualized,
            clock: format!(
                "{} ({:.4} ns/tick)",
                clock.source_name(),
                clock.ns_per_tick()
            ),
            load_average: load_average(),
        }
    }

    /// The header lines printed above the table.
    pub fn header(&self) -> String {
        let sib = match self.siblings {
            Some(true) => "yes (hyper-thread siblings: they share one physical core)",
            Some(false) => "no (separate physical cores)",
            None => "unknown",
        };
        let load = self
            .load_average
            .map_or_else(|| "unknown".to_owned(), |l| format!("{l:.2}"));
        format!(
            "cpu: {}{}\ncores: {}   kernel: {}   clock: {}   load average: {}\ncore pair: {},{}   hyper-thread siblings: {}",
            self.cpu_model,
            if self.virtualized { " (virtual machine)" } else { "" },
            self.cores,
            self.kernel,
            self.clock,
            load,
            self.pair.0,
            self.pair.1,
            sib
        )
    }

    /// The `machine` object of the JSON report.
    pub fn to_json(&self) -> Value {
        json!({
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "kernel": self.kernel,
            "core_pair": [self.pair.0, self.pair.1],
            "hyperthread_siblings": self.siblings,
            "virtualized": self.virtualized,
            "clock": self.clock,
            "load_average": self.load_average,
        })
    }
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether cores `a` and `b` are hyper-thread siblings, from
/// `/sys/devices/system/cpu/cpuN/topology/thread_siblings_list`.
pub fn are_siblings(a: usize, b: usize) -> Option<bool> {
    let path = format!("/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list");
    let list = std::fs::read_to_string(path).ok()?;
    let cpus = parse_cpu_list(list.trim())?;
    Some(a != b && cpus.contains(&b))
}

/// Parses a kernel cpu list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
                if hi < lo {
                    return None;
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

/// Lets the calling thread (and the processes it starts) run on `cores`.
///
/// # Errors
/// The OS error, e.g. when a core does not exist or is not allowed.
pub fn pin_to_cores(cores: &[usize]) -> Result<(), String> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(format!("core {core} is out of range"));
        }
        // SAFETY: `core` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 = this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot run on cores {cores:?}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Pins the calling thread to `core` (`sched_setaffinity`).
///
/// # Errors
/// The OS error, e.g. when the core does not exist or is not allowed.
pub fn pin_to_core(core: usize) -> Result<(), String> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(format!("core {core} is out of range"));
    }
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below CPU_SETSIZE (checked above), `set` is a valid set.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 = this thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot pin to core {core}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn a_core_is_not_its_own_sibling() {
        assert_eq!(are_siblings(0, 0), Some(false));
    }
}
