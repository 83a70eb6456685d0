//! Segment names: validation, the workspace prefix, unique names for tests.

use crate::error::SegmentError;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every named segment of this workspace lives at `/dev/shm/<PREFIX><name>`.
/// The prefix keeps [`sweep`](crate::segment::sweep) away from other programs'
/// objects.
pub const PREFIX: &str = "ipc.";

/// The longest name accepted (the prefix is added on top; the kernel allows
/// 255 bytes for the whole file name).
pub const MAX_NAME_LEN: usize = 200;

/// Checks a segment name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters,
/// digits, `.`, `_` and `-`, not `.` or `..`.
///
/// # Errors
/// [`SegmentError::InvalidName`] with the reason: empty, too long, a `/`, a
/// control character, or `.`/`..`.
pub fn validate(name: &str) -> Result<(), SegmentError> {
    let bad = |reason: &'static str| {
        Err(SegmentError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("the name is longer than 200 bytes");
    }
    if name.contains('/') {
        return bad("the name contains '/'");
    }
    if name == "." || name == ".." {
        return bad("the name is '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("the name may hold only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// The name as given to `shm_open`: `/` + [`PREFIX`] + `name`.
pub(crate) fn os_name(name: &str) -> Result<CString, SegmentError> {
    validate(name)?;
    CString::new(format!("/{PREFIX}{name}")).map_err(|_| SegmentError::InvalidName {
        name: name.to_owned(),
        reason: "the name contains NUL",
    })
}

/// The path of a named segment under `/dev/shm`.
pub fn path_of(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/dev/shm/{PREFIX}{name}"))
}

/// A name no other call in any process is likely to produce:
/// `<tag>-<pid>-<nanoseconds>-<counter>`. Tests use it so that parallel
/// tests never share a segment.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(100)
        .collect();
    format!("{tag}-{}-{nanos:x}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for n in ["", ".", "..", "a/b", "/a", "sp ace", "nul\0", "é"] {
            assert!(
                matches!(validate(n), Err(SegmentError::InvalidName { .. })),
                "{n:?}"
            );
        }
        assert!(validate(&"x".repeat(201)).is_err());
        assert!(validate(&"x".repeat(200)).is_ok());
        assert!(validate("orders.v1_a-b").is_ok());
    }

    #[test]
    fn unique_names_differ_and_validate() {
        let a = unique_name("t/e s");
        let b = unique_name("t/e s");
        assert_ne!(a, b);
        validate(&a).unwrap();
    }
}
