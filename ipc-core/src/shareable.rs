//! The marker for types that may live in shared memory.

use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize,
};

/// A type that may be placed in memory shared between processes.
///
/// # Safety
///
/// Implement it only for types that are:
/// - `#[repr(C)]` or `#[repr(transparent)]` (or primitive), so every process
///   built from the same source agrees on the layout;
/// - free of pointers, references and process-local handles (a `Box`, a
///   `&T`, a file descriptor number that means nothing in another process);
/// - valid for **every bit pattern**: another process can write anything into
///   the memory, and reading it must never be undefined behaviour (so no
///   `bool`, `char`, enums or `NonZero*`);
/// - free of `Drop` glue (nothing runs when another process unmaps it).
///
/// The primitive integers, floats, the integer atomics and arrays of
/// shareable types implement it. For a `bytemuck::Pod` struct, use
/// [`impl_shareable!`](crate::impl_shareable), which checks the bound at
/// compile time.
pub unsafe trait Shareable: Sized + 'static {}

macro_rules! shareable {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive number or integer atomic: no pointers, no
            // drop glue, every bit pattern valid, layout fixed by the ABI.
            unsafe impl Shareable for $t {}
        )*
    };
}

shareable!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    (),
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
);

// SAFETY: an array of shareable elements is laid out as the elements back to
// back, holds no pointer, and is valid for every bit pattern if they are.
unsafe impl<T: Shareable, const N: usize> Shareable for [T; N] {}

/// Implements [`Shareable`] for `bytemuck::Pod` types, checked at compile time.
///
/// `Pod` already guarantees no padding, no pointers, no drop glue and that
/// every bit pattern is valid; the macro refuses a type that is not `Pod`.
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { price: u64, qty: u32, side: u32 }
/// multiproc_core::impl_shareable!(Tick);
/// fn is_shareable<T: multiproc_core::Shareable>() {}
/// is_shareable::<Tick>();
/// ```
#[macro_export]
macro_rules! impl_shareable {
    ($($t:ty),+ $(,)?) => {
        $(
            const _: fn() = || {
                fn require_pod<T: $crate::__private::bytemuck::Pod>() {}
                require_pod::<$t>();
            };
            // SAFETY: the type is `bytemuck::Pod` (checked just above): no
            // padding, no pointers, no drop glue, every bit pattern valid.
            unsafe impl $crate::Shareable for $t {}
        )+
    };
}

/// Fails to compile unless `$t` has exactly the given size and alignment.
///
/// Place it beside every type the workspace puts in shared memory, so a change
/// of layout is a compile error rather than a silent incompatibility between
/// two builds.
///
/// ```
/// multiproc_core::assert_layout!(u64, size = 8, align = 8);
/// ```
#[macro_export]
macro_rules! assert_layout {
    ($t:ty, size = $size:expr, align = $align:expr) => {
        const _: () = {
            assert!(::core::mem::size_of::<$t>() == $size, "unexpected size");
            assert!(
                ::core::mem::align_of::<$t>() == $align,
                "unexpected alignment"
            );
        };
    };
}
