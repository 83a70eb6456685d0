//! Futex wait and wake on a 32-bit word that may live in shared memory.
//!
//! These are thin, safe wrappers over `futex(2)`. They never use
//! `FUTEX_PRIVATE_FLAG`: the word may be mapped by several processes, and a
//! private futex only matches waiters of the same address space.
//!
//! Timeouts are measured on the monotonic clock (`Instant`), so a change of the
//! wall clock neither shortens nor stretches a wait. `EINTR` is retried with the
//! time that is left; a spurious wake-up is reported as [`WaitOutcome::Woken`],
//! so callers always re-check their condition in a loop.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A waker called [`wake`] on the word, or the kernel woke the waiter
    /// spuriously. The caller re-checks its condition.
    Woken,
    /// The word did not hold the expected value when the wait began, so it
    /// did not sleep at all.
    ValueChanged,
    /// The deadline passed before anyone woke the waiter.
    TimedOut,
}

/// Sleeps while `word` holds `expected`, until woken or until `timeout` has
/// passed (`None` waits without a time limit).
///
/// Returns at once with [`WaitOutcome::ValueChanged`] if the word already
/// differs. Interruptions by signals are retried with the remaining time.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    let deadline = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
    wait_until(word, expected, deadline)
}

/// Like [`wait`], with an absolute monotonic deadline (`None`: no limit).
pub fn wait_until(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
    loop {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let ts_ptr: *const libc::timespec = match deadline {
            None => std::ptr::null(),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return WaitOutcome::TimedOut;
                }
                ts.tv_sec = left.as_secs().min(libc::time_t::MAX as u64) as libc::time_t;
                ts.tv_nsec = left.subsec_nanos() as libc::c_long;
                &ts
            }
        };
        // SAFETY: `word` is a valid, aligned `AtomicU32` for the duration of the
        // call (it is borrowed); the kernel only reads it. `ts_ptr` is null or
        // points at `ts`, which outlives the call. FUTEX_WAIT (without the
        // private flag) takes no other pointer arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            return WaitOutcome::Woken;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => return WaitOutcome::ValueChanged,
            Some(libc::ETIMEDOUT) => return WaitOutcome::TimedOut,
            Some(libc::EINTR) => continue,
            // EFAULT/EINVAL cannot happen for a borrowed, aligned word; treat
            // anything else as a spurious wake-up so callers re-check.
            _ => return WaitOutcome::Woken,
        }
    }
}

/// Wakes up to `n` waiters sleeping on `word`; returns how many were woken.
///
/// Pass `u32::MAX` to wake all of them.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32) as i32;
    // SAFETY: `word` is a valid, aligned `AtomicU32` (it is borrowed);
    // FUTEX_WAKE only uses its address as a key and reads no other pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r < 0 {
        0
    } else {
        r as usize
    }
}

/// Wakes every waiter sleeping on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

/// An instant so far ahead that no wait reaches it (about 30 years).
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn value_changed_returns_at_once() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), WaitOutcome::ValueChanged);
    }

    #[test]
    fn zero_timeout_times_out_without_sleeping() {
        let w = AtomicU32::new(0);
        assert_eq!(wait(&w, 0, Some(Duration::ZERO)), WaitOutcome::TimedOut);
    }

    #[test]
    fn timeout_elapses() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        assert_eq!(
            wait(&w, 0, Some(Duration::from_millis(20))),
            WaitOutcome::TimedOut
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_reaches_a_sleeping_thread() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let h = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake_all(&w);
        h.join().unwrap();
    }

    #[test]
    fn wake_without_waiters_wakes_none() {
        let w = AtomicU32::new(0);
        assert_eq!(wake(&w, 1), 0);
    }
}
