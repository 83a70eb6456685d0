//! How inputs and outputs cross the process boundary.
//!
//! A [`Wire`] type is encoded into bytes written straight into a ring slot
//! and decoded on the other side. Plain-old-data (`bytemuck::Pod`) types are
//! copied as they are, with no serialization; `Vec<T>` of such types and
//! `String` are length-delimited. Decoding checks every length: bytes
//! another process wrote are never trusted blindly.

/// A value that can cross the process boundary.
pub trait Wire: Sized + Send + 'static {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one value from the front of `input` and advances it.
    fn decode(input: &mut &[u8]) -> Result<Self, String>;
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if input.len() < n {
        return Err(format!("needed {n} bytes, {} left", input.len()));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_len(input: &mut &[u8]) -> Result<usize, String> {
    let b = take(input, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

macro_rules! pod_wire {
    ($($t:ty),* $(,)?) => {
        $(
            impl Wire for $t {
                #[inline]
                fn encode(&self, out: &mut Vec<u8>) {
                    out.extend_from_slice(bytemuck::bytes_of(self));
                }
                #[inline]
                fn decode(input: &mut &[u8]) -> Result<Self, String> {
                    let b = take(input, std::mem::size_of::<$t>())?;
                    Ok(bytemuck::pod_read_unaligned(b))
                }
            }
        )*
    };
}

pod_wire!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

impl Wire for () {
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(_: &mut &[u8]) -> Result<Self, String> {
        Ok(())
    }
}

impl Wire for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        match take(input, 1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{b} is not a bool")),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for v in self {
            v.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        let n = take_len(input)?;
        // Every element takes at least one byte unless it is zero-sized, so
        // a hostile length cannot make us reserve more than the input holds.
        let mut v = Vec::with_capacity(n.min(input.len()));
        for _ in 0..n {
            v.push(T::decode(input)?);
        }
        Ok(v)
    }
}

impl Wire for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        let n = take_len(input)?;
        let b = take(input, n)?;
        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
    }
}

impl<T: Wire> Wire for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        match take(input, 1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            b => Err(format!("{b} is not an Option tag")),
        }
    }
}

macro_rules! tuple_wire {
    ($($n:ident),+) => {
        impl<$($n: Wire),+> Wire for ($($n,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($n,)+) = self;
                $($n.encode(out);)+
            }
            fn decode(input: &mut &[u8]) -> Result<Self, String> {
                Ok(($($n::decode(input)?,)+))
            }
        }
    };
}

tuple_wire!(A);
tuple_wire!(A, B);
tuple_wire!(A, B, C);
tuple_wire!(A, B, C, D);

impl<T: bytemuck::Pod + Send, const N: usize> Wire for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::bytes_of(self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        let b = take(input, std::mem::size_of::<[T; N]>())?;
        Ok(bytemuck::pod_read_unaligned(b))
    }
}

/// Wraps a `bytemuck::Pod` struct of yours so it crosses as its bytes.
///
/// ```
/// use ipc_pool::{Pod, Wire};
/// #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct P { x: f64, y: f64 }
/// let mut buf = Vec::new();
/// Pod(P { x: 1.0, y: 2.0 }).encode(&mut buf);
/// assert_eq!(Pod::<P>::decode(&mut &buf[..]).unwrap().0, P { x: 1.0, y: 2.0 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pod<T>(pub T);

impl<T: bytemuck::Pod + Send> Wire for Pod<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::bytes_of(&self.0));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, String> {
        let b = take(input, std::mem::size_of::<T>())?;
        Ok(Pod(bytemuck::pod_read_unaligned(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(v: T) {
        let mut buf = Vec::new();
        v.encode(&mut buf);
        let mut input = &buf[..];
        assert_eq!(T::decode(&mut input).unwrap(), v);
        assert!(input.is_empty());
    }

    #[test]
    fn values_round_trip() {
        round_trip(7u64);
        round_trip(-3i32);
        round_trip(1.5f64);
        round_trip(true);
        round_trip(String::from("héllo"));
        round_trip(vec![1u16, 2, 3]);
        round_trip((1u8, String::from("x"), vec![Some(2u32), None]));
        round_trip([1u32, 2, 3, 4]);
    }

    #[test]
    fn hostile_bytes_are_errors() {
        assert!(u64::decode(&mut &[1u8, 2][..]).is_err());
        assert!(bool::decode(&mut &[7u8][..]).is_err());
        assert!(String::decode(&mut &[255u8, 255, 255, 255, b'a'][..]).is_err());
        assert!(Vec::<u64>::decode(&mut &[255u8, 255, 255, 255][..]).is_err());
        assert!(String::decode(&mut &[2u8, 0, 0, 0, 0xff, 0xfe][..]).is_err());
    }
}
