//! Lifecycle events reach the `log` facade (and nothing is printed by default).

mod common;
use common::ForkInTest;
use multiproc_core::{Kind, Process, Segment};
use std::sync::Mutex;

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

#[test]
fn segment_and_process_lifecycles_are_logged() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let name = multiproc_core::name::unique_name("log");
    let seg = Segment::builder(Kind::BYTES)
        .name(&name)
        .size(64)
        .create()
        .unwrap();
    drop(Segment::builder(Kind::BYTES).name(&name).open().unwrap());
    drop(seg);
    let child = Process::builder()
        .name("logged-child")
        .fork_in_test(|| 3)
        .unwrap();
    child.join().unwrap();
    let records = RECORDS.lock().unwrap().join("\n");
    let needles = [
        format!("segment {name:?} created"),
        format!("segment {name:?} opened"),
        format!("segment {name:?} unlinked"),
        "process \"logged-child\" started by fork".to_owned(),
        "exited: exit code 3".to_owned(),
    ];
    for needle in &needles {
        assert!(
            records.contains(needle.as_str()),
            "missing {needle:?} in:\n{records}"
        );
    }
}
