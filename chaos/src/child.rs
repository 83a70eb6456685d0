//! What a child process is told to do, and the entry point every child of
//! the suite starts in.

use crate::scenario::{containers, hostile, locks, rings, waiters};

/// The part a child plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    SpscProducer,
    SpscConsumer,
    MpmcProducer,
    MpmcConsumer,
    Publisher,
    Subscriber,
    Locker,
    PermitHolder,
    SemWaiter,
    CondvarWaiter,
    EventWaiter,
    BarrierWaiter,
    Scribbler,
    HostileSpsc,
    HostileMpmc,
    HostileBroadcast,
    HostileMutex,
    ContainerWriter,
}

const ROLES: [Role; 18] = [
    Role::SpscProducer,
    Role::SpscConsumer,
    Role::MpmcProducer,
    Role::MpmcConsumer,
    Role::Publisher,
    Role::Subscriber,
    Role::Locker,
    Role::PermitHolder,
    Role::SemWaiter,
    Role::CondvarWaiter,
    Role::EventWaiter,
    Role::BarrierWaiter,
    Role::Scribbler,
    Role::HostileSpsc,
    Role::HostileMpmc,
    Role::HostileBroadcast,
    Role::HostileMutex,
    Role::ContainerWriter,
];

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::SpscProducer => "spsc-producer",
            Role::SpscConsumer => "spsc-consumer",
            Role::MpmcProducer => "mpmc-producer",
            Role::MpmcConsumer => "mpmc-consumer",
            Role::Publisher => "bcast-publisher",
            Role::Subscriber => "bcast-subscriber",
            Role::Locker => "mutex-locker",
            Role::PermitHolder => "permit-holder",
            Role::SemWaiter => "sem-waiter",
            Role::CondvarWaiter => "condvar-waiter",
            Role::EventWaiter => "event-waiter",
            Role::BarrierWaiter => "barrier-waiter",
            Role::Scribbler => "scribbler",
            Role::HostileSpsc => "hostile-spsc-user",
            Role::HostileMpmc => "hostile-mpmc-user",
            Role::HostileBroadcast => "hostile-bcast-user",
            Role::HostileMutex => "hostile-mutex-user",
            Role::ContainerWriter => "container-writer",
        }
    }
}

/// A child's instructions: its role, the object it works on, the ledger it
/// reports to, its slot there, a seed and one role-specific number.
#[derive(Clone, Debug)]
pub(crate) struct ChildArgs {
    pub(crate) role: Role,
    pub(crate) target: String,
    pub(crate) ledger: String,
    pub(crate) slot: usize,
    pub(crate) seed: u64,
    pub(crate) param: u64,
}

impl ChildArgs {
    pub(crate) fn new(role: Role, target: &str, ledger: &str, slot: usize, seed: u64) -> Self {
        ChildArgs {
            role,
            target: target.to_owned(),
            ledger: ledger.to_owned(),
            slot,
            seed,
            param: 0,
        }
    }

    pub(crate) fn param(mut self, p: u64) -> Self {
        self.param = p;
        self
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.role.name(),
            self.target,
            self.ledger,
            self.slot,
            self.seed,
            self.param
        )
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<ChildArgs> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut it = s.split('\n');
        let role = it.next()?;
        let role = ROLES.iter().copied().find(|r| r.name() == role)?;
        Some(ChildArgs {
            role,
            target: it.next()?.to_owned(),
            ledger: it.next()?.to_owned(),
            slot: it.next()?.parse().ok()?,
            seed: it.next()?.parse().ok()?,
            param: it.next()?.parse().ok()?,
        })
    }
}

/// The entry of every child: decodes its instructions and plays its role.
/// Exit codes: 0 done, 2 bad arguments, 3 could not attach; a panic exits
/// with 1 (caught by `multiproc_core::process`).
pub(crate) fn child_main(args: &[u8]) -> i32 {
    let Some(a) = ChildArgs::decode(args) else {
        eprintln!("ipc-chaos child: bad arguments");
        return 2;
    };
    let r = match a.role {
        Role::SpscProducer => rings::spsc_producer(&a),
        Role::SpscConsumer => rings::spsc_consumer(&a),
        Role::MpmcProducer => rings::mpmc_producer(&a),
        Role::MpmcConsumer => rings::mpmc_consumer(&a),
        Role::Publisher => rings::publisher(&a),
        Role::Subscriber => rings::subscriber(&a),
        Role::Locker => locks::locker(&a),
        Role::PermitHolder => locks::permit_holder(&a),
        Role::SemWaiter | Role::CondvarWaiter | Role::EventWaiter | Role::BarrierWaiter => {
            waiters::waiter(&a)
        }
        Role::Scribbler => hostile::scribbler(&a),
        Role::HostileSpsc | Role::HostileMpmc | Role::HostileBroadcast | Role::HostileMutex => {
            hostile::user(&a)
        }
        Role::ContainerWriter => containers::container_writer(&a),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ipc-chaos child {}: {e}", a.role.name());
            3
        }
    }
}

/// The error a child reports before exiting with code 3.
pub(crate) type ChildResult = Result<(), String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        for role in ROLES {
            let a = ChildArgs::new(role, "t-1", "l-2", 3, u64::MAX).param(9);
            let b = ChildArgs::decode(&a.encode()).unwrap();
            assert_eq!(b.role, role);
            assert_eq!((b.target.as_str(), b.ledger.as_str()), ("t-1", "l-2"));
            assert_eq!((b.slot, b.seed, b.param), (3, u64::MAX, 9));
        }
        assert!(ChildArgs::decode(b"nonsense").is_none());
    }
}
