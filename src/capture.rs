//! Capture sources: saved pcap/pcapng files (or standard input) through
//! libpcap. The only module that talks to libpcap.

use std::fmt;

use pcap::{Capture, Offline, Precision};

mod bulk;
pub use bulk::{BULK_BYTES, Bulk, MAX_CAPLEN, u32_at};

use crate::link;
use crate::model::Timestamp;

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture file {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "{path}: unsupported link type {name}; xmppscope reads Ethernet (with VLAN tags), Linux cooked SLL/SLL2, BSD NULL/LOOP and raw IPv4/IPv6"
    )]
    UnsupportedLinkType { path: String, name: String },
    #[error("{path}: error reading after frame {after}: {message}")]
    Read {
        path: String,
        after: u64,
        message: String,
    },
}

/// A frame borrowed from the capture's buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// 1-based record number.
    pub number: u64,
    pub ts: Timestamp,
    /// Length on the wire.
    pub len: u32,
    pub data: &'a [u8],
}

/// How reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// All records read.
    Complete,
    /// The file stops inside a record (libpcap's message); everything
    /// before it was read.
    Truncated(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Complete => f.write_str("complete"),
            Self::Truncated(m) => write!(f, "cut short: {m}"),
        }
    }
}

/// An open capture file.
pub struct FileSource {
    cap: Capture<Offline>,
    path: String,
    linktype: i32,
    number: u64,
    /// The same file read in blocks, when it is a classic pcap file: the
    /// reader ([`BatchReader`]) uses it instead of libpcap.
    bulk: Option<Bulk>,
    /// A classic pcap file (also on standard input): its times are read as
    /// the block reader reads them ([`bulk::record_time`]).
    classic: bool,
}

impl FileSource {
    /// Open a pcap or pcapng file; `-` is standard input.
    ///
    /// # Errors
    /// The file cannot be opened, is not a capture, or has a link type we do
    /// not dissect.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
            CaptureError::Open {
                path: display_path(path),
                message: e.to_string(),
            }
        })?;
        let linktype = cap.get_datalink().0;
        if !link::supported(linktype) {
            return Err(CaptureError::UnsupportedLinkType {
                path: display_path(path),
                name: link::linktype_name(linktype),
            });
        }
        // libpcap says 2.x for a classic pcap file, 1.0 for pcapng.
        let classic = cap.major_version() == 2;
        Ok(Self {
            cap,
            path: display_path(path),
            linktype,
            number: 0,
            bulk: Bulk::open(path, &display_path(path)),
            classic,
        })
    }

    #[must_use]
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next frame, `Ok(None)` at the end.
    ///
    /// # Errors
    /// A damaged file; a file cut inside a record is `Err` with
    /// [`CaptureError::Read`] whose message says so (see [`Self::classify`]).
    pub fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.number += 1;
                // With nanosecond precision libpcap puts nanoseconds in
                // `tv_usec`. A fraction of a second or more is not one.
                let nanos = u32::try_from(p.header.ts.tv_usec)
                    .ok()
                    .filter(|&n| n < 1_000_000_000)
                    .unwrap_or(0);
                let secs = p.header.ts.tv_sec;
                let ts = Timestamp {
                    // The record's unsigned 32-bit seconds, whichever way
                    // libpcap read them (see `bulk::record_time`).
                    secs: if self.classic {
                        secs.rem_euclid(1 << 32)
                    } else {
                        secs
                    },
                    nanos,
                };
                Ok(Some(FrameRef {
                    number: self.number,
                    ts,
                    len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(CaptureError::Read {
                path: self.path.clone(),
                after: self.number,
                message: e.to_string(),
            }),
        }
    }

    /// Is this read error a file that ends inside a record?
    #[must_use]
    pub fn classify(err: &CaptureError) -> Option<End> {
        match err {
            CaptureError::Read { message, .. } if message.contains("truncated") => Some(
                // The same words whichever reader found it (libpcap's or the
                // block reader, which says what libpcap says).
                End::Truncated(
                    message
                        .strip_prefix("libpcap error: ")
                        .unwrap_or(message)
                        .to_owned(),
                ),
            ),
            _ => None,
        }
    }
}

fn display_path(path: &str) -> String {
    if path == "-" {
        "standard input".into()
    } else {
        path.to_owned()
    }
}

/// Frames copied out of libpcap's buffer, many at a time, so that reading
/// runs on its own thread and the dissector never waits for a syscall.
#[derive(Debug, Default)]
pub struct Batch {
    /// All frames' bytes, back to back.
    pub bytes: Vec<u8>,
    /// One entry per frame: its header and where its bytes lie in `bytes`.
    pub frames: Vec<BatchFrame>,
}

/// A frame's header inside a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchFrame {
    pub number: u64,
    pub ts: Timestamp,
    pub len: u32,
    pub start: usize,
    pub end: usize,
    /// What the reader's `tag` said of the frame (the parallel run: the
    /// shard it belongs to), computed on the reader's thread.
    pub tag: u32,
}

impl Batch {
    /// The frames with their bytes.
    pub fn iter(&self) -> impl Iterator<Item = FrameRef<'_>> {
        self.frames.iter().map(|f| FrameRef {
            number: f.number,
            ts: f.ts,
            len: f.len,
            data: self.bytes.get(f.start..f.end).unwrap_or_default(),
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }
}

/// What the reader thread sends.
#[derive(Debug)]
pub enum ReaderMsg {
    Batch(Batch),
    /// The end: complete, cut short, or a read error.
    End(Result<End, CaptureError>),
}

/// Frames per batch, and batches in flight: the channel is bounded, so a
/// slow consumer slows the reader instead of growing memory.
pub const BATCH_FRAMES: usize = 1024;
/// Frame bytes per batch: a batch is sent once it holds this much, so
/// jumbo frames (up to the 256 KiB snaplen) cannot make batches of 256 MiB.
pub const BATCH_BYTES: usize = 1 << 20;
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Read `source` on a thread of its own. Empty batches come back through
/// the returned sender to be reused. Stops after `limit` frames if given.
pub fn spawn_reader(
    source: FileSource,
    limit: Option<u64>,
) -> (
    std::sync::mpsc::Receiver<ReaderMsg>,
    std::sync::mpsc::Sender<Batch>,
    std::thread::JoinHandle<()>,
) {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::sync_channel::<ReaderMsg>(BATCHES_IN_FLIGHT);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Batch>();
    let mut reader = BatchReader::new(source, limit);
    let handle = std::thread::spawn(move || {
        loop {
            let mut batch = recycle_rx.try_recv().unwrap_or_default();
            let end = reader.fill(&mut batch, &|_| 0);
            if !batch.frames.is_empty() && tx.send(ReaderMsg::Batch(batch)).is_err() {
                return;
            }
            if let Some(end) = end {
                let _ = tx.send(ReaderMsg::End(end));
                return;
            }
        }
    });
    (rx, recycle_tx, handle)
}

/// Batches pulled from a capture file, on whatever thread asks: the reader
/// thread of [`spawn_reader`], or the parallel run's first shard, which
/// reads and then dissects its part of what it read.
pub struct BatchReader {
    source: FileSource,
    limit: Option<u64>,
    read: u64,
    done: bool,
}

impl BatchReader {
    /// Read `source`, at most `limit` frames if given.
    #[must_use]
    pub fn new(source: FileSource, limit: Option<u64>) -> Self {
        Self {
            source,
            limit,
            read: 0,
            done: false,
        }
    }

    /// Batches of about `bytes` from a classic pcap file (at least 64 KiB;
    /// other sources keep theirs).
    #[must_use]
    pub fn with_block(mut self, bytes: usize) -> Self {
        if let Some(bulk) = self.source.bulk.as_mut() {
            bulk.set_block(bytes);
        }
        self
    }

    /// Fill `batch` (cleared here) with the next frames; `tag` marks each
    /// one ([`BatchFrame::tag`]). `Some` once the capture is done: complete,
    /// cut short, or a read error; the batch then holds the frames before
    /// the end. After that, every call returns `Some(Ok(End::Complete))`
    /// with an empty batch.
    pub fn fill(
        &mut self,
        batch: &mut Batch,
        tag: &dyn Fn(&[u8]) -> u32,
    ) -> Option<Result<End, CaptureError>> {
        batch.clear();
        if self.done {
            return Some(Ok(End::Complete));
        }
        let end = match self.source.bulk.as_mut() {
            Some(bulk) => {
                let max = self.limit.map_or(u64::MAX, |l| l.saturating_sub(self.read));
                let end = bulk.fill(batch, max, tag);
                self.read += batch.frames.len() as u64;
                end.transpose()
            }
            None => self.fill_from_libpcap(batch, tag),
        };
        self.done = end.is_some();
        end
    }

    fn fill_from_libpcap(
        &mut self,
        batch: &mut Batch,
        tag: &dyn Fn(&[u8]) -> u32,
    ) -> Option<Result<End, CaptureError>> {
        batch.bytes.reserve(BATCH_BYTES);
        batch.frames.reserve(BATCH_FRAMES);
        while batch.frames.len() < BATCH_FRAMES && batch.bytes.len() < BATCH_BYTES {
            if self.limit.is_some_and(|l| self.read >= l) {
                return Some(Ok(End::Complete));
            }
            match self.source.next_frame() {
                Ok(Some(f)) => {
                    self.read += 1;
                    let start = batch.bytes.len();
                    batch.bytes.extend_from_slice(f.data);
                    batch.frames.push(BatchFrame {
                        number: f.number,
                        ts: f.ts,
                        len: f.len,
                        start,
                        end: batch.bytes.len(),
                        tag: tag(f.data),
                    });
                }
                Ok(None) => return Some(Ok(End::Complete)),
                Err(e) => return Some(FileSource::classify(&e).ok_or(e)),
            }
        }
        None
    }
}
