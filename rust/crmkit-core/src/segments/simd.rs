//! Range kernels over 64-row words: `lo <= v <= hi` tests on i64 and f64
//! columns written straight into row bitmaps. On x86_64 with AVX2 (detected
//! at run time) four values are compared per instruction and the results are
//! packed with `movemask`; elsewhere a portable loop gives the same bits.

/// `out[w]` = bits of rows `64w..64w+64` with `lo <= v <= hi`, masked by `valid[w]`.
/// `vals` must hold at least `64 * out.len()` values and `valid` `out.len()` words.
pub fn range_i64(out: &mut [u64], vals: &[i64], valid: &[u64], lo: i64, hi: i64) {
    assert!(vals.len() >= out.len() * 64 && valid.len() >= out.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above) and the lengths were asserted.
            unsafe { x86::range_i64(out, vals, valid, lo, hi) };
            return;
        }
    }
    portable(out, vals, valid, |v| (lo <= v) & (v <= hi));
}

/// Like [`range_i64`] over values stored in 32 bits (bounds outside the
/// 32-bit range are clamped: no stored value lies beyond them).
pub fn range_i32(out: &mut [u64], vals: &[i32], valid: &[u64], lo: i64, hi: i64) {
    assert!(vals.len() >= out.len() * 64 && valid.len() >= out.len());
    if lo > hi || lo > i32::MAX as i64 || hi < i32::MIN as i64 {
        out.iter_mut().for_each(|o| *o = 0);
        return;
    }
    let (lo, hi) = (
        lo.max(i32::MIN as i64) as i32,
        hi.min(i32::MAX as i64) as i32,
    );
    portable(out, vals, valid, |v| (lo <= v) & (v <= hi));
}

/// Like [`range_i64`] for f64 with inclusive or exclusive bounds.
pub fn range_f64(
    out: &mut [u64],
    vals: &[f64],
    valid: &[u64],
    (lo, lo_incl): (f64, bool),
    (hi, hi_incl): (f64, bool),
) {
    assert!(vals.len() >= out.len() * 64 && valid.len() >= out.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above) and the lengths were asserted.
            unsafe {
                match (lo_incl, hi_incl) {
                    (true, true) => x86::range_f64::<true, true>(out, vals, valid, lo, hi),
                    (true, false) => x86::range_f64::<true, false>(out, vals, valid, lo, hi),
                    (false, true) => x86::range_f64::<false, true>(out, vals, valid, lo, hi),
                    (false, false) => x86::range_f64::<false, false>(out, vals, valid, lo, hi),
                }
            }
            return;
        }
    }
    match (lo_incl, hi_incl) {
        (true, true) => portable(out, vals, valid, |v| (lo <= v) & (v <= hi)),
        (false, true) => portable(out, vals, valid, |v| (lo < v) & (v <= hi)),
        (true, false) => portable(out, vals, valid, |v| (lo <= v) & (v < hi)),
        (false, false) => portable(out, vals, valid, |v| (lo < v) & (v < hi)),
    }
}

/// The portable kernel: test into bytes, then pack 8 bytes into 8 bits with
/// one multiply each.
#[inline(always)]
pub fn portable<T: Copy>(out: &mut [u64], vals: &[T], valid: &[u64], f: impl Fn(T) -> bool) {
    for (w, o) in out.iter_mut().enumerate() {
        let vw = valid[w];
        if vw == 0 {
            *o = 0;
            continue;
        }
        let chunk = &vals[w * 64..w * 64 + 64];
        let mut t = [0u8; 64];
        for (b, &v) in t.iter_mut().zip(chunk) {
            *b = f(v) as u8;
        }
        let mut m = 0u64;
        for (g, bytes) in t.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
            m |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * g);
        }
        *o = m & vw;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 must be available; `vals.len() >= 64 * out.len()`, `valid.len() >= out.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn range_i64(out: &mut [u64], vals: &[i64], valid: &[u64], lo: i64, hi: i64) {
        let lov = _mm256_set1_epi64x(lo);
        let hiv = _mm256_set1_epi64x(hi);
        for (w, o) in out.iter_mut().enumerate() {
            let vw = valid[w];
            if vw == 0 {
                *o = 0;
                continue;
            }
            let p = vals.as_ptr().add(w * 64);
            let mut bad = 0u64;
            for g in 0..16 {
                // SAFETY: w*64 + g*4 + 3 < 64 * out.len() <= vals.len().
                let v = _mm256_loadu_si256(p.add(g * 4) as *const __m256i);
                let out_of =
                    _mm256_or_si256(_mm256_cmpgt_epi64(lov, v), _mm256_cmpgt_epi64(v, hiv));
                bad |= (_mm256_movemask_pd(_mm256_castsi256_pd(out_of)) as u64) << (g * 4);
            }
            *o = !bad & vw;
        }
    }

    /// # Safety
    /// As [`range_i64`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn range_f64<const LO_INCL: bool, const HI_INCL: bool>(
        out: &mut [u64],
        vals: &[f64],
        valid: &[u64],
        lo: f64,
        hi: f64,
    ) {
        let lov = _mm256_set1_pd(lo);
        let hiv = _mm256_set1_pd(hi);
        for (w, o) in out.iter_mut().enumerate() {
            let vw = valid[w];
            if vw == 0 {
                *o = 0;
                continue;
            }
            let p = vals.as_ptr().add(w * 64);
            let mut m = 0u64;
            for g in 0..16 {
                // SAFETY: w*64 + g*4 + 3 < 64 * out.len() <= vals.len().
                let v = _mm256_loadu_pd(p.add(g * 4));
                let a = if LO_INCL {
                    _mm256_cmp_pd::<_CMP_GE_OQ>(v, lov)
                } else {
                    _mm256_cmp_pd::<_CMP_GT_OQ>(v, lov)
                };
                let b = if HI_INCL {
                    _mm256_cmp_pd::<_CMP_LE_OQ>(v, hiv)
                } else {
                    _mm256_cmp_pd::<_CMP_LT_OQ>(v, hiv)
                };
                m |= (_mm256_movemask_pd(_mm256_and_pd(a, b)) as u64) << (g * 4);
            }
            *o = m & vw;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_i(vals: &[i64], valid: &[u64], lo: i64, hi: i64) -> Vec<u64> {
        let mut out = vec![0; valid.len()];
        portable(&mut out, vals, valid, |v| lo <= v && v <= hi);
        out
    }

    #[test]
    fn kernels_agree_with_the_portable_loop() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 64 * 9;
        let ints: Vec<i64> = (0..n).map(|_| (next() % 41) as i64 - 20).collect();
        let floats: Vec<f64> = ints.iter().map(|&v| v as f64 / 2.0).collect();
        let valid: Vec<u64> = (0..9).map(|i| if i == 3 { 0 } else { next() }).collect();
        for (lo, hi) in [(-5, 5), (i64::MIN, 0), (3, i64::MAX), (7, 2), (0, 0)] {
            let mut out = vec![0; 9];
            range_i64(&mut out, &ints, &valid, lo, hi);
            assert_eq!(out, scalar_i(&ints, &valid, lo, hi), "{lo}..={hi}");
        }
        for lo_incl in [true, false] {
            for hi_incl in [true, false] {
                for (lo, hi) in [(-2.5, 2.5), (f64::NEG_INFINITY, 0.0), (1.0, f64::INFINITY)] {
                    let mut out = vec![0; 9];
                    range_f64(&mut out, &floats, &valid, (lo, lo_incl), (hi, hi_incl));
                    let mut want = vec![0; 9];
                    portable(&mut want, &floats, &valid, |v| {
                        (if lo_incl { v >= lo } else { v > lo })
                            && (if hi_incl { v <= hi } else { v < hi })
                    });
                    assert_eq!(out, want);
                }
            }
        }
    }
}
