//! What runs inside a worker process: the loop that takes chunks of inputs
//! from the worker's ring, runs the function on each, and sends the outputs
//! back.

use crate::control::{monotonic_ns, Control, READY};
use crate::link::{WorkerEnd, WorkerFds};
use crate::protocol::{self, put_value, take_value, Args, Frame, WorkerArgs, WorkerExit};
use multiproc_core::entry::{zero_sized_fn, EntryDescriptor, EntryRef, Signature};
use multiproc_core::message::Message;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs `count` inputs from `input` through the user's function and
/// appends, per input, a status byte and the output (or the panic message).
/// `func` is the address of a closure for [`ClosureOf`], unused otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Runner(pub(crate) RunFn);

/// The function a [`Runner`] holds.
pub(crate) type RunFn = fn(
    func: usize,
    input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
) -> Result<(), protocol::ProtocolError>;

// SAFETY: the label is used by this type alone.
unsafe impl Signature for Runner {
    const LABEL: &'static str = "ipc-pool/runner/v3";
}

/// An initializer run once in each worker.
#[derive(Clone, Copy)]
pub(crate) struct Init(pub(crate) fn());

// SAFETY: the label is used by this type alone.
unsafe impl Signature for Init {
    const LABEL: &'static str = "ipc-pool/initializer/v2";
}

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

fn run_items<I: Message, O: Message>(
    mut input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
    f: impl Fn(I) -> O,
) -> Result<(), protocol::ProtocolError> {
    for _ in 0..count {
        let x: I = take_value(&mut input)?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(x))) {
            Ok(o) => {
                out.push(protocol::OUTPUT_VALUE);
                if let Err(e) = put_value(&o, out) {
                    out.pop();
                    out.push(protocol::OUTPUT_PANIC);
                    let _ = put_value(&format!("the output could not be encoded: {e}"), out);
                }
            }
            Err(p) => {
                out.push(protocol::OUTPUT_PANIC);
                let _ = put_value(&panic_message(&*p), out);
            }
        }
    }
    if !input.is_empty() {
        return Err(protocol::ProtocolError::Short { len: input.len() });
    }
    Ok(())
}

/// The runner of a function `F: Fn(I) -> O` (a function item or a closure
/// that captures nothing), named to workers by its descriptor.
pub(crate) struct MapOf<I, O, F>(PhantomData<fn(I, F) -> O>);

impl<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static> MapOf<I, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(
        _: usize,
        input: &[u8],
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), protocol::ProtocolError> {
        run_items(input, count, out, zero_sized_fn::<F>())
    }
}

/// The runner of `F: Fn(A, B) -> O` over `(A, B)` inputs (starmap).
pub(crate) struct Star2Of<A, B, O, F>(PhantomData<fn(A, B, F) -> O>);

impl<A: Message, B: Message, O: Message, F: Fn(A, B) -> O + Copy + 'static> Star2Of<A, B, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(
        _: usize,
        input: &[u8],
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), protocol::ProtocolError> {
        let f = zero_sized_fn::<F>();
        run_items(input, count, out, |Args((a, b)): Args<(A, B)>| f(a, b))
    }
}

/// The runner of `F: Fn(A, B, C) -> O` over `(A, B, C)` inputs (starmap).
pub(crate) struct Star3Of<A, B, C, O, F>(PhantomData<Args3<A, B, C, O, F>>);

/// The types a [`Star3Of`] is made for.
type Args3<A, B, C, O, F> = fn() -> (A, B, C, O, F);

impl<A: Message, B: Message, C: Message, O: Message, F: Fn(A, B, C) -> O + Copy + 'static>
    Star3Of<A, B, C, O, F>
{
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(
        _: usize,
        input: &[u8],
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), protocol::ProtocolError> {
        let f = zero_sized_fn::<F>();
        run_items(input, count, out, |Args((a, b, c)): Args<(A, B, C)>| {
            f(a, b, c)
        })
    }
}

/// The runner of a closure `F: Fn(I) -> O` owned by an `FnPool`, at the
/// address `func`.
pub(crate) struct ClosureOf<I, O, F>(PhantomData<fn(I, F) -> O>);

impl<I: Message, O: Message, F: Fn(I) -> O + 'static> ClosureOf<I, O, F> {
    // SAFETY: evaluated in a constant.
    pub(crate) const DESC: &'static EntryDescriptor<Runner> =
        &unsafe { EntryDescriptor::new(Runner(Self::run)) };

    fn run(
        func: usize,
        input: &[u8],
        count: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), protocol::ProtocolError> {
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

/// The spawn entry of a worker: maps the inherited control segment (fd 0)
/// and rings (fds 1 and 2), then runs the worker loop.
pub(crate) fn spawn_entry(args: &[u8]) -> i32 {
    let Ok(args) = WorkerArgs::decode(args) else {
        return WorkerExit::AttachFailed.code();
    };
    let take = multiproc_core::process::take_inherited_fd;
    let (Some(cfd), Some(tasks), Some(results)) = (take(0), take(1), take(2)) else {
        return WorkerExit::AttachFailed.code();
    };
    let Ok(control) = Control::attach(cfd, args.slots as usize) else {
        return WorkerExit::AttachFailed.code();
    };
    let Ok(link) = WorkerEnd::attach(WorkerFds { tasks, results }) else {
        return WorkerExit::AttachFailed.code();
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
        return WorkerExit::AttachFailed.code();
    };
    if let Some((off, tag)) = args.init {
        if protocol::tag(args.key, 0, off) != tag {
            return WorkerExit::BadTask.code();
        }
        let Ok(Init(init)) = EntryRef::from_raw(off).resolve::<Init>() else {
            return WorkerExit::BadTask.code();
        };
        if std::panic::catch_unwind(init).is_err() {
            return WorkerExit::InitFailed.code();
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
            let (chunk, runner, func, tag, count, inputs) = match Frame::read_task(task) {
                Ok(Frame::Task {
                    chunk,
                    runner,
                    func,
                    tag,
                    count,
                    inputs,
                }) => (chunk, runner, func, tag, count, inputs),
                Ok(Frame::Shutdown) => return Step::Exit(0),
                _ => return Step::Exit(WorkerExit::BadTask.code()),
            };
            let named = (runner, func, tag);
            let run = match verified {
                Some((v, run)) if v == named => run,
                _ => {
                    if protocol::tag(args.key, runner, func) != tag {
                        return Step::Exit(WorkerExit::BadTask.code());
                    }
                    let Ok(run) = EntryRef::from_raw(runner).resolve::<Runner>() else {
                        return Step::Exit(WorkerExit::BadTask.code());
                    };
                    verified = Some((named, run));
                    run
                }
            };
            if args.timed {
                slot.started_ns.store(monotonic_ns(), Ordering::Relaxed);
            }
            slot.current.store(chunk + 1, Ordering::Release);
            out.clear();
            out.extend_from_slice(&Frame::outputs_header(chunk, count));
            if let Err(e) = (run.0)(func as usize, inputs, count, &mut out) {
                out.clear();
                Frame::DecodeFailed {
                    chunk,
                    count,
                    reason: &e.to_string(),
                }
                .write(&mut out);
            }
            if out.len() > max {
                let len = out.len() as u64;
                out.clear();
                Frame::TooLarge { chunk, count, len }.write(&mut out);
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
            Err(_) => return 0, // the parent closed the rings (or died)
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

    impl<I: Message, O: Message, F: Fn(I) -> O + Copy + 'static> MapOf<I, O, F> {
        fn desc_of(_: F) -> &'static EntryDescriptor<Runner> {
            Self::DESC
        }
    }

    #[test]
    fn a_runner_maps_and_catches_panics_per_item() {
        let mut input = Vec::new();
        for x in [1u64, 13, 5] {
            put_value(&x, &mut input).unwrap();
        }
        let mut out = Vec::new();
        let Runner(run) = EntryRef::of(MapOf::<u64, u64, _>::desc_of(double))
            .unwrap()
            .resolve::<Runner>()
            .unwrap();
        run(0, &input, 3, &mut out).unwrap();
        let mut o = &out[..];
        assert_eq!(take_value::<u8>(&mut o).unwrap(), protocol::OUTPUT_VALUE);
        assert_eq!(take_value::<u64>(&mut o).unwrap(), 2);
        assert_eq!(take_value::<u8>(&mut o).unwrap(), protocol::OUTPUT_PANIC);
        assert!(take_value::<String>(&mut o).unwrap().contains("unlucky 13"));
        assert_eq!(take_value::<u8>(&mut o).unwrap(), protocol::OUTPUT_VALUE);
        assert_eq!(take_value::<u64>(&mut o).unwrap(), 10);
        assert!(o.is_empty());
        assert!(run(0, &input[..20], 3, &mut out).is_err());
    }

    #[test]
    fn serde_values_cross_a_runner() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Job {
            name: String,
            tags: Vec<String>,
        }
        let mut input = Vec::new();
        put_value(
            &Job {
                name: "a".into(),
                tags: vec!["x".into()],
            },
            &mut input,
        )
        .unwrap();
        let mut out = Vec::new();
        let Runner(run) = EntryRef::of(MapOf::<Job, usize, _>::desc_of(|j: Job| {
            j.name.len() + j.tags.len()
        }))
        .unwrap()
        .resolve::<Runner>()
        .unwrap();
        run(0, &input, 1, &mut out).unwrap();
        let mut o = &out[..];
        assert_eq!(take_value::<u8>(&mut o).unwrap(), protocol::OUTPUT_VALUE);
        assert_eq!(take_value::<usize>(&mut o).unwrap(), 2);
    }
}
