//! A streaming CSV reader that yields column chunks.
//!
//! - The encoding is taken from a byte order mark (UTF-8, UTF-16 LE/BE), else
//!   UTF-8 when the first MiB is valid UTF-8, else windows-1252; or given.
//!   UTF-8 and single-byte encodings are parsed on the raw bytes (their
//!   delimiters and quotes are ASCII) and each field is decoded; UTF-16 is
//!   transcoded to UTF-8 on the fly. Memory stays flat whatever the file size:
//!   one input buffer, one chunk, and fields longer than `max_field_bytes`
//!   are skipped over, not stored.
//! - The delimiter (`,` `;` tab `|`) is sniffed from the header line.
//! - Every record carries the 1-based physical line where it starts and the
//!   byte offset in the file just after it, so an import can checkpoint and
//!   resume with `start_byte`.
//! - A malformed record (wrong number of fields, an oversized field,
//!   undecodable bytes) becomes a reject with its line and a reason that
//!   names the column, never the value; reading goes on.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use csv_core::{ReadFieldResult, Reader as CoreReader, ReaderBuilder};
use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use thiserror::Error;

/// Bytes looked at to decide between UTF-8 and windows-1252.
const SNIFF_BYTES: usize = 1 << 20;
/// Size of the input buffer.
const BUF_BYTES: usize = 1 << 18;
/// Delimiters the sniffer picks from, in order of preference on a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Errors opening or reading a CSV file. Messages name the file, never data.
#[derive(Debug, Error)]
pub enum CsvError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file's path.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file or the options cannot be used (bad header, bad encoding name, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Options of [`CsvReader::open`].
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// An encoding label ("utf-8", "utf-16le", "cp1252", "latin1", ...); `None` detects it.
    pub encoding: Option<String>,
    /// The field delimiter; `None` sniffs it from the header line.
    pub delimiter: Option<u8>,
    /// Records per chunk (accepted and rejected together).
    pub chunk_rows: usize,
    /// Longest field accepted, in bytes as read.
    pub max_field_bytes: usize,
    /// Resume just after a previous record: a `byte_ends` value.
    pub start_byte: u64,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            encoding: None,
            delimiter: None,
            chunk_rows: 50_000,
            max_field_bytes: 1 << 20,
            start_byte: 0,
        }
    }
}

/// One chunk of records, column-oriented.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// Number of columns (the header's).
    pub ncols: usize,
    /// The text of every stored cell, concatenated.
    pub data: String,
    /// Row-major `(start, end)` byte spans into `data`; an empty span is an empty cell.
    pub spans: Vec<(usize, usize)>,
    /// 1-based physical line where each accepted record starts.
    pub lines: Vec<u64>,
    /// Byte offset in the file just after each accepted record.
    pub byte_ends: Vec<u64>,
    /// `(line, reason)` for each rejected record.
    pub rejects: Vec<(u64, String)>,
}

impl Chunk {
    /// Number of accepted rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// The cell at `row`, `col`; `None` when empty.
    pub fn cell(&self, row: usize, col: usize) -> Option<&str> {
        let (s, e) = self.spans[row * self.ncols + col];
        (s < e).then(|| &self.data[s..e])
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Utf8,
    SingleByte(&'static Encoding),
    Utf16(&'static Encoding),
}

/// UTF-16 to UTF-8 on the fly, remembering where malformed input was replaced.
struct Transcoder {
    file: File,
    decoder: Decoder,
    raw: Vec<u8>,
    lo: usize,
    hi: usize,
    eof: bool,
    finished: bool,
    /// Decoded bytes produced so far.
    produced: u64,
    /// Decoded offsets of U+FFFD written for malformed input.
    malformed: VecDeque<u64>,
}

impl Transcoder {
    fn new(file: File, encoding: &'static Encoding) -> Self {
        Self {
            file,
            decoder: encoding.new_decoder_without_bom_handling(),
            raw: vec![0; 1 << 16],
            lo: 0,
            hi: 0,
            eof: false,
            finished: false,
            produced: 0,
            malformed: VecDeque::new(),
        }
    }
}

impl Read for Transcoder {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written + 4 <= out.len() && !self.finished {
            if self.lo == self.hi && !self.eof {
                let n = self.file.read(&mut self.raw)?;
                self.lo = 0;
                self.hi = n;
                self.eof = n == 0;
            }
            // Keep room for a replacement character after what is decoded.
            let cap = out.len() - 3;
            let (res, nin, nout) = self.decoder.decode_to_utf8_without_replacement(
                &self.raw[self.lo..self.hi],
                &mut out[written..cap],
                self.eof,
            );
            self.lo += nin;
            written += nout;
            match res {
                DecoderResult::InputEmpty => {
                    if self.eof {
                        self.finished = true;
                    } else if written > 0 {
                        break;
                    }
                }
                DecoderResult::OutputFull => break,
                DecoderResult::Malformed(_, _) => {
                    self.malformed.push_back(self.produced + written as u64);
                    out[written..written + 3].copy_from_slice("\u{fffd}".as_bytes());
                    written += 3;
                }
            }
        }
        self.produced += written as u64;
        Ok(written)
    }
}

enum Source {
    Raw(File),
    Utf16(Box<Transcoder>),
}

impl Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Raw(f) => f.read(buf),
            Source::Utf16(t) => t.read(buf),
        }
    }
}

/// What reading one record found.
struct RecordInfo {
    line: u64,
    byte_end: u64,
    nfields: usize,
    /// First column whose field was over the size limit.
    oversized: Option<usize>,
    /// First column with undecodable bytes (or 0 for a UTF-16 record).
    undecodable: Option<usize>,
}

/// The streaming reader. Create it with [`CsvReader::open`], then call
/// [`CsvReader::next_chunk`] until it returns `None`.
pub struct CsvReader {
    path: String,
    mode: Mode,
    delimiter: u8,
    headers: Vec<String>,
    chunk_rows: usize,
    max_field_bytes: usize,
    src: Source,
    core: CoreReader,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    src_eof: bool,
    /// Decoded bytes consumed (equals raw bytes past the start except for UTF-16).
    dec_pos: u64,
    /// File offset of `buf[lo]`.
    raw_pos: u64,
    /// Line number at `buf[lo]`.
    line: u64,
    /// File offset just after the last record returned.
    position: u64,
    /// Output area for the current chunk: `data[..used]` holds cell bytes.
    data: Vec<u8>,
    used: usize,
    discard: Vec<u8>,
    scratch: Vec<u8>,
    done: bool,
}

fn io_err(path: &str, source: io::Error) -> CsvError {
    CsvError::Io {
        path: path.to_string(),
        source,
    }
}

fn mode_for(enc: &'static Encoding) -> Result<Mode, CsvError> {
    if enc == UTF_8 {
        Ok(Mode::Utf8)
    } else if enc == UTF_16LE || enc == UTF_16BE {
        Ok(Mode::Utf16(enc))
    } else if enc.is_single_byte() {
        Ok(Mode::SingleByte(enc))
    } else {
        Err(CsvError::Invalid(format!(
            "unsupported encoding {:?}: use UTF-8, UTF-16 or a single-byte encoding",
            enc.name()
        )))
    }
}

/// Pick the delimiter from the first line of `sample`: the candidate seen
/// most often outside quotes (`,` on a tie with none seen).
pub fn sniff_delimiter(sample: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in sample {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if b == b'\n' || b == b'\r' {
                break;
            }
            if let Some(i) = DELIMITERS.iter().position(|d| *d == b) {
                counts[i] += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// UTF-16 code units needed for a run of UTF-8 bytes.
fn utf16_units(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .map(|&b| u64::from((b as i8) >= -64) + u64::from(b >= 0xF0))
        .sum()
}

impl CsvReader {
    /// Open `path`, detect or apply the encoding, sniff the delimiter, read
    /// the header line and position the reader at `opts.start_byte` (or just
    /// after the header).
    pub fn open(path: &Path, opts: &CsvOptions) -> Result<Self, CsvError> {
        let pstr = path.display().to_string();
        if opts.chunk_rows == 0 {
            return Err(CsvError::Invalid("chunk_rows must be at least 1".into()));
        }
        if opts.max_field_bytes == 0 {
            return Err(CsvError::Invalid(
                "max_field_bytes must be at least 1".into(),
            ));
        }
        let mut file = File::open(path).map_err(|e| io_err(&pstr, e))?;
        let file_len = file.metadata().map_err(|e| io_err(&pstr, e))?.len();
        let mut sample = Vec::with_capacity(SNIFF_BYTES.min(file_len as usize));
        (&mut file)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut sample)
            .map_err(|e| io_err(&pstr, e))?;
        let (enc, bom) = match Encoding::for_bom(&sample) {
            Some((enc, n)) => (enc, n as u64),
            None => match &opts.encoding {
                Some(label) => (
                    Encoding::for_label(label.trim().as_bytes())
                        .ok_or_else(|| CsvError::Invalid(format!("unknown encoding {label:?}")))?,
                    0,
                ),
                None => match std::str::from_utf8(&sample) {
                    Ok(_) => (UTF_8, 0),
                    Err(e) if e.error_len().is_none() && sample.len() == SNIFF_BYTES => (UTF_8, 0),
                    Err(_) => (WINDOWS_1252, 0),
                },
            },
        };
        let mode = mode_for(enc)?;
        drop(sample);
        let mut r = Self {
            path: pstr,
            mode,
            delimiter: opts.delimiter.unwrap_or(b','),
            headers: Vec::new(),
            chunk_rows: opts.chunk_rows,
            max_field_bytes: opts.max_field_bytes,
            src: Source::Raw(file),
            core: CoreReader::new(),
            buf: vec![0; BUF_BYTES],
            lo: 0,
            hi: 0,
            src_eof: false,
            dec_pos: 0,
            raw_pos: 0,
            line: 1,
            position: 0,
            data: Vec::new(),
            used: 0,
            discard: vec![0; 1 << 16],
            scratch: Vec::new(),
            done: false,
        };
        r.seek_to(bom, 1)?;
        // Sniff on what the first fill brought in (the header line, usually whole).
        while r.hi < r.buf.len() / 4 && !r.src_eof {
            r.fill_more()?;
        }
        if opts.delimiter.is_none() {
            r.delimiter = sniff_delimiter(&r.buf[r.lo..r.hi]);
        }
        r.core = ReaderBuilder::new().delimiter(r.delimiter).build();
        r.read_headers()?;
        let header_end = r.position;
        if opts.start_byte > 0 {
            let sb = opts.start_byte;
            if sb < header_end {
                return Err(CsvError::Invalid(format!(
                    "start_byte {sb} is inside the header line (it ends at byte {header_end})"
                )));
            }
            if sb > file_len {
                return Err(CsvError::Invalid(format!(
                    "start_byte {sb} is past the end of the file ({file_len} bytes)"
                )));
            }
            if matches!(mode, Mode::Utf16(_)) && (sb - bom) & 1 == 1 {
                return Err(CsvError::Invalid(format!(
                    "start_byte {sb} is not on a UTF-16 code unit boundary"
                )));
            }
            let lines = r.count_lines_before(sb)?;
            r.seek_to(sb, lines + 1)?;
            r.position = sb;
        }
        Ok(r)
    }

    /// The encoding in use, as a lowercase WHATWG name ("utf-8", "utf-16le", "windows-1252").
    pub fn encoding(&self) -> String {
        let enc = match self.mode {
            Mode::Utf8 => UTF_8,
            Mode::SingleByte(e) | Mode::Utf16(e) => e,
        };
        enc.name().to_ascii_lowercase()
    }

    /// The field delimiter in use.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The header names, trimmed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Byte offset in the file just after the last record read (accepted or
    /// rejected); where a resumed reader would start.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The file's path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn seek_to(&mut self, offset: u64, line: u64) -> Result<(), CsvError> {
        let mut file = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_err(&self.path, e))?;
        self.src = match self.mode {
            Mode::Utf16(enc) => Source::Utf16(Box::new(Transcoder::new(file, enc))),
            _ => Source::Raw(file),
        };
        self.core.reset();
        self.lo = 0;
        self.hi = 0;
        self.src_eof = false;
        self.dec_pos = 0;
        self.raw_pos = offset;
        self.line = line;
        Ok(())
    }

    /// Newlines in the file before `offset`.
    fn count_lines_before(&self, offset: u64) -> Result<u64, CsvError> {
        let file = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        let mut rdr = io::BufReader::with_capacity(1 << 16, file.take(offset));
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        let mut pos = 0u64;
        let mut prev = 0u8;
        loop {
            let k = rdr.read(&mut buf).map_err(|e| io_err(&self.path, e))?;
            if k == 0 {
                break;
            }
            match self.mode {
                Mode::Utf16(enc) => {
                    // A 0x000A code unit: code units start at even offsets.
                    for &b in &buf[..k] {
                        if pos % 2 == 1 {
                            let (low, high) = if enc == UTF_16LE {
                                (prev, b)
                            } else {
                                (b, prev)
                            };
                            n += u64::from(low == b'\n' && high == 0);
                        }
                        prev = b;
                        pos += 1;
                    }
                }
                _ => n += count_newlines(&buf[..k]),
            }
        }
        Ok(n)
    }

    /// Read more input after `hi`, moving unread bytes to the front when needed.
    fn fill_more(&mut self) -> Result<(), CsvError> {
        if self.src_eof {
            return Ok(());
        }
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        } else if self.hi == self.buf.len() {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        let n = self
            .src
            .read(&mut self.buf[self.hi..])
            .map_err(|e| io_err(&self.path, e))?;
        self.hi += n;
        if n == 0 {
            self.src_eof = true;
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        let bytes = &self.buf[self.lo..self.lo + n];
        self.line += count_newlines(bytes);
        self.raw_pos += match self.mode {
            Mode::Utf16(_) => 2 * utf16_units(bytes),
            _ => n as u64,
        };
        self.dec_pos += n as u64;
        self.lo += n;
    }

    /// Make `data` hold at least `need` bytes.
    fn reserve_data(&mut self, need: usize) {
        if self.data.len() < need {
            let target = need.max(self.data.len() * 2).max(1 << 16);
            self.data.resize(target, 0);
        }
    }

    /// Read one record; its fields (up to `store` of them) are appended to
    /// `data[used..]` with their spans pushed on `spans`. `None` at the end.
    fn read_record(
        &mut self,
        store: usize,
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<Option<RecordInfo>, CsvError> {
        // Skip blank lines, counting them, so the record starts at buf[lo].
        loop {
            if self.lo == self.hi {
                self.fill_more()?;
                if self.lo == self.hi {
                    return Ok(None);
                }
            }
            let skip = self.buf[self.lo..self.hi]
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.consume(skip);
            if self.lo < self.hi {
                break;
            }
        }
        let line = self.line;
        let dec_start = self.dec_pos;
        let mut nfields = 0usize;
        let mut oversized = None;
        let mut undecodable = None;
        loop {
            let storing = nfields < store;
            let start = self.used;
            let mut len = 0usize;
            let mut over = false;
            let record_end = loop {
                if self.lo == self.hi {
                    self.fill_more()?;
                }
                let (res, nin, nout) = if storing && !over {
                    self.reserve_data(start + len + 256);
                    self.core
                        .read_field(&self.buf[self.lo..self.hi], &mut self.data[start + len..])
                } else {
                    self.core
                        .read_field(&self.buf[self.lo..self.hi], &mut self.discard)
                };
                self.consume(nin);
                len += nout;
                if len > self.max_field_bytes {
                    over = true;
                }
                match res {
                    ReadFieldResult::InputEmpty | ReadFieldResult::OutputFull => {
                        if storing && !over && matches!(res, ReadFieldResult::OutputFull) {
                            let grow = self.data.len() * 2;
                            self.reserve_data(grow);
                        }
                        continue;
                    }
                    ReadFieldResult::Field { record_end } => break Some(record_end),
                    ReadFieldResult::End => break None,
                }
            };
            let Some(record_end) = record_end else {
                // End of input right after a delimiter-terminated field.
                break;
            };
            if over && oversized.is_none() {
                oversized = Some(nfields);
            }
            if storing {
                if over {
                    spans.push((start, start));
                } else {
                    let end = self.finish_field(start, len, nfields, &mut undecodable);
                    spans.push((start, end));
                    self.used = end;
                }
            }
            nfields += 1;
            if record_end {
                break;
            }
        }
        // A CR terminator: take the LF of a CRLF with this record.
        if self.lo > 0 && self.buf[self.lo - 1] == b'\r' {
            if self.lo == self.hi {
                self.fill_more()?;
            }
            if self.lo < self.hi && self.buf[self.lo] == b'\n' {
                self.consume(1);
            }
        }
        if let Source::Utf16(t) = &mut self.src {
            while let Some(&m) = t.malformed.front() {
                if m >= self.dec_pos {
                    break;
                }
                t.malformed.pop_front();
                if m >= dec_start && undecodable.is_none() {
                    undecodable = Some(0);
                }
            }
        }
        self.position = self.raw_pos;
        Ok(Some(RecordInfo {
            line,
            byte_end: self.raw_pos,
            nfields,
            oversized,
            undecodable,
        }))
    }

    /// Decode or validate the field at `data[start..start + len]`; returns
    /// the end of its UTF-8 text.
    fn finish_field(
        &mut self,
        start: usize,
        len: usize,
        col: usize,
        undecodable: &mut Option<usize>,
    ) -> usize {
        let bytes = &self.data[start..start + len];
        match self.mode {
            Mode::Utf16(_) => start + len,
            Mode::Utf8 => {
                if std::str::from_utf8(bytes).is_err() && undecodable.is_none() {
                    *undecodable = Some(col);
                }
                start + len
            }
            Mode::SingleByte(enc) => {
                if bytes.is_ascii() {
                    return start + len;
                }
                self.scratch.clear();
                self.scratch.extend_from_slice(bytes);
                let text = enc
                    .decode_without_bom_handling(&self.scratch)
                    .0
                    .into_owned();
                self.reserve_data(start + text.len());
                self.data[start..start + text.len()].copy_from_slice(text.as_bytes());
                start + text.len()
            }
        }
    }

    fn read_headers(&mut self) -> Result<(), CsvError> {
        let mut spans = Vec::new();
        self.used = 0;
        let info = self.read_record(usize::MAX, &mut spans)?.ok_or_else(|| {
            CsvError::Invalid(format!("{}: the file has no header line", self.path))
        })?;
        if let Some(c) = info.oversized {
            return Err(CsvError::Invalid(format!(
                "{}: header name in column {} is longer than {} bytes",
                self.path,
                c + 1,
                self.max_field_bytes
            )));
        }
        if info.undecodable.is_some() {
            return Err(CsvError::Invalid(format!(
                "{}: the header line is not valid {}",
                self.path,
                self.encoding()
            )));
        }
        let mut headers: Vec<String> = Vec::with_capacity(spans.len());
        for (i, (s, e)) in spans.iter().enumerate() {
            let raw = String::from_utf8_lossy(&self.data[*s..*e]);
            let name = raw.trim_start_matches('\u{feff}').trim().to_string();
            if name.is_empty() {
                return Err(CsvError::Invalid(format!(
                    "{}: empty header name in column {}",
                    self.path,
                    i + 1
                )));
            }
            if let Some(j) = headers.iter().position(|h| *h == name) {
                return Err(CsvError::Invalid(format!(
                    "{}: duplicate header name {name:?} in columns {} and {}",
                    self.path,
                    j + 1,
                    i + 1
                )));
            }
            headers.push(name);
        }
        self.headers = headers;
        self.used = 0;
        Ok(())
    }

    /// Read the next chunk of up to `chunk_rows` records; `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, CsvError> {
        if self.done {
            return Ok(None);
        }
        let ncols = self.headers.len();
        let mut chunk = Chunk {
            ncols,
            ..Chunk::default()
        };
        self.used = 0;
        let mut records = 0;
        while records < self.chunk_rows {
            let used_before = self.used;
            let spans_before = chunk.spans.len();
            let Some(info) = self.read_record(ncols, &mut chunk.spans)? else {
                self.done = true;
                break;
            };
            records += 1;
            let reason = if info.nfields != ncols {
                Some(format!("expected {ncols} fields, found {}", info.nfields))
            } else if let Some(c) = info.oversized {
                Some(format!(
                    "field in column {} ({:?}) is longer than {} bytes",
                    c + 1,
                    self.headers[c],
                    self.max_field_bytes
                ))
            } else if let Some(c) = info.undecodable {
                Some(match self.mode {
                    Mode::Utf16(_) => format!("undecodable bytes (not valid {})", self.encoding()),
                    _ => format!(
                        "undecodable bytes in column {} ({:?}), not valid {}",
                        c + 1,
                        self.headers[c],
                        self.encoding()
                    ),
                })
            } else {
                None
            };
            match reason {
                Some(r) => {
                    self.used = used_before;
                    chunk.spans.truncate(spans_before);
                    chunk.rejects.push((info.line, r));
                }
                None => {
                    chunk.lines.push(info.line);
                    chunk.byte_ends.push(info.byte_end);
                }
            }
        }
        if records == 0 {
            return Ok(None);
        }
        self.data.truncate(self.used);
        let data = std::mem::take(&mut self.data);
        self.used = 0;
        chunk.data = String::from_utf8(data)
            .map_err(|_| CsvError::Invalid("internal: chunk text is not UTF-8".into()))?;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("crmkit-csvread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(bytes).unwrap();
        p
    }

    fn all(path: &Path, opts: &CsvOptions) -> (CsvReader, Vec<Chunk>) {
        let mut r = CsvReader::open(path, opts).unwrap();
        let mut chunks = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            chunks.push(c);
        }
        (r, chunks)
    }

    fn rows(chunks: &[Chunk]) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        for c in chunks {
            for r in 0..c.rows() {
                out.push(
                    (0..c.ncols)
                        .map(|j| c.cell(r, j).map(str::to_string))
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn reads_utf8_with_bom_quotes_and_crlf() {
        let p = write(
            "a.csv",
            "\u{feff} id , name \r\n1,\"Ann\r\nLee\"\r\n\r\n2,\r\n3,\"x,\"\"y\"\"\"".as_bytes(),
        );
        let (r, chunks) = all(&p, &CsvOptions::default());
        assert_eq!(r.headers(), ["id", "name"]);
        assert_eq!(r.encoding(), "utf-8");
        assert_eq!(r.delimiter(), b',');
        let c = &chunks[0];
        assert_eq!(c.lines, vec![2, 5, 6]);
        assert_eq!(
            rows(&chunks),
            vec![
                vec![Some("1".into()), Some("Ann\r\nLee".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some("x,\"y\"".into())],
            ]
        );
        let len = std::fs::metadata(&p).unwrap().len();
        assert_eq!(*c.byte_ends.last().unwrap(), len);
    }

    #[test]
    fn sniffs_semicolons_and_decodes_cp1252() {
        let mut bytes = b"name;city\n".to_vec();
        bytes.extend_from_slice(b"Jos\xe9;K\xf6ln\n");
        let p = write("b.csv", &bytes);
        let (r, chunks) = all(&p, &CsvOptions::default());
        assert_eq!(r.encoding(), "windows-1252");
        assert_eq!(r.delimiter(), b';');
        assert_eq!(
            rows(&chunks),
            vec![vec![Some("José".into()), Some("Köln".into())]]
        );
    }

    #[test]
    fn reads_utf16_with_offsets_in_file_bytes() {
        let text = "a\tb\n1\t\u{e9}\u{1F600}\n2\tz\n";
        for (bom, enc) in [(&[0xFF, 0xFE][..], "le"), (&[0xFE, 0xFF][..], "be")] {
            let mut bytes = bom.to_vec();
            for u in text.encode_utf16() {
                let b = if enc == "le" {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                };
                bytes.extend_from_slice(&b);
            }
            let p = write(&format!("c{enc}.csv"), &bytes);
            let (r, chunks) = all(&p, &CsvOptions::default());
            assert_eq!(r.encoding(), format!("utf-16{enc}"));
            assert_eq!(r.delimiter(), b'\t');
            assert_eq!(rows(&chunks)[0][1].as_deref(), Some("\u{e9}\u{1F600}"));
            let ends = &chunks[0].byte_ends;
            assert_eq!(ends[1], bytes.len() as u64);
            // Resuming after the first record gives the second.
            let opts = CsvOptions {
                start_byte: ends[0],
                ..Default::default()
            };
            let (_, rest) = all(&p, &opts);
            assert_eq!(rows(&rest), vec![vec![Some("2".into()), Some("z".into())]]);
            assert_eq!(rest[0].lines, vec![3]);
        }
    }

    #[test]
    fn rejects_ragged_oversized_and_undecodable_rows() {
        let mut bytes = b"a,b\n1,2\n3\n4,5,6\n7,".to_vec();
        bytes.extend_from_slice(&[b'x'; 40]);
        bytes.extend_from_slice(b"\n8,\xff\n9,9\n");
        let p = write("d.csv", &bytes);
        let opts = CsvOptions {
            max_field_bytes: 16,
            encoding: Some("utf-8".into()),
            ..Default::default()
        };
        let (_, chunks) = all(&p, &opts);
        let c = &chunks[0];
        assert_eq!(c.lines, vec![2, 7]);
        let lines: Vec<u64> = c.rejects.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert_eq!(c.rejects[0].1, "expected 2 fields, found 1");
        assert_eq!(c.rejects[1].1, "expected 2 fields, found 3");
        assert!(
            c.rejects[2].1.contains("column 2 (\"b\")"),
            "{}",
            c.rejects[2].1
        );
        assert!(!c.rejects[2].1.contains("xxx"));
        assert!(
            c.rejects[3].1.starts_with("undecodable"),
            "{}",
            c.rejects[3].1
        );
        assert_eq!(
            rows(&chunks),
            vec![
                vec![Some("1".into()), Some("2".into())],
                vec![Some("9".into()), Some("9".into())]
            ]
        );
    }

    #[test]
    fn chunks_and_resume_cover_every_row_once() {
        let mut s = String::from("n,t\n");
        for i in 0..1000 {
            if i % 7 == 0 {
                s.push_str(&format!("{i},\"multi\nline\"\n"));
            } else {
                s.push_str(&format!("{i},v{i}\n"));
            }
        }
        let p = write("e.csv", s.as_bytes());
        let opts = CsvOptions {
            chunk_rows: 64,
            ..Default::default()
        };
        let (_, chunks) = all(&p, &opts);
        assert!(chunks.iter().all(|c| c.rows() <= 64));
        let all_rows = rows(&chunks);
        assert_eq!(all_rows.len(), 1000);
        let ends: Vec<u64> = chunks.iter().flat_map(|c| c.byte_ends.clone()).collect();
        let lines: Vec<u64> = chunks.iter().flat_map(|c| c.lines.clone()).collect();
        for k in [0usize, 1, 500, 998] {
            let o = CsvOptions {
                start_byte: ends[k],
                ..Default::default()
            };
            let (_, rest) = all(&p, &o);
            assert_eq!(rows(&rest), all_rows[k + 1..].to_vec());
            assert_eq!(rest[0].lines[0], lines[k + 1]);
        }
        let o = CsvOptions {
            start_byte: ends[999],
            ..Default::default()
        };
        assert!(all(&p, &o).1.is_empty());
    }

    #[test]
    fn header_errors_name_the_column() {
        let p = write("f.csv", b"a,,c\n1,2,3\n");
        let e = CsvReader::open(&p, &CsvOptions::default()).err().unwrap();
        assert!(
            e.to_string().contains("empty header name in column 2"),
            "{e}"
        );
        let p = write("g.csv", b"a,b,a\n");
        let e = CsvReader::open(&p, &CsvOptions::default()).err().unwrap();
        assert!(e.to_string().contains("columns 1 and 3"), "{e}");
        let p = write("h.csv", b"");
        assert!(CsvReader::open(&p, &CsvOptions::default()).is_err());
        let e = CsvReader::open(Path::new("/nonexistent/x.csv"), &CsvOptions::default())
            .err()
            .unwrap();
        assert!(matches!(e, CsvError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/x.csv"));
    }

    #[test]
    fn sniffer_prefers_the_most_frequent_delimiter_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a;b;c\n1,2"), b';');
        assert_eq!(sniff_delimiter(b"\"a,b\"|c|d"), b'|');
        assert_eq!(sniff_delimiter(b"single"), b',');
    }
}
