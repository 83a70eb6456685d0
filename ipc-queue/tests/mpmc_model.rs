//! A randomized interleaving model check of the MPMC slot protocol,
//! crashes included.
//!
//! The protocol of `ipc_queue::mpmc::raw` is written here as explicit state
//! machines, one atomic action per step, exactly in the order the real code
//! performs them (index load, state load, claim CAS, index store, payload,
//! publish/release store; and the recoverer's takeover CAS, index load,
//! length/lost updates, `fetch_max` and final store). A scheduler runs
//! producers and consumers under many random interleavings and kills
//! threads at random steps (a killed thread's id is then "dead" to liveness
//! checks, as a SIGKILLed process is). After each run it checks:
//!
//! - nothing wedges: every surviving thread finishes within a step bound;
//! - no message is delivered twice, and per consumer each producer's messages
//!   arrive in order;
//! - every published message is delivered, or counted in `lost`, and `lost`
//!   never exceeds the number of kills;
//! - the recoverer's derivation of the dead claimer's position (from `head`
//!   or `tail`) always names the position that claimer really held;
//! - the ring ends empty with `head == tail`.
//!
//! The model runs under sequential consistency; the memory orderings of the
//! real code are argued in its documentation, model-checked by loom in
//! `tests/loom.rs` and exercised by the threaded and multi-process tests. `IPC_STRESS=1` runs ten times as many schedules.

mod common;
use common::Rng;

const BUSY: u64 = 1 << 63;
const READING: u64 = 1 << 62;
const ID_MASK: u64 = READING - 1;
const ABORTED: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Slot {
    state: u64,
    len: u32,
    val: u64,
    /// Ghost: the position the current claimer really holds.
    ghost: u64,
}

struct Ring {
    cap: u64,
    head: u64,
    tail: u64,
    lost: u64,
    slots: Vec<Slot>,
}

impl Ring {
    fn new(cap: u64) -> Ring {
        Ring {
            cap,
            head: 0,
            tail: 0,
            lost: 0,
            slots: (0..cap)
                .map(|i| Slot {
                    state: 2 * i,
                    len: 0,
                    val: 0,
                    ghost: 0,
                })
                .collect(),
        }
    }
    fn slot(&mut self, pos: u64) -> &mut Slot {
        let i = (pos & (self.cap - 1)) as usize;
        &mut self.slots[i]
    }
}

#[derive(Clone, Copy, Debug)]
enum Pc {
    Start,
    LoadState(u64),
    Cas(u64, u64),
    StoreIndex(u64),
    Payload(u64),
    Finish(u64),
    FullOrEmptyCheck(u64),
    // Recovery of the slot serving a position, whose state was `observed`.
    Takeover(u64, u64),
    RecIndex(u64, u64),
    RecLen(u64, u64),
    RecMax(u64, u64),
    RecStore(u64, u64),
    Done,
}

#[derive(Debug)]
struct Thread {
    id: u64,
    producer: Option<u64>,
    next_seq: u64,
    items: u64,
    pc: Pc,
    alive: bool,
    immortal: bool,
    /// Consumer: (producer, seq) in the order received.
    got: Vec<(u64, u64)>,
    /// Producer: seqs whose publication completed.
    published: Vec<u64>,
    /// Consumer: the message read in `Payload` (None = aborted).
    reading: Option<u64>,
}

struct World {
    ring: Ring,
    threads: Vec<Thread>,
    kills: u64,
}

fn encode(p: u64, s: u64) -> u64 {
    (p << 32) | s
}

impl World {
    fn dead(&self, owner: u64) -> bool {
        self.threads
            .iter()
            .find(|t| t.id == owner)
            .is_some_and(|t| !t.alive)
    }

    fn producers_finished(&self) -> bool {
        self.threads
            .iter()
            .filter(|t| t.producer.is_some())
            .all(|t| !t.alive || matches!(t.pc, Pc::Done))
    }

    /// Runs one atomic step of thread `k`.
    fn step(&mut self, k: usize) {
        let cap = self.ring.cap;
        let me = self.threads[k].id;
        let producing = self.threads[k].producer.is_some();
        let pc = self.threads[k].pc;
        let next = match pc {
            Pc::Done => Pc::Done,
            Pc::Start => {
                let t = &self.threads[k];
                if producing && t.next_seq == t.items {
                    Pc::Done
                } else {
                    Pc::LoadState(if producing {
                        self.ring.tail
                    } else {
                        self.ring.head
                    })
                }
            }
            Pc::LoadState(pos) => {
                let s = self.ring.slot(pos).state;
                let want = if producing { 2 * pos } else { 2 * pos + 1 };
                if s == want {
                    Pc::Cas(pos, s)
                } else if s & BUSY != 0 {
                    if self.dead(s & ID_MASK) {
                        Pc::Takeover(pos, s)
                    } else {
                        Pc::Start
                    }
                } else if (producing && s == (2 * pos).wrapping_sub(2 * cap) + 1)
                    || (!producing && s == 2 * pos)
                {
                    Pc::FullOrEmptyCheck(pos)
                } else {
                    Pc::Start
                }
            }
            Pc::FullOrEmptyCheck(pos) => {
                if producing {
                    // Full when head + cap == pos: retry later either way.
                    Pc::Start
                } else if self.ring.tail == pos && self.producers_finished() {
                    Pc::Done
                } else {
                    Pc::Start
                }
            }
            Pc::Cas(pos, expect) => {
                let slot = self.ring.slot(pos);
                if slot.state == expect {
                    slot.state = BUSY | if producing { 0 } else { READING } | me;
                    slot.ghost = pos;
                    Pc::StoreIndex(pos)
                } else {
                    Pc::Start
                }
            }
            Pc::StoreIndex(pos) => {
                if producing {
                    self.ring.tail = pos + 1;
                } else {
                    self.ring.head = pos + 1;
                }
                Pc::Payload(pos)
            }
            Pc::Payload(pos) => {
                if let Some(p) = self.threads[k].producer {
                    let v = encode(p, self.threads[k].next_seq);
                    let slot = self.ring.slot(pos);
                    slot.val = v;
                    slot.len = 8;
                } else {
                    let slot = self.ring.slot(pos).clone();
                    let t = &mut self.threads[k];
                    if slot.len == ABORTED {
                        t.reading = None;
                    } else {
                        t.reading = Some(slot.val);
                        t.got.push((slot.val >> 32, slot.val & 0xffff_ffff));
                    }
                }
                Pc::Finish(pos)
            }
            Pc::Finish(pos) => {
                if producing {
                    self.ring.slot(pos).state = 2 * pos + 1;
                    let t = &mut self.threads[k];
                    t.published.push(t.next_seq);
                    t.next_seq += 1;
                } else {
                    self.ring.slot(pos).state = 2 * (pos + cap);
                }
                Pc::Start
            }
            Pc::Takeover(pos, observed) => {
                let slot = self.ring.slot(pos);
                if slot.state == observed {
                    slot.state = (observed & (BUSY | READING)) | me;
                    Pc::RecIndex(pos, observed)
                } else {
                    Pc::Start
                }
            }
            Pc::RecIndex(pos, observed) => {
                let idx = pos & (cap - 1);
                let p = if observed & READING == 0 {
                    let h = self.ring.head;
                    h + (idx.wrapping_sub(h) & (cap - 1))
                } else {
                    let lo = self.ring.tail.wrapping_sub(cap);
                    lo.wrapping_add(idx.wrapping_sub(lo) & (cap - 1))
                };
                let ghost = self.ring.slot(pos).ghost;
                assert_eq!(p, ghost, "recoverer derived the wrong position");
                Pc::RecLen(p, observed)
            }
            Pc::RecLen(p, observed) => {
                let slot = self.ring.slot(p);
                if observed & READING == 0 {
                    slot.len = ABORTED;
                    self.ring.lost += 1;
                } else if slot.len != ABORTED {
                    self.ring.lost += 1;
                }
                Pc::RecMax(p, observed)
            }
            Pc::RecMax(p, observed) => {
                if observed & READING == 0 {
                    self.ring.tail = self.ring.tail.max(p + 1);
                } else {
                    self.ring.head = self.ring.head.max(p + 1);
                }
                Pc::RecStore(p, observed)
            }
            Pc::RecStore(p, observed) => {
                let slot = self.ring.slot(p);
                slot.state = if observed & READING == 0 {
                    2 * p + 1
                } else {
                    2 * (p + cap)
                };
                Pc::Start
            }
        };
        self.threads[k].pc = next;
    }
}

/// One schedule; panics if a property fails.
fn run(seed: u64, cap: u64, producers: u64, consumers: u64, items: u64, max_kills: u64) {
    let mut rng = Rng(seed | 1);
    let mut threads = Vec::new();
    for p in 0..producers {
        threads.push(Thread {
            id: 100 + p,
            producer: Some(p),
            next_seq: 0,
            items,
            pc: Pc::Start,
            alive: true,
            immortal: false,
            got: Vec::new(),
            published: Vec::new(),
            reading: None,
        });
    }
    for c in 0..consumers {
        threads.push(Thread {
            id: 200 + c,
            producer: None,
            next_seq: 0,
            items: 0,
            pc: Pc::Start,
            alive: true,
            immortal: c == 0, // someone must be left to drain the ring
            got: Vec::new(),
            published: Vec::new(),
            reading: None,
        });
    }
    let mut w = World {
        ring: Ring::new(cap),
        threads,
        kills: 0,
    };
    let mut steps = 0u64;
    loop {
        let runnable: Vec<usize> = (0..w.threads.len())
            .filter(|&k| w.threads[k].alive && !matches!(w.threads[k].pc, Pc::Done))
            .collect();
        if runnable.is_empty() {
            break;
        }
        steps += 1;
        assert!(
            steps < 200_000,
            "wedged (seed {seed:#x}): {:?}",
            w.threads
                .iter()
                .map(|t| (t.id, t.alive, t.pc))
                .collect::<Vec<_>>()
        );
        let k = runnable[(rng.next() % runnable.len() as u64) as usize];
        if w.kills < max_kills && !w.threads[k].immortal && rng.next().is_multiple_of(40) {
            w.threads[k].alive = false;
            w.kills += 1;
            continue;
        }
        w.step(k);
    }
    // A consumer that died after moving `head` leaves its slot claimed until
    // the producer of the next lap needs it; play that producer's recovery.
    for i in 0..cap {
        let s = w.ring.slots[i as usize].state;
        if s & BUSY != 0 {
            assert!(w.dead(s & ID_MASK), "seed {seed:#x}: live claim left");
            w.threads.push(Thread {
                id: 900 + i,
                producer: None,
                next_seq: 0,
                items: 0,
                pc: Pc::Takeover(i, s),
                alive: true,
                immortal: true,
                got: Vec::new(),
                published: Vec::new(),
                reading: None,
            });
            let k = w.threads.len() - 1;
            while !matches!(w.threads[k].pc, Pc::Start) {
                w.step(k);
            }
        }
    }
    // A consumer may have found the ring empty just before a producer
    // claimed a slot and died; recovery publishes that slot as aborted. A
    // late consumer drains it, as a real one would on its next poll.
    w.threads.push(Thread {
        id: 999,
        producer: None,
        next_seq: 0,
        items: 0,
        pc: Pc::Start,
        alive: true,
        immortal: true,
        got: Vec::new(),
        published: Vec::new(),
        reading: None,
    });
    let k = w.threads.len() - 1;
    let mut n = 0;
    while !matches!(w.threads[k].pc, Pc::Done) {
        n += 1;
        assert!(n < 100_000, "seed {seed:#x}: drain wedged");
        w.step(k);
    }
    // Properties.
    let mut delivered = std::collections::HashMap::new();
    for t in w.threads.iter().filter(|t| t.producer.is_none()) {
        let mut last = vec![None::<u64>; producers as usize];
        for &(p, s) in &t.got {
            assert!(
                last[p as usize].is_none_or(|l| l < s),
                "seed {seed:#x}: order"
            );
            last[p as usize] = Some(s);
            *delivered.entry((p, s)).or_insert(0u32) += 1;
        }
    }
    assert!(
        delivered.values().all(|&n| n == 1),
        "seed {seed:#x}: duplicate delivery"
    );
    let mut missing = 0;
    for t in w.threads.iter().filter(|t| t.producer.is_some()) {
        let p = t.producer.unwrap();
        for &s in &t.published {
            if !delivered.contains_key(&(p, s)) {
                missing += 1;
            }
        }
    }
    assert!(
        missing <= w.ring.lost,
        "seed {seed:#x}: {missing} published messages missing, {} lost",
        w.ring.lost
    );
    assert!(
        w.ring.lost <= w.kills,
        "seed {seed:#x}: lost {} > kills {}",
        w.ring.lost,
        w.kills
    );
    assert_eq!(w.ring.head, w.ring.tail, "seed {seed:#x}: ring not drained");
    for (i, s) in w.ring.slots.iter().enumerate() {
        assert_eq!(s.state & BUSY, 0, "seed {seed:#x}: slot {i} left claimed");
    }
}

fn schedules() -> u64 {
    if std::env::var_os("IPC_STRESS").is_some() {
        200_000
    } else {
        20_000
    }
}

#[test]
fn random_interleavings_without_crashes() {
    for seed in 0..schedules() / 4 {
        let cap = 1 << (seed % 3);
        run(seed * 0x9e37_79b9 + 1, cap, 2, 2, 4, 0);
    }
}

#[test]
fn random_interleavings_with_crashes() {
    for seed in 0..schedules() {
        let cap = 1 << (seed % 3);
        run(seed * 0x2545_f491 + 7, cap, 2, 3, 4, 1 + seed % 3);
    }
}
