//! Classic pcap files read in large blocks straight into the reader's
//! batches: one copy (the kernel's) instead of libpcap's `fread` into its
//! buffer and ours out of it. The file has already been opened and checked
//! by libpcap ([`super::FileSource::open`]), which still reads pcapng,
//! standard input and everything else.
//!
//! The format (draft-ietf-opsawg-pcap §4-5): a 24-byte file header (magic,
//! version, reserved, snaplen, link type), then records of a 16-byte header
//! (seconds, micro- or nanoseconds, captured length, length on the wire)
//! and the captured bytes. Lengths are checked as libpcap checks them, and a
//! file that ends inside a record gives libpcap's words.

use std::fs::File;
use std::io::{self, Read};

use super::{Batch, BatchFrame, CaptureError, End};
use crate::model::Timestamp;

/// Bytes read per batch (whole records; one record longer than this is read
/// whole all the same). Small enough to stay in the second-level cache while
/// the dissector threads read it.
pub const BULK_BYTES: usize = 256 << 10;
/// libpcap's largest captured length of a record (`MAXIMUM_SNAPLEN`).
pub const MAX_CAPLEN: u32 = 262_144;

const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// A classic pcap file being read block by block.
pub struct Bulk {
    file: File,
    path: String,
    swapped: bool,
    nanos: bool,
    /// Records longer than this are cut to it, as libpcap does (it may be
    /// past [`MAX_CAPLEN`]: then only the maximum applies).
    snaplen: u32,
    /// Bytes of a record begun in the last block.
    carry: Vec<u8>,
    number: u64,
    /// Bytes read per batch ([`BULK_BYTES`] unless set).
    block: usize,
}

/// The 32-bit word at `at`, big-endian when `swapped` (read on a
/// little-endian host's terms: pcap files are written in the writer's order).
#[must_use]
pub fn u32_at(b: &[u8], at: usize, swapped: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if swapped {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

impl Bulk {
    /// `path` when it is a regular file in classic pcap format; `None` for
    /// anything else (libpcap reads it).
    #[must_use]
    pub fn open(path: &str, display: &str) -> Option<Self> {
        if path == "-" {
            return None;
        }
        let mut file = File::open(path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut head = [0u8; FILE_HEADER];
        file.read_exact(&mut head).ok()?;
        let magic = u32_at(&head, 0, false)?;
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        // Version 2.4 only: libpcap reads the older ones' quirks.
        let u16_at = |at: usize| -> Option<u16> {
            let b: [u8; 2] = head.get(at..at + 2)?.try_into().ok()?;
            Some(if swapped {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            })
        };
        if (u16_at(4)?, u16_at(6)?) != (2, 4) {
            return None;
        }
        // libpcap takes a snapshot length of 0 (or one that is negative as
        // a C int) as its maximum, and others as written, even past it
        // (the pcap_blocks fuzz target compares the two readers).
        let snaplen = match u32_at(&head, 16, swapped)? {
            s if s == 0 || i32::try_from(s).is_err() => MAX_CAPLEN,
            s => s,
        };
        Some(Self {
            file,
            path: display.to_owned(),
            swapped,
            nanos,
            snaplen,
            carry: Vec::new(),
            number: 0,
            block: BULK_BYTES,
        })
    }

    /// Read `bytes` per batch (at least 64 KiB): larger batches when only
    /// figures are printed mean fewer hand-overs between threads.
    pub fn set_block(&mut self, bytes: usize) {
        self.block = bytes.max(64 << 10);
    }

    fn read_error(&self, message: String) -> CaptureError {
        CaptureError::Read {
            path: self.path.clone(),
            after: self.number,
            message,
        }
    }

    /// Read until `buf` holds `want` bytes or the file ends; false at the end.
    /// `read_to_end` reads into the vector's spare capacity as it is, so the
    /// block is not zeroed first (that was 6 % of `--stats`' instructions).
    fn fill_to(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        let Some(need) = want.checked_sub(buf.len()).filter(|&n| n > 0) else {
            return Ok(true);
        };
        buf.reserve(need);
        let n = (&mut self.file).take(need as u64).read_to_end(buf)?;
        Ok(n == need)
    }

    /// Fill `batch` (cleared by the caller) with the next records, at most
    /// `max_frames`; `tag` marks each frame. `Some(end)` when the file is
    /// done: complete, or cut inside a record (libpcap's message).
    ///
    /// # Errors
    /// A read error, or a record longer than libpcap accepts.
    pub fn fill(
        &mut self,
        batch: &mut Batch,
        max_frames: u64,
        tag: &dyn Fn(&[u8]) -> u32,
    ) -> Result<Option<End>, CaptureError> {
        let mut buf = std::mem::take(&mut batch.bytes);
        buf.clear();
        buf.append(&mut self.carry);
        let mut more = self
            .fill_to(&mut buf, self.block)
            .map_err(|e| self.read_error(e.to_string()))?;
        let mut at = 0;
        let mut end = None;
        loop {
            if batch.frames.len() as u64 >= max_frames {
                end = Some(End::Complete);
                break;
            }
            let rest = buf.len() - at;
            if rest < RECORD_HEADER {
                if !more {
                    if rest > 0 {
                        end = Some(End::Truncated(format!(
                            "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {rest}"
                        )));
                    } else {
                        end = Some(End::Complete);
                    }
                }
                break;
            }
            let (secs, frac, caplen, len) = record_header(&buf, at, self.swapped);
            if caplen > MAX_CAPLEN {
                batch.bytes = buf;
                // libpcap's two wordings.
                let what = if caplen > self.snaplen {
                    format!("snaplen of {}", self.snaplen)
                } else {
                    format!("maximum of {MAX_CAPLEN}")
                };
                return Err(self.read_error(format!(
                    "invalid packet capture length {caplen}, bigger than {what}"
                )));
            }
            let need = RECORD_HEADER + caplen as usize;
            if rest < need {
                if more && batch.frames.is_empty() {
                    // One record longer than a block: read it whole.
                    more = self
                        .fill_to(&mut buf, at + need)
                        .map_err(|e| self.read_error(e.to_string()))?;
                    continue;
                }
                if !more {
                    // libpcap reads a record longer than the snapshot
                    // length in two steps and says which one fell short.
                    let got = rest - RECORD_HEADER;
                    let tried = if caplen > self.snaplen && got < self.snaplen as usize {
                        self.snaplen
                    } else {
                        caplen
                    };
                    end = Some(End::Truncated(format!(
                        "truncated dump file; tried to read {tried} captured bytes, only got {got}"
                    )));
                }
                break;
            }
            let start = at + RECORD_HEADER;
            // A record longer than the file's snapshot length is cut to it.
            let kept = caplen.min(self.snaplen) as usize;
            let data = buf.get(start..start + kept).unwrap_or_default();
            self.number += 1;
            batch.frames.push(BatchFrame {
                number: self.number,
                ts: record_time(secs, frac, self.nanos),
                len,
                start,
                end: start + kept,
                tag: tag(data),
            });
            at += need;
        }
        if end.is_none() {
            self.carry
                .extend_from_slice(buf.get(at..).unwrap_or_default());
        }
        buf.truncate(at);
        batch.bytes = buf;
        Ok(end)
    }
}

/// A record header's four words (seconds, fraction, captured length, length
/// on the wire) at `buf[at..at + 16]`, in the file's byte order; zeros when
/// `buf` is shorter (the caller has checked it is not). One bounds check and
/// one test of the byte order for the four (this runs for every frame).
fn record_header(buf: &[u8], at: usize, swapped: bool) -> (u32, u32, u32, u32) {
    let Some(h) = buf
        .get(at..at.saturating_add(RECORD_HEADER))
        .and_then(|h| <[u8; RECORD_HEADER]>::try_from(h).ok())
    else {
        return (0, 0, 0, 0);
    };
    let w = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
    if swapped {
        (
            u32::from_be_bytes(w(0)),
            u32::from_be_bytes(w(4)),
            u32::from_be_bytes(w(8)),
            u32::from_be_bytes(w(12)),
        )
    } else {
        (
            u32::from_le_bytes(w(0)),
            u32::from_le_bytes(w(4)),
            u32::from_le_bytes(w(8)),
            u32::from_le_bytes(w(12)),
        )
    }
}

/// A classic pcap record's time: both fields are unsigned 32-bit numbers
/// (pcap-savefile(5); the pcap specification draft, "Packet Record"), so
/// seconds run to 2106 as tshark reads them. A fraction of a second or more
/// (10^6 µs, 10^9 ns) is not one: it reads as 0, as
/// [`super::FileSource::next_frame`] reads it from libpcap, whose own
/// reading of both fields depends on the file's byte order (libpcap 1.10
/// reads them signed from a file in the machine's byte order, unsigned from
/// a swapped one; found by the pcap_blocks fuzz target).
#[must_use]
pub fn record_time(secs: u32, frac: u32, nanos: bool) -> Timestamp {
    let nanos = match (nanos, frac) {
        (true, f) if f < 1_000_000_000 => f,
        (false, f) if f < 1_000_000 => f * 1000,
        _ => 0,
    };
    Timestamp {
        secs: i64::from(secs),
        nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::super::FileSource;
    use super::*;

    /// A classic pcap file: `records` as (seconds, fraction, captured bytes,
    /// length on the wire).
    fn pcap(records: &[(u32, u32, Vec<u8>, u32)], big: bool, nanos: bool, snaplen: u32) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        };
        let w16 = |v: &mut Vec<u8>, x: u16| {
            v.extend_from_slice(&if big {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        };
        let mut v = Vec::new();
        w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, snaplen);
        w32(&mut v, 1);
        for (s, f, data, len) in records {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, u32::try_from(data.len()).unwrap());
            w32(&mut v, *len);
            v.extend_from_slice(data);
        }
        v
    }

    type Seen = (Vec<(u64, i64, u32, u32, Vec<u8>)>, Option<String>);

    /// Every frame and how the file ended, read by libpcap.
    fn by_libpcap(path: &str) -> Option<Seen> {
        let mut src = FileSource::open(path).ok()?;
        let mut frames = Vec::new();
        loop {
            match src.next_frame() {
                Ok(Some(f)) => {
                    frames.push((f.number, f.ts.secs, f.ts.nanos, f.len, f.data.to_vec()))
                }
                Ok(None) => return Some((frames, None)),
                Err(e) => {
                    let end = FileSource::classify(&e).map(|e| e.to_string());
                    let e = e.to_string().replace("libpcap error: ", "");
                    return Some((frames, Some(end.unwrap_or_else(|| format!("error: {e}")))));
                }
            }
        }
    }

    /// The same, read in blocks (tiny blocks are not possible: the block
    /// size is fixed, so long files cross blocks by themselves).
    fn by_blocks(path: &str) -> Option<Seen> {
        let mut bulk = Bulk::open(path, path)?;
        let mut frames = Vec::new();
        let mut batch = Batch::default();
        loop {
            batch.clear();
            let end = bulk.fill(&mut batch, u64::MAX, &|d| {
                u32::try_from(d.len()).unwrap_or(0)
            });
            for f in &batch.frames {
                let data = batch.bytes.get(f.start..f.end).unwrap().to_vec();
                assert_eq!(f.tag as usize, data.len());
                frames.push((f.number, f.ts.secs, f.ts.nanos, f.len, data));
            }
            match end {
                Ok(None) => {}
                Ok(Some(End::Complete)) => return Some((frames, None)),
                Ok(Some(e)) => return Some((frames, Some(e.to_string()))),
                Err(e) => return Some((frames, Some(format!("error: {e}")))),
            }
        }
    }

    #[test]
    fn blocks_read_what_libpcap_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let p = path.to_str().unwrap();
        let big_frame: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let many: Vec<_> = (0..3000u32)
            .map(|i| (i, i * 7, vec![i as u8; (i % 200) as usize + 1], 1500))
            .collect();
        let cases = [
            // Both byte orders, micro- and nanoseconds, negative seconds.
            pcap(
                &[(1, 2, vec![1, 2, 3], 60), (0xffff_fff0, 999_999, vec![], 0)],
                false,
                false,
                65535,
            ),
            pcap(
                &[(1, 2, vec![1, 2, 3], 60), (5, 999_999_999, vec![9; 70], 70)],
                true,
                true,
                65535,
            ),
            // Longer than the snapshot length: cut to it.
            pcap(
                &[(1, 0, vec![7; 100], 100), (2, 0, vec![8; 10], 10)],
                false,
                false,
                64,
            ),
            // Longer than a block, yet allowed (jumbo, snaplen 0 = maximum).
            pcap(
                &[(1, 0, vec![1; 200_000], 200_000), (2, 0, vec![2; 20], 20)],
                false,
                false,
                0,
            ),
            // Past libpcap's maximum: an error after the frames before it.
            pcap(
                &[(1, 0, vec![3; 10], 10), (2, 0, big_frame.clone(), 300_000)],
                false,
                false,
                0,
            ),
            pcap(
                &[(1, 0, vec![3; 10], 10), (2, 0, big_frame, 300_000)],
                true,
                false,
                64,
            ),
            // Thousands of records crossing block boundaries.
            pcap(&many, false, false, 262_144),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            // Whole, and cut at many places (every byte near the start).
            let cuts: Vec<usize> = (0..bytes.len().min(120))
                .chain((120..bytes.len()).step_by(997))
                .chain([bytes.len()])
                .collect();
            for cut in cuts {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                let lib = by_libpcap(p);
                let blocks = by_blocks(p);
                match (&lib, &blocks) {
                    // Too short for libpcap to open: not ours either, or
                    // ours with nothing in it (libpcap then says why).
                    (None, _) => assert!(cut < 24, "case {i} cut {cut}"),
                    (Some(l), Some(b)) => {
                        assert_eq!(l.0.len(), b.0.len(), "case {i} cut {cut}: frames");
                        assert!(l.0 == b.0, "case {i} cut {cut}: frame contents");
                        assert_eq!(l.1, b.1, "case {i} cut {cut}: end");
                    }
                    (Some(_), None) => panic!("case {i} cut {cut}: not read in blocks"),
                }
            }
        }
    }

    #[test]
    fn not_for_pcapng_or_standard_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcapng");
        std::fs::write(&path, [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0]).unwrap();
        assert!(Bulk::open(path.to_str().unwrap(), "t").is_none());
        assert!(Bulk::open("-", "-").is_none());
    }

    /// `bytes` as a file read both ways: the same frames, the same end.
    fn same_as_libpcap(bytes: &[u8]) -> Seen {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        std::fs::write(&path, bytes).unwrap();
        let p = path.to_str().unwrap();
        let lib = by_libpcap(p).unwrap();
        assert_eq!(by_blocks(p).as_ref(), Some(&lib));
        lib
    }

    /// Found by the `pcap_blocks` fuzz target: a record whose microsecond
    /// field is past a million, in a file whose snapshot length is short.
    #[test]
    fn fuzz_odd_fraction_and_short_snaplen() {
        let bytes: &[u8] = &[
            212, 195, 178, 161, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 255, 0, 255, 0, 0, 0, 113, 0, 0, 0,
            41, 163, 49, 173, 217, 253, 241, 0, 24, 0, 0, 0, 56, 0, 0, 0, 0, 254, 2, 4, 0, 6, 0, 0,
            0, 0, 0, 0, 0, 0, 8, 0, 101, 0, 0, 40, 0, 0, 64, 0, 0, 0, 0, 8, 0, 60, 206, 127, 0, 0,
            1, 127, 0, 0, 1, 28, 232, 218, 16, 0, 0, 0, 0, 135, 154, 174, 195, 80, 20, 0, 0, 132,
            119, 0, 0,
        ];
        same_as_libpcap(bytes);
    }

    /// A big-endian file whose second record says 0xfa07_0110 seconds:
    /// libpcap 1.10 read it unsigned (the file is swapped), the block reader
    /// signed (found by the pcap_blocks fuzz target). Both now read every
    /// record's seconds unsigned, whatever the byte order, as tshark does.
    #[test]
    fn fuzz_seconds_past_2038_in_a_swapped_file() {
        let bytes: &[u8] = &[
            0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04, 0xa1, 0x00, 0x00, 0x00, 0x4a, 0x83,
            0x00, 0x05, 0x1f, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8f, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0xff, 0xfa, 0x07,
            0x01, 0x10, 0x00, 0x00, 0x8f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4a, 0x83, 0xa1,
            0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
        ];
        let (frames, _) = same_as_libpcap(bytes);
        let secs: Vec<i64> = frames.iter().map(|f| f.1).collect();
        assert_eq!(secs, [9_371_648, 4_194_763_024]);
    }

    /// Seconds past 2038 and fractions of a second or more, in both byte
    /// orders and both precisions: what tshark shows (unsigned seconds), and
    /// the same by libpcap and in blocks.
    #[test]
    fn record_times_are_unsigned_in_both_byte_orders() {
        for big in [false, true] {
            for nanos in [false, true] {
                let records = [
                    (0x8000_0000, 5, vec![1], 1),
                    (0xffff_fff0, 999_999, vec![2], 1),
                    (7, 1_000_000, vec![3], 1),
                    (8, 999_999_999, vec![4], 1),
                    (9, 0x8000_0005, vec![5], 1),
                    (10, u32::MAX, vec![6], 1),
                ];
                let (frames, end) = same_as_libpcap(&pcap(&records, big, nanos, 65535));
                assert_eq!(end, None);
                let times: Vec<(i64, u32)> = frames.iter().map(|f| (f.1, f.2)).collect();
                // Written out, not recomputed: a fraction of a second or
                // more reads as 0.
                let fracs: [u32; 6] = if nanos {
                    [5, 999_999, 1_000_000, 999_999_999, 0, 0]
                } else {
                    [5_000, 999_999_000, 0, 0, 0, 0]
                };
                let want: Vec<(i64, u32)> = [2_147_483_648, 4_294_967_280, 7, 8, 9, 10]
                    .into_iter()
                    .zip(fracs)
                    .collect();
                assert_eq!(times, want, "big {big} nanos {nanos}");
            }
        }
    }

    #[test]
    fn fuzz_negative_fraction() {
        let bytes: &[u8] = &[
            212, 195, 178, 161, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 113, 0, 0, 0,
            41, 163, 49, 173, 217, 253, 241, 0, 56, 0, 0, 0, 56, 0, 0, 0, 0, 0, 3, 4, 0, 6, 0, 0,
            0, 0, 0, 0, 0, 0, 8, 0, 110, 115, 69, 0, 0, 40, 0, 0, 64, 0, 64, 6, 60, 206, 127, 0, 0,
            1, 127, 0, 0, 1, 28, 232, 218, 14, 0, 0, 0, 0, 65, 146, 203, 85, 80, 20, 0, 0, 173,
            239, 0, 0, 41, 163, 49, 83, 232, 218, 15, 0, 0, 0, 0, 159, 87, 100, 226, 80, 20, 0, 0,
            182, 156, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1, 28, 232, 218, 16, 0, 0, 0, 0, 135, 154,
            174, 195, 80, 20, 0, 0, 132, 119, 0, 0,
        ];
        same_as_libpcap(bytes);
    }

    #[test]
    fn fuzz_huge_snaplen_and_record() {
        let bytes: &[u8] = &[
            212, 195, 178, 161, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 105, 110, 99, 111, 109, 112, 108, 0,
            0, 0, 92, 229, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 107, 5, 206, 3, 0, 74, 0, 0, 0, 74, 0, 0, 253, 255,
            255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 69, 0, 0, 60, 249, 213, 64, 0, 64, 6, 66,
            232, 127, 0, 0, 1, 127, 0, 0, 1, 153, 66, 20, 102, 25, 192, 66, 61, 0, 0, 0, 0, 160, 2,
            255, 215, 254, 48, 0, 0, 2, 4, 255, 215, 4, 2, 8, 10, 108, 58, 231, 0, 8, 0, 69, 0, 0,
            180, 249, 211, 64, 0, 64, 6, 66, 110, 127, 0, 0, 1, 127, 0, 0, 1, 153, 66, 20, 102, 25,
            192, 66, 62, 156, 19, 175, 91, 128, 126, 0, 64, 254, 168, 1, 127, 0, 0, 1, 153, 32,
            120, 109, 108, 110, 115, 61, 39, 106, 97, 98, 98, 101, 114, 58, 99, 108, 105, 101, 110,
            116, 39, 32, 120, 109, 108, 58, 108, 97, 110, 103, 61, 39, 101, 110, 39, 0, 68, 248,
            88, 126, 180, 149, 106, 38, 157, 255, 221, 136, 73, 153, 97, 98, 98, 101, 114, 46, 111,
            114, 103, 47, 112, 114, 111, 116, 145, 155, 111, 108, 47, 99, 104, 97, 116, 115, 116,
            97, 116, 101, 115, 39, 47, 62, 60, 47, 109, 101, 115, 115, 97, 103, 101, 62,
        ];
        same_as_libpcap(bytes);
    }
}
