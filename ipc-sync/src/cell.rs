//! [`DataCell`]: a raw lock and the value it guards, as one object in
//! shared memory, shared by [`Mutex`](crate::Mutex),
//! [`ReentrantMutex`](crate::ReentrantMutex), [`RwLock`](crate::RwLock)
//! and [`Value`](crate::Value).

use crate::raw::{tag, RawMutex, RawReentrantMutex, RawRwLock};
use multiproc_core::header::layout_hash;
use multiproc_core::object::{checked_ref, ObjectError, ShmObject};
use multiproc_core::{Kind, Shareable};
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// A raw lock, its value's layout and the value: the shared state of the
/// data-carrying types. `#[repr(C)]`; its segment kind is the lock's
/// ([`DataLock`]), with a layout hash that covers `T`.
#[repr(C)]
pub struct DataCell<L, T> {
    pub(crate) lock: L,
    layout: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: `#[repr(C)]` of a `Shareable` lock, an atomic and a `Shareable`
// value: no pointers, no drop glue, every bit pattern valid.
unsafe impl<L: Shareable, T: Shareable> Shareable for DataCell<L, T> {}
// SAFETY: the value is only reached through the lock's guards, which give
// `&mut T` to one holder or `&T` to readers (hence `Send + Sync`).
unsafe impl<L: Sync, T: Shareable + Send + Sync> Sync for DataCell<L, T> {}

impl<L, T> DataCell<L, T> {
    /// The value, for a guard that holds the lock.
    pub(crate) fn value(&self) -> *mut T {
        self.value.get()
    }
}

/// A raw lock that can guard the value of a [`DataCell`]: it names the
/// segment kind of the cell. Implemented by this crate's raw locks (and
/// [`ValueLock`], the mutex of a [`Value`](crate::Value)); sealed.
pub trait DataLock: Shareable + Sync + private::Sealed {
    /// The name of the cell's segment kind.
    const KIND_NAME: &'static str;
    /// The layout version of the cell.
    const KIND_VERSION: u32;
}

mod private {
    pub trait Sealed {
        fn fresh() -> Self;
        fn check(&self) -> Result<(), multiproc_core::object::ObjectError>;
    }
}

/// The lock word of a [`Value`](crate::Value) or [`Array`](crate::Array):
/// a [`RawMutex`] under the segment kind `ipc-sync/value`, so that a value
/// opened as a mutex (or the other way round) is a typed error.
#[repr(transparent)]
#[derive(Debug)]
pub struct ValueLock(RawMutex);

// SAFETY: a transparent wrapper of a `Shareable` type.
unsafe impl Shareable for ValueLock {}

/// A [`DataLock`] that is a [`RawMutex`]: what a [`Mutex`](crate::Mutex)
/// may be made of.
pub trait MutexLock: DataLock {
    /// The mutex word.
    fn raw(&self) -> &RawMutex;
}

impl MutexLock for RawMutex {
    fn raw(&self) -> &RawMutex {
        self
    }
}

impl MutexLock for ValueLock {
    fn raw(&self) -> &RawMutex {
        &self.0
    }
}

macro_rules! data_lock {
    ($t:ty, $name:literal, $fresh:expr, $check:expr) => {
        impl DataLock for $t {
            const KIND_NAME: &'static str = $name;
            const KIND_VERSION: u32 = 1;
        }
        impl private::Sealed for $t {
            fn fresh() -> Self {
                $fresh
            }
            fn check(&self) -> Result<(), ObjectError> {
                let check: fn(&$t) -> Result<(), ObjectError> = $check;
                check(self)
            }
        }
    };
}

data_lock!(RawMutex, "ipc-sync/mutex", RawMutex::new(), |m| m
    .check_tag(tag::MUTEX, "mutex"));
data_lock!(
    ValueLock,
    "ipc-sync/value",
    ValueLock(RawMutex::new()),
    |m| m.0.check_tag(tag::MUTEX, "value")
);
data_lock!(
    RawReentrantMutex,
    "ipc-sync/reentrant-mutex",
    RawReentrantMutex::new(),
    RawReentrantMutex::check
);
data_lock!(
    RawRwLock,
    "ipc-sync/rwlock",
    RawRwLock::new(),
    RawRwLock::check
);

/// The layout word of a cell holding a `T`: its size and alignment.
const fn value_layout<T>() -> u64 {
    layout_hash(&[
        std::mem::size_of::<T>() as u64,
        std::mem::align_of::<T>() as u64,
    ])
}

// SAFETY: `DataCell` is `Sync` for these `T` and valid for every bit pattern
// of its lock and layout word; the value is a `Shareable` `T`, valid for
// every bit pattern. `init_in` writes a whole cell into memory sized and
// aligned for it; `attach` checks size, alignment, the lock's tag and that
// the value has this build's `T` layout.
unsafe impl<L: DataLock, T: Shareable + Send + Sync> ShmObject for DataCell<L, T> {
    const KIND: Kind = Kind::new(
        L::KIND_NAME,
        L::KIND_VERSION,
        layout_hash(&[
            std::mem::size_of::<Self>() as u64,
            std::mem::align_of::<Self>() as u64,
            value_layout::<T>(),
        ]),
    );
    type Config = T;

    fn memory_size(_: &T) -> Result<usize, ObjectError> {
        if std::mem::align_of::<Self>() > 128 {
            return Err(crate::raw::invalid(
                L::KIND_NAME,
                "the value's alignment is above the 128 bytes a segment gives",
            ));
        }
        Ok(std::mem::size_of::<Self>())
    }

    unsafe fn init_in(mem: NonNull<u8>, _len: usize, value: T) {
        let cell = DataCell {
            lock: <L as private::Sealed>::fresh(),
            layout: AtomicU64::new(value_layout::<T>()),
            value: UnsafeCell::new(value),
        };
        // SAFETY: the caller gives `memory_size` aligned bytes nobody uses.
        unsafe { mem.cast::<Self>().write(cell) };
    }

    unsafe fn attach<'a>(mem: NonNull<u8>, len: usize) -> Result<&'a Self, ObjectError> {
        // SAFETY: the caller's promise, passed on.
        let cell = unsafe { checked_ref::<Self>(mem, len)? };
        private::Sealed::check(&cell.lock)?;
        if cell.layout.load(Ordering::Relaxed) != value_layout::<T>() {
            return Err(crate::raw::corrupt(
                L::KIND_NAME,
                "the value's size or alignment differs".into(),
            ));
        }
        Ok(cell)
    }
}
