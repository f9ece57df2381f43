//! Unsigned integers in the narrowest of 8, 16 or 32 bits that holds them:
//! the dictionary codes of string and list columns, and list lengths.
//!
//! Most coded columns have few distinct values (a country, a plan, a tag), so
//! a byte per row holds their codes in a quarter of the space of a `u32`, and
//! a bulk pass reads a quarter of the memory. Storing a value too wide for
//! the current width widens the whole vector once (a dictionary passing 256
//! or 65,536 strings).

use super::codec::{Reader, Writer};
use crate::CoreResult;

/// Unsigned integers stored in 8, 16 or 32 bits each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// Every value below 256.
    W8(Vec<u8>),
    /// Every value below 65,536.
    W16(Vec<u16>),
    /// Any `u32`.
    W32(Vec<u32>),
}

/// A borrowed run of a [`Packed`].
#[derive(Debug, Clone, Copy)]
pub enum PackedSlice<'a> {
    /// Values in 8 bits.
    W8(&'a [u8]),
    /// Values in 16 bits.
    W16(&'a [u16]),
    /// Values in 32 bits.
    W32(&'a [u32]),
}

/// Run `$e` with `$v` bound to the inner vector or slice, whatever its width.
macro_rules! each {
    ($ty:ident, $p:expr, $v:ident => $e:expr) => {
        match $p {
            $ty::W8($v) => $e,
            $ty::W16($v) => $e,
            $ty::W32($v) => $e,
        }
    };
}
pub(crate) use each;

/// A value of any width as `u32` (generic, so one expression serves every
/// width in [`each!`]).
#[inline(always)]
pub(crate) fn wide<T: Into<u32>>(x: T) -> u32 {
    x.into()
}

/// The width tag (bytes per value) that holds `max`.
fn width_for(max: u32) -> u8 {
    if max <= u8::MAX as u32 {
        1
    } else if max <= u16::MAX as u32 {
        2
    } else {
        4
    }
}

impl Default for Packed {
    fn default() -> Packed {
        Packed::W8(Vec::new())
    }
}

impl Packed {
    /// `n` zeros, in the width that holds values up to `max`.
    pub fn zeros(n: usize, max: u32) -> Packed {
        match width_for(max) {
            1 => Packed::W8(vec![0; n]),
            2 => Packed::W16(vec![0; n]),
            _ => Packed::W32(vec![0; n]),
        }
    }

    /// `v` in the narrowest width that holds its largest value.
    pub fn from_u32(v: Vec<u32>) -> Packed {
        let max = v.iter().copied().max().unwrap_or(0);
        match width_for(max) {
            1 => Packed::W8(v.into_iter().map(|x| x as u8).collect()),
            2 => Packed::W16(v.into_iter().map(|x| x as u16).collect()),
            _ => Packed::W32(v),
        }
    }

    /// Bytes per value.
    pub fn width(&self) -> u8 {
        match self {
            Packed::W8(_) => 1,
            Packed::W16(_) => 2,
            Packed::W32(_) => 4,
        }
    }

    /// The largest value the current width holds.
    fn max(&self) -> u32 {
        match self {
            Packed::W8(_) => u8::MAX as u32,
            Packed::W16(_) => u16::MAX as u32,
            Packed::W32(_) => u32::MAX,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        each!(Packed, self, v => v.len())
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` (in range).
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        each!(Packed, self, v => wide(v[i]))
    }

    /// Make room for values up to `max`, widening every value if needed.
    pub fn widen_for(&mut self, max: u32) {
        if max <= self.max() {
            return;
        }
        let v: Vec<u32> = each!(Packed, &*self, v => v.iter().map(|&x| wide(x)).collect());
        *self = match width_for(max) {
            2 => Packed::W16(v.into_iter().map(|x| x as u16).collect()),
            _ => Packed::W32(v),
        };
    }

    /// Set value `i` (in range), widening first if `x` does not fit.
    pub fn set(&mut self, i: usize, x: u32) {
        self.widen_for(x);
        match self {
            Packed::W8(v) => v[i] = x as u8,
            Packed::W16(v) => v[i] = x as u16,
            Packed::W32(v) => v[i] = x,
        }
    }

    /// Append `x`, widening first if it does not fit.
    pub fn push(&mut self, x: u32) {
        self.widen_for(x);
        match self {
            Packed::W8(v) => v.push(x as u8),
            Packed::W16(v) => v.push(x as u16),
            Packed::W32(v) => v.push(x),
        }
    }

    /// Append every value of `s`, widening first if needed.
    pub fn extend(&mut self, s: PackedSlice<'_>) {
        if s.is_empty() {
            return;
        }
        if s.width() > self.width() {
            self.widen_for(s.iter().max().unwrap_or(0));
        }
        match (self, s) {
            (Packed::W8(v), PackedSlice::W8(s)) => v.extend_from_slice(s),
            (Packed::W16(v), PackedSlice::W16(s)) => v.extend_from_slice(s),
            (Packed::W32(v), PackedSlice::W32(s)) => v.extend_from_slice(s),
            (Packed::W16(v), s) => v.extend(s.iter().map(|x| x as u16)),
            (Packed::W32(v), s) => v.extend(s.iter()),
            (Packed::W8(v), s) => v.extend(s.iter().map(|x| x as u8)),
        }
    }

    /// Resize to `n` values, new ones zero.
    pub fn resize(&mut self, n: usize) {
        each!(Packed, self, v => v.resize(n, 0))
    }

    /// Values `a..b`.
    #[inline]
    pub fn slice(&self, a: usize, b: usize) -> PackedSlice<'_> {
        match self {
            Packed::W8(v) => PackedSlice::W8(&v[a..b]),
            Packed::W16(v) => PackedSlice::W16(&v[a..b]),
            Packed::W32(v) => PackedSlice::W32(&v[a..b]),
        }
    }

    /// Every value.
    pub fn as_slice(&self) -> PackedSlice<'_> {
        self.slice(0, self.len())
    }

    /// The values at `rows`, then zeros up to `n` values, in the same width.
    pub fn gather(&self, rows: &[u32], n: usize) -> Packed {
        fn pick<T: Copy + Default>(vals: &[T], rows: &[u32], n: usize) -> Vec<T> {
            let mut out: Vec<T> = Vec::with_capacity(n.max(rows.len()));
            out.extend(rows.iter().map(|&r| vals[r as usize]));
            out.resize(n.max(rows.len()), T::default());
            out
        }
        match self {
            Packed::W8(v) => Packed::W8(pick(v, rows, n)),
            Packed::W16(v) => Packed::W16(pick(v, rows, n)),
            Packed::W32(v) => Packed::W32(pick(v, rows, n)),
        }
    }

    /// Hint the CPU to load value `i`'s cache line.
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        each!(Packed, self, v => if let Some(x) = v.get(i) {
            super::eval::prefetch(x)
        })
    }

    /// Write the width and the values.
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> CoreResult<()> {
        w.u8(self.width())?;
        each!(Packed, self, v => w.slice(v))
    }

    /// Read what [`Packed::encode`] wrote.
    pub(crate) fn decode(r: &mut Reader<'_>) -> CoreResult<Packed> {
        Ok(match r.u8()? {
            1 => Packed::W8(r.vec()?),
            2 => Packed::W16(r.vec()?),
            4 => Packed::W32(r.vec()?),
            _ => return Err(r.damaged("value width")),
        })
    }
}

impl<'a> PackedSlice<'a> {
    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        each!(PackedSlice, self, v => v.len())
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per value.
    pub fn width(&self) -> u8 {
        match self {
            PackedSlice::W8(_) => 1,
            PackedSlice::W16(_) => 2,
            PackedSlice::W32(_) => 4,
        }
    }

    /// Value `i` (in range).
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        each!(PackedSlice, self, v => wide(v[i]))
    }

    /// Values `a..` of this run.
    #[inline]
    pub fn from(self, a: usize) -> PackedSlice<'a> {
        match self {
            PackedSlice::W8(v) => PackedSlice::W8(&v[a..]),
            PackedSlice::W16(v) => PackedSlice::W16(&v[a..]),
            PackedSlice::W32(v) => PackedSlice::W32(&v[a..]),
        }
    }

    /// The values, widened to `u32`.
    #[inline]
    pub fn iter(self) -> PackedIter<'a> {
        match self {
            PackedSlice::W8(v) => PackedIter::W8(v.iter()),
            PackedSlice::W16(v) => PackedIter::W16(v.iter()),
            PackedSlice::W32(v) => PackedIter::W32(v.iter()),
        }
    }

    /// Whether every value is below `n`.
    pub fn all_below(self, n: u32) -> bool {
        self.iter().all(|x| x < n)
    }
}

/// The values of a [`PackedSlice`], as `u32`.
#[derive(Debug, Clone)]
pub enum PackedIter<'a> {
    /// From 8-bit values.
    W8(std::slice::Iter<'a, u8>),
    /// From 16-bit values.
    W16(std::slice::Iter<'a, u16>),
    /// From 32-bit values.
    W32(std::slice::Iter<'a, u32>),
}

impl Iterator for PackedIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            PackedIter::W8(i) => i.next().map(|&x| x as u32),
            PackedIter::W16(i) => i.next().map(|&x| x as u32),
            PackedIter::W32(i) => i.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        each!(PackedIter, self, i => i.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_narrowest_width_and_widen_when_needed() {
        let mut p = Packed::from_u32(vec![0, 3, 255]);
        assert_eq!(p.width(), 1);
        p.push(256);
        assert_eq!(p.width(), 2);
        p.set(1, 70_000);
        assert_eq!(p.width(), 4);
        assert_eq!(
            p.as_slice().iter().collect::<Vec<_>>(),
            [0, 70_000, 255, 256]
        );
        let mut q = Packed::zeros(2, 10);
        q.extend(p.slice(1, 3));
        assert_eq!((q.width(), q.len()), (4, 4));
        assert_eq!(q.get(2), 70_000);
        let g = p.gather(&[3, 0], 4);
        assert_eq!(g.as_slice().iter().collect::<Vec<_>>(), [256, 0, 0, 0]);
        let mut r = Packed::zeros(1, 0);
        r.extend(PackedSlice::W32(&[7, 8]));
        assert_eq!((r.width(), r.get(2)), (1, 8));
    }
}
