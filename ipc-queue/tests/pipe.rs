//! `pipe()` across processes: bytes, plain-old-data and `rkyv` values both
//! ways, `poll`, close and death of the other end, named pipes.

use multiproc_core::process::{self, take_inherited_fd, test_exec_args, ExitStatus, Process};
use multiproc_queue::error::{AttachError, RecvError, SendError};
use multiproc_queue::pipe::{pipe, Pipe};
use std::time::{Duration, Instant};

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Job {
    id: u32,
    args: Vec<String>,
}

/// The child: echoes byte messages until the parent closes; on `"job"`
/// receives an archived `Job` and answers with its argument count as a
/// `u64`.
fn echo(args: &[u8]) -> i32 {
    let pipe = if args.is_empty() {
        Pipe::from_fd(take_inherited_fd(0).unwrap()).unwrap()
    } else {
        Pipe::open(std::str::from_utf8(args).unwrap()).unwrap()
    };
    let mut conn = pipe.end_b().unwrap();
    loop {
        let m = match conn.recv_bytes() {
            Ok(m) => m,
            Err(RecvError::Closed) => return 0,
            Err(e) => panic!("{e}"),
        };
        if m == b"job" {
            let job = conn.recv_archive::<Job>().unwrap();
            let n = job.args.len() as u64 + u64::from(job.id.to_native()) * 1000;
            drop(job);
            conn.send(&n).unwrap();
        } else {
            conn.send_bytes(&m).unwrap();
        }
    }
}

fn exercise(conn: &mut multiproc_queue::pipe::Connection) {
    // Nothing to read yet.
    assert!(!conn.poll(Some(Duration::from_millis(5))).unwrap());
    for i in 0..2_000u32 {
        let msg = vec![i as u8; (i % 300) as usize];
        conn.send_bytes(&msg).unwrap();
        assert!(conn.poll(None).unwrap());
        assert_eq!(conn.recv_bytes().unwrap(), msg);
    }
    conn.send_bytes(b"job").unwrap();
    conn.send_archive(&Job {
        id: 7,
        args: vec!["a".into(), "bb".into(), "ccc".into()],
    })
    .unwrap();
    assert_eq!(conn.recv::<u64>().unwrap(), 7003);
    let mut buf = [0u8; 4];
    conn.send_bytes(b"too long for buf").unwrap();
    assert_eq!(
        conn.recv_bytes_into(&mut buf).unwrap_err(),
        RecvError::BufferTooSmall {
            needed: 16,
            capacity: 4
        }
    );
    // The message stayed; read it in place.
    assert_eq!(&*conn.recv_in_place().unwrap(), b"too long for buf");
}

#[test]
fn a_pipe_to_a_child_carries_every_kind_of_message() {
    process::init();
    let p = Pipe::builder().capacity(4096).create().unwrap();
    let mut conn = p.end_a().unwrap();
    let child = Process::builder()
        .inherit_fd(p.fd())
        .exec_args(test_exec_args(
            "a_pipe_to_a_child_carries_every_kind_of_message",
        ))
        .spawn(echo, b"")
        .unwrap();
    exercise(&mut conn);
    conn.close();
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

#[test]
fn a_named_pipe_is_opened_by_name() {
    process::init();
    let name = multiproc_core::name::unique_name("pipe");
    let p = Pipe::builder().name(&name).create().unwrap();
    let mut conn = p.end_a().unwrap();
    let child = Process::builder()
        .exec_args(test_exec_args("a_named_pipe_is_opened_by_name"))
        .spawn(echo, name.as_bytes())
        .unwrap();
    exercise(&mut conn);
    drop(conn);
    assert_eq!(child.join().unwrap(), ExitStatus::Code(0));
}

fn hang(_: &[u8]) -> i32 {
    let p = Pipe::from_fd(take_inherited_fd(0).unwrap()).unwrap();
    let mut conn = p.end_b().unwrap();
    conn.send_bytes(b"ready").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn the_death_of_the_other_end_is_noticed() {
    process::init();
    let p = Pipe::builder().capacity(64).create().unwrap();
    let mut conn = p.end_a().unwrap();
    let child = Process::builder()
        .daemon(true)
        .inherit_fd(p.fd())
        .exec_args(test_exec_args("the_death_of_the_other_end_is_noticed"))
        .spawn(hang, b"")
        .unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"ready");
    assert!(matches!(
        p.end_b(),
        Err(AttachError::AlreadyAttached { .. })
    ));
    child.kill().unwrap();
    child.join().unwrap();
    let t = Instant::now();
    assert_eq!(conn.recv_bytes().unwrap_err(), RecvError::Closed);
    assert_eq!(conn.poll(None).unwrap_err(), RecvError::Closed);
    // Sends fill the ring, then learn the reader is gone.
    let mut result = Ok(());
    for _ in 0..100 {
        result = conn.send_bytes(&[0; 8]);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(SendError::Closed(()))));
    assert!(t.elapsed() < Duration::from_secs(30));
    // A dead end is taken over, and the new holder reads what the dead
    // one left unread.
    let mut b = p.end_b().unwrap();
    let mut queued = 0;
    while b.poll(Some(Duration::ZERO)).unwrap() {
        assert_eq!(b.recv_bytes().unwrap(), [0; 8]);
        queued += 1;
    }
    assert!(queued > 0);
    conn.send_bytes(b"again").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"again");
}

#[test]
fn ends_in_one_process_talk_both_ways() {
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"to b").unwrap();
    b.send_bytes(b"to a").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"to b");
    assert_eq!(a.recv_bytes().unwrap(), b"to a");
    b.send_bytes(&[1, 2, 3]).unwrap();
    assert_eq!(
        a.recv::<u64>().unwrap_err(),
        RecvError::Decode(multiproc_core::message::DecodeError::Length {
            expected: 8,
            found: 3
        })
    );
    drop(b);
    assert_eq!(
        a.recv_bytes_timeout(Duration::from_millis(1)).unwrap_err(),
        multiproc_queue::error::RecvTimeoutError::Closed
    );
}
