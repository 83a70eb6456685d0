//! What runs inside a worker process: the loop that takes chunks of inputs
//! from the worker's ring, runs the function on each, and sends the outputs
//! back.

use crate::control::{monotonic_ns, Control, READY};
use crate::link::{WorkerEnd, WorkerFds};
use crate::protocol::{self, ResultHeader, TaskHeader};
use crate::wire::Wire;
use ipc_core::entry::{zero_sized_fn, EntryDescriptor, EntryRef, Signature};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs `count` inputs from `input` through the user's function and
/// appends, per input, a status byte and the output (or the panic message).
/// `func` is the address of a closure for [`ClosureOf`], unused otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Runner(pub(crate) RunFn);

/// The function a [`Runner`] holds.
pub(crate) type RunFn =
    fn(func: usize, input: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String>;

// SAFETY: the label is used by this type alone.
unsafe impl Signature for Runner {
    const LABEL: &'static str = "ipc-pool/runner/v2";
}

/// An initializer run once in each worker.
#[derive(Clone, Copy)]
pub(crate) struct Init(pub(crate) fn());

// SAFETY: the label is used by this type alone.
unsafe impl Signature for Init {
    const LABEL: &'static str = "ipc-pool/initializer/v2";
}

/// Exit code of a worker whose initializer panicked.
pub(crate) const EXIT_INIT_FAILED: i32 = 3;
/// Exit code of a worker that received a task it must not run (bad tag).
pub(crate) const EXIT_BAD_TASK: i32 = 4;
/// Exit code of a worker that could not attach to its segments.
pub(crate) const EXIT_ATTACH_FAILED: i32 = 5;

/// The message of a caught panic.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn run_items<I: Wire, O: Wire>(
    mut input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
    f: impl Fn(I) -> O,
) -> Result<(), String> {
    for _ in 0..count {
        let x = I::decode(&mut input)?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(x))) {
            Ok(o) => {
                out.push(0);
                o.encode(out);
            }
            Err(p) => {
                out.push(1);
                panic_message(&*p).encode(out);
            }
        }
    }
    if !input.is_empty() {
        return Err(format!("{} bytes left after the inputs", input.len()));
    }
    Ok(())
}

/// The runner of a function `F: Fn(I) -> O` (a function item or a closure
/// that captures nothing), named to workers by its descriptor.
pub(crate) struct MapOf<I, O, F>(PhantomData<fn(I, F) -> O>);

impl<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static> MapOf<I, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(_: usize, input: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
        run_items(input, count, out, zero_sized_fn::<F>())
    }
}

/// The runner of `F: Fn(A, B) -> O` over `(A, B)` inputs (starmap).
pub(crate) struct Star2Of<A, B, O, F>(PhantomData<fn(A, B, F) -> O>);

impl<A: Wire, B: Wire, O: Wire, F: Fn(A, B) -> O + Copy + 'static> Star2Of<A, B, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(_: usize, input: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
        let f = zero_sized_fn::<F>();
        run_items(input, count, out, |(a, b): (A, B)| f(a, b))
    }
}

/// The runner of `F: Fn(A, B, C) -> O` over `(A, B, C)` inputs (starmap).
pub(crate) struct Star3Of<A, B, C, O, F>(PhantomData<Args3<A, B, C, O, F>>);

/// The types a [`Star3Of`] is made for.
type Args3<A, B, C, O, F> = fn() -> (A, B, C, O, F);

impl<A: Wire, B: Wire, C: Wire, O: Wire, F: Fn(A, B, C) -> O + Copy + 'static>
    Star3Of<A, B, C, O, F>
{
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(_: usize, input: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
        let f = zero_sized_fn::<F>();
        run_items(input, count, out, |(a, b, c): (A, B, C)| f(a, b, c))
    }
}

/// The runner of a closure `F: Fn(I) -> O` owned by an `FnPool`, at the
/// address `func`.
pub(crate) struct ClosureOf<I, O, F>(PhantomData<fn(I, F) -> O>);

impl<I: Wire, O: Wire, F: Fn(I) -> O + 'static> ClosureOf<I, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(func: usize, input: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
        // SAFETY: a worker runs a task only if its tag matched, and only the
        // parent (which holds the key) tags tasks; it names this runner only
        // with the address of the `F` its `FnPool` owns. Workers of an
        // `FnPool` are always forked from that parent after `F` was boxed,
        // so the same address holds the same `F` in this copy of its memory,
        // and the parent keeps it alive for as long as the pool (and so
        // this worker) exists.
        let f = unsafe { &*(func as *const F) };
        run_items(input, count, out, f)
    }
}

/// The initializer `F: Fn()` (a function item or a closure that captures
/// nothing).
pub(crate) struct InitOf<F>(PhantomData<F>);

impl<F: Fn() + Copy + 'static> InitOf<F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Init> =
        &unsafe { EntryDescriptor::new(Init(Self::run)) };

    fn run() {
        zero_sized_fn::<F>()()
    }
}

/// Everything a worker needs, as passed at start-up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkerArgs {
    pub(crate) slot: u32,
    pub(crate) slots: u32,
    pub(crate) key: (u64, u64),
    /// Offset and tag of the initializer `fn()`, if any.
    pub(crate) init: Option<(u64, u64)>,
    /// Exit after this many chunks (0: never).
    pub(crate) max_tasks: u64,
    /// Whether the pool has a task timeout (so chunks need a start time).
    pub(crate) timed: bool,
}

impl WorkerArgs {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&self.slot.to_le_bytes());
        v.extend_from_slice(&self.slots.to_le_bytes());
        v.extend_from_slice(&self.key.0.to_le_bytes());
        v.extend_from_slice(&self.key.1.to_le_bytes());
        let (has, off, tag) = match self.init {
            Some((o, t)) => (1u64, o, t),
            None => (0, 0, 0),
        };
        v.extend_from_slice(&has.to_le_bytes());
        v.extend_from_slice(&off.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&self.max_tasks.to_le_bytes());
        v.push(u8::from(self.timed));
        v
    }

    pub(crate) fn decode(mut b: &[u8]) -> Option<WorkerArgs> {
        let slot = u32::decode(&mut b).ok()?;
        let slots = u32::decode(&mut b).ok()?;
        let key = (u64::decode(&mut b).ok()?, u64::decode(&mut b).ok()?);
        let has = u64::decode(&mut b).ok()?;
        let off = u64::decode(&mut b).ok()?;
        let tag = u64::decode(&mut b).ok()?;
        let max_tasks = u64::decode(&mut b).ok()?;
        let timed = bool::decode(&mut b).ok()?;
        Some(WorkerArgs {
            slot,
            slots,
            key,
            init: (has == 1).then_some((off, tag)),
            max_tasks,
            timed,
        })
    }
}

/// The spawn entry of a worker: maps the inherited control segment (fd 0)
/// and rings (fds 1 and 2), then runs the worker loop.
pub(crate) fn spawn_entry(args: &[u8]) -> i32 {
    let Some(args) = WorkerArgs::decode(args) else {
        return EXIT_ATTACH_FAILED;
    };
    let take = ipc_core::process::take_inherited_fd;
    let (Some(cfd), Some(tasks), Some(results)) = (take(0), take(1), take(2)) else {
        return EXIT_ATTACH_FAILED;
    };
    let Ok(control) = Control::attach(cfd, args.slots as usize) else {
        return EXIT_ATTACH_FAILED;
    };
    let Ok(link) = WorkerEnd::attach(WorkerFds { tasks, results }) else {
        return EXIT_ATTACH_FAILED;
    };
    worker_main(&args, &control, link)
}

enum Step {
    Continue,
    Exit(i32),
}

/// The worker loop. Returns the exit code.
pub(crate) fn worker_main(args: &WorkerArgs, control: &Control, mut link: WorkerEnd) -> i32 {
    let Some(slot) = control.slot(args.slot as usize) else {
        return EXIT_ATTACH_FAILED;
    };
    if let Some((off, tag)) = args.init {
        if protocol::tag(args.key, 0, off) != tag {
            return EXIT_BAD_TASK;
        }
        let Ok(Init(init)) = EntryRef::from_raw(off).resolve::<Init>() else {
            return EXIT_BAD_TASK;
        };
        if std::panic::catch_unwind(init).is_err() {
            return EXIT_INIT_FAILED;
        }
    }
    slot.state.store(READY, Ordering::Release);
    control.head().doorbell.notify_all();

    let mut out = Vec::new();
    // The last task's (runner, func, tag), checked, and its runner.
    let mut verified: Option<((u64, u64, u64), Runner)> = None;
    let mut done = 0u64;
    let max = link.max_message();
    loop {
        let step = link.with_task(Duration::from_millis(200), |task, results| {
            let Some((h, inputs)) = TaskHeader::read(task) else {
                return Step::Exit(EXIT_BAD_TASK);
            };
            if h.kind == protocol::SHUTDOWN {
                return Step::Exit(0);
            }
            if h.kind != protocol::TASK {
                return Step::Exit(EXIT_BAD_TASK);
            }
            let named = (h.runner, h.func, h.tag);
            let runner = match verified {
                Some((v, runner)) if v == named => runner,
                _ => {
                    if protocol::tag(args.key, h.runner, h.func) != h.tag {
                        return Step::Exit(EXIT_BAD_TASK);
                    }
                    let Ok(runner) = EntryRef::from_raw(h.runner).resolve::<Runner>() else {
                        return Step::Exit(EXIT_BAD_TASK);
                    };
                    verified = Some((named, runner));
                    runner
                }
            };
            if args.timed {
                slot.started_ns.store(monotonic_ns(), Ordering::Relaxed);
            }
            slot.current.store(h.chunk + 1, Ordering::Release);
            out.clear();
            let mut rh = ResultHeader {
                chunk: h.chunk,
                status: protocol::OK,
                count: h.count,
            };
            rh.write(&mut out);
            if let Err(e) = (runner.0)(h.func as usize, inputs, h.count, &mut out) {
                out.clear();
                rh.status = protocol::DECODE_FAILED;
                rh.write(&mut out);
                e.encode(&mut out);
            }
            if out.len() > max {
                let len = out.len() as u64;
                out.clear();
                rh.status = protocol::TOO_LARGE;
                rh.write(&mut out);
                len.encode(&mut out);
            }
            if results.send(&out).is_err() {
                return Step::Exit(0);
            }
            Step::Continue
        });
        match step {
            Ok(Some(Step::Continue)) => {}
            Ok(Some(Step::Exit(code))) => return code,
            Ok(None) => continue,
            Err(()) => return 0, // the parent closed the rings (or died)
        }
        slot.current.store(0, Ordering::Release);
        // Only this worker writes its slot's count.
        done += 1;
        slot.done.store(done, Ordering::Release);
        control.head().doorbell.notify_all();
        if args.max_tasks != 0 && done >= args.max_tasks {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        if x == 13 {
            panic!("unlucky {x}");
        }
        x * 2
    }

    impl<I: Wire, O: Wire, F: Fn(I) -> O + Copy + 'static> MapOf<I, O, F> {
        fn desc_of(_: F) -> &'static EntryDescriptor<Runner> {
            Self::DESC
        }
    }

    #[test]
    fn a_runner_maps_and_catches_panics_per_item() {
        let mut input = Vec::new();
        for x in [1u64, 13, 5] {
            x.encode(&mut input);
        }
        let mut out = Vec::new();
        let Runner(run) = EntryRef::of(MapOf::<u64, u64, _>::desc_of(double))
            .unwrap()
            .resolve::<Runner>()
            .unwrap();
        run(0, &input, 3, &mut out).unwrap();
        let mut o = &out[..];
        assert_eq!(u8::decode(&mut o).unwrap(), 0);
        assert_eq!(u64::decode(&mut o).unwrap(), 2);
        assert_eq!(u8::decode(&mut o).unwrap(), 1);
        assert!(String::decode(&mut o).unwrap().contains("unlucky 13"));
        assert_eq!(u8::decode(&mut o).unwrap(), 0);
        assert_eq!(u64::decode(&mut o).unwrap(), 10);
        assert!(run(0, &input[..20], 3, &mut out).is_err());
    }

    #[test]
    fn worker_args_round_trip() {
        let a = WorkerArgs {
            slot: 3,
            slots: 4,
            key: (1, 2),
            init: Some((7, 8)),
            max_tasks: 9,
            timed: true,
        };
        let b = WorkerArgs::decode(&a.encode()).unwrap();
        assert_eq!(
            (b.slot, b.slots, b.key, b.init, b.max_tasks, b.timed),
            (3, 4, (1, 2), Some((7, 8)), 9, true)
        );
        assert!(WorkerArgs::decode(&a.encode()[..10]).is_none());
    }
}
