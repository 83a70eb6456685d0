//! What every public handle shares: the placed object and this process's
//! wait strategy, the accessors for them, and (feature `serde`) the handle
//! as a value that another process receives usable.
//!
//! # The wire format of a handle
//!
//! A handle is encoded as a struct of four fields: where its segment is
//! (`Named(name)`, opened by name on arrival; or `Fd(index)`, a descriptor
//! exported with [`export_fd`](multiproc_core::message::export_fd) while a
//! spawn's arguments are encoded and taken with
//! [`import_fd`](multiproc_core::message::import_fd) in the child), the object's
//! offset in the segment, the segment's kind (type tag, layout version,
//! layout hash), and the wait strategy. Decoding maps the segment, checking
//! its kind, and attaches the object, checking it: a forged or stale handle
//! is a decoding error, never a bad mapping. An anonymous handle can
//! therefore only travel in the arguments of a child being started; a named
//! one travels anywhere.

use multiproc_core::object::{Placed, ShmObject};
use multiproc_core::wait::WaitStrategy;

/// The parts of a handle the shared accessors and the wire format use.
pub(crate) trait Parts {
    /// The object placed.
    type Object: ShmObject;
    /// The placed object.
    fn placed(&self) -> &Placed<Self::Object>;
    /// This handle's wait strategy.
    fn strategy(&self) -> WaitStrategy;
    /// Sets this handle's wait strategy.
    fn set_strategy(&mut self, strategy: WaitStrategy);
}

/// For a handle type with the fields `placed: Placed<$obj>` and `strategy`:
/// [`Handle`](multiproc_core::object::Handle) and `Clone` (unless the `parts`
/// form is used, for a type that makes its own), [`Parts`], the accessors
/// every handle has and, with feature `serde`, `Serialize` and
/// `Deserialize`. The `delegate` form is for a type that wraps another
/// handle in one field.
macro_rules! handle {
    (impl[$($g:tt)*] $t:ty, $obj:ty, $what:literal) => {
        impl<$($g)*> multiproc_core::object::Handle for $t {
            type Object = $obj;
            fn from_placed(placed: multiproc_core::object::Placed<$obj>) -> Self {
                Self {
                    placed,
                    strategy: multiproc_core::wait::WaitStrategy::ADAPTIVE,
                }
            }
        }
        impl<$($g)*> Clone for $t {
            /// Another handle to the same object, with the same wait
            /// strategy.
            fn clone(&self) -> Self {
                Self {
                    placed: self.placed.clone(),
                    strategy: self.strategy,
                }
            }
        }
        crate::handle::handle!(parts impl[$($g)*] $t, $obj, $what);
    };
    (delegate impl[$($g:tt)*] $t:ident<$($p:tt),*> to $field:ident: $inner:ty, $obj:ty, $what:literal) => {
        impl<$($g)*> multiproc_core::object::Handle for $t<$($p),*> {
            type Object = $obj;
            fn from_placed(placed: multiproc_core::object::Placed<$obj>) -> Self {
                $t {
                    $field: <$inner as multiproc_core::object::Handle>::from_placed(placed),
                }
            }
        }

        impl<$($g)*> Clone for $t<$($p),*> {
            /// Another handle to the same object.
            fn clone(&self) -> Self {
                $t {
                    $field: self.$field.clone(),
                }
            }
        }

        impl<$($g)*> crate::handle::Parts for $t<$($p),*> {
            type Object = $obj;
            fn placed(&self) -> &multiproc_core::object::Placed<$obj> {
                crate::handle::Parts::placed(&self.$field)
            }
            fn strategy(&self) -> multiproc_core::wait::WaitStrategy {
                crate::handle::Parts::strategy(&self.$field)
            }
            fn set_strategy(&mut self, strategy: multiproc_core::wait::WaitStrategy) {
                crate::handle::Parts::set_strategy(&mut self.$field, strategy);
            }
        }
        crate::handle::handle!(common impl[$($g)*] $t<$($p),*>, $what);
    };
    (parts impl[$($g:tt)*] $t:ty, $obj:ty, $what:literal) => {
        impl<$($g)*> crate::handle::Parts for $t {
            type Object = $obj;
            fn placed(&self) -> &multiproc_core::object::Placed<$obj> {
                &self.placed
            }
            fn strategy(&self) -> multiproc_core::wait::WaitStrategy {
                self.strategy
            }
            fn set_strategy(&mut self, strategy: multiproc_core::wait::WaitStrategy) {
                self.strategy = strategy;
            }
        }
        crate::handle::handle!(common impl[$($g)*] $t, $what);
    };
    (common impl[$($g:tt)*] $t:ty, $what:literal) => {
        impl<$($g)*> $t {
            #[doc = concat!("The segment holding the ", $what, " (for its name or descriptor).")]
            pub fn segment(&self) -> &std::sync::Arc<multiproc_core::Segment> {
                crate::handle::Parts::placed(self).segment()
            }

            /// This handle's wait strategy (default [`WaitStrategy::ADAPTIVE`](multiproc_core::wait::WaitStrategy::ADAPTIVE)).
            pub fn wait_strategy(&self) -> multiproc_core::wait::WaitStrategy {
                crate::handle::Parts::strategy(self)
            }

            /// The same handle with another wait strategy (for this process).
            pub fn with_wait_strategy(mut self, strategy: multiproc_core::wait::WaitStrategy) -> Self {
                crate::handle::Parts::set_strategy(&mut self, strategy);
                self
            }
        }

        #[cfg(feature = "serde")]
        impl<$($g)*> serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::handle::wire::serialize(
                    crate::handle::Parts::placed(self),
                    crate::handle::Parts::strategy(self),
                    s,
                )
            }
        }

        #[cfg(feature = "serde")]
        impl<'de, $($g)*> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let (placed, strategy) = crate::handle::wire::deserialize(d)?;
                let mut h = <Self as multiproc_core::object::Handle>::from_placed(placed);
                crate::handle::Parts::set_strategy(&mut h, strategy);
                Ok(h)
            }
        }
    };
}
pub(crate) use handle;

#[cfg(feature = "serde")]
pub(crate) mod wire {
    use multiproc_core::message::{export_fd, import_fd};
    use multiproc_core::object::{Placed, ShmObject};
    use multiproc_core::wait::WaitStrategy;
    use multiproc_core::{Kind, Segment};
    use serde::de::Error as _;
    use std::sync::Arc;
    use std::time::Duration;

    /// Where a handle's segment is found.
    #[derive(serde::Serialize, serde::Deserialize)]
    enum Place {
        /// A named segment, opened by name.
        Named(String),
        /// An anonymous segment, by the index of its exported descriptor.
        Fd(u32),
    }

    /// A wait strategy, in nanoseconds.
    #[derive(serde::Serialize, serde::Deserialize)]
    enum Strategy {
        BusySpin,
        Adaptive { spin_ns: u64, yield_ns: u64 },
        Blocking,
    }

    /// A handle on the wire (see the [module docs](super)).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wire {
        place: Place,
        offset: u64,
        kind: (u64, u32, u64),
        strategy: Strategy,
    }

    fn nanos(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn serialize<O: ShmObject, S: serde::Serializer>(
        placed: &Placed<O>,
        strategy: WaitStrategy,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let seg = placed.segment();
        let place = match seg.name() {
            Some(n) => Place::Named(n.to_owned()),
            None => Place::Fd(export_fd(seg.fd()).map_err(|e| match e {
                multiproc_core::message::EncodeError::Handle(reason) => {
                    multiproc_core::message::refuse_handle(reason)
                }
                other => multiproc_core::message::refuse_handle(other),
            })?),
        };
        let k = seg.kind();
        let strategy = match strategy {
            WaitStrategy::BusySpin => Strategy::BusySpin,
            WaitStrategy::Blocking => Strategy::Blocking,
            WaitStrategy::Adaptive { spin, yield_for } => Strategy::Adaptive {
                spin_ns: nanos(spin),
                yield_ns: nanos(yield_for),
            },
        };
        serde::Serialize::serialize(
            &Wire {
                place,
                offset: placed.offset(),
                kind: (k.tag, k.version, k.layout_hash),
                strategy,
            },
            s,
        )
    }

    pub(crate) fn deserialize<'de, O: ShmObject, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<(Placed<O>, WaitStrategy), D::Error> {
        let w: Wire = serde::Deserialize::deserialize(d)?;
        let (tag, version, layout_hash) = w.kind;
        // An object in a segment of its own is checked against its own
        // kind; one at an offset of another segment, against the kind the
        // sender mapped it with (the object itself is checked either way).
        let kind = if tag == O::KIND.tag {
            O::KIND
        } else {
            Kind {
                name: "the segment of a received handle",
                tag,
                version,
                layout_hash,
            }
        };
        let seg = match w.place {
            Place::Named(name) => Segment::builder(kind).name(name).open(),
            Place::Fd(i) => Segment::from_fd(import_fd(i).map_err(D::Error::custom)?, kind),
        }
        .map_err(D::Error::custom)?;
        let placed = Placed::at(Arc::new(seg), w.offset).map_err(D::Error::custom)?;
        let strategy = match w.strategy {
            Strategy::BusySpin => WaitStrategy::BusySpin,
            Strategy::Blocking => WaitStrategy::Blocking,
            Strategy::Adaptive { spin_ns, yield_ns } => WaitStrategy::Adaptive {
                spin: Duration::from_nanos(spin_ns),
                yield_for: Duration::from_nanos(yield_ns),
            },
        };
        Ok((placed, strategy))
    }
}

/// The three forms of a lock of a public type over a raw lock: the plain
/// wait, the single try and the timed wait (each with its error type),
/// each turning the raw result into a guard, or an error carrying one, with
/// `self.$guard(consistent)`.
macro_rules! lock_forms {
    (
        $guard:ident -> $g:ty:
        $(#[$m1:meta])* $lock:ident => $raw_lock:ident,
        $(#[$m2:meta])* $try:ident => $raw_try:ident,
        $(#[$m3:meta])* $timeout:ident => $raw_timeout:ident
    ) => {
        $(#[$m1])*
        pub fn $lock(&self) -> Result<$g, crate::error::LockError<$g>> {
            let r = self.raw().$raw_lock(&multiproc_core::liveness::OsJudge, self.strategy);
            crate::error::guarded(r, |c| self.$guard(c))
        }

        $(#[$m2])*
        pub fn $try(&self) -> Result<$g, crate::error::TryLockError<$g>> {
            let r = self.raw().$raw_try(&multiproc_core::liveness::OsJudge);
            crate::error::guarded(r, |c| self.$guard(c))
        }

        $(#[$m3])*
        pub fn $timeout(
            &self,
            timeout: std::time::Duration,
        ) -> Result<$g, crate::error::LockTimeoutError<$g>> {
            let r = self.raw().$raw_timeout(&multiproc_core::liveness::OsJudge, self.strategy, timeout);
            crate::error::guarded(r, |c| self.$guard(c))
        }
    };
}
pub(crate) use lock_forms;
