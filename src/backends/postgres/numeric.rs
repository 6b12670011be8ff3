//! PostgreSQL's binary `numeric` (base-10000 digit groups) to and from Arrow decimals and
//! floats: a 64-bit fast path, the exact 128-bit path, 256-bit for more than 38 digits.

use bytes::{BufMut, BytesMut};
use datafusion::arrow::datatypes::i256;

use super::wire::{at16, be_i16};

/// The header of a binary numeric headed for a decimal column: digit count, weight and sign
/// (NaN and infinities are errors; the digits are checked to be present).
pub(super) fn decimal_header(b: &[u8]) -> std::result::Result<(usize, i32, bool), String> {
    let ndigits = be_i16(b).ok_or("short numeric")? as usize;
    let weight = i32::from(at16(b, 2).ok_or("short numeric")?);
    let sign = at16(b, 4).ok_or("short numeric")? as u16;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN cannot be stored in a decimal column".into()),
        _ => return Err("Infinity cannot be stored in a decimal column".into()),
    }
    if b.len() < 8 + 2 * ndigits {
        return Err("short numeric".into());
    }
    Ok((ndigits, weight, sign == 0x4000))
}

/// Decodes PostgreSQL's binary numeric into an unscaled integer at `scale`.
#[inline]
pub(super) fn numeric_to_i128(b: &[u8], scale: i8) -> std::result::Result<i128, String> {
    match numeric_to_i64_fast(b, scale) {
        Some(v) => Ok(i128::from(v)),
        None => numeric_to_i128_exact(b, scale),
    }
}

/// The common case of [`numeric_to_i128`]: at most five base-10000 digit groups whose value
/// fits an i64 at the column's scale, in 64-bit arithmetic with constant divisors. None sends
/// everything else, errors included, to [`numeric_to_i128_exact`].
#[inline]
pub(super) fn numeric_to_i64_fast(b: &[u8], scale: i8) -> Option<i64> {
    let h = b.get(..8)?;
    let ndigits = usize::try_from(i16::from_be_bytes([h[0], h[1]])).ok()?;
    let digits = b.get(8..8 + 2 * ndigits)?;
    if ndigits > 5 {
        return None;
    }
    let weight = i32::from(i16::from_be_bytes([h[2], h[3]]));
    let negative = match u16::from_be_bytes([h[4], h[5]]) {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let scale = i32::from(scale);
    let mut acc: i64 = 0;
    for (i, d) in digits.chunks_exact(2).enumerate() {
        let d = i64::from(i16::from_be_bytes([d[0], d[1]]));
        let e = 4 * (weight - i as i32) + scale;
        let v = match e {
            // 10^e ≤ 10^18 fits an i64, so the cast is exact.
            0..=18 => d.checked_mul(*POW10_I128.get(e as usize)? as i64)?,
            _ if d == 0 => 0,
            -1 if d % 10 == 0 => d / 10,
            -2 if d % 100 == 0 => d / 100,
            -3 if d % 1000 == 0 => d / 1000,
            _ => return None,
        };
        acc = acc.checked_add(v)?;
    }
    if negative {
        acc.checked_neg()
    } else {
        Some(acc)
    }
}

/// [`numeric_to_i128`] for any value: 128-bit arithmetic, and the errors.
pub(super) fn numeric_to_i128_exact(b: &[u8], scale: i8) -> std::result::Result<i128, String> {
    let (ndigits, weight, negative) = decimal_header(b)?;
    // Each base-10000 digit group is worth 10^e at the column's scale; no division, and
    // 64-bit arithmetic until a value needs more (numeric(p ≤ 18, s) always fits).
    let scale = i32::from(scale);
    let mut small: i64 = 0;
    let mut wide: Option<i128> = None;
    for i in 0..ndigits {
        let d = at16(b, 8 + 2 * i).ok_or("short numeric")?;
        if d == 0 {
            continue;
        }
        let e = 4 * (weight - i as i32) + scale;
        let v: i128 = if e >= 0 {
            let p = POW10_I128
                .get(e as usize)
                .ok_or("numeric value overflows the decimal type")?;
            i128::from(d)
                .checked_mul(*p)
                .ok_or("numeric value overflows the decimal type")?
        } else {
            // Only the last group may hold digits below the scale, and they must be zeros.
            let p = match -e {
                1 => 10,
                2 => 100,
                3 => 1000,
                _ => return Err("numeric value has more digits than the column's scale".into()),
            };
            if d % p != 0 {
                return Err("numeric value has more digits than the column's scale".into());
            }
            i128::from(d / p)
        };
        match wide {
            None => match i64::try_from(v).ok().and_then(|v| small.checked_add(v)) {
                Some(s) => small = s,
                None => wide = Some(i128::from(small) + v),
            },
            Some(w) => {
                wide = Some(
                    w.checked_add(v)
                        .ok_or("numeric value overflows the decimal type")?,
                )
            }
        }
    }
    let acc = wide.unwrap_or(i128::from(small));
    Ok(if negative { -acc } else { acc })
}

/// 10^i for i in 0..=38 (the largest power of ten in an i128).
pub(super) const POW10_I128: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Decodes PostgreSQL's binary numeric into a 256-bit unscaled integer at `scale`
/// (numeric(p > 38, s)).
pub(super) fn numeric_to_i256(b: &[u8], scale: i8) -> std::result::Result<i256, String> {
    let (ndigits, weight, negative) = decimal_header(b)?;
    if ndigits == 0 {
        return Ok(i256::ZERO);
    }
    let overflow = || "numeric value overflows the decimal type".to_string();
    let ten_k = i256::from_i128(10_000);
    let mut acc = i256::ZERO;
    for i in 0..ndigits {
        let d = i256::from_i128(i128::from(at16(b, 8 + 2 * i).ok_or("short numeric")?));
        acc = acc
            .checked_mul(ten_k)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(overflow)?;
    }
    let exp10 = 4 * (weight - ndigits as i32 + 1) + i32::from(scale);
    let ten = i256::from_i128(10);
    if exp10 >= 0 {
        for _ in 0..exp10 {
            acc = acc.checked_mul(ten).ok_or_else(overflow)?;
        }
    } else {
        for _ in 0..(-exp10) {
            if acc.checked_rem(ten) != Some(i256::ZERO) {
                return Err("numeric value has more digits than the column's scale".into());
            }
            acc = acc.checked_div(ten).ok_or_else(overflow)?;
        }
    }
    Ok(if negative {
        acc.checked_neg().ok_or_else(overflow)?
    } else {
        acc
    })
}

/// Writes an unscaled 256-bit decimal as PostgreSQL binary numeric.
pub(super) fn write_numeric_i256(
    v: i256,
    scale: i8,
    out: &mut BytesMut,
) -> std::result::Result<(), String> {
    if let Some(small) = v.to_i128() {
        return write_numeric_i128(small, scale, out);
    }
    // Through the exact decimal text (rare: more than 38 digits).
    let neg = v < i256::ZERO;
    let mut digits = v.to_string();
    if neg {
        digits.remove(0);
    }
    let scale = scale.max(0) as usize;
    while digits.len() <= scale {
        digits.insert(0, '0');
    }
    let (int, frac) = digits.split_at(digits.len() - scale);
    // Base-10000 groups, aligned on the decimal point.
    let pad = (4 - scale % 4) % 4;
    let frac = format!("{frac}{}", "0".repeat(pad));
    let lead = (4 - int.len() % 4) % 4;
    let int = format!("{}{int}", "0".repeat(lead));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int.as_bytes().chunks(4).chain(frac.as_bytes().chunks(4)) {
        let g = std::str::from_utf8(chunk).map_err(|e| e.to_string())?;
        groups.push(g.parse::<i16>().map_err(|e| e.to_string())?);
    }
    let int_groups = int.len() / 4;
    let mut first = 0;
    while first < groups.len() && groups[first] == 0 {
        first += 1;
    }
    let mut last = groups.len();
    while last > first && groups[last - 1] == 0 {
        last -= 1;
    }
    let digits = &groups[first..last];
    let weight = if digits.is_empty() {
        0
    } else {
        int_groups as i32 - 1 - first as i32
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for d in digits {
        out.put_i16(*d);
    }
    Ok(())
}

/// Decodes a binary numeric into f64 (for unconstrained numeric).
pub(super) fn numeric_to_f64(b: &[u8]) -> std::result::Result<f64, String> {
    let ndigits = be_i16(b).ok_or("short numeric")? as usize;
    let weight = i32::from(at16(b, 2).ok_or("short numeric")?);
    let sign = at16(b, 4).ok_or("short numeric")? as u16;
    match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    // Exact decimal text, then one correctly rounded parse.
    let mut s = String::with_capacity(8 + 4 * ndigits);
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str("0.");
    for i in 0..ndigits {
        let d = at16(b, 8 + 2 * i).ok_or("short numeric")?;
        s.push_str(&format!("{d:04}"));
    }
    if ndigits == 0 {
        s.push('0');
    }
    s.push_str(&format!("e{}", 4 * (weight + 1)));
    s.parse::<f64>().map_err(|e| e.to_string())
}

/// Writes an unscaled decimal as PostgreSQL binary numeric.
pub fn write_numeric_i128(
    v: i128,
    scale: i8,
    out: &mut BytesMut,
) -> std::result::Result<(), String> {
    let neg = v < 0;
    // A negative scale (Arrow allows it) means v * 10^-scale: write that integer.
    let (mag, scale) = if scale < 0 {
        let m = 10u128
            .checked_pow(u32::from(scale.unsigned_abs()))
            .and_then(|p| v.unsigned_abs().checked_mul(p))
            .ok_or("decimal value too large to write")?;
        (m, 0u32)
    } else {
        (v.unsigned_abs(), scale as u32)
    };
    let div = 10u128
        .checked_pow(scale)
        .ok_or("decimal scale too large to write")?;
    let (int, frac) = match (u64::try_from(mag), u64::try_from(div)) {
        (Ok(m), Ok(d)) => (u128::from(m / d), u128::from(m % d)),
        _ => (mag / div, mag % div),
    };
    // Base-10000 digit groups, lowest first: the fraction (its lowest group padded with zeros
    // on the right), then the integer part. 64-bit arithmetic when both parts fit.
    let mut groups = [0i16; 24];
    let mut n = 0usize;
    let r = scale % 4;
    macro_rules! split {
        ($t:ty, $int:expr, $frac:expr) => {{
            let (mut int, mut frac): ($t, $t) = ($int, $frac);
            if r > 0 {
                let p: $t = (10 as $t).pow(r);
                groups[n] = ((frac % p) as i16) * 10i16.pow(4 - r);
                frac /= p;
                n += 1;
            }
            for _ in 0..scale / 4 {
                groups[n] = (frac % 10_000) as i16;
                frac /= 10_000;
                n += 1;
            }
            let frac_groups = n;
            while int > 0 && n < groups.len() {
                groups[n] = (int % 10_000) as i16;
                int /= 10_000;
                n += 1;
            }
            frac_groups
        }};
    }
    let frac_groups = match (u64::try_from(int), u64::try_from(frac)) {
        (Ok(i), Ok(f)) => split!(u64, i, f),
        _ => split!(u128, int, frac),
    };
    // PostgreSQL's canonical form: no zero groups at either end.
    let mut hi = n;
    while hi > 0 && groups[hi - 1] == 0 {
        hi -= 1;
    }
    let mut lo = 0;
    while lo < hi && groups[lo] == 0 {
        lo += 1;
    }
    let digits = &groups[lo..hi];
    let weight = if digits.is_empty() {
        0
    } else {
        hi as i32 - frac_groups as i32 - 1
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for d in digits.iter().rev() {
        out.put_i16(*d);
    }
    Ok(())
}

/// Writes an f64 as binary numeric (NaN allowed; infinities are an error in PostgreSQL < 14).
pub(super) fn write_numeric_f64(v: f64, out: &mut BytesMut) -> std::result::Result<(), String> {
    if v.is_nan() {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
        out.put_i16(0);
        return Ok(());
    }
    if v.is_infinite() {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(if v > 0.0 { 0xD000 } else { 0xF000 });
        out.put_i16(0);
        return Ok(());
    }
    write_numeric_str(&format!("{v}"), out)
}

/// Writes a plain decimal string (`-123.4500`, `1e-7` is not accepted) as binary numeric.
pub fn write_numeric_str(s: &str, out: &mut BytesMut) -> std::result::Result<(), String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = frac.len().min(i8::MAX as usize) as i8;
    let digits: String = format!("{int}{frac}");
    let v: i128 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a plain decimal number"))?;
    write_numeric_i128(if neg { -v } else { v }, scale, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::postgres::types::Kind;
    use datafusion::arrow::datatypes::DataType;

    fn roundtrip(v: i128, scale: i8) -> i128 {
        let mut b = BytesMut::new();
        write_numeric_i128(v, scale, &mut b).unwrap();
        numeric_to_i128(&b[4..], scale).unwrap()
    }

    #[test]
    fn numeric_roundtrips_across_the_i64_boundary_and_every_scale() {
        let max38 = 10i128.pow(38) - 1;
        let mut values = vec![
            max38,
            -max38,
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
        ];
        let mut x: i128 = 7;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6_364_136_223_846_793)
                .wrapping_add(1_442_695_040_888_963)
                .rem_euclid(max38);
            values.push(x);
            values.push(-(x / 1_000_003));
        }
        for v in values {
            for s in [-3i8, 0, 1, 2, 3, 4, 5, 9, 17, 20] {
                if s < 0 && v.unsigned_abs() >= 10u128.pow(35) {
                    continue; // v * 1000 does not fit 38 digits
                }
                assert_eq!(roundtrip(v, s), v, "{v} scale {s}");
            }
        }
        // Fewer fractional digits than the value has: an error, never a silent rounding.
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 3, &mut b).unwrap();
        assert!(numeric_to_i128(&b[4..], 2).is_err());
        assert_eq!(numeric_to_i128(&b[4..], 5).unwrap(), 1234500);
    }

    #[test]
    fn numeric_fast_path_agrees_with_the_exact_path() {
        let mut checked = 0;
        let mut x: i128 = 3;
        for _ in 0..3000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793)
                .wrapping_add(1_442_695_040_888_963)
                .rem_euclid(10i128.pow(20));
            for v in [x, -x, x % 100_000, x % 1_000, 0] {
                for write_scale in [0i8, 1, 2, 3, 4, 6] {
                    let mut b = BytesMut::new();
                    write_numeric_i128(v, write_scale, &mut b).unwrap();
                    for read_scale in [0i8, 1, 2, 3, 5, 8, 15] {
                        let exact = numeric_to_i128_exact(&b[4..], read_scale);
                        if let Some(fast) = numeric_to_i64_fast(&b[4..], read_scale) {
                            assert_eq!(
                                Ok(i128::from(fast)),
                                exact,
                                "{v} at {write_scale}/{read_scale}"
                            );
                            checked += 1;
                        }
                        assert_eq!(numeric_to_i128(&b[4..], read_scale), exact);
                    }
                }
            }
        }
        assert!(checked > 10_000, "the fast path took only {checked} values");
    }

    #[test]
    fn numeric_roundtrips() {
        for (v, s) in [
            (0i128, 2i8),
            (1, 2),
            (-1, 2),
            (2116823, 2),
            (-99999999, 4),
            (123456789012345678, 0),
            (10000, 0),
            (5, 7),
            (i128::from(i64::MAX), 3),
        ] {
            assert_eq!(roundtrip(v, s), v, "{v} scale {s}");
        }
    }

    #[test]
    fn wide_numeric_roundtrips() {
        let v = i256::from_string("-1234567890123456789012345678901234512345").unwrap();
        let mut b = BytesMut::new();
        write_numeric_i256(v, 5, &mut b).unwrap();
        assert_eq!(numeric_to_i256(&b[4..], 5).unwrap(), v);
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 2, &mut b).unwrap();
        assert_eq!(numeric_to_i256(&b[4..], 2).unwrap(), i256::from_i128(12345));
    }

    #[test]
    fn numeric_rejects_extra_digits_and_nan() {
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 3, &mut b).unwrap(); // 12.345
        assert!(numeric_to_i128(&b[4..], 2).is_err());
        let mut n = BytesMut::new();
        write_numeric_f64(f64::NAN, &mut n).unwrap();
        assert!(numeric_to_i128(&n[4..], 2).unwrap_err().contains("NaN"));
        assert!(numeric_to_f64(&n[4..]).unwrap().is_nan());
    }

    #[test]
    fn typmod_gives_precision_and_scale() {
        assert_eq!(
            Kind::from_oid(1700, (15 << 16) + 2 + 4),
            Kind::Numeric(Some((15, 2)))
        );
        assert_eq!(Kind::from_oid(1700, -1), Kind::Numeric(None));
        assert_eq!(
            Kind::from_oid(1700, (40 << 16) + 4).arrow_type(),
            DataType::Decimal256(40, 0)
        );
    }
}
