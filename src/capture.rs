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
    /// reader thread uses it instead of libpcap ([`spawn_reader`]).
    bulk: Option<Bulk>,
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
        Ok(Self {
            cap,
            path: display_path(path),
            linktype,
            number: 0,
            bulk: Bulk::open(path, &display_path(path)),
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
                let ts = Timestamp {
                    secs: p.header.ts.tv_sec,
                    // With nanosecond precision libpcap puts nanoseconds here.
                    nanos: u32::try_from(p.header.ts.tv_usec).unwrap_or(0),
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
    spawn_tagging_reader(source, limit, |_| 0)
}

/// [`spawn_reader`], and each frame's [`BatchFrame::tag`] is `tag(bytes)`,
/// computed on the reader's thread (which has time to spare).
pub fn spawn_tagging_reader(
    mut source: FileSource,
    limit: Option<u64>,
    tag: impl Fn(&[u8]) -> u32 + Send + 'static,
) -> (
    std::sync::mpsc::Receiver<ReaderMsg>,
    std::sync::mpsc::Sender<Batch>,
    std::thread::JoinHandle<()>,
) {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::sync_channel::<ReaderMsg>(BATCHES_IN_FLIGHT);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Batch>();
    let handle = std::thread::spawn(move || {
        if let Some(bulk) = source.bulk.take() {
            read_bulk(bulk, limit, &tag, &tx, &recycle_rx);
            return;
        }
        let mut read = 0u64;
        loop {
            let mut batch = recycle_rx.try_recv().unwrap_or_else(|_| Batch {
                bytes: Vec::with_capacity(BATCH_BYTES),
                frames: Vec::with_capacity(BATCH_FRAMES),
            });
            batch.clear();
            let mut end = None;
            while batch.frames.len() < BATCH_FRAMES && batch.bytes.len() < BATCH_BYTES {
                if limit.is_some_and(|l| read >= l) {
                    end = Some(Ok(End::Complete));
                    break;
                }
                match source.next_frame() {
                    Ok(Some(f)) => {
                        read += 1;
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
                    Ok(None) => {
                        end = Some(Ok(End::Complete));
                        break;
                    }
                    Err(e) => {
                        end = Some(FileSource::classify(&e).ok_or(e));
                        break;
                    }
                }
            }
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

/// The reader thread's loop over a classic pcap file read in blocks.
fn read_bulk(
    mut bulk: Bulk,
    limit: Option<u64>,
    tag: &dyn Fn(&[u8]) -> u32,
    tx: &std::sync::mpsc::SyncSender<ReaderMsg>,
    recycle: &std::sync::mpsc::Receiver<Batch>,
) {
    let mut read = 0u64;
    loop {
        let mut batch = recycle.try_recv().unwrap_or_else(|_| Batch {
            bytes: Vec::with_capacity(BULK_BYTES + BULK_BYTES / 4),
            frames: Vec::with_capacity(BATCH_FRAMES),
        });
        batch.clear();
        let max = limit.map_or(u64::MAX, |l| l.saturating_sub(read));
        let end = bulk.fill(&mut batch, max, tag);
        read += batch.frames.len() as u64;
        if !batch.frames.is_empty() && tx.send(ReaderMsg::Batch(batch)).is_err() {
            return;
        }
        match end {
            Ok(None) => {}
            Ok(Some(end)) => {
                let _ = tx.send(ReaderMsg::End(Ok(end)));
                return;
            }
            Err(e) => {
                let _ = tx.send(ReaderMsg::End(Err(e)));
                return;
            }
        }
    }
}
