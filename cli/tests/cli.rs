//! The `ipc` binary against real objects made by child processes (this test
//! binary re-executed in a role), some of them killed with SIGKILL.
//!
//! Every test uses a name prefix of its own (pid and a counter) and passes
//! it as `--prefix`, so `clean` only ever considers the test's own segments;
//! a guard kills the children and removes every name the test made, even
//! when an assertion fails.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const ROLE: &str = "IPC_CLI_TEST_ROLE";
const NAME: &str = "IPC_CLI_TEST_NAME";

/// Not a test: the body of a child. Makes the object the environment names,
/// prints `ready`, and holds it until its stdin closes (or it is killed).
#[test]
fn role() {
    let (Ok(role), Ok(name)) = (std::env::var(ROLE), std::env::var(NAME)) else {
        return;
    };
    let hold: Box<dyn std::any::Any> = match role.as_str() {
        "spsc" => {
            let ring = multiproc_queue::spsc::SpscRing::create(
                &name,
                multiproc_queue::spsc::Config::new(4096),
            )
            .unwrap();
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            for _ in 0..3 {
                tx.send(b"0123456789").unwrap();
            }
            let mut buf = [0u8; 64];
            assert_eq!(rx.recv_into(&mut buf).unwrap(), 10);
            Box::new((tx, rx, ring))
        }
        "mutex" => {
            let m: &'static multiproc_sync::Mutex<u64> = Box::leak(Box::new(
                multiproc_sync::Mutex::create(&name, 7u64).unwrap(),
            ));
            let guard = m.lock().unwrap_or_else(|_| panic!("lock"));
            Box::new(guard)
        }
        "semaphore" => Box::new(multiproc_sync::Semaphore::create(&name, 2).unwrap()),
        "barrier" => Box::new(multiproc_sync::Barrier::create(&name, 3).unwrap()),
        other => panic!("unknown role {other}"),
    };
    println!("\nIPC-CLI-TEST-READY");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(hold);
    if role == "mutex" {
        // The leaked mutex never drops: unlink its name as its creator.
        let _ = std::fs::remove_file(multiproc_core::name::path_of(&name));
    }
}

/// The test's segments and children; cleans up on drop.
struct Scene {
    prefix: String,
    names: Vec<String>,
    planted: Vec<PathBuf>,
    children: Vec<(Child, ChildStdout)>,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "clitest-{tag}-{}-{}-",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Scene {
            prefix,
            names: Vec::new(),
            planted: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Starts a child holding object `role` named `<prefix><suffix>`; returns
    /// its name and its index in `children`.
    fn start(&mut self, role: &str, suffix: &str) -> (String, usize) {
        let name = format!("{}{suffix}", self.prefix);
        self.names.push(name.clone());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["role", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(NAME, &name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child {role} ended before it was ready"
            );
            if line.contains("IPC-CLI-TEST-READY") {
                break;
            }
        }
        self.children.push((child, out.into_inner()));
        (name, self.children.len() - 1)
    }

    fn pid(&self, i: usize) -> u32 {
        self.children[i].0.id()
    }

    /// SIGKILLs child `i` and reaps it: its segment is left behind.
    fn kill(&mut self, i: usize) {
        let c = &mut self.children[i].0;
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Runs `ipc --prefix <prefix> args...`.
    fn ipc(&self, args: &[&str]) -> Output {
        let mut all = vec!["--prefix", self.prefix.as_str()];
        all.extend_from_slice(args);
        ipc(&all)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ipc(args);
        assert!(out.status.success(), "ipc {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for (c, _) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Only what this test named: never another entry of /dev/shm.
        for n in &self.names {
            let _ = std::fs::remove_file(multiproc_core::name::path_of(n));
        }
        for p in &self.planted {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn ipc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipc"))
        .args(args)
        .output()
        .unwrap()
}

fn exists(name: &str) -> bool {
    multiproc_core::name::path_of(name)
        .symlink_metadata()
        .is_ok()
}

fn segment<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {list}"))
}

#[test]
fn list_show_clean_and_watch_real_objects() {
    let mut s = Scene::new("main");
    let (ring, ring_i) = s.start("spsc", "ring");
    let (lock, lock_i) = s.start("mutex", "lock");
    let (sem, _) = s.start("semaphore", "sem");
    let (dead_ring, dead_ring_i) = s.start("spsc", "dead-ring");
    let (dead_barrier, dead_barrier_i) = s.start("barrier", "dead-barrier");
    s.kill(dead_ring_i);
    s.kill(dead_barrier_i);

    let list = s.json(&["list", "--json"]);
    assert_eq!(list["segments"].as_array().unwrap().len(), 5, "{list}");
    for (name, kind, creator, stale) in [
        (&ring, "spsc", "alive", false),
        (&lock, "mutex", "alive", false),
        (&sem, "semaphore", "alive", false),
        (&dead_ring, "spsc", "dead", true),
        (&dead_barrier, "barrier", "dead", true),
    ] {
        let e = segment(&list, name);
        assert_eq!(e["kind"], kind, "{e}");
        assert_eq!(e["creator"], creator, "{e}");
        assert_eq!(e["stale"], stale, "{e}");
        assert_eq!(e["mode"], "0600", "{e}");
    }
    assert_eq!(segment(&list, &ring)["creator_pid"], s.pid(ring_i));
    assert!(list["shm"]["total"].as_u64().unwrap() > 0);

    let show = s.json(&["show", &ring, "--json"]);
    assert_eq!(show["header"]["kind"], "spsc");
    assert_eq!(show["object"]["capacity"], 4096);
    assert_eq!(show["object"]["producer"]["owner"]["alive"], true);
    assert_eq!(show["object"]["producer"]["owner"]["pid"], s.pid(ring_i));
    assert_eq!(show["counters"]["producer.messages"], 3, "{show}");
    assert_eq!(show["counters"]["producer.bytes"], 30);
    assert_eq!(show["counters"]["consumer.messages"], 1);
    assert!(show["object"]["used_bytes"].as_u64().unwrap() > 0);

    let show = s.json(&["show", &dead_ring, "--json"]);
    assert_eq!(show["header"]["creator"], "dead");
    assert_eq!(show["object"]["producer"]["owner"]["alive"], false);

    let show = s.json(&["show", &lock, "--json"]);
    assert_eq!(show["object"]["locked"], true, "{show}");
    assert_eq!(show["object"]["holder"]["pid"], s.pid(lock_i));
    assert_eq!(show["object"]["holder"]["alive"], true);

    assert_eq!(s.json(&["show", &sem, "--json"])["object"]["permits"], 2);
    assert_eq!(
        s.json(&["show", &dead_barrier, "--json"])["object"]["parties"],
        3
    );

    let mut dead = vec![dead_barrier.clone(), dead_ring.clone()];
    dead.sort();
    let dry = s.json(&["clean", "--dry-run", "--json"]);
    assert_eq!(dry["removed"], serde_json::json!(dead), "{dry}");
    for n in &s.names {
        assert!(exists(n), "--dry-run removed {n}");
    }
    let done = s.json(&["clean", "--json"]);
    assert_eq!(done["removed"], serde_json::json!(dead), "{done}");
    for n in [&ring, &lock, &sem] {
        assert!(exists(n), "clean removed the live {n}");
    }
    for n in &dead {
        assert!(!exists(n), "clean left the dead {n}");
    }

    let out = s.ipc(&["watch", "--once", "--interval", "0.1", &ring]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("producer.messages"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no screen control when not a terminal"
    );

    let out = s.ipc(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("/dev/shm:") && text.contains(&ring), "{text}");
}

#[test]
fn planted_files_are_listed_but_never_followed_or_removed() {
    let mut s = Scene::new("planted");
    let target = std::env::temp_dir().join(format!("{}target", s.prefix));
    std::fs::write(&target, b"precious").unwrap();
    s.planted.push(target.clone());
    let link = multiproc_core::name::path_of(&format!("{}link", s.prefix));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    s.planted.push(link.clone());
    let junk = multiproc_core::name::path_of(&format!("{}junk", s.prefix));
    std::fs::write(&junk, b"not a segment").unwrap();
    s.planted.push(junk.clone());

    let list = s.json(&["list", "--json"]);
    assert_eq!(list["segments"].as_array().unwrap().len(), 2, "{list}");
    for e in list["segments"].as_array().unwrap() {
        assert_eq!(e["creator"], "unknown");
        assert_eq!(e["stale"], false);
        assert!(e["problem"].is_string());
    }
    let out = s.ipc(&["show", &format!("{}link", s.prefix)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        s.json(&["clean", "--json"])["removed"],
        serde_json::json!([])
    );
    assert!(link.symlink_metadata().is_ok() && junk.exists());
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn exit_codes_are_those_of_a_unix_tool() {
    assert_eq!(ipc(&[]).status.code(), Some(2));
    assert_eq!(ipc(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ipc(&["show"]).status.code(), Some(2));
    assert_eq!(ipc(&["--help"]).status.code(), Some(0));
    let v = ipc(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("ipc "));
    let s = Scene::new("codes");
    let missing = format!("{}missing", s.prefix);
    assert_eq!(s.ipc(&["show", &missing]).status.code(), Some(1));
    assert_eq!(s.ipc(&["watch", "--once", &missing]).status.code(), Some(1));
    assert_eq!(s.ipc(&["show", "not-under-prefix"]).status.code(), Some(1));
}
