//! Savefiles for `-w`: pcapng (the default) and classic pcap (when the
//! name ends in `.pcap`), written by hand so that one writer serves every
//! interface of a merged capture and every I/O error is seen.
//!
//! Formats:
//! - pcapng: "PCAP Next Generation (pcapng) Capture File Format",
//!   draft-ietf-opsawg-pcapng: a Section Header Block (§4.1), one Interface
//!   Description Block per interface (§4.2) with `if_tsresol` = 9
//!   (nanoseconds), an Enhanced Packet Block per frame (§4.3) and, at the
//!   end, an Interface Statistics Block per interface (§4.6).
//! - classic pcap: pcap-savefile(5) / draft-ietf-opsawg-pcap, with the
//!   nanosecond magic `0xa1b23c4d` (libpcap ≥ 1.5, tshark and tcpdump read
//!   it). It holds a single link type.
//!
//! Everything is written little-endian; readers detect the byte order from
//! the magic numbers. Each block is assembled in memory and handed to the
//! buffered writer in one piece, so a flushed file always ends on a block
//! boundary and is valid.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::model::Timestamp;

/// Which file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcapng,
    Pcap,
}

impl Format {
    /// pcapng unless the name ends in `.pcap` (any case).
    #[must_use]
    pub fn for_path(path: &str) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".pcap") {
            Self::Pcap
        } else {
            Self::Pcapng
        }
    }
}

/// One interface of the capture, as described in the file.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    pub linktype: i32,
    pub snaplen: u32,
    /// The capture filter (pcapng `if_filter`, §4.2); empty: none.
    pub filter: String,
}

/// End-of-capture counters for the pcapng Interface Statistics Block.
#[derive(Debug, Clone, Copy, Default)]
pub struct InterfaceTotals {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Packets received by the filter (`isb_ifrecv`).
    pub received: Option<u64>,
    /// Packets dropped by the interface (`isb_ifdrop`).
    pub if_dropped: Option<u64>,
    /// Packets dropped by the OS (`isb_osdrop`).
    pub os_dropped: Option<u64>,
    /// Packets delivered to the user, i.e. written here (`isb_usrdeliv`).
    pub delivered: u64,
}

/// Why the savefile cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(
        "cannot create savefile {path}: {cause} (-w needs a file in an existing directory you can write to)"
    )]
    Create { path: String, cause: io::Error },
    #[error("cannot write savefile {path}: {cause}")]
    Write { path: String, cause: io::Error },
    #[error(
        "{path}: a classic pcap file holds one link type, but the interfaces have {types}; name the file .pcapng"
    )]
    MixedLinkTypes { path: String, types: String },
    #[error("{path}: the savefile needs at least one interface")]
    NoInterface { path: String },
}

impl SaveError {
    /// The I/O error behind a create or write failure (the cause is part
    /// of the message, not of the error chain, so that it is printed once).
    #[must_use]
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Create { cause, .. } | Self::Write { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

// pcapng block types (draft-ietf-opsawg-pcapng §11.1).
const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_ISB: u32 = 0x0000_0005;
const BT_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

// Option codes (§3.5, §4.1, §4.2, §4.6).
const OPT_ENDOFOPT: u16 = 0;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const IF_FILTER: u16 = 11;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;
const ISB_OSDROP: u16 = 7;
const ISB_USRDELIV: u16 = 8;

// Classic pcap with nanosecond timestamps (pcap-savefile(5)).
const PCAP_MAGIC_NANO: u32 = 0xA1B2_3C4D;

/// A savefile being written.
pub struct Savefile {
    out: BufWriter<Box<dyn Write + Send>>,
    path: String,
    format: Format,
    /// Interfaces, in IDB order (interface id = index).
    interfaces: Vec<Interface>,
    block: Vec<u8>,
    written: u64,
    /// Bytes handed to the writer so far (the next record's offset).
    bytes: u64,
}

impl Savefile {
    /// Create `path` (`-` is standard output) and write the file header.
    ///
    /// # Errors
    /// The file cannot be created or written, or a classic pcap file was
    /// asked for interfaces of different link types.
    pub fn create(
        path: &str,
        format: Format,
        interfaces: Vec<Interface>,
    ) -> Result<Self, SaveError> {
        let display = if path == "-" {
            "standard output".to_owned()
        } else {
            path.to_owned()
        };
        check_interfaces(&display, format, &interfaces)?;
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(
                File::create(Path::new(path)).map_err(|cause| SaveError::Create {
                    path: display.clone(),
                    cause,
                })?,
            )
        };
        Self::with_writer(out, display, format, interfaces)
    }

    /// Write to any writer (tests, pipes).
    ///
    /// # Errors
    /// As [`Self::create`].
    pub fn with_writer(
        out: Box<dyn Write + Send>,
        path: String,
        format: Format,
        interfaces: Vec<Interface>,
    ) -> Result<Self, SaveError> {
        check_interfaces(&path, format, &interfaces)?;
        let mut s = Self {
            out: BufWriter::with_capacity(1 << 16, out),
            path,
            format,
            interfaces,
            block: Vec::with_capacity(512),
            written: 0,
            bytes: 0,
        };
        s.header()?;
        // The header is on disk before the capture starts: even a capture
        // killed at once leaves a readable (empty) file.
        s.flush()?;
        Ok(s)
    }

    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    #[must_use]
    pub fn format(&self) -> Format {
        self.format
    }

    /// Packets written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Append one packet captured on interface `iface` (an index into the
    /// interfaces given at creation). Returns the record's offset in the
    /// file (where the TUI re-reads it from once flushed).
    ///
    /// # Errors
    /// The write fails.
    pub fn write_packet(
        &mut self,
        iface: usize,
        ts: Timestamp,
        wire_len: u32,
        data: &[u8],
    ) -> Result<u64, SaveError> {
        let offset = self.bytes;
        self.block.clear();
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = data.get(..caplen as usize).unwrap_or(data);
        let wire_len = wire_len.max(caplen);
        match self.format {
            Format::Pcap => {
                // Record header: ts_sec, ts_nsec, incl_len, orig_len. The
                // 32-bit seconds field is unsigned (it lasts until 2106).
                let secs = u32::try_from(ts.secs.max(0)).unwrap_or(u32::MAX);
                put32(&mut self.block, secs);
                put32(&mut self.block, ts.nanos.min(999_999_999));
                put32(&mut self.block, caplen);
                put32(&mut self.block, wire_len);
                self.block.extend_from_slice(data);
            }
            Format::Pcapng => {
                let iface = u32::try_from(iface).unwrap_or(u32::MAX);
                let units = ts_units(ts);
                let start = begin_block(&mut self.block, BT_EPB);
                put32(&mut self.block, iface);
                // Timestamp high and low 32 bits, in if_tsresol units.
                put32(&mut self.block, (units >> 32) as u32);
                put32(&mut self.block, (units & 0xFFFF_FFFF) as u32);
                put32(&mut self.block, caplen);
                put32(&mut self.block, wire_len);
                self.block.extend_from_slice(data);
                pad4(&mut self.block);
                end_block(&mut self.block, start);
            }
        }
        self.emit()?;
        self.written += 1;
        Ok(offset)
    }

    /// Push everything buffered to the file (not fsync: the kernel has it).
    ///
    /// # Errors
    /// The write fails.
    pub fn flush(&mut self) -> Result<(), SaveError> {
        self.out.flush().map_err(|cause| SaveError::Write {
            path: self.path.clone(),
            cause,
        })
    }

    /// Write the end-of-capture statistics (pcapng only) and flush.
    ///
    /// # Errors
    /// The write fails.
    pub fn finish(mut self, totals: &[InterfaceTotals]) -> Result<u64, SaveError> {
        if self.format == Format::Pcapng {
            for (id, t) in totals.iter().enumerate().take(self.interfaces.len()) {
                self.block.clear();
                isb(&mut self.block, id, t);
                self.emit()?;
            }
        }
        self.flush()?;
        Ok(self.written)
    }

    fn header(&mut self) -> Result<(), SaveError> {
        self.block.clear();
        match self.format {
            Format::Pcap => {
                let (linktype, snaplen) = self
                    .interfaces
                    .first()
                    .map_or((1, 262_144), |i| (i.linktype, i.snaplen));
                put32(&mut self.block, PCAP_MAGIC_NANO);
                put16(&mut self.block, 2); // version 2.4
                put16(&mut self.block, 4);
                put32(&mut self.block, 0); // thiszone (always 0)
                put32(&mut self.block, 0); // sigfigs (always 0)
                put32(&mut self.block, snaplen);
                put32(&mut self.block, u32::try_from(linktype).unwrap_or(0));
            }
            Format::Pcapng => {
                let start = begin_block(&mut self.block, BT_SHB);
                put32(&mut self.block, BYTE_ORDER_MAGIC);
                put16(&mut self.block, 1); // major version
                put16(&mut self.block, 0); // minor version
                // Section length: -1, not known in advance.
                self.block.extend_from_slice(&(-1i64).to_le_bytes());
                put_opt(&mut self.block, SHB_OS, std::env::consts::OS.as_bytes());
                let appl = concat!("xmppscope ", env!("CARGO_PKG_VERSION"));
                put_opt(&mut self.block, SHB_USERAPPL, appl.as_bytes());
                put_opt(&mut self.block, OPT_ENDOFOPT, &[]);
                end_block(&mut self.block, start);
                for i in &self.interfaces {
                    idb(&mut self.block, i);
                }
            }
        }
        self.emit()
    }

    fn emit(&mut self) -> Result<(), SaveError> {
        self.out
            .write_all(&self.block)
            .map_err(|cause| SaveError::Write {
                path: self.path.clone(),
                cause,
            })?;
        self.bytes += self.block.len() as u64;
        Ok(())
    }

    /// Bytes written so far (header included).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn check_interfaces(path: &str, format: Format, interfaces: &[Interface]) -> Result<(), SaveError> {
    let Some(first) = interfaces.first() else {
        return Err(SaveError::NoInterface { path: path.into() });
    };
    if format == Format::Pcap && interfaces.iter().any(|i| i.linktype != first.linktype) {
        let types = interfaces
            .iter()
            .map(|i| format!("{} on {}", crate::link::linktype_name(i.linktype), i.name))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(SaveError::MixedLinkTypes {
            path: path.into(),
            types,
        });
    }
    Ok(())
}

/// Nanoseconds since the epoch, as the 64-bit count of an EPB (negative
/// times, which no capture has, become 0).
fn ts_units(ts: Timestamp) -> u64 {
    let secs = u64::try_from(ts.secs).unwrap_or(0);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(u64::from(ts.nanos.min(999_999_999)))
}

fn idb(buf: &mut Vec<u8>, i: &Interface) {
    let start = begin_block(buf, BT_IDB);
    put16(buf, u16::try_from(i.linktype).unwrap_or(0));
    put16(buf, 0); // reserved
    put32(buf, i.snaplen);
    if !i.name.is_empty() {
        put_opt(buf, IF_NAME, i.name.as_bytes());
    }
    if let Some(d) = i.description.as_deref().filter(|d| !d.is_empty()) {
        put_opt(buf, IF_DESCRIPTION, d.as_bytes());
    }
    if !i.filter.is_empty() {
        // if_filter: first byte 0 = the filter as a libpcap expression.
        let mut f = Vec::with_capacity(i.filter.len() + 1);
        f.push(0);
        f.extend_from_slice(i.filter.as_bytes());
        put_opt(buf, IF_FILTER, &f);
    }
    // if_tsresol: the high bit clear, 9 = 10^-9 s.
    put_opt(buf, IF_TSRESOL, &[9]);
    put_opt(buf, OPT_ENDOFOPT, &[]);
    end_block(buf, start);
}

fn isb(buf: &mut Vec<u8>, id: usize, t: &InterfaceTotals) {
    let start = begin_block(buf, BT_ISB);
    put32(buf, u32::try_from(id).unwrap_or(u32::MAX));
    let now = t.end.map_or(0, ts_units);
    put32(buf, (now >> 32) as u32);
    put32(buf, (now & 0xFFFF_FFFF) as u32);
    // Timestamps in options are high then low 32 bits, like the block's.
    let ts_opt = |buf: &mut Vec<u8>, code, ts: Timestamp| {
        let u = ts_units(ts);
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&((u >> 32) as u32).to_le_bytes());
        v.extend_from_slice(&((u & 0xFFFF_FFFF) as u32).to_le_bytes());
        put_opt(buf, code, &v);
    };
    if let Some(s) = t.start {
        ts_opt(buf, ISB_STARTTIME, s);
    }
    if let Some(e) = t.end {
        ts_opt(buf, ISB_ENDTIME, e);
    }
    for (code, v) in [
        (ISB_IFRECV, t.received),
        (ISB_IFDROP, t.if_dropped),
        (ISB_OSDROP, t.os_dropped),
        (ISB_USRDELIV, Some(t.delivered)),
    ] {
        if let Some(v) = v {
            put_opt(buf, code, &v.to_le_bytes());
        }
    }
    put_opt(buf, OPT_ENDOFOPT, &[]);
    end_block(buf, start);
}

fn put16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// An option: code, length, value padded to 32 bits (§3.5).
fn put_opt(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(buf, code);
    put16(buf, u16::try_from(value.len()).unwrap_or(u16::MAX));
    buf.extend_from_slice(value.get(..usize::from(u16::MAX)).unwrap_or(value));
    pad4(buf);
}

/// Block type and a placeholder for the total length; returns where the
/// block starts.
fn begin_block(buf: &mut Vec<u8>, block_type: u32) -> usize {
    let start = buf.len();
    put32(buf, block_type);
    put32(buf, 0);
    start
}

/// The trailing total length, and the same value patched into the header.
fn end_block(buf: &mut Vec<u8>, start: usize) {
    let total = u32::try_from(buf.len() - start + 4).unwrap_or(u32::MAX);
    put32(buf, total);
    if let Some(slot) = buf.get_mut(start + 4..start + 8) {
        slot.copy_from_slice(&total.to_le_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::capture::FileSource;

    fn lo() -> Interface {
        Interface {
            name: "lo".into(),
            description: None,
            linktype: 1,
            snaplen: 262_144,
            filter: "tcp port 5222".into(),
        }
    }

    /// An Ethernet + IPv4 + TCP frame of `len` bytes (content irrelevant).
    fn frame(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Walk the pcapng blocks: every block's two lengths agree, are
    /// multiples of 4 and tile the file exactly.
    fn blocks(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let t = le32(bytes, at);
            let len = le32(bytes, at + 4) as usize;
            assert!(
                len >= 12 && len.is_multiple_of(4),
                "block at {at}: length {len}"
            );
            assert_eq!(
                le32(bytes, at + len - 4) as usize,
                len,
                "trailing length at {at}"
            );
            out.push((t, bytes[at + 8..at + len - 4].to_vec()));
            at += len;
        }
        assert_eq!(at, bytes.len());
        out
    }

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn format_from_name() {
        assert_eq!(Format::for_path("a.pcap"), Format::Pcap);
        assert_eq!(Format::for_path("A.PCAP"), Format::Pcap);
        assert_eq!(Format::for_path("a.pcapng"), Format::Pcapng);
        assert_eq!(Format::for_path("capture"), Format::Pcapng);
        assert_eq!(Format::for_path("-"), Format::Pcapng);
        assert_eq!(Format::for_path("x.pcap.gz"), Format::Pcapng);
    }

    #[test]
    fn pcapng_block_structure() {
        let sink = Shared::default();
        let mut eth1 = lo();
        eth1.name = "eth1".into();
        eth1.description = Some("second".into());
        eth1.filter = String::new();
        let mut s = Savefile::with_writer(
            Box::new(sink.clone()),
            "mem".into(),
            Format::Pcapng,
            vec![lo(), eth1],
        )
        .unwrap();
        let ts = Timestamp {
            secs: 1_700_000_000,
            nanos: 123_456_789,
        };
        s.write_packet(1, ts, 70, &frame(61, 0xAB)).unwrap();
        let totals = [
            InterfaceTotals {
                received: Some(5),
                delivered: 0,
                ..Default::default()
            },
            InterfaceTotals {
                delivered: 1,
                ..Default::default()
            },
        ];
        assert_eq!(s.finish(&totals).unwrap(), 1);
        let bytes = sink.0.lock().unwrap().clone();
        let b = blocks(&bytes);
        let types: Vec<u32> = b.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, [BT_SHB, BT_IDB, BT_IDB, BT_EPB, BT_ISB, BT_ISB]);
        // SHB: byte-order magic, version 1.0, section length -1.
        assert_eq!(le32(&b[0].1, 0), BYTE_ORDER_MAGIC);
        assert_eq!(&b[0].1[4..8], &[1, 0, 0, 0]);
        assert_eq!(&b[0].1[8..16], &[0xFF; 8]);
        // IDB: link type, snaplen, if_tsresol = 9 present.
        assert_eq!(&b[1].1[0..2], &[1, 0]);
        assert_eq!(le32(&b[1].1, 4), 262_144);
        let idb = &b[1].1;
        assert!(idb.windows(5).any(|w| w == [9, 0, 1, 0, 9]), "if_tsresol");
        assert!(idb.windows(2).any(|w| w == b"lo"));
        // EPB: interface 1, timestamp, lengths, data padded to 4.
        let epb = &b[3].1;
        assert_eq!(le32(epb, 0), 1);
        let units = (u64::from(le32(epb, 4)) << 32) | u64::from(le32(epb, 8));
        assert_eq!(units, 1_700_000_000_123_456_789);
        assert_eq!(le32(epb, 12), 61);
        assert_eq!(le32(epb, 16), 70);
        assert_eq!(epb.len(), 20 + 64);
        assert!(epb[20..81].iter().all(|&x| x == 0xAB));
        assert!(epb[81..84].iter().all(|&x| x == 0));
    }

    /// Both formats read back through libpcap (the path `xmppscope -r`
    /// takes) with the same frames, timestamps and lengths.
    #[test]
    fn libpcap_reads_back_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["x.pcapng", "x.pcap"] {
            let path = dir.path().join(name);
            let p = path.to_str().unwrap();
            let mut s = Savefile::create(p, Format::for_path(p), vec![lo()]).unwrap();
            let mut want = Vec::new();
            for i in 0..5u32 {
                let ts = Timestamp {
                    secs: 1_600_000_000 + i64::from(i),
                    nanos: 999_999_000 + i,
                };
                let data = frame(54 + i as usize, u8::try_from(i).unwrap());
                s.write_packet(0, ts, 54 + i + 10, &data).unwrap();
                want.push((ts, 54 + i + 10, data));
            }
            s.finish(&[InterfaceTotals::default()]).unwrap();
            let mut src = FileSource::open(p).unwrap();
            assert_eq!(src.linktype(), 1);
            let mut got = Vec::new();
            while let Some(f) = src.next_frame().unwrap() {
                got.push((f.ts, f.len, f.data.to_vec()));
            }
            assert_eq!(got, want, "{name}");
        }
    }

    /// A file that was only created (capture stopped before any packet)
    /// is valid and empty.
    #[test]
    fn empty_capture_is_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["e.pcapng", "e.pcap"] {
            let path = dir.path().join(name);
            let p = path.to_str().unwrap();
            let s = Savefile::create(p, Format::for_path(p), vec![lo()]).unwrap();
            drop(s);
            let mut src = FileSource::open(p).unwrap();
            assert!(src.next_frame().unwrap().is_none(), "{name}");
        }
    }

    #[test]
    fn classic_pcap_refuses_mixed_link_types() {
        let mut any = lo();
        any.name = "any".into();
        any.linktype = 276;
        let Err(e) = Savefile::with_writer(
            Box::new(io::sink()),
            "x.pcap".into(),
            Format::Pcap,
            vec![lo(), any],
        ) else {
            panic!("mixed link types accepted")
        };
        let m = e.to_string();
        assert!(m.contains(".pcapng") && m.contains("any"), "{m}");
        // pcapng takes them.
        assert!(
            Savefile::with_writer(
                Box::new(io::sink()),
                "x".into(),
                Format::Pcapng,
                vec![lo(), {
                    let mut a = lo();
                    a.linktype = 276;
                    a
                }]
            )
            .is_ok()
        );
    }

    #[test]
    fn create_errors_name_the_file() {
        let Err(e) = Savefile::create("/nonexistent/dir/x.pcapng", Format::Pcapng, vec![lo()])
        else {
            panic!("created in a missing directory")
        };
        assert!(e.to_string().contains("/nonexistent/dir/x.pcapng"), "{e}");
    }

    /// Options and block lengths stay aligned for every payload length.
    #[test]
    fn every_length_stays_aligned() {
        let sink = Shared::default();
        let mut s = Savefile::with_writer(
            Box::new(sink.clone()),
            "m".into(),
            Format::Pcapng,
            vec![lo()],
        )
        .unwrap();
        for len in 0..70 {
            s.write_packet(0, Timestamp::default(), 100, &frame(len, 1))
                .unwrap();
        }
        s.finish(&[]).unwrap();
        let bytes = sink.0.lock().unwrap().clone();
        assert_eq!(blocks(&bytes).len(), 2 + 70);
    }
}
