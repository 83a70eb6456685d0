//! The fork server: children forked from a clean, single-threaded image,
//! started from this multi-threaded test harness.

use multiproc_core::process::{
    self, active_children, test_exec_args, ExitStatus, Process, StartMethod,
};

fn exit_with(args: &[u8]) -> i32 {
    i32::from(args.first().copied().unwrap_or(0))
}

fn report_identity(args: &[u8]) -> i32 {
    let me = multiproc_core::current_process();
    let parent = multiproc_core::parent_process();
    // The fork server's children are this test process's own children.
    let ok = me.name == "served-child"
        && parent.is_some_and(|p| p.pid == u32::from_le_bytes(args.try_into().unwrap_or([0; 4])));
    if ok {
        0
    } else {
        3
    }
}

fn builder(test: &str) -> multiproc_core::process::Builder {
    Process::builder().exec_args(test_exec_args(test))
}

#[test]
fn a_served_child_runs_its_entry_and_is_our_child() {
    process::init();
    let t = "a_served_child_runs_its_entry_and_is_our_child";
    for code in [7u8, 0, 42] {
        let child = builder(t).forkserver(exit_with, &[code]).unwrap();
        assert_eq!(child.join().unwrap(), ExitStatus::Code(i32::from(code)));
    }
    let me = std::process::id().to_le_bytes();
    let child = builder(t)
        .name("served-child")
        .forkserver(report_identity, &me)
        .unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
    // Killable and reaped like any child of ours.
    let child = builder(t)
        .forkserver(
            |_: &[u8]| -> i32 {
                std::thread::sleep(std::time::Duration::from_secs(60));
                0
            },
            b"",
        )
        .unwrap();
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), ExitStatus::Signal(libc::SIGKILL));
}

#[test]
fn a_typed_child_by_the_fork_server_returns_its_value() {
    process::init();
    let child = builder("a_typed_child_by_the_fork_server_returns_its_value")
        .start_method(StartMethod::ForkServer)
        .start(|x: u64| x * 3, 14u64)
        .unwrap();
    assert_eq!(child.join().unwrap(), 42);
}

#[test]
fn a_dead_server_is_replaced() {
    process::init();
    let t = "a_dead_server_is_replaced";
    let first = builder(t).forkserver(exit_with, &[1]).unwrap();
    assert_eq!(first.join().unwrap(), ExitStatus::Code(1));
    let server = active_children()
        .into_iter()
        .find(|p| p.name == "ForkServer")
        .expect("the fork server runs");
    // SAFETY: sending a signal to a pid that is our own unreaped child.
    unsafe { libc::kill(server.pid as libc::pid_t, libc::SIGKILL) };
    let second = builder(t).forkserver(exit_with, &[2]).unwrap();
    assert_eq!(second.join().unwrap(), ExitStatus::Code(2));
}
