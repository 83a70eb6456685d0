//! What each kind of segment holds, decoded from a private copy of its
//! payload by the owning crate's own checking code (`attach` of the raw
//! layer), so nothing is read at an offset the object's checks did not
//! vouch for.

use multiproc_core::header::fnv1a64;
use multiproc_core::inspect::Snapshot;
use multiproc_core::object::ShmObject;
use multiproc_core::{Liveness, ProcessId};
use multiproc_queue::raw::spsc::{RawRing, Side};
use multiproc_queue::raw::PtrMem;
use serde_json::{json, Map, Value};
use std::ptr::NonNull;

/// Every kind name of the workspace's crates; a segment's type tag is the
/// FNV-1a hash of its kind's name.
const KINDS: &[&str] = &[
    "ipc-core/bytes",
    "ipc-pool/control",
    "ipc-queue/broadcast",
    "ipc-queue/mpmc",
    "ipc-queue/pipe",
    "ipc-queue/queue",
    "ipc-queue/spsc",
    "ipc-sync/barrier",
    "ipc-sync/bounded-semaphore",
    "ipc-sync/condvar",
    "ipc-sync/dict",
    "ipc-sync/event",
    "ipc-sync/list",
    "ipc-sync/mutex",
    "ipc-sync/raw-mutex",
    "ipc-sync/raw-reentrant-mutex",
    "ipc-sync/raw-rwlock",
    "ipc-sync/recoverable-semaphore",
    "ipc-sync/reentrant-mutex",
    "ipc-sync/rwlock",
    "ipc-sync/semaphore",
    "ipc-sync/value",
];

/// The short name of the kind whose tag is `tag` (`"spsc"`, `"mutex"`).
pub(crate) fn kind_name(tag: u64) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|k| fnv1a64(k.as_bytes()) == tag)
        .map(|k| k.split_once('/').map_or(*k, |(_, short)| short))
}

/// An object's state, and its counters (totals, for `watch` to turn into
/// rates).
#[derive(Debug)]
pub(crate) struct Described {
    /// Kind-specific fields.
    pub(crate) state: Value,
    /// Monotonic counters, by name.
    pub(crate) counters: Map<String, Value>,
}

/// The object in `snap`, if its kind is known, its payload was read in full
/// and it passes its own checks.
pub(crate) fn describe(snap: &mut Snapshot) -> Option<Described> {
    if !snap.is_complete() {
        return None;
    }
    let kind = kind_name(snap.header.type_tag)?;
    let payload = snap.payload_mut();
    let len = payload.len();
    if len == 0 {
        return None;
    }
    let base = NonNull::from(&mut *payload).cast::<u8>();
    // SAFETY: `payload` is this process's private copy, 128-byte aligned
    // (`Snapshot::payload_mut`), valid for reads and writes of `len` bytes
    // and borrowed mutably for this whole function, which is as long as the
    // memory, the rings attached to it and every reference they hand out
    // live. Nobody else can reach it; the raw layers only read here.
    let mem = unsafe { PtrMem::new(base, len) };
    match kind {
        "spsc" => spsc(mem),
        "pipe" => pipe(mem),
        "mpmc" | "queue" => mpmc(mem),
        "broadcast" => broadcast(mem),
        "mutex" | "value" | "raw-mutex" => mutex(payload),
        "semaphore" => semaphore(payload),
        "bounded-semaphore" => bounded_semaphore(payload),
        "barrier" => barrier(payload),
        "event" => event(payload),
        _ => None,
    }
}

/// A checked reference to the object `O` at the start of `payload`.
fn attach<O: ShmObject>(payload: &mut [u8]) -> Option<&O> {
    let len = payload.len();
    // SAFETY: `payload` is a private, 128-byte aligned copy, valid for
    // `len` bytes and unaliased for the returned borrow; `attach` checks
    // size, alignment and the object's tag.
    unsafe { O::attach(NonNull::from(payload).cast(), len) }.ok()
}

/// A recorded process as JSON: pid and liveness (`null` for nobody).
fn process(packed: u64) -> Value {
    if packed == 0 {
        return Value::Null;
    }
    let id = ProcessId::from_u64(packed);
    json!({
        "pid": id.pid,
        "alive": ProcessId::liveness_packed(packed) == Liveness::Alive,
    })
}

fn spsc_state(ring: &RawRing<PtrMem>, counters: &mut Map<String, Value>, pre: &str) -> Value {
    let mut end = |side: Side| {
        let c = ring.counters(side);
        let wakeups = ring.event(side).wakeups();
        for (k, v) in [
            ("messages", c.messages),
            ("bytes", c.bytes),
            ("wakeups", u64::from(wakeups)),
        ] {
            counters.insert(format!("{pre}{}.{k}", side.name()), json!(v));
        }
        if side == Side::Producer {
            counters.insert(format!("{pre}producer.full"), json!(c.full));
        }
        json!({
            "owner": process(ring.owner(side)),
            "closed": ring.is_closed(side),
            "attaches": ring.attach_count(side),
        })
    };
    let producer = end(Side::Producer);
    let consumer = end(Side::Consumer);
    json!({
        "capacity": ring.capacity(),
        "used_bytes": ring.used_bytes(),
        "fixed_len": ring.fixed_len(),
        "producer": producer,
        "consumer": consumer,
    })
}

fn spsc(mem: PtrMem) -> Option<Described> {
    let ring = RawRing::attach(mem).ok()?;
    let mut counters = Map::new();
    let state = spsc_state(&ring, &mut counters, "");
    Some(Described { state, counters })
}

fn pipe(mem: PtrMem) -> Option<Described> {
    let a = RawRing::attach(mem).ok()?;
    let off = (multiproc_queue::raw::spsc::DATA + a.capacity()).next_multiple_of(128);
    let b = RawRing::attach(mem.split(off).1).ok()?;
    let mut counters = Map::new();
    let state = json!({
        "a_to_b": spsc_state(&a, &mut counters, "a_to_b."),
        "b_to_a": spsc_state(&b, &mut counters, "b_to_a."),
    });
    Some(Described { state, counters })
}

fn mpmc(mem: PtrMem) -> Option<Described> {
    let ring = multiproc_queue::raw::mpmc::RawMpmc::attach(mem).ok()?;
    let mut counters = Map::new();
    counters.insert("lost".into(), json!(ring.lost()));
    counters.insert("consumer_wakeups".into(), json!(ring.not_empty().wakeups()));
    counters.insert("producer_wakeups".into(), json!(ring.not_full().wakeups()));
    let state = json!({
        "capacity": ring.capacity(),
        "slot_size": ring.slot_size(),
        "depth": ring.len(),
        "closed": ring.is_closed(),
        "joinable": ring.is_joinable(),
        "unfinished": ring.is_joinable().then(|| ring.unfinished()),
    });
    Some(Described { state, counters })
}

fn broadcast(mem: PtrMem) -> Option<Described> {
    let ring = multiproc_queue::raw::broadcast::RawBroadcast::attach(mem).ok()?;
    let mut counters = Map::new();
    counters.insert("published".into(), json!(ring.written()));
    counters.insert(
        "subscriber_wakeups".into(),
        json!(ring.new_data().wakeups()),
    );
    let state = json!({
        "capacity": ring.capacity(),
        "slot_size": ring.slot_size(),
        "publisher": process(ring.publisher_id()),
        "closed": ring.is_closed(),
    });
    Some(Described { state, counters })
}

fn mutex(payload: &mut [u8]) -> Option<Described> {
    let m = attach::<multiproc_sync::raw::RawMutex>(payload)?;
    let holder = m.holder().map(|(tid, p)| {
        json!({
            "pid": p.pid,
            "tid": tid,
            "alive": p.pid != 0 && ProcessId::liveness_packed(p.to_u64()) == Liveness::Alive,
        })
    });
    let state = json!({
        "locked": m.is_locked(),
        "holder": holder,
        "waiters": m.has_waiters(),
        "not_recoverable": m.is_not_recoverable(),
    });
    Some(Described {
        state,
        counters: Map::new(),
    })
}

fn semaphore(payload: &mut [u8]) -> Option<Described> {
    let s = attach::<multiproc_sync::raw::RawSemaphore>(payload)?;
    let state = json!({ "permits": s.value(), "waiters": s.waiters() });
    Some(Described {
        state,
        counters: Map::new(),
    })
}

fn bounded_semaphore(payload: &mut [u8]) -> Option<Described> {
    let s = attach::<multiproc_sync::raw::RawBoundedSemaphore>(payload)?;
    let state = json!({ "permits": s.value(), "bound": s.bound(), "waiters": s.waiters() });
    Some(Described {
        state,
        counters: Map::new(),
    })
}

fn barrier(payload: &mut [u8]) -> Option<Described> {
    let b = attach::<multiproc_sync::raw::RawBarrier>(payload)?;
    let state = json!({
        "parties": b.parties(),
        "waiting": b.n_waiting(),
        "broken": b.is_broken(),
    });
    Some(Described {
        state,
        counters: Map::new(),
    })
}

fn event(payload: &mut [u8]) -> Option<Described> {
    let e = attach::<multiproc_sync::raw::RawEvent>(payload)?;
    Some(Described {
        state: json!({ "set": e.is_set() }),
        counters: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_short_name() {
        assert_eq!(kind_name(fnv1a64(b"ipc-queue/spsc")), Some("spsc"));
        assert_eq!(kind_name(1), None);
        let mut tags: Vec<u64> = KINDS.iter().map(|k| fnv1a64(k.as_bytes())).collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), KINDS.len());
    }
}
