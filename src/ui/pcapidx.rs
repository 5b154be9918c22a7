//! Where each record starts in a pcap or pcapng file, and reading one
//! record's bytes back from there.
//!
//! libpcap reads a file front to back and cannot say where a record is, so
//! the TUI walks the record headers alongside it ([`OffsetScanner`]) and
//! keeps one `u64` per packet; [`FrameFile::read`] later re-reads one frame.
//! Only the framing is parsed here (classic pcap, and pcapng's SHB, IDB, EPB,
//! SPB and the obsolete PB); everything else is skipped by its length. Every
//! length read from the file is bounded by [`MAX_RECORD`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest record (block) accepted, in bytes.
pub const MAX_RECORD: u32 = 16 << 20;

/// The file's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap; `swapped` when written on the other byte order.
    Pcap {
        swapped: bool,
    },
    Pcapng,
}

use crate::capture::u32_at;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

const PCAP_MAGICS: [u32; 2] = [0xa1b2_c3d4, 0xa1b2_3c4d];
const SHB: u32 = 0x0A0D_0D0A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;

/// Recognise the format from the first bytes of a file.
#[must_use]
pub fn detect(head: &[u8]) -> Option<Format> {
    let le = u32_at(head, 0, false)?;
    if PCAP_MAGICS.contains(&le) {
        return Some(Format::Pcap { swapped: false });
    }
    if PCAP_MAGICS.contains(&le.swap_bytes()) {
        return Some(Format::Pcap { swapped: true });
    }
    (le == SHB).then_some(Format::Pcapng)
}

/// Walks a file's records in order, yielding each one's offset.
pub struct OffsetScanner<R> {
    r: R,
    pos: u64,
    format: Format,
    /// pcapng: byte order of the current section, and the snaplen of each
    /// interface (for simple packet blocks).
    big: bool,
    snaplens: Vec<u32>,
    buf: Vec<u8>,
}

impl OffsetScanner<BufReader<File>> {
    /// Open a file for scanning.
    ///
    /// # Errors
    /// The file cannot be read or is neither pcap nor pcapng.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

impl<R: Read + Seek> OffsetScanner<R> {
    /// # Errors
    /// The stream is neither pcap nor pcapng.
    pub fn new(mut r: R) -> io::Result<Self> {
        let mut head = [0u8; 24];
        r.read_exact(&mut head)?;
        let format = detect(&head).ok_or_else(|| invalid("not a pcap or pcapng file"))?;
        let mut s = Self {
            r,
            pos: 0,
            format,
            big: false,
            snaplens: Vec::new(),
            buf: Vec::new(),
        };
        match format {
            Format::Pcap { .. } => s.pos = 24,
            Format::Pcapng => {
                s.r.seek(io::SeekFrom::Start(0))?;
            }
        }
        Ok(s)
    }

    #[must_use]
    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next packet record: (offset, captured length); `None` at the end.
    ///
    /// # Errors
    /// A damaged or truncated file.
    pub fn next_record(&mut self) -> io::Result<Option<(u64, u32)>> {
        match self.format {
            Format::Pcap { swapped } => self.next_pcap(swapped),
            Format::Pcapng => self.next_pcapng(),
        }
    }

    fn read_or_eof(&mut self, out: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < out.len() {
            let n = self.r.read(out.get_mut(got..).unwrap_or_default())?;
            if n == 0 {
                if got == 0 {
                    return Ok(false);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends inside a record header",
                ));
            }
            got += n;
        }
        Ok(true)
    }

    fn next_pcap(&mut self, swapped: bool) -> io::Result<Option<(u64, u32)>> {
        let mut h = [0u8; 16];
        if !self.read_or_eof(&mut h)? {
            return Ok(None);
        }
        // The magic was read little-endian; a swapped file is big-endian.
        let caplen = u32_at(&h, 8, swapped).unwrap_or(0);
        if caplen > MAX_RECORD {
            return Err(invalid(format!("record of {caplen} bytes")));
        }
        let at = self.pos;
        self.r.seek_relative(i64::from(caplen))?;
        self.pos += 16 + u64::from(caplen);
        Ok(Some((at, caplen)))
    }

    fn next_pcapng(&mut self) -> io::Result<Option<(u64, u32)>> {
        loop {
            let mut h = [0u8; 12];
            if !self.read_or_eof(&mut h)? {
                return Ok(None);
            }
            let at = self.pos;
            let le_type = u32_at(&h, 0, false).unwrap_or(0);
            if le_type == SHB {
                let magic = u32_at(&h, 8, false).unwrap_or(0);
                self.big = if magic == BYTE_ORDER_MAGIC {
                    false
                } else if magic.swap_bytes() == BYTE_ORDER_MAGIC {
                    true
                } else {
                    return Err(invalid("pcapng section with a bad byte-order magic"));
                };
                self.snaplens.clear();
            }
            let typ = u32_at(&h, 0, self.big).unwrap_or(0);
            let total = u32_at(&h, 4, self.big).unwrap_or(0);
            if !(12..=MAX_RECORD).contains(&total) || !total.is_multiple_of(4) {
                return Err(invalid(format!("pcapng block of {total} bytes at {at}")));
            }
            let rest = total - 12;
            self.pos += u64::from(total);
            match typ {
                IDB => {
                    // linktype u16, reserved u16, snaplen u32: 4 bytes already read.
                    self.buf.resize(rest as usize, 0);
                    self.r.read_exact(&mut self.buf)?;
                    let snap = u32_at(&self.buf, 0, self.big).unwrap_or(0);
                    self.snaplens.push(snap);
                }
                EPB | PB => {
                    // Timestamp (8 bytes), then the captured length.
                    if rest < 20 {
                        return Err(invalid(format!("packet block of {total} bytes at {at}")));
                    }
                    let mut more = [0u8; 12];
                    self.r.read_exact(&mut more)?;
                    let caplen = u32_at(&more, 8, self.big).unwrap_or(0);
                    self.r.seek_relative(i64::from(rest) - 12)?;
                    return Ok(Some((at, caplen)));
                }
                SPB => {
                    let orig = u32_at(&h, 8, self.big).unwrap_or(0);
                    let snap = self.snaplens.first().copied().unwrap_or(0);
                    let mut caplen = orig.min(total.saturating_sub(16));
                    if snap != 0 {
                        caplen = caplen.min(snap);
                    }
                    self.r.seek_relative(i64::from(rest))?;
                    return Ok(Some((at, caplen)));
                }
                _ => {
                    self.r.seek_relative(i64::from(rest))?;
                }
            }
        }
    }
}

/// Re-reads single frames by offset.
pub struct FrameFile {
    file: File,
    format: Format,
    /// pcapng: byte order of the (first) section.
    big: bool,
}

impl FrameFile {
    /// # Errors
    /// The file cannot be opened or is neither pcap nor pcapng.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let mut head = [0u8; 12];
        file.read_exact_at(&mut head, 0)?;
        let format = detect(&head).ok_or_else(|| invalid("not a pcap or pcapng file"))?;
        let big = format == Format::Pcapng
            && u32_at(&head, 8, false).unwrap_or(0).swap_bytes() == BYTE_ORDER_MAGIC;
        Ok(Self { file, format, big })
    }

    /// The captured bytes of the record at `offset` (as found by
    /// [`OffsetScanner`]).
    ///
    /// # Errors
    /// Nothing sensible at that offset, or the file cannot be read.
    pub fn read(&self, offset: u64) -> io::Result<Vec<u8>> {
        match self.format {
            Format::Pcap { swapped } => {
                let mut h = [0u8; 16];
                self.file.read_exact_at(&mut h, offset)?;
                let caplen = u32_at(&h, 8, swapped).unwrap_or(0);
                if caplen > MAX_RECORD {
                    return Err(invalid(format!("record of {caplen} bytes")));
                }
                let mut data = vec![0u8; caplen as usize];
                self.file.read_exact_at(&mut data, offset + 16)?;
                Ok(data)
            }
            Format::Pcapng => {
                let mut h = [0u8; 28];
                let n = self.file.read_at(&mut h, offset)?;
                let typ = u32_at(&h, 0, self.big).unwrap_or(0);
                let total = u32_at(&h, 4, self.big).unwrap_or(0);
                if !(12..=MAX_RECORD).contains(&total) {
                    return Err(invalid(format!("pcapng block of {total} bytes")));
                }
                let (start, caplen) = match typ {
                    EPB | PB if n >= 28 => (28u32, u32_at(&h, 20, self.big).unwrap_or(0)),
                    SPB if n >= 12 => {
                        let orig = u32_at(&h, 8, self.big).unwrap_or(0);
                        (12, orig.min(total.saturating_sub(16)))
                    }
                    _ => return Err(invalid("no packet block at this offset")),
                };
                if start + caplen > total {
                    return Err(invalid("packet longer than its block"));
                }
                let mut data = vec![0u8; caplen as usize];
                self.file
                    .read_exact_at(&mut data, offset + u64::from(start))?;
                Ok(data)
            }
        }
    }
}

/// Check a user-visible path is a regular file we can re-read (not `-`).
#[must_use]
pub fn rereadable(path: &str) -> bool {
    path != "-" && Path::new(path).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn pcap(records: &[&[u8]], big: bool) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend(w32(0xa1b2_c3d4));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend([0u8; 8]);
        f.extend(w32(65535));
        f.extend(w32(1));
        for (i, r) in records.iter().enumerate() {
            f.extend(w32(u32::try_from(i).unwrap()));
            f.extend(w32(0));
            f.extend(w32(u32::try_from(r.len()).unwrap()));
            f.extend(w32(u32::try_from(r.len()).unwrap()));
            f.extend(*r);
        }
        f
    }

    fn block(typ: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let total = u32::try_from(12 + body.len() + pad).unwrap();
        let mut b = Vec::new();
        b.extend(typ.to_le_bytes());
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.extend(vec![0u8; pad]);
        b.extend(total.to_le_bytes());
        b
    }

    fn pcapng(records: &[&[u8]]) -> Vec<u8> {
        let mut f = Vec::new();
        let mut shb = Vec::new();
        shb.extend(BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        f.extend(block(SHB, &shb));
        let mut idb = Vec::new();
        idb.extend(1u16.to_le_bytes());
        idb.extend(0u16.to_le_bytes());
        idb.extend(65535u32.to_le_bytes());
        f.extend(block(IDB, &idb));
        // An unknown block (name resolution) to skip.
        f.extend(block(4, &[0, 0, 0, 0]));
        for (i, r) in records.iter().enumerate() {
            if i % 2 == 0 {
                let mut epb = Vec::new();
                epb.extend(0u32.to_le_bytes());
                epb.extend(0u32.to_le_bytes());
                epb.extend(u32::try_from(i).unwrap().to_le_bytes());
                epb.extend(u32::try_from(r.len()).unwrap().to_le_bytes());
                epb.extend(u32::try_from(r.len()).unwrap().to_le_bytes());
                epb.extend(*r);
                f.extend(block(EPB, &epb));
            } else {
                let mut spb = Vec::new();
                spb.extend(u32::try_from(r.len()).unwrap().to_le_bytes());
                spb.extend(*r);
                f.extend(block(SPB, &spb));
            }
        }
        f
    }

    fn roundtrip(bytes: &[u8], records: &[&[u8]]) {
        let mut s = OffsetScanner::new(Cursor::new(bytes.to_vec())).unwrap();
        let mut offsets = Vec::new();
        while let Some((off, caplen)) = s.next_record().unwrap() {
            offsets.push((off, caplen));
        }
        assert_eq!(s.position(), bytes.len() as u64);
        assert_eq!(offsets.len(), records.len());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        let ff = FrameFile::open(&p).unwrap();
        for ((off, caplen), want) in offsets.iter().zip(records) {
            assert_eq!(*caplen as usize, want.len());
            assert_eq!(ff.read(*off).unwrap(), *want);
        }
    }

    #[test]
    fn classic_pcap_both_byte_orders() {
        let recs: [&[u8]; 3] = [b"hello", b"", b"a longer frame of bytes"];
        roundtrip(&pcap(&recs, false), &recs);
        roundtrip(&pcap(&recs, true), &recs);
    }

    #[test]
    fn pcapng_epb_spb_and_unknown_blocks() {
        let recs: [&[u8]; 4] = [b"one", b"two!", b"three", b"\x00\x01\x02"];
        roundtrip(&pcapng(&recs), &recs);
    }

    #[test]
    fn bounded_and_truncated() {
        assert!(OffsetScanner::new(Cursor::new(b"not a capture at all....".to_vec())).is_err());
        let mut huge = pcap(&[b"x"], false);
        // caplen of the first record: far past the bound.
        huge.splice(32..36, (MAX_RECORD + 1).to_le_bytes());
        let mut s = OffsetScanner::new(Cursor::new(huge)).unwrap();
        assert!(s.next_record().is_err());
        let mut cut = pcap(&[b"hello"], false);
        cut.truncate(24 + 10);
        let mut s = OffsetScanner::new(Cursor::new(cut)).unwrap();
        assert!(s.next_record().is_err());
        let ng = pcapng(&[b"x"]);
        let mut bad = ng.clone();
        // Total length of the SHB not a multiple of 4.
        bad.splice(4..8, 13u32.to_le_bytes());
        let mut s = OffsetScanner::new(Cursor::new(bad)).unwrap();
        assert!(s.next_record().is_err());
    }

    #[test]
    fn the_project_capture_matches_libpcap() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/prosody-plain-signin-chat.pcap"
        );
        let mut lib = crate::capture::FileSource::open(path).unwrap();
        let mut s = OffsetScanner::open(Path::new(path)).unwrap();
        let ff = FrameFile::open(Path::new(path)).unwrap();
        let mut n = 0;
        while let Some(f) = lib.next_frame().unwrap() {
            let (off, caplen) = s.next_record().unwrap().unwrap();
            assert_eq!(caplen as usize, f.data.len());
            assert_eq!(ff.read(off).unwrap(), f.data);
            n += 1;
        }
        assert!(s.next_record().unwrap().is_none());
        assert!(n > 90);
    }
}
