//! `ipc list`, `ipc show` and `ipc clean`.

use crate::objects;
use multiproc_core::inspect::{self, CreatorStatus, SegmentInfo};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The most payload `show` and `watch` copy: enough for any ring's control
/// block and the rings of ordinary size (a larger ring is shown by its
/// header only).
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

/// An error for the user: printed after `ipc: `, exit status 1.
pub(crate) type Failure = Box<dyn std::error::Error>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `1536` -> `"1.5K"`.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// `75` -> `"1m15s"`.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The user name of `uid`, or the number.
fn user(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 1024];
    // SAFETY: an all-zero `passwd` is a valid value to be overwritten.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` is writable for its
    // length; getpwuid_r is the thread-safe form.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() || pw.pw_name.is_null() {
        return uid.to_string();
    }
    // SAFETY: on success `pw_name` points to a NUL-terminated string in `buf`.
    unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn kind_of(info: &SegmentInfo) -> &'static str {
    match &info.header {
        Some(h) => objects::kind_name(h.type_tag).unwrap_or("unknown"),
        None => "-",
    }
}

/// One `list` row as JSON.
fn entry_json(info: &SegmentInfo, stale: bool, now: i64) -> Value {
    let h = info.header.as_ref();
    json!({
        "name": info.name,
        "kind": kind_of(info),
        "type_tag": h.map(|h| format!("{:#018x}", h.type_tag)),
        "size": info.size,
        "creator_pid": h.map(|h| h.creator.pid),
        "creator": info.creator_status().as_str(),
        "age_secs": (now - info.ctime).max(0),
        "uid": info.uid,
        "owner": user(info.uid),
        "mode": format!("{:04o}", info.mode),
        "state": h.map(state_name),
        "stale": stale,
        "problem": info.problem,
    })
}

fn state_name(h: &multiproc_core::header::HeaderFields) -> String {
    use multiproc_core::header::State;
    match h.state() {
        Some(State::Empty) => "empty".into(),
        Some(State::Initializing) => "initializing".into(),
        Some(State::Ready) => "ready".into(),
        Some(State::Poisoned) => "poisoned".into(),
        None => format!("invalid ({})", h.state),
    }
}

/// The lines that tell how liveness is judged here, if anything limits it.
fn liveness_notes(segs: &[SegmentInfo]) -> Vec<String> {
    let mut notes = Vec::new();
    if !multiproc_core::liveness::liveness_known() {
        notes.push(
            "liveness cannot be judged here (/proc is unreadable or belongs to another pid \
             namespace): every creator counts as alive, and clean removes nothing"
                .to_owned(),
        );
    }
    let foreign = segs
        .iter()
        .filter(|s| s.creator_status() == CreatorStatus::OtherNamespace)
        .count();
    if foreign > 0 {
        notes.push(format!(
            "{foreign} segment(s) were made in another pid namespace (another container?): \
             their creators' pids mean nothing here, so they are never judged dead or cleaned \
             from this one"
        ));
    }
    notes
}

/// `ipc list`.
pub(crate) fn list(prefix: &str, json_out: bool) -> Result<(), Failure> {
    let segs = inspect::list(prefix)?;
    let stale = multiproc_core::sweep_dry_run(prefix)?;
    let usage = inspect::shm_usage().ok();
    let notes = liveness_notes(&segs);
    let now = now();
    if json_out {
        let out = json!({
            "prefix": prefix,
            "segments": segs
                .iter()
                .map(|s| entry_json(s, stale.contains(&s.name), now))
                .collect::<Vec<_>>(),
            "shm": usage.map(|u| json!({"total": u.total, "available": u.available})),
            "liveness_known": multiproc_core::liveness::liveness_known(),
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let width = segs.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<18} {:>7} {:>8} {:<8} {:>7}  {:<10} {:<4}",
        "NAME", "KIND", "SIZE", "PID", "CREATOR", "AGE", "OWNER", "MODE"
    );
    for s in &segs {
        let pid = s
            .header
            .map(|h| h.creator.pid.to_string())
            .unwrap_or_else(|| "-".into());
        let mut creator = s.creator_status().as_str().to_owned();
        if creator == "other-pid-namespace" {
            creator = "foreign".into();
        }
        let mark = if stale.contains(&s.name) {
            "  (stale)"
        } else {
            ""
        };
        println!(
            "{:<width$}  {:<18} {:>7} {:>8} {:<8} {:>7}  {:<10} {:04o}{mark}",
            s.name,
            kind_of(s),
            human(s.size),
            pid,
            creator,
            age(now - s.ctime),
            user(s.uid),
            s.mode,
        );
        if let Some(p) = &s.problem {
            println!("{:<width$}    ^ {p}", "");
        }
    }
    match usage {
        Some(u) => println!(
            "/dev/shm: {} total, {} free; {} segment(s), {} stale",
            human(u.total),
            human(u.available),
            segs.len(),
            stale.len()
        ),
        None => println!("/dev/shm: size unknown; {} segment(s)", segs.len()),
    }
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}

/// Checks that `name` is under `prefix`.
pub(crate) fn check_prefix(prefix: &str, name: &str) -> Result<(), Failure> {
    if !name.starts_with(prefix) {
        return Err(format!("{name:?} does not start with the prefix {prefix:?}").into());
    }
    Ok(())
}

/// `ipc show NAME`.
pub(crate) fn show(prefix: &str, name: &str, json_out: bool) -> Result<(), Failure> {
    check_prefix(prefix, name)?;
    let mut snap = inspect::snapshot(name, MAX_PAYLOAD)?;
    let h = snap.header;
    let now = now();
    let object = objects::describe(&mut snap);
    let header = json!({
        "magic": format!("{:#018x}", h.magic),
        "header_version": h.header_version,
        "state": state_name(&h),
        "kind": objects::kind_name(h.type_tag).unwrap_or("unknown"),
        "type_tag": format!("{:#018x}", h.type_tag),
        "type_version": h.type_version,
        "layout_hash": format!("{:#018x}", h.layout_hash),
        "abi": format!("{:#x}", h.abi),
        "abi_matches": h.abi == multiproc_core::header::ABI,
        "total_size": h.total_size,
        "payload_len": h.payload_len,
        "creator_pid": h.creator.pid,
        "creator_start_time": h.creator.start_time,
        "creator": snap.info.creator_status().as_str(),
        "creator_pid_namespace": h.creator_pid_ns.to_string(),
    });
    let out = json!({
        "name": name,
        "size": snap.info.size,
        "uid": snap.info.uid,
        "owner": user(snap.info.uid),
        "mode": format!("{:04o}", snap.info.mode),
        "age_secs": (now - snap.info.ctime).max(0),
        "header": header,
        "object": object.as_ref().map(|o| o.state.clone()),
        "counters": object.as_ref().map(|o| Value::Object(o.counters.clone())),
        "complete": snap.is_complete(),
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("segment {name}");
    println!(
        "  size {} ({} bytes), owner {} mode {:04o}, age {}",
        human(snap.info.size),
        snap.info.size,
        user(snap.info.uid),
        snap.info.mode,
        age(now - snap.info.ctime)
    );
    print_map("header", header.as_object());
    match &object {
        Some(o) => {
            print_map("object", o.state.as_object());
            print_map("counters", Some(&o.counters));
        }
        None if !snap.is_complete() => println!(
            "object: not read (the payload is larger than {})",
            human(MAX_PAYLOAD as u64)
        ),
        None => println!("object: no decoder for this kind, or its state fails its checks"),
    }
    Ok(())
}

fn print_map(title: &str, map: Option<&Map<String, Value>>) {
    println!("{title}:");
    let Some(map) = map else { return };
    for (k, v) in map {
        match v {
            Value::Object(inner) if !inner.contains_key("pid") => {
                println!("  {k}:");
                for (k2, v2) in inner {
                    println!("    {k2:<20} {}", plain(v2));
                }
            }
            _ => println!("  {k:<22} {}", plain(v)),
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Object(o) if o.contains_key("pid") => {
            let alive = match o.get("alive") {
                Some(Value::Bool(true)) => "alive",
                Some(Value::Bool(false)) => "dead",
                _ => "?",
            };
            match o.get("tid") {
                Some(t) => format!("pid {} tid {t} ({alive})", plain(&o["pid"])),
                None => format!("pid {} ({alive})", plain(&o["pid"])),
            }
        }
        other => other.to_string(),
    }
}

/// `ipc clean`.
pub(crate) fn clean(prefix: &str, dry_run: bool, json_out: bool) -> Result<(), Failure> {
    let names = if dry_run {
        multiproc_core::sweep_dry_run(prefix)?
    } else {
        multiproc_core::sweep(prefix)?
    };
    let mut names = names;
    names.sort();
    if json_out {
        let out = json!({ "dry_run": dry_run, "prefix": prefix, "removed": names });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for n in &names {
        println!("{verb} {n}");
    }
    println!("{verb} {} stale segment(s)", names.len());
    Ok(())
}
