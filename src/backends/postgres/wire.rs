//! Reading PostgreSQL's binary wire values: big-endian integers, bounds-checked slices, the
//! 2000-01-01 epoch of dates and timestamps and its infinities.

use super::types::{EPOCH_DAYS, EPOCH_US, Kind};

/// Reads the next `n` bytes.
#[inline]
pub(super) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

#[inline]
pub(super) fn at16(b: &[u8], off: usize) -> Option<i16> {
    be_i16(b.get(off..)?)
}
#[inline]
pub(super) fn at32(b: &[u8], off: usize) -> Option<i32> {
    be_i32(b.get(off..)?)
}

#[inline]
pub(super) fn be_i16(b: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}
#[inline]
pub(super) fn be_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
#[inline]
pub(super) fn be_i64(b: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// A PostgreSQL date (days since 2000-01-01) as Arrow's Date32; infinities have no value.
#[inline]
pub(super) fn date32(d: i32) -> std::result::Result<i32, String> {
    if d == i32::MAX || d == i32::MIN {
        return Err("date 'infinity' has no Arrow value".into());
    }
    d.checked_add(EPOCH_DAYS)
        .ok_or_else(|| "date out of range".into())
}

/// A PostgreSQL timestamp (µs since 2000-01-01) as Arrow's µs since 1970; infinities have no
/// value.
#[inline]
pub(super) fn timestamp_us(t: i64) -> std::result::Result<i64, String> {
    if t == i64::MAX || t == i64::MIN {
        return Err("timestamp 'infinity' has no Arrow value".into());
    }
    t.checked_add(EPOCH_US)
        .ok_or_else(|| "timestamp out of range".into())
}

pub(super) fn bad(kind: &Kind, len: usize) -> String {
    format!("malformed binary value of type {kind:?} ({len} bytes)")
}
