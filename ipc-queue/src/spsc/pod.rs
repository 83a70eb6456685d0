//! Plain-old-data messages over the SPSC ring: no serialization.
//!
//! A typed ring carries values of one type `T: `[`Shareable`]` + Copy`,
//! each in a fixed-size slot of the byte ring (an 8-byte header, then the
//! value, 8-byte aligned). The value is written straight into its slot and
//! read straight out of it ([`PodConsumer::recv_ref`] even hands out `&T` in
//! place). `Shareable` guarantees every bit pattern is a valid `T`, so bytes a
//! faulty peer wrote can be wrong but never undefined behaviour.
//!
//! The ring records the slot size when it is created; typed ends refuse a
//! ring of another size ([`AttachError::InvalidConfig`]). Types aligned to
//! more than 8 bytes are refused at compile time.
//!
//! ```
//! use multiproc_queue::spsc::pod;
//!
//! // Room for at least four (the byte capacity is rounded up to a power of
//! // two, so there may be more).
//! let (mut tx, mut rx) = pod::channel::<u64>(4)?;
//! let mut sent = 0;
//! while tx.try_send(sent).is_ok() {
//!     sent += 1;
//! }
//! assert!(sent >= 4);
//! assert_eq!(rx.recv()?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::endpoint::typed_end;
use super::{Consumer, Grant, Producer, RecvGuard, SpscBuilder, SpscRing};
use crate::error::{
    AttachError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::raw::spsc as spsc_raw;
use multiproc_core::message::DecodeError;
use multiproc_core::wait::WaitStrategy;
use multiproc_core::Shareable;
use std::marker::PhantomData;
use std::time::Duration;

const fn check_type<T>() {
    assert!(
        std::mem::align_of::<T>() <= spsc_raw::RECORD_ALIGN,
        "types aligned to more than 8 bytes cannot be placed in a ring slot"
    );
}

/// The data-area size for a ring that holds at least `n` values of `T`.
///
/// The ring keeps [`spsc_raw::SLACK`] bytes free after its last record.
/// Records whose size is a power of two tile the ring exactly; others may
/// leave a pad of up to one record less 8 bytes at the end of the data area.
/// Both are accounted for.
pub fn capacity_for<T>(n: usize) -> usize {
    let record = spsc_raw::record_len(std::mem::size_of::<T>());
    let pad = if record.is_power_of_two() {
        0
    } else {
        record - spsc_raw::RECORD_ALIGN
    };
    record
        .saturating_mul(n.max(1))
        .saturating_add(pad + spsc_raw::SLACK)
        .max(spsc_raw::MIN_CAPACITY)
}

impl SpscBuilder {
    /// Configures a typed ring for values of `T` holding at least `n` of
    /// them (the byte capacity is rounded up to a power of two, so it may
    /// hold more).
    pub fn pod<T: Shareable + Copy>(self, n: usize) -> Self {
        self.capacity(capacity_for::<T>(n))
            .fixed_message_len(std::mem::size_of::<T>())
    }
}

impl SpscRing {
    fn check_fixed<T>(&self) -> Result<(), AttachError> {
        const { check_type::<T>() };
        if self.fixed_message_len() != std::mem::size_of::<T>() as u64 {
            return Err(AttachError::InvalidConfig(
                "the ring was not created for values of this size",
            ));
        }
        Ok(())
    }

    /// Attaches the producing end of a typed ring.
    ///
    /// # Errors
    /// [`AttachError::InvalidConfig`] if the ring was not created with
    /// [`SpscBuilder::pod`] for a type of `T`'s size; otherwise as
    /// [`SpscRing::producer`].
    pub fn pod_producer<T: Shareable + Copy>(&self) -> Result<PodProducer<T>, AttachError> {
        self.check_fixed::<T>()?;
        Ok(PodProducer {
            inner: self.producer()?,
            _t: PhantomData,
        })
    }

    /// Attaches the consuming end of a typed ring.
    ///
    /// # Errors
    /// As [`SpscRing::pod_producer`].
    pub fn pod_consumer<T: Shareable + Copy>(&self) -> Result<PodConsumer<T>, AttachError> {
        self.check_fixed::<T>()?;
        Ok(PodConsumer {
            inner: self.consumer()?,
            _t: PhantomData,
        })
    }
}

/// An anonymous typed ring holding at least `n` values, with both ends
/// attached in this process.
///
/// # Errors
/// [`AttachError::Object`] if the ring cannot be made (too many values for
/// 2 GiB, memory short), [`AttachError::UnknownIdentity`].
pub fn channel<T: Shareable + Copy>(
    n: usize,
) -> Result<(PodProducer<T>, PodConsumer<T>), AttachError> {
    let ring = SpscRing::builder().pod::<T>(n).create()?;
    Ok((ring.pod_producer()?, ring.pod_consumer()?))
}

/// The writing end of a typed ring.
#[derive(Debug)]
pub struct PodProducer<T> {
    inner: Producer,
    _t: PhantomData<fn(T)>,
}

/// The reading end of a typed ring.
#[derive(Debug)]
pub struct PodConsumer<T> {
    inner: Consumer,
    _t: PhantomData<fn() -> T>,
}

/// A value read in place; dropping it gives the slot back.
#[derive(Debug)]
pub struct PodGuard<'a, T> {
    guard: RecvGuard<'a>,
    _t: PhantomData<&'a T>,
}

impl<T: Shareable + Copy> std::ops::Deref for PodGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard's bytes are exactly `size_of::<T>()` long
        // (checked when it was made), 8-aligned in the ring and
        // `align_of::<T>() <= 8` (checked at compile time); `T: Shareable`
        // makes any bytes a valid `T`.
        unsafe { &*self.guard.as_ptr().cast::<T>() }
    }
}

#[inline]
fn write_value<T: Copy>(dst: &mut [u8], value: T) {
    debug_assert_eq!(dst.len(), std::mem::size_of::<T>());
    // SAFETY: `dst` has exactly `size_of::<T>()` writable bytes and is
    // 8-aligned in the ring (`align_of::<T>() <= 8`).
    unsafe { dst.as_mut_ptr().cast::<T>().write(value) };
}

/// Runs a byte batch (`batch` calls its argument on each message) with `f`
/// on each message that is a `T`; returns `(values, messages of another
/// length)`.
fn count_bad<T: Shareable + Copy, E>(
    batch: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<usize, E>,
    f: &mut impl FnMut(&T),
) -> Result<(usize, usize), E> {
    let mut bad = 0;
    let n = batch(&mut |b| match read_value::<T>(b) {
        Some(v) => f(&v),
        None => bad += 1,
    })?;
    Ok((n - bad, bad))
}

/// Writes `value` into the grant a reserve gave and publishes it, or hands
/// `value` back in the reserve's error (`back` puts it there).
#[inline]
fn put<T: Copy, E, F>(
    grant: Result<Grant<'_>, E>,
    value: T,
    back: impl FnOnce(E, T) -> F,
) -> Result<(), F> {
    match grant {
        Ok(mut g) => {
            write_value(&mut g, value);
            g.commit();
            Ok(())
        }
        Err(e) => Err(back(e, value)),
    }
}

#[inline]
fn read_value<T: Shareable + Copy>(src: &[u8]) -> Option<T> {
    if src.len() != std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked, 8-aligned in the ring, every bit pattern valid.
    Some(unsafe { src.as_ptr().cast::<T>().read() })
}

const WRONG_LEN: &str = "message length is not the size of the type";

impl<T: Shareable + Copy> PodProducer<T> {
    /// Sends `value` without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], handing `value`
    /// back; [`TrySendError::Corrupt`].
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        let grant = self.inner.try_reserve(std::mem::size_of::<T>());
        put(grant, value, |e, v| e.map(|()| v))
    }

    /// Sends `value`, waiting for room.
    ///
    /// # Errors
    /// [`SendError::Closed`] if the consumer closed or died.
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        let grant = self.inner.reserve(std::mem::size_of::<T>());
        put(grant, value, |e, v| e.map(|()| v))
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`PodProducer::send`], and [`SendTimeoutError::Timeout`], handing
    /// `value` back.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let grant = self
            .inner
            .reserve_timeout(std::mem::size_of::<T>(), timeout);
        put(grant, value, |e, v| e.map(|()| v))
    }

    /// Sends as many of `values` as fit now (one index store and at most one
    /// wake-up for the batch); returns how many.
    ///
    /// # Errors
    /// Only if none fit: as [`PodProducer::try_send`], without a value to
    /// hand back.
    pub fn try_send_batch(&mut self, values: &[T]) -> Result<usize, TrySendError<()>> {
        self.inner
            .try_write_batch(values.len(), std::mem::size_of::<T>(), |i, dst| {
                write_value(dst, values[i])
            })
    }
}

impl<T: Shareable + Copy> PodConsumer<T> {
    /// The next value, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], [`TryRecvError::Closed`],
    /// [`TryRecvError::Decode`] for a message of the wrong length (consumed),
    /// [`TryRecvError::Corrupt`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let g = self.inner.try_recv()?;
        read_value(&g).ok_or(TryRecvError::Decode(DecodeError::Invalid(WRONG_LEN)))
    }

    /// The next value, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the producer closed (or died) and the ring
    /// is drained; [`RecvError::Decode`], [`RecvError::Corrupt`].
    #[inline]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let g = self.inner.recv()?;
        read_value(&g).ok_or(RecvError::Decode(DecodeError::Invalid(WRONG_LEN)))
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`PodConsumer::recv`], and [`RecvTimeoutError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let g = self.inner.recv_timeout(timeout)?;
        read_value(&g).ok_or(RecvTimeoutError::Decode(DecodeError::Invalid(WRONG_LEN)))
    }

    fn guard(g: RecvGuard<'_>) -> Option<PodGuard<'_, T>> {
        (g.len() == std::mem::size_of::<T>()).then_some(PodGuard {
            guard: g,
            _t: PhantomData,
        })
    }

    /// The next value in place, without waiting.
    ///
    /// # Errors
    /// As [`PodConsumer::try_recv`].
    pub fn try_recv_ref(&mut self) -> Result<PodGuard<'_, T>, TryRecvError> {
        let g = self.inner.try_recv()?;
        Self::guard(g).ok_or(TryRecvError::Decode(DecodeError::Invalid(WRONG_LEN)))
    }

    /// The next value in place, waiting for one.
    ///
    /// # Errors
    /// As [`PodConsumer::recv`].
    pub fn recv_ref(&mut self) -> Result<PodGuard<'_, T>, RecvError> {
        let g = self.inner.recv()?;
        Self::guard(g).ok_or(RecvError::Decode(DecodeError::Invalid(WRONG_LEN)))
    }

    /// Calls `f` on every value available now (at most `max`), in place,
    /// releasing them together. Messages of the wrong length are skipped
    /// (and counted in the result's second field).
    ///
    /// # Errors
    /// As [`Consumer::try_recv_batch`].
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&T),
    ) -> Result<(usize, usize), TryRecvError> {
        count_bad(|g| self.inner.try_recv_batch(max, g), &mut f)
    }

    /// Like [`PodConsumer::try_recv_batch`], waiting for at least one value.
    ///
    /// # Errors
    /// As [`Consumer::recv_batch`].
    pub fn recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&T),
    ) -> Result<(usize, usize), RecvError> {
        count_bad(|g| self.inner.recv_batch(max, g), &mut f)
    }
}

typed_end!(PodProducer, Producer);
typed_end!(PodConsumer, Consumer);
