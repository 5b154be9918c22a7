//! A live capture being consumed: the capture threads, the savefile, the
//! counters and the stop conditions (`-c`, `-a`). Shared by the headless
//! loop ([`super::run_live`]) and the TUI's loader
//! ([`crate::ui::loader::load_live`]), which differ only in what they do
//! with each frame.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::keylog::KeyLog;
use crate::model::Timestamp;

use super::savefile::{self, Savefile};
use super::source::{self, Frame, InterfaceStats, Next, Opened, Running};
use super::{LiveOptions, privs};

/// How often the drop counters are looked at.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// How often the key log is looked at (one `stat` when it did not grow):
/// TLS records wait for their key until it is read, so soon is better.
pub const KEYLOG_INTERVAL: Duration = Duration::from_millis(100);

/// What [`Session::next`] has.
#[derive(Debug)]
pub enum Step {
    /// A captured frame, numbered from 1, with its record's offset in the
    /// savefile (when there is one).
    Frame {
        number: u64,
        linktype: i32,
        frame: Frame,
        offset: Option<u64>,
    },
    /// Nothing new; `caught_up` the first time after frames arrived (the
    /// savefile was just flushed: flush what is shown too).
    Idle { caught_up: bool },
    /// The capture has ended (signal, `-c`, `-a`, an error).
    End,
}

/// How a session ended.
pub struct Ended {
    /// Per interface, with the captured counts filled in.
    pub stats: Vec<InterfaceStats>,
    /// The first cause of failure, if any (the savefile is valid anyway).
    pub error: Option<anyhow::Error>,
    /// Packets written to the savefile.
    pub saved: u64,
}

/// One live capture from open to finish.
pub struct Session {
    running: Running,
    save: Option<Savefile>,
    savefile_named: bool,
    linktypes: Vec<i32>,
    captured: Vec<u64>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    number: u64,
    count: Option<u64>,
    deadline: Option<Instant>,
    filesize: Option<u64>,
    keylog: Option<KeyLog>,
    keylog_update: Option<Arc<KeyLog>>,
    next_housekeeping: Instant,
    next_keylog: Instant,
    warn: bool,
    drops_reported: u64,
    dirty: bool,
    failure: Option<anyhow::Error>,
    filter: String,
}

impl Session {
    /// Open the interfaces and the savefile (`savefile` overrides
    /// `live.savefile`: the TUI's temporary file), drop privileges (`-Z`)
    /// and start capturing. With `announce`, tcpdump's "listening on" lines
    /// and later the drop warnings go to standard error.
    ///
    /// # Errors
    /// An interface or the savefile cannot be opened, or privileges
    /// cannot be dropped.
    pub fn start(
        live: &LiveOptions,
        savefile: Option<&str>,
        count: Option<u64>,
        keylog: Option<&KeyLog>,
        stop: Arc<AtomicBool>,
        announce: bool,
    ) -> anyhow::Result<Self> {
        let opened = Opened::open(&live.capture)?;
        let save_path = savefile.or(live.savefile.as_deref());
        let save = match save_path {
            Some(path) => {
                let ifaces = opened
                    .interfaces()
                    .iter()
                    .map(|i| savefile::Interface {
                        name: i.name.clone(),
                        description: i.description.clone(),
                        linktype: i.linktype,
                        snaplen: i.snaplen,
                        filter: live.capture.filter.clone(),
                    })
                    .collect();
                Some(Savefile::create(
                    path,
                    savefile::Format::for_path(path),
                    ifaces,
                )?)
            }
            None => None,
        };
        if let Some(user) = &live.user {
            privs::drop_to(user)?;
        }
        let linktypes: Vec<i32> = opened.interfaces().iter().map(|i| i.linktype).collect();
        if announce {
            for i in opened.interfaces() {
                eprintln!(
                    "xmppscope: listening on {}, link-type {}, snapshot length {} bytes, capture filter {}",
                    i.name,
                    source::linktype_label(i.linktype),
                    i.snaplen,
                    filter_label(&live.capture.filter)
                );
            }
            if save.is_some() && linktypes.iter().any(|&l| Some(&l) != linktypes.first()) {
                eprintln!(
                    "xmppscope: warning: the interfaces have different link types; tshark reads the pcapng savefile, but libpcap (and so xmppscope -r) reads only files with one link type"
                );
            }
        }
        let running = opened.start(stop);
        Ok(Self {
            running,
            save,
            savefile_named: live.savefile.is_some(),
            captured: vec![0; linktypes.len()],
            linktypes,
            first: None,
            last: None,
            number: 0,
            count,
            deadline: live.duration.map(|d| Instant::now() + d),
            filesize: live.filesize,
            keylog: keylog.cloned(),
            keylog_update: None,
            next_housekeeping: Instant::now() + HOUSEKEEPING_INTERVAL,
            next_keylog: Instant::now(),
            warn: announce,
            drops_reported: 0,
            dirty: false,
            failure: None,
            filter: live.capture.filter.clone(),
        })
    }

    /// The interfaces' names, in order.
    #[must_use]
    pub fn interface_names(&self) -> Vec<String> {
        self.running
            .interfaces()
            .iter()
            .map(|i| i.name.clone())
            .collect()
    }

    /// The link types of the interfaces, in order.
    #[must_use]
    pub fn linktypes(&self) -> &[i32] {
        &self.linktypes
    }

    /// The capture filter (empty: everything).
    #[must_use]
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The savefile's path, if there is one.
    #[must_use]
    pub fn savefile(&self) -> Option<&str> {
        self.save.as_ref().map(Savefile::path)
    }

    /// Bytes written to the savefile so far.
    #[must_use]
    pub fn saved_bytes(&self) -> u64 {
        self.save.as_ref().map_or(0, Savefile::bytes)
    }

    /// Frames numbered so far.
    #[must_use]
    pub fn packets(&self) -> u64 {
        self.number
    }

    /// A key log re-read since the last call (give it to the dissector).
    pub fn take_keylog(&mut self) -> Option<Arc<KeyLog>> {
        self.keylog_update.take()
    }

    /// Statistics so far, per interface.
    #[must_use]
    pub fn stats(&self) -> Vec<InterfaceStats> {
        let mut stats = self.running.stats();
        for (s, c) in stats.iter_mut().zip(&self.captured) {
            s.captured = *c;
        }
        stats
    }

    /// Stop capturing (what is still queued is dropped).
    pub fn stop(&self) {
        self.running.stop();
    }

    /// Stop because of `e` (the first failure is the one reported).
    pub fn fail(&mut self, e: anyhow::Error) {
        self.failure.get_or_insert(e);
        self.running.stop();
    }

    /// Push the savefile's buffer to the file.
    pub fn flush(&mut self) {
        if let Some(s) = self.save.as_mut()
            && let Err(e) = s.flush()
        {
            self.fail(e.into());
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            self.running.stop();
        }
        if now >= self.next_keylog {
            self.next_keylog = now + KEYLOG_INTERVAL;
            // A client started with SSLKEYLOGFILE appends its secrets as it
            // signs in: re-read the file so its flows are decrypted live.
            if let Some(k) = self.keylog.as_mut()
                && let Ok(true) = k.refresh()
            {
                self.keylog_update = Some(Arc::new(k.clone()));
            }
        }
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
        let dropped: u64 = self.running.stats().iter().map(|s| s.queue_dropped).sum();
        if dropped > self.drops_reported {
            if self.warn {
                eprintln!(
                    "xmppscope: warning: {dropped} packets dropped so far: the dissector is behind the capture"
                );
            }
            self.drops_reported = dropped;
        }
    }

    /// The next frame, waiting at most `timeout`. Frames are written to
    /// the savefile here; the savefile is flushed whenever the capture is
    /// caught up, so it is current whenever the capture is quiet.
    pub fn next(&mut self, timeout: Duration) -> Step {
        self.housekeeping();
        let next = match self.running.next(Duration::ZERO) {
            Next::Idle if self.dirty => {
                self.dirty = false;
                self.flush();
                return Step::Idle { caught_up: true };
            }
            Next::Idle => self.running.next(timeout),
            other => other,
        };
        let frame = match next {
            Next::Frame(f) => f,
            Next::Idle => return Step::Idle { caught_up: false },
            Next::End => return Step::End,
        };
        if self.failure.is_some()
            || self.count.is_some_and(|c| self.number >= c)
            || self.filesize.is_some_and(|n| self.saved_bytes() >= n)
        {
            // Stopping: what is still queued is not wanted.
            return Step::Idle { caught_up: false };
        }
        self.number += 1;
        if let Some(c) = self.captured.get_mut(frame.iface) {
            *c += 1;
        }
        self.first.get_or_insert(frame.ts);
        self.last = Some(frame.ts);
        self.dirty = true;
        let mut offset = None;
        if let Some(s) = self.save.as_mut() {
            match s.write_packet(frame.iface, frame.ts, frame.wire_len, &frame.data) {
                Ok(o) => offset = Some(o),
                Err(e) => {
                    self.fail(e.into());
                    return Step::Idle { caught_up: false };
                }
            }
        }
        if self.count.is_some_and(|c| self.number >= c)
            || self.filesize.is_some_and(|n| self.saved_bytes() >= n)
        {
            self.running.stop();
        }
        Step::Frame {
            number: self.number,
            linktype: self.linktypes.get(frame.iface).copied().unwrap_or_default(),
            frame,
            offset,
        }
    }

    /// Stop, wait for the capture threads, finish the savefile (valid in
    /// every case) and say how it went.
    #[must_use]
    pub fn finish(self) -> Ended {
        let Self {
            running,
            save,
            savefile_named,
            captured,
            first,
            last,
            mut failure,
            ..
        } = self;
        let (mut stats, errors) = running.finish();
        for (s, c) in stats.iter_mut().zip(&captured) {
            s.captured = *c;
        }
        let mut saved = 0;
        if let Some(s) = save {
            let totals: Vec<savefile::InterfaceTotals> = stats
                .iter()
                .map(|st| savefile::InterfaceTotals {
                    start: first,
                    end: last,
                    received: st.received,
                    if_dropped: st.if_dropped,
                    os_dropped: st.kernel_dropped,
                    delivered: st.captured,
                })
                .collect();
            match s.finish(&totals) {
                Ok(n) => saved = n,
                Err(e) => {
                    failure.get_or_insert(e.into());
                }
            }
        }
        // An interface failing is the first cause; later errors follow it.
        let error = match errors.into_iter().next() {
            Some((iface, message)) => Some(anyhow::anyhow!(
                "capture on {iface} stopped: {message}{}",
                if savefile_named {
                    " (the savefile holds everything captured before)"
                } else {
                    ""
                }
            )),
            None => failure,
        };
        Ended {
            stats,
            error,
            saved,
        }
    }
}

/// The capture filter as the status line and the "listening on" line say it.
#[must_use]
pub fn filter_label(filter: &str) -> String {
    if filter.is_empty() {
        "none (everything)".to_owned()
    } else {
        format!("'{filter}'")
    }
}
