//! Naming a function to another process running the same executable.
//!
//! A spawned child (or a pool worker) must run a function its parent chose,
//! without code being serialized. A raw code address cannot name it: the
//! executable is loaded at a different base in every process, and an
//! address taken from a message is whatever the sender wrote. A function's
//! offset from some anchor *function* is not reliable either: the compiler
//! may duplicate a small function in every codegen unit and crate that
//! inlines it, so two callers measure from two different anchors.
//!
//! This module names functions by **descriptors**. An [`EntryDescriptor`]
//! is a constant, placed by the compiler in the executable's read-only data:
//! a 16-byte magic, the name of its call signature, the name of the target
//! type, and the call itself (a function pointer, which the loader
//! relocates in every process). An [`EntryRef`] is the descriptor's offset
//! from the load base of the executable image, found through the program
//! headers the kernel hands to every process: it is the same in every
//! process running the same file, whatever the build profile (opt-level,
//! codegen units, LTO, incremental), because it is a property of the linked
//! file, not of any one copy of a function.
//!
//! The receiving side never jumps to an address it was sent.
//! [`EntryRef::resolve`] checks that the offset lies inside the read-only
//! data of the executable image (so reading there cannot fault), that the
//! magic is there, and that the descriptor's signature is the one asked for;
//! only then does it read the function pointer, which was written by the
//! loader of *this* process. A wrong or forged offset is a typed
//! [`EntryError`], never a jump.
//!
//! Callers rarely use this module directly:
//! [`Builder::spawn`](crate::process::Builder::spawn) and `multiproc-pool` do. To
//! name a function, give its call type a [`Signature`] label and make a
//! descriptor in an associated constant (one per instantiation when the
//! type is generic):
//!
//! ```
//! use multiproc_core::entry::{EntryDescriptor, EntryRef, Signature};
//!
//! #[derive(Clone, Copy)]
//! struct Unary(fn(u64) -> u64);
//! // SAFETY: no other type uses this label.
//! unsafe impl Signature for Unary {
//!     const LABEL: &'static str = "example/unary/v1";
//! }
//!
//! fn double(x: u64) -> u64 {
//!     x * 2
//! }
//! // SAFETY: evaluated in a constant.
//! const DOUBLE: &EntryDescriptor<Unary> = &unsafe { EntryDescriptor::new(Unary(double)) };
//!
//! let name = EntryRef::of(DOUBLE)?; // send `name.to_raw()` to the other process
//! let Unary(f) = EntryRef::from_raw(name.to_raw()).resolve::<Unary>()?;
//! assert_eq!(f(21), 42);
//! # Ok::<(), multiproc_core::entry::EntryError>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

/// Two words that open every descriptor. Only descriptors hold them: the
/// check in [`EntryRef::resolve`] derives them at run time (through
/// `black_box`), so no copy of them is placed anywhere else.
const SEED: [u64; 2] = [0x0b2f_a4e1_9e3d_51c7, 0xe573_b90a_4c1f_86d2];
const MIX: u64 = 0x5bd1_e995_7f4a_7c15;
const MAGIC: [u64; 2] = [SEED[0] ^ MIX, SEED[1] ^ MIX];

/// The type of a call that a descriptor may carry.
///
/// # Safety
/// `LABEL` must name this type alone: a descriptor made for one type is
/// read as any type with the same label, so two types may share a label
/// only if they are the same type.
pub unsafe trait Signature: Copy + 'static {
    /// A name unique to the type, with a version, such as
    /// `"ipc-core/spawn-entry/v2"`.
    const LABEL: &'static str;
}

/// A function and its type, placed as a constant in the executable so that
/// another process running the same file can find it by [`EntryRef`].
///
/// `S` is the type of the call (a function pointer, or a `Copy` struct of
/// them); build the descriptor in an associated constant of a generic type
/// (see the [module docs](self)).
#[repr(C)]
pub struct EntryDescriptor<S: Signature> {
    magic: [u64; 2],
    signature: u64,
    size: u64,
    call: S,
}

impl<S: Signature> EntryDescriptor<S> {
    /// A descriptor of `call`.
    ///
    /// # Safety
    /// Evaluate it in a constant only (an associated `const`, as in the
    /// [module docs](self)), never at run time: a descriptor built at run
    /// time may leave a copy of its header in read-only data without the
    /// call behind it, which a forged [`EntryRef`] could then name.
    pub const unsafe fn new(call: S) -> Self {
        EntryDescriptor {
            magic: MAGIC,
            signature: crate::header::fnv1a64(S::LABEL.as_bytes()),
            size: std::mem::size_of::<Self>() as u64,
            call,
        }
    }

    /// The call, in this process.
    pub fn call(&self) -> S {
        self.call
    }
}

impl<S: Signature> fmt::Debug for EntryDescriptor<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryDescriptor")
            .field("signature", &S::LABEL)
            .finish()
    }
}

/// Why a descriptor could not be named or resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The descriptor is not in the read-only data of the executable image
    /// (it was made at run time, or lives in a shared library).
    #[error(
        "the entry descriptor at {addr:#x} is not in the executable's read-only data: \
         entry functions must be linked into the executable, and their descriptors made in a const"
    )]
    NotInImage {
        /// Its address in this process.
        addr: usize,
    },
    /// The offset names no place in the executable's read-only data.
    #[error("entry offset {offset:#x} is outside the executable's read-only data")]
    OutOfBounds {
        /// The offset received.
        offset: u64,
    },
    /// No descriptor of the expected signature starts at that offset.
    #[error("no entry descriptor of signature {expected} at offset {offset:#x}")]
    NoDescriptor {
        /// The offset received.
        offset: u64,
        /// The signature asked for.
        expected: &'static str,
    },
    /// The program headers of the executable could not be read.
    #[error("the executable image cannot be located: {0}")]
    NoImage(&'static str),
}

/// A descriptor named by its offset in the executable image: send
/// [`EntryRef::to_raw`] to another process running the same executable and
/// [`resolve`](EntryRef::resolve) it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryRef(u64);

impl EntryRef {
    /// Names `desc`, which must be a constant of this executable.
    ///
    /// # Errors
    /// [`EntryError::NotInImage`] if `desc` is not in the executable's
    /// read-only data; [`EntryError::NoImage`] if the image cannot be found.
    pub fn of<S: Signature>(desc: &'static EntryDescriptor<S>) -> Result<EntryRef, EntryError> {
        let img = image()?;
        let addr = desc as *const EntryDescriptor<S> as usize;
        let len = std::mem::size_of::<EntryDescriptor<S>>();
        if !img.holds(addr, len) {
            return Err(EntryError::NotInImage { addr });
        }
        Ok(EntryRef((addr - img.base) as u64))
    }

    /// The offset, to send to another process.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// An offset received from another process. Nothing is checked until
    /// [`resolve`](EntryRef::resolve).
    pub const fn from_raw(raw: u64) -> EntryRef {
        EntryRef(raw)
    }

    /// The call of signature `S` that this names.
    ///
    /// Nothing at the offset is called or trusted before it is proven to be
    /// a descriptor of signature `S`: the whole descriptor must lie in the
    /// executable's read-only data, aligned, and open with the magic, the
    /// hash of `S::LABEL` and its own size.
    ///
    /// # Errors
    /// [`EntryError::OutOfBounds`] if the offset is outside the executable's
    /// read-only data or misaligned, [`EntryError::NoDescriptor`] if no
    /// descriptor of signature `S` is there.
    pub fn resolve<S: Signature>(self) -> Result<S, EntryError> {
        let img = image()?;
        let len = std::mem::size_of::<EntryDescriptor<S>>();
        let addr = usize::try_from(self.0)
            .ok()
            .and_then(|off| img.base.checked_add(off))
            .filter(|&a| a % std::mem::align_of::<EntryDescriptor<S>>() == 0)
            .filter(|&a| img.holds(a, len))
            .ok_or(EntryError::OutOfBounds { offset: self.0 })?;
        let head = addr as *const [u64; 4];
        // SAFETY: `addr..addr + len` (len >= 32) lies inside a read-only
        // segment of the executable image (checked above), which stays
        // mapped for the life of the process and is never written, and
        // `addr` is aligned for the descriptor, so reading its first 32
        // bytes cannot fault or race.
        let [m0, m1, signature, size] = unsafe { head.read() };
        let seed = std::hint::black_box(SEED);
        let mix = std::hint::black_box(MIX);
        if m0 != seed[0] ^ mix
            || m1 != seed[1] ^ mix
            || signature != crate::header::fnv1a64(S::LABEL.as_bytes())
            || size != len as u64
        {
            return Err(EntryError::NoDescriptor {
                offset: self.0,
                expected: S::LABEL,
            });
        }
        // SAFETY: the header proves a descriptor of signature `S` starts
        // here (only `EntryDescriptor::<S>::new`, evaluated in constants,
        // writes it, and read-only data holds nothing written at run time),
        // so its `call` field is a valid `S`, relocated by this process's
        // loader, in memory that stays mapped.
        let desc: &'static EntryDescriptor<S> = unsafe { &*(addr as *const EntryDescriptor<S>) };
        Ok(desc.call)
    }
}

/// The executable image of this process: its load base and the address
/// ranges that hold read-only data (segments neither writable nor
/// executable, and the relocation read-only range).
struct Image {
    base: usize,
    rodata: Vec<Range<usize>>,
}

impl Image {
    fn holds(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.rodata.iter().any(|r| r.start <= addr && end <= r.end)
    }
}

fn image() -> Result<&'static Image, EntryError> {
    static IMAGE: OnceLock<Result<Image, EntryError>> = OnceLock::new();
    IMAGE.get_or_init(read_image).as_ref().map_err(Clone::clone)
}

/// Reads the program headers of the main executable (the object whose
/// headers the kernel passed in `AT_PHDR`).
fn read_image() -> Result<Image, EntryError> {
    struct Found {
        want: usize,
        image: Option<Image>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Found` passed to dl_iterate_phdr below, and
        // only this callback touches it while the iteration runs.
        let found = unsafe { &mut *data.cast::<Found>() };
        // SAFETY: the loader passes a valid `dl_phdr_info` for the duration
        // of the call.
        let info = unsafe { &*info };
        if info.dlpi_phdr as usize != found.want || info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of a
        // loaded object, mapped for as long as the object is.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        let base = info.dlpi_addr as usize;
        let span = |p: &libc::Elf64_Phdr| {
            let start = base.wrapping_add(p.p_vaddr as usize);
            start..start.wrapping_add(p.p_memsz as usize)
        };
        let mut rodata: Vec<Range<usize>> = phdrs
            .iter()
            .filter(|p| {
                p.p_type == libc::PT_LOAD
                    && p.p_flags & libc::PF_R != 0
                    && p.p_flags & (libc::PF_W | libc::PF_X) == 0
            })
            .map(span)
            .collect();
        rodata.extend(
            phdrs
                .iter()
                .filter(|p| p.p_type == libc::PT_GNU_RELRO)
                .map(span),
        );
        found.image = Some(Image { base, rodata });
        1
    }
    // SAFETY: getauxval has no preconditions; 0 means "not present".
    let want = unsafe { libc::getauxval(libc::AT_PHDR) } as usize;
    if want == 0 {
        return Err(EntryError::NoImage("no AT_PHDR in the auxiliary vector"));
    }
    let mut found = Found { want, image: None };
    // SAFETY: `visit` matches the callback type and only uses `found`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut Found).cast()) };
    found.image.ok_or(EntryError::NoImage(
        "the loader does not list the executable",
    ))
}

/// A value of the zero-sized function type `F`: a function item or a
/// closure that captures nothing. Such a value holds no data, so the one
/// the parent was given and the one made here in another process are the
/// same function.
///
/// Fails to compile (when instantiated) if `F` is not zero-sized: a
/// function pointer or a capturing closure cannot be re-created in another
/// process.
pub fn zero_sized_fn<F: Copy + 'static>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "an entry function must be a function item (`my_fn`) or a closure that captures \
             nothing; function pointers and capturing closures cannot be named to another process"
        )
    };
    // SAFETY: `F` is zero-sized (checked at compile time above), so it has
    // no bytes whose validity could be violated; function items and
    // non-capturing closures have no invariants beyond their type, and
    // `F: Copy` means duplicating one is allowed.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct Unary(fn(u64) -> u64);
    // SAFETY: no other type uses this label.
    unsafe impl Signature for Unary {
        const LABEL: &'static str = "ipc-core/test/unary/v1";
    }

    #[derive(Clone, Copy)]
    #[allow(dead_code)] // only its label is used
    struct Other(fn(u32) -> u32);
    // SAFETY: no other type uses this label.
    unsafe impl Signature for Other {
        const LABEL: &'static str = "ipc-core/test/other/v1";
    }

    fn add_one(x: u64) -> u64 {
        x + 1
    }

    struct Of<F>(std::marker::PhantomData<F>);
    impl<F: Fn(u64) -> u64 + Copy + 'static> Of<F> {
        // SAFETY: evaluated in a constant.
        const DESC: &'static EntryDescriptor<Unary> =
            &unsafe { EntryDescriptor::new(Unary(Self::call)) };
        fn call(x: u64) -> u64 {
            zero_sized_fn::<F>()(x)
        }
    }

    fn desc_of<F: Fn(u64) -> u64 + Copy + 'static>(_: F) -> &'static EntryDescriptor<Unary> {
        Of::<F>::DESC
    }

    #[test]
    fn a_descriptor_round_trips_through_its_offset() {
        let r = EntryRef::of(desc_of(add_one)).unwrap();
        let Unary(f) = EntryRef::from_raw(r.to_raw()).resolve::<Unary>().unwrap();
        assert_eq!(f(41), 42);
        let r2 = EntryRef::of(desc_of(|x| x * 3)).unwrap();
        assert_ne!(r, r2);
        assert_eq!(r2.resolve::<Unary>().unwrap().0(5), 15);
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let r = EntryRef::of(desc_of(add_one)).unwrap();
        assert!(matches!(
            r.resolve::<Other>(),
            Err(EntryError::NoDescriptor { .. })
        ));
    }

    #[test]
    fn forged_offsets_are_errors_not_jumps() {
        let r = EntryRef::of(desc_of(add_one)).unwrap().to_raw();
        for bad in [0, 8, r + 8, r.wrapping_sub(16), u64::MAX, 1 << 60, r + 1] {
            let e = EntryRef::from_raw(bad).resolve::<Unary>();
            assert!(
                matches!(
                    e,
                    Err(EntryError::OutOfBounds { .. } | EntryError::NoDescriptor { .. })
                ),
                "offset {bad:#x}"
            );
        }
        // Every aligned offset of the read-only data is refused unless a
        // genuine descriptor starts there.
        let img = image().unwrap();
        let mut genuine = Vec::new();
        for range in &img.rodata {
            let mut a = range.start.next_multiple_of(8);
            while a + 64 <= range.end {
                let off = (a - img.base) as u64;
                if let Ok(Unary(f)) = EntryRef::from_raw(off).resolve::<Unary>() {
                    genuine.push(f(1));
                }
                a += 8;
            }
        }
        genuine.sort();
        genuine.dedup();
        assert!(genuine.contains(&2) && genuine.contains(&3), "{genuine:?}");
    }

    #[test]
    fn a_descriptor_outside_the_image_is_refused() {
        // SAFETY: a bitwise copy of a descriptor (all its fields are
        // `Copy`), moved to the heap.
        let copy = unsafe { std::ptr::read(desc_of(add_one)) };
        let leaked: &'static EntryDescriptor<Unary> = Box::leak(Box::new(copy));
        assert!(matches!(
            EntryRef::of(leaked),
            Err(EntryError::NotInImage { .. })
        ));
    }
}
