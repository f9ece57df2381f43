//! A small binary file format for snapshots kept on disk: little-endian
//! scalars, length-prefixed arrays of plain numbers written and read as
//! whole slices, and a CRC-32 of everything before it at the end. Reading
//! checks every length against what is left of the file, so a damaged file
//! is an error, never a huge allocation or a panic.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use bytemuck::{Pod, Zeroable};

use super::snapshot::{Ends, Strs};
use crate::{CoreError, CoreResult};

/// Marker written after the magic: read back differently on a machine of
/// the other byte order, which then refuses the file.
const BYTE_ORDER: u32 = 0x0102_0304;

fn io_err(path: &Path, e: std::io::Error) -> CoreError {
    CoreError::InvalidInput(format!("snapshot file {}: {e}", path.display()))
}

fn damaged(path: &Path, what: &str) -> CoreError {
    CoreError::InvalidInput(format!(
        "snapshot file {} is damaged ({what})",
        path.display()
    ))
}

/// Writes one file: `magic`, the byte-order marker, the caller's fields,
/// then the checksum on [`Writer::finish`].
pub(crate) struct Writer<'p> {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    path: &'p Path,
}

impl<'p> Writer<'p> {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &'p Path, magic: &[u8; 8]) -> CoreResult<Writer<'p>> {
        let file = File::create(path).map_err(|e| io_err(path, e))?;
        let mut w = Writer {
            out: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            path,
        };
        w.raw(magic)?;
        w.u32(BYTE_ORDER)?;
        Ok(w)
    }

    fn raw(&mut self, b: &[u8]) -> CoreResult<()> {
        self.crc.update(b);
        self.out.write_all(b).map_err(|e| io_err(self.path, e))
    }

    /// One byte.
    pub fn u8(&mut self, x: u8) -> CoreResult<()> {
        self.raw(&[x])
    }

    /// A u32.
    pub fn u32(&mut self, x: u32) -> CoreResult<()> {
        self.raw(&x.to_le_bytes())
    }

    /// A u64.
    pub fn u64(&mut self, x: u64) -> CoreResult<()> {
        self.raw(&x.to_le_bytes())
    }

    /// A length-prefixed slice of plain numbers.
    pub fn slice<T: Pod>(&mut self, xs: &[T]) -> CoreResult<()> {
        self.u64(xs.len() as u64)?;
        self.raw(bytemuck::cast_slice(xs))
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> CoreResult<()> {
        self.slice(s.as_bytes())
    }

    /// Strings: the width of their end offsets (4 or 8 bytes), the offsets,
    /// then their bytes in one run.
    pub fn strs(&mut self, xs: &Strs) -> CoreResult<()> {
        let (ends, bytes) = xs.parts();
        match ends {
            Ends::W32(v) => {
                self.u8(4)?;
                self.slice(v)?;
            }
            Ends::W64(v) => {
                self.u8(8)?;
                self.slice(v)?;
            }
        }
        self.u64(bytes.len() as u64)?;
        self.raw(bytes)
    }

    /// Write the checksum and flush.
    pub fn finish(mut self) -> CoreResult<()> {
        let sum = self.crc.clone().finalize();
        self.out
            .write_all(&sum.to_le_bytes())
            .and_then(|_| self.out.flush())
            .map_err(|e| io_err(self.path, e))
    }
}

/// Write `path` through `body` under a temporary name beside it, then rename
/// it over `path`: a reader finds the old file or the new one, never part
/// of one, and a failed write leaves no temporary file behind.
pub(crate) fn write_atomically(
    path: &Path,
    magic: &[u8; 8],
    body: impl FnOnce(&mut Writer<'_>) -> CoreResult<()>,
) -> CoreResult<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = Writer::create(&tmp, magic).and_then(|mut w| {
        body(&mut w)?;
        w.finish()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path, e)
    })
}

/// Reads a file written by [`Writer`].
pub(crate) struct Reader<'p> {
    inp: BufReader<File>,
    crc: crc32fast::Hasher,
    left: u64,
    path: &'p Path,
}

impl<'p> Reader<'p> {
    /// Open `path` and check the header.
    pub fn open(path: &'p Path, magic: &[u8; 8]) -> CoreResult<Reader<'p>> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let size = file.metadata().map_err(|e| io_err(path, e))?.len();
        let mut r = Reader {
            inp: BufReader::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            left: size.saturating_sub(4),
            path,
        };
        let mut m = [0u8; 8];
        r.raw(&mut m)?;
        if &m != magic {
            return Err(damaged(path, "not a snapshot of this version"));
        }
        if r.u32()? != BYTE_ORDER {
            return Err(damaged(path, "written on a machine of another byte order"));
        }
        Ok(r)
    }

    /// The error for a file whose content does not hold together.
    pub fn damaged(&self, what: &str) -> CoreError {
        damaged(self.path, what)
    }

    fn raw(&mut self, b: &mut [u8]) -> CoreResult<()> {
        if b.len() as u64 > self.left {
            return Err(damaged(self.path, "truncated"));
        }
        self.inp.read_exact(b).map_err(|e| io_err(self.path, e))?;
        self.left -= b.len() as u64;
        self.crc.update(b);
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self) -> CoreResult<u8> {
        let mut b = [0u8; 1];
        self.raw(&mut b)?;
        Ok(b[0])
    }

    /// A u32.
    pub fn u32(&mut self) -> CoreResult<u32> {
        let mut b = [0u8; 4];
        self.raw(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A u64.
    pub fn u64(&mut self) -> CoreResult<u64> {
        let mut b = [0u8; 8];
        self.raw(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length-prefixed slice of plain numbers.
    pub fn vec<T: Pod + Zeroable>(&mut self) -> CoreResult<Vec<T>> {
        let n = self.u64()?;
        let size = std::mem::size_of::<T>() as u64;
        if n.checked_mul(size).is_none_or(|b| b > self.left) {
            return Err(damaged(self.path, "truncated"));
        }
        let mut out = vec![T::zeroed(); n as usize];
        self.raw(bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> CoreResult<String> {
        let b: Vec<u8> = self.vec()?;
        String::from_utf8(b).map_err(|_| damaged(self.path, "text is not UTF-8"))
    }

    /// Strings written by [`Writer::strs`].
    pub fn strs(&mut self) -> CoreResult<Strs> {
        let ends = match self.u8()? {
            4 => Ends::W32(self.vec()?),
            8 => Ends::W64(self.vec()?),
            _ => return Err(damaged(self.path, "string offsets")),
        };
        let total = self.u64()?;
        if total > self.left {
            return Err(damaged(self.path, "truncated"));
        }
        let mut bytes = vec![0u8; total as usize];
        self.raw(&mut bytes)?;
        Strs::from_parts(ends, bytes).ok_or_else(|| damaged(self.path, "strings"))
    }

    /// Check the checksum and that nothing is left over.
    pub fn finish(mut self) -> CoreResult<()> {
        if self.left != 0 {
            return Err(damaged(self.path, "trailing bytes"));
        }
        let mut b = [0u8; 4];
        self.inp
            .read_exact(&mut b)
            .map_err(|_| damaged(self.path, "truncated"))?;
        if u32::from_le_bytes(b) != self.crc.clone().finalize() {
            return Err(damaged(self.path, "checksum mismatch"));
        }
        Ok(())
    }
}
