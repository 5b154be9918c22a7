//! The headless run: read a capture, dissect, print.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering;

use crate::capture::{End, FileSource, ReaderMsg, spawn_reader};
use crate::cli::{Format, Settings};
use crate::dissect::Dissector;
use crate::model::{Event, Note, Packet, Timestamp};
use crate::output::{self, Clock, expert::Expert, stats::Stats};

/// The outcome of a capture file cut inside a record after frame `last`.
fn truncated(path: &str, last: u64, libpcap: &str) -> Outcome {
    Outcome::Truncated(format!(
        "{path}: the file ends in the middle of a record after frame {last} ({libpcap}); everything before it was read"
    ))
}

/// How a run ended, for the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The capture ended inside a record: what came before was processed.
    Truncated(String),
    /// A signal (SIGINT, SIGTERM, SIGHUP) stopped an export (`-r … -w`)
    /// part-way; the file written holds what was selected before it.
    Interrupted {
        message: String,
        signal: i32,
    },
}

/// The headless printers, shared by the file and the live runs
/// ([`crate::live`]).
pub(crate) struct Printer<W: Write> {
    out: W,
    settings: Settings,
    clock: Clock,
    line: String,
    json: Vec<u8>,
    stats: Stats,
    expert: Expert,
    /// Names learnt from the capture (None with `-n`).
    names: Option<crate::names::Names>,
    /// The story views (`--signin`, `--transcript`, …).
    views: Option<crate::views::Views>,
    /// `--jid`: the flows kept.
    jid_flows: Option<std::collections::HashSet<u32>>,
    /// False when the statistics are counted elsewhere (the parallel
    /// run's shards) and only printed here.
    count_stats: bool,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, settings: Settings) -> Self {
        Self {
            out,
            clock: Clock::default(),
            line: String::new(),
            json: Vec::new(),
            stats: Stats::default(),
            expert: Expert::default(),
            // Names only show on printed lines: `-q` needs none.
            names: (settings.resolve_names && !settings.quiet).then(crate::names::Names::default),
            views: settings
                .views
                .any()
                .then(|| crate::views::Views::new(settings.views)),
            jid_flows: None,
            count_stats: true,
            settings,
        }
    }

    /// Names learnt before the run (the pre-pass for `--host NAME`).
    pub(crate) fn set_names(&mut self, names: crate::names::Names) {
        if self.names.is_some() {
            self.names = Some(names);
        }
    }

    /// `--jid`: keep only these flows.
    pub(crate) fn set_jid_flows(&mut self, flows: std::collections::HashSet<u32>) {
        self.jid_flows = Some(flows);
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Dissect one frame and print what it completes, then what left the
    /// pipeline with it (evicted or idle flows). Returns whether the frame
    /// belongs to the `--jid` account's flows (always true without `--jid`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn frame(
        &mut self,
        dissector: &mut Dissector,
        packet: &mut Packet,
        number: u64,
        ts: Timestamp,
        linktype: i32,
        data: &[u8],
        wire_len: u32,
    ) -> io::Result<bool> {
        dissector.dissect(number, ts, linktype, data, wire_len, packet);
        if let Some(names) = &mut self.names
            && packet.flow.is_none()
            // DNS answers (RFC 1035) teach names; the TCP path never gets here.
            && let Some(u) = crate::link::udp_datagram(linktype, data)
        {
            names.udp(u.sport, u.payload);
        }
        let kept = self
            .jid_flows
            .as_ref()
            .is_none_or(|keep| packet.flow.is_some_and(|f| keep.contains(&f)));
        if !kept {
            packet.events.clear();
            packet.tallies.clear();
            packet.notes.clear();
            packet.flow = None;
            // Not this account's: no line, no view.
            if let Some(v) = &mut self.views {
                v.common.first.get_or_insert(packet.ts);
            }
            self.clock.relative(packet.ts);
        } else {
            if let Some(v) = &mut self.views {
                v.packet(packet);
            }
            self.packet(packet)?;
        }
        if !dissector.has_flushed() {
            return Ok(kept);
        }
        let (mut events, notes) = dissector.take_flushed();
        if let Some(keep) = &self.jid_flows {
            events.retain(|e| keep.contains(&e.flow));
        }
        if !events.is_empty() || !notes.is_empty() {
            if let Some(v) = &mut self.views {
                v.events(&events);
            }
            self.flushed(&events, &notes, number)?;
        }
        Ok(kept)
    }

    /// The end of the capture (`last` is the last frame's number): what the
    /// dissector still held, the expert summary, `--stats`, and the output
    /// flushed.
    pub(crate) fn finish(&mut self, dissector: &mut Dissector, last: u64) -> anyhow::Result<()> {
        dissector.finish(last);
        let (mut events, notes) = dissector.take_flushed();
        if let Some(keep) = &self.jid_flows {
            events.retain(|e| keep.contains(&e.flow));
        }
        if let Some(v) = &mut self.views {
            v.events(&events);
        }
        self.flushed(&events, &notes, last)?;
        if let Some(v) = &self.views {
            let style = match self.settings.format {
                Format::Text => crate::views::Style::Text,
                Format::Json => crate::views::Style::Json,
                Format::Ndjson => crate::views::Style::Ndjson,
            };
            v.write(&mut self.out, style)?;
        }
        let counters = dissector.counters().clone();
        self.report(&counters)
    }

    /// The expert summary, `--stats` and the final flush.
    fn report(&mut self, counters: &crate::dissect::Counters) -> anyhow::Result<()> {
        if self.settings.expert {
            if self.settings.format == Format::Ndjson {
                let j = serde_json::json!({
                    "kind": "expert_summary",
                    "total": self.expert.total(),
                    "groups": self.expert.groups(),
                });
                serde_json::to_writer(&mut self.out, &j)?;
                writeln!(self.out)?;
            } else {
                write!(self.out, "{}", self.expert.to_text())?;
            }
        }
        if self.settings.stats {
            self.stats.set_counters(counters);
            if self.settings.format == Format::Json {
                serde_json::to_writer_pretty(&mut self.out, &self.stats)?;
                writeln!(self.out)?;
            } else {
                write!(self.out, "{}", self.stats.to_text())?;
            }
        }
        self.out.flush()?;
        Ok(())
    }

    /// A line rendered by a shard of the parallel run, all but its
    /// addresses, which take the names known at this point of the capture.
    fn rendered_line(
        &mut self,
        head: &[u8],
        ends: Option<(std::net::IpAddr, std::net::IpAddr)>,
        tail: &[u8],
    ) -> io::Result<()> {
        self.out.write_all(head)?;
        if let Some((s, d)) = ends {
            self.line.clear();
            output::push_endpoints(&mut self.line, s, d, self.names.as_ref());
            self.out.write_all(self.line.as_bytes())?;
        }
        self.out.write_all(tail)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn packet(&mut self, p: &Packet) -> io::Result<()> {
        // SNI and stream domains (also on the --threads path, which does
        // not go through `frame`).
        if let Some(names) = &mut self.names {
            for e in &p.events {
                names.event(e);
            }
        }
        if self.settings.expert {
            for e in &p.events {
                for n in &e.notes {
                    self.expert.add(n, e.frame);
                }
            }
            for n in &p.notes {
                self.expert.add(n, p.number);
            }
        }
        if self.settings.stats && self.count_stats {
            for e in &p.events {
                self.stats.add_event(e);
            }
            for t in &p.tallies {
                self.stats.add_tally(t);
            }
            for n in &p.notes {
                self.stats.add_note(n);
            }
        }
        if self.settings.quiet || self.views.is_some() {
            return Ok(());
        }
        match self.settings.format {
            Format::Text | Format::Json => {
                if output::shown(p) {
                    output::write_line_named(
                        &mut self.out,
                        &mut self.line,
                        &mut self.clock,
                        p,
                        self.names.as_ref(),
                    )?;
                    if self.settings.verbose {
                        self.details(&p.events, &p.notes)?;
                    }
                } else {
                    // Keep the clock anchored at the first frame, like tshark.
                    self.clock.relative(p.ts);
                }
            }
            Format::Ndjson => {
                if !p.events.is_empty() || !p.notes.is_empty() {
                    output::write_ndjson(
                        &mut self.out,
                        &mut self.json,
                        &p.events,
                        &p.notes,
                        p.number,
                        p.ts,
                        p.flow,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn flushed(&mut self, events: &[Event], notes: &[Note], last: u64) -> io::Result<()> {
        if self.settings.expert {
            for e in events {
                for n in &e.notes {
                    self.expert.add(n, e.frame);
                }
            }
            for n in notes {
                self.expert.add(n, 0);
            }
        }
        if self.settings.stats && self.count_stats {
            for e in events {
                self.stats.add_event(e);
            }
            for n in notes {
                self.stats.add_note(n);
            }
        }
        if self.settings.quiet || self.views.is_some() || (events.is_empty() && notes.is_empty()) {
            return Ok(());
        }
        match self.settings.format {
            Format::Text | Format::Json => {
                output::write_flushed_lines(
                    &mut self.out,
                    &mut self.line,
                    &mut self.clock,
                    events,
                )?;
                if self.settings.verbose {
                    self.details(events, notes)?;
                }
            }
            Format::Ndjson => {
                let ts = events.last().map(|e| e.time).unwrap_or_default();
                output::write_ndjson(&mut self.out, &mut self.json, events, notes, last, ts, None)?;
            }
        }
        Ok(())
    }

    fn details(&mut self, events: &[Event], notes: &[Note]) -> io::Result<()> {
        for e in events {
            writeln!(
                self.out,
                "    [{} flow {} {} frames {:?}] {}",
                e.kind_name(),
                e.flow,
                e.dir.as_str(),
                e.frames,
                e.info
            )?;
            if let Some(to) = e.response_to {
                writeln!(
                    self.out,
                    "        response to frame {to} ({:.6} s after the request)",
                    e.response_time.unwrap_or_default()
                )?;
            }
            if let Some(r) = e.response_in {
                writeln!(self.out, "        response in frame {r}")?;
            }
            if let Some(d) = &e.details {
                let mut s = String::new();
                crate::xmpp::detail::write_readable(d, 4, &mut s);
                self.out.write_all(s.as_bytes())?;
            }
            let xml = if e.pretty.is_empty() {
                &e.xml
            } else {
                &e.pretty
            };
            if !xml.is_empty() {
                for l in xml.lines() {
                    writeln!(self.out, "        | {l}")?;
                }
            }
            for n in &e.notes {
                writeln!(self.out, "        expert: {n}")?;
            }
        }
        for n in notes {
            writeln!(self.out, "    expert: {n}")?;
        }
        Ok(())
    }
}

/// Run headless on a capture file.
///
/// # Errors
/// The capture cannot be opened or read (other than being cut short), or
/// standard output fails.
pub fn run_file(mut settings: Settings) -> anyhow::Result<Outcome> {
    // The views, --jid and --host NAME follow flows in one dissector.
    if settings.threads > 1
        && !settings.views.any()
        && settings.host_names.is_empty()
        && settings.jid.is_none()
        && settings.export.is_none()
    {
        return parallel::run_file_parallel(settings);
    }
    let (learnt, jid_flows) = first_pass(&mut settings)?;
    let source = FileSource::open(&settings.path)?;
    let linktype = source.linktype();
    // Created once the input is known to be readable, so that a bad -r
    // leaves no empty OUT behind.
    let mut export = match &settings.export {
        Some(out) => Some(Export::create(
            out,
            &settings,
            linktype,
            jid_flows.is_some(),
        )?),
        None => None,
    };
    // Exports need no dissection when nothing is printed and no account
    // decides which flows go out (a copy, or --host by address).
    let dissect = export.is_none()
        || !settings.quiet
        || settings.stats
        || settings.expert
        || settings.views.any()
        || jid_flows.is_some();
    let mut dissector = Dissector::new(settings.dissector.clone());
    let stdout = io::stdout();
    let mut printer = Printer::new(BufWriter::with_capacity(1 << 16, stdout.lock()), settings);
    if let Some(n) = learnt {
        printer.set_names(n);
    }
    if let Some(f) = jid_flows {
        printer.set_jid_flows(f);
    }
    let path = source.path().to_owned();
    // An export stops cleanly on Ctrl-C: the file is finished and valid.
    let signal = match &export {
        Some(_) => Some(stop_on_signals()?),
        None => None,
    };
    let (batches, recycle, reader) = spawn_reader(source, printer.settings().count);
    let mut packet = Packet::default();
    let mut outcome = Outcome::Complete;
    let mut last = 0;
    let mut failure: Option<anyhow::Error> = None;
    let interrupted = |last: u64| {
        let sig = signal.as_ref().map_or(0, |s| s.load(Ordering::Relaxed));
        (sig != 0).then(|| {
            let signal = i32::try_from(sig).unwrap_or(0);
            Outcome::Interrupted {
                message: format!("interrupted by signal {signal} after frame {last} of {path}"),
                signal,
            }
        })
    };
    'read: loop {
        // While exporting, wake up now and then to notice a signal even
        // when the input (a pipe) is quiet.
        let msg = if signal.is_some() {
            match batches.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(m) => m,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(o) = interrupted(last) {
                        outcome = o;
                        break;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match batches.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        match msg {
            ReaderMsg::Batch(batch) => {
                for frame in batch.iter() {
                    last = frame.number;
                    let kept = if dissect {
                        match printer.frame(
                            &mut dissector,
                            &mut packet,
                            frame.number,
                            frame.ts,
                            linktype,
                            frame.data,
                            frame.len,
                        ) {
                            Ok(k) => k,
                            Err(e) => {
                                failure = Some(e.into());
                                break 'read;
                            }
                        }
                    } else {
                        true
                    };
                    if let Some(x) = export.as_mut()
                        && let Err(e) = x.frame(kept, linktype, frame.ts, frame.len, frame.data)
                    {
                        failure = Some(e.into());
                        break 'read;
                    }
                }
                let _ = recycle.send(batch);
                if let Some(o) = interrupted(last) {
                    outcome = o;
                    break;
                }
            }
            ReaderMsg::End(Ok(End::Complete)) => break,
            ReaderMsg::End(Ok(End::Truncated(m))) => {
                outcome = truncated(&path, last, &m);
                break;
            }
            ReaderMsg::End(Err(e)) => {
                failure = Some(e.into());
                break;
            }
        }
    }
    drop(batches);
    // A reader blocked on a quiet pipe is left behind when a signal stops
    // the run (the process ends right after).
    if !matches!(outcome, Outcome::Interrupted { .. }) {
        let _ = reader.join();
    }
    if failure.is_none()
        && let Err(e) = printer.finish(&mut dissector, last)
    {
        failure = Some(e);
    }
    // The export is finished (flushed, whole blocks) whatever happened
    // before: a read error, a full stdout, a signal.
    if let Some(x) = export {
        let written = x.save.written();
        let out = x.save.path().to_owned();
        if written == 0 && !x.selection.is_empty() && failure.is_none() {
            eprintln!(
                "xmppscope: warning: {} selects no packet of {path}; {out} is a capture with no packets",
                x.selection
            );
        }
        match x.save.finish(&[]) {
            Ok(_) => {
                let holds = format!("{out} holds the {written} packets selected before it");
                if let Outcome::Interrupted { message, .. } = &mut outcome {
                    message.push_str(&format!("; {holds}"));
                }
                // Flattened into one message: a closed standard output
                // (`-P | head`) is then an error, not a quiet success, since
                // the export is incomplete.
                if let Some(f) = failure.take() {
                    failure = Some(anyhow::anyhow!("{f:#}; the export stopped: {holds}"));
                }
            }
            Err(e) => {
                failure.get_or_insert(e.into());
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// `-r FILE -w OUT`: which packets go out and the file they go to.
struct Export {
    save: crate::live::savefile::Savefile,
    /// The selection in words (`--jid a@b --host 192.0.2.7`), empty for a copy.
    selection: String,
    /// `--host`: a packet goes out when its IP source or destination is one
    /// of these (like tshark's `ip.addr == X`).
    hosts: Vec<std::net::IpAddr>,
    /// `--jid`: a packet goes out when it belongs to one of the account's
    /// TCP flows (all of its packets: handshake, ACKs, FIN, both ways).
    by_account: bool,
}

impl Export {
    fn create(
        out: &str,
        settings: &Settings,
        linktype: i32,
        by_account: bool,
    ) -> anyhow::Result<Self> {
        use crate::live::savefile::{Format as SaveFormat, Interface, Savefile};
        let mut selection = Vec::new();
        if let Some(j) = &settings.jid {
            selection.push(format!("--jid {j}"));
        }
        for h in &settings.dissector.hosts {
            selection.push(format!("--host {h}"));
        }
        let selection = selection.join(" ");
        let what = if selection.is_empty() {
            "every packet"
        } else {
            selection.as_str()
        };
        let input = if settings.path == "-" {
            "standard input"
        } else {
            settings.path.as_str()
        };
        let iface = Interface {
            name: String::new(),
            description: Some(format!("xmppscope -r {input}: {what}")),
            linktype,
            // Records keep the lengths they had; libpcap's largest snapshot
            // length covers any record it could read.
            snaplen: crate::live::DEFAULT_SNAPLEN,
            filter: String::new(),
        };
        let save = Savefile::create(out, SaveFormat::for_path(out), vec![iface])?;
        Ok(Self {
            save,
            selection,
            hosts: settings.dissector.hosts.clone(),
            by_account,
        })
    }

    /// Write the frame if it is selected; `kept` says whether it belongs to
    /// the `--jid` account's flows.
    fn frame(
        &mut self,
        kept: bool,
        linktype: i32,
        ts: Timestamp,
        wire_len: u32,
        data: &[u8],
    ) -> Result<(), crate::live::savefile::SaveError> {
        if self.by_account && !kept {
            return Ok(());
        }
        if !self.hosts.is_empty()
            && !crate::link::ip_addresses(linktype, data)
                .is_some_and(|(s, d)| self.hosts.contains(&s) || self.hosts.contains(&d))
        {
            return Ok(());
        }
        self.save.write_packet(0, ts, wire_len, data).map(|_| ())
    }
}

/// SIGINT, SIGTERM and SIGHUP set the returned number to the signal; a
/// second one ends the process at once (status 128 + signal).
fn stop_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicUsize>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    let which = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        let install = || -> io::Result<()> {
            // signal-hook's order: the shutdown checks the flag before the
            // same signal sets it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen))?;
            signal_hook::flag::register(sig, Arc::clone(&seen))?;
            signal_hook::flag::register_usize(
                sig,
                Arc::clone(&which),
                usize::try_from(sig).unwrap_or(0),
            )?;
            Ok(())
        };
        install().map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
    }
    Ok(which)
}

/// `--threads N`: the flows split over N dissectors, one per thread, the
/// output merged back into frame order, so that it is the same as one
/// thread's (flow numbers aside: shard k numbers its flows k, k+N, …).
mod parallel {
    use std::collections::{BTreeMap, HashMap, VecDeque};
    use std::io::{self, BufWriter};
    use std::sync::Arc;
    use std::sync::mpsc::{self, Receiver, SyncSender};

    use super::{Outcome, Printer, truncated};
    use crate::capture::{Batch, BatchReader, CaptureError, End, FileSource};
    use crate::cli::Settings;
    use crate::dissect::{Counters, Dissector, TableChanges, shard_of};
    use crate::model::{Event, Note, Packet};
    use crate::output::stats::Stats;

    /// One batch of frames, seen by every shard: each dissects its own
    /// flows' frames and lets the others' go by (their time still drives
    /// the idle sweep).
    struct Job {
        seq: u64,
        batch: Arc<Batch>,
    }

    /// What one shard has to say about one frame.
    struct Out {
        shard: u32,
        /// Index of the frame in its batch.
        idx: u32,
        /// The frame is this shard's (at most one shard's per frame).
        owner: bool,
        /// The dissected frame, when it completed something (owner only).
        packet: Option<Packet>,
        /// Flows closed by the idle sweep before the frame.
        swept: (Vec<Event>, Vec<Note>),
        /// Flows closed while dissecting it (evicted, reused).
        flushed: (Vec<Event>, Vec<Note>),
        changes: TableChanges,
        /// The shard's flow table size after the frame, when it changed.
        len: Option<u32>,
        /// A UDP datagram from port 53: the printer learns names from it.
        dns: bool,
        /// The frame's line, rendered by the shard (plain lines only).
        line: Option<Line>,
        /// The frame's events that teach names (with `line`).
        learn: Vec<Event>,
    }

    /// A line in a shard's text buffer for the batch: `head` up to the
    /// addresses, then `tail`.
    struct Line {
        start: u32,
        split: u32,
        end: u32,
        ends: Option<(std::net::IpAddr, std::net::IpAddr)>,
    }

    /// What a shard does with its events besides sending them.
    struct Mode {
        /// `--stats`: counted here (the printer only prints them).
        stats: Option<Stats>,
        /// The printer needs the events (lines, -V, NDJSON, --expert).
        print: bool,
        /// Plain lines: rendered here, only the names are left to the
        /// printer (they follow the capture's order across shards).
        lines: bool,
    }

    enum Done {
        Batch {
            seq: u64,
            outs: Vec<Out>,
            /// The text of the batch's rendered lines.
            text: Vec<u8>,
            /// The batch itself, from the shard that read it.
            batch: Option<Arc<Batch>>,
        },
        /// The capture is done (from the shard that reads it): complete, cut
        /// short or failed. After its last batch, before its `End`.
        Eof(Result<End, CaptureError>),
        End {
            events: Vec<Event>,
            notes: Vec<Note>,
            counters: Counters,
            /// The shard's statistics, when it keeps them itself.
            stats: Option<Box<Stats>>,
        },
    }

    /// A batch's outputs as they come in: shards reported, their outputs
    /// and each shard's rendered text (both indexed by shard; each shard's
    /// outputs are in frame order).
    type Pending = (u32, Vec<Vec<Out>>, Vec<Vec<u8>>);

    /// Output lists longer than this are freed rather than reused.
    const OUTS_KEEP: usize = 1 << 13;

    /// Batches dissected ahead of the printer, per shard.
    const IN_FLIGHT: usize = 2;

    /// Batches the reading shard reads and hands out ahead of its own
    /// dissection (a block each: `capture::BULK_BYTES`, `FIGURES_BLOCK`), when the shards
    /// are the bottleneck (`-q --stats`, plain lines). When the printer is
    /// (NDJSON, `-V`, `--expert`), one, and one batch in flight: the events
    /// of batches dissected ahead only wait there, and they are large.
    const READ_AHEAD: usize = 4;

    /// Bytes per batch when only figures are printed (`-q --stats`).
    const FIGURES_BLOCK: usize = 1 << 20;

    /// One shard's dissector and what it keeps between batches. With
    /// `stats` (`-q --stats`: nothing printed but the figures), the shard
    /// counts its own events and sends only what the merge needs for the
    /// flows open at once.
    struct Shard {
        d: Dissector,
        /// An emptied output list back from the printer, for the next batch.
        spare: Vec<Out>,
        shard: u32,
        linktype: i32,
        mode: Mode,
        last: u64,
        len: usize,
        packet: Packet,
        clock: crate::output::Clock,
        line: String,
    }

    impl Shard {
        fn new(d: Dissector, shard: u32, linktype: i32, mode: Mode) -> Self {
            Self {
                d,
                spare: Vec::new(),
                shard,
                linktype,
                mode,
                last: 0,
                len: 0,
                packet: Packet::default(),
                clock: crate::output::Clock::default(),
                line: String::new(),
            }
        }

        /// Dissect this shard's frames of `batch` and let the others' go by:
        /// what the printer needs of each frame, and the rendered text.
        fn batch(&mut self, batch: &Batch) -> (Vec<Out>, Vec<u8>) {
            let Self {
                d,
                spare,
                shard,
                linktype,
                mode,
                last,
                len,
                packet,
                clock,
                line,
            } = self;
            let (shard, linktype) = (*shard, *linktype);
            // The list of a batch printed earlier, emptied: no growing again.
            let mut outs = std::mem::take(spare);
            let mut text = Vec::new();
            for (i, f) in batch.frames.iter().enumerate() {
                *last = f.number;
                // Times count from the first frame of the capture.
                clock.start(f.ts);
                let owner = f.tag == shard;
                if !owner && !d.sweep_due(f.ts) {
                    // Another shard's frame that sweeps nothing here.
                    continue;
                }
                let data = batch.bytes.get(f.start..f.end).unwrap_or_default();
                d.tick(f.number, f.ts);
                // Taken only when there is something: most frames flush
                // nothing, and two empty pairs per frame, made and dropped,
                // were a measurable part of a shard's loop.
                let mut swept = d.has_flushed().then(|| d.take_flushed());
                let mut flushed = None;
                let mut kept = None;
                let mut dns = false;
                let mut rendered = None;
                let mut learn = Vec::new();
                if owner {
                    d.dissect(f.number, f.ts, linktype, data, f.len, packet);
                    flushed = d.has_flushed().then(|| d.take_flushed());
                    dns = mode.print
                        && packet.flow.is_none()
                        && crate::link::udp_datagram(linktype, data)
                            .is_some_and(|u| u.sport == crate::dns::PORT);
                    if let Some(st) = &mut mode.stats {
                        for e in &packet.events {
                            st.add_event(e);
                        }
                        for t in &packet.tallies {
                            st.add_tally(t);
                        }
                        for n in &packet.notes {
                            st.add_note(n);
                        }
                    }
                    if mode.lines {
                        learn.extend(packet.events.iter().filter(|e| teaches(e)).cloned());
                        if crate::output::shown(packet) {
                            rendered = Some(render(&mut text, line, clock, packet));
                        }
                    } else if mode.print && (!packet.events.is_empty() || !packet.notes.is_empty())
                    {
                        // A frame that completed nothing prints nothing.
                        kept = Some(std::mem::take(packet));
                    }
                }
                if let Some(st) = &mut mode.stats {
                    // Usually neither: two tests, not an iterator chain.
                    for ef in [&swept, &flushed].into_iter().flatten() {
                        count(st, ef);
                    }
                }
                if !mode.print {
                    swept = None;
                    flushed = None;
                }
                let changes = d.take_table_changes();
                let now = d.flows_len();
                let len_changed = (now != *len).then(|| u32::try_from(now).unwrap_or(u32::MAX));
                *len = now;
                let quiet = kept.is_none()
                    && rendered.is_none()
                    && learn.is_empty()
                    && !dns
                    && swept.is_none()
                    && flushed.is_none()
                    && changes == TableChanges::default()
                    && len_changed.is_none();
                if quiet {
                    continue;
                }
                outs.push(Out {
                    shard,
                    idx: u32::try_from(i).unwrap_or(u32::MAX),
                    owner,
                    packet: kept,
                    swept: swept.unwrap_or_default(),
                    flushed: flushed.unwrap_or_default(),
                    changes,
                    len: len_changed,
                    dns,
                    line: rendered,
                    learn,
                });
            }
            (outs, text)
        }

        /// The end of the capture: close what is open, report the rest.
        fn end(mut self) -> Done {
            self.d.finish(self.last);
            let mut end = self.d.take_flushed();
            if let Some(st) = &mut self.mode.stats {
                count(st, &end);
            }
            if !self.mode.print {
                end = Default::default();
            }
            Done::End {
                events: end.0,
                notes: end.1,
                counters: self.d.counters().clone(),
                stats: self.mode.stats.map(Box::new),
            }
        }
    }

    /// Printed outputs come back to be freed by the thread that allocated
    /// them: the allocator's per-thread heaps then reuse that memory
    /// instead of growing.
    fn free_returned(trash: &Receiver<Vec<Out>>, spare: &mut Vec<Out>) {
        while let Ok(mut old) = trash.try_recv() {
            old.clear();
            if old.capacity() > spare.capacity() && old.capacity() <= OUTS_KEEP {
                *spare = old;
            }
        }
    }

    /// A shard other than the first: dissects the batches the first one
    /// read.
    fn worker(
        mut sh: Shard,
        jobs: &Receiver<Job>,
        done: &SyncSender<Done>,
        trash: &Receiver<Vec<Out>>,
    ) {
        for job in jobs {
            free_returned(trash, &mut sh.spare);
            let (outs, text) = sh.batch(&job.batch);
            let seq = job.seq;
            // Let go of the batch before reporting, so that the printer
            // holds the last reference and can recycle it.
            drop(job);
            let d = Done::Batch {
                seq,
                outs,
                text,
                batch: None,
            };
            if done.send(d).is_err() {
                return;
            }
        }
        let _ = done.send(sh.end());
    }

    /// What the reading shard reads with: the capture, each frame's shard,
    /// how many batches it reads ahead.
    struct Reading<'a> {
        reader: BatchReader,
        tag: &'a dyn Fn(&[u8]) -> u32,
        read_ahead: usize,
    }

    /// The first shard also reads the capture: it hands each batch to the
    /// other shards, dissects its own part while they do theirs, and passes
    /// the batch on to the printer. Two threads busy on two cores, instead
    /// of a reader thread besides them that takes turns with them (and
    /// their caches) and a copy of every frame from one core to another.
    fn reading_worker(
        mut sh: Shard,
        reading: Reading<'_>,
        others: Vec<SyncSender<Job>>,
        done: &SyncSender<Done>,
        trash: &Receiver<Vec<Out>>,
        recycle: &Receiver<Batch>,
    ) {
        let Reading {
            mut reader,
            tag,
            read_ahead,
        } = reading;
        let mut seq = 0u64;
        let mut ahead: VecDeque<(u64, Arc<Batch>)> = VecDeque::new();
        let mut end = None;
        loop {
            free_returned(trash, &mut sh.spare);
            // Read ahead and hand each batch out at once, so that a shard
            // with less to do in this batch starts on the next one instead
            // of waiting for this shard to read it.
            while end.is_none() && ahead.len() < read_ahead {
                let mut batch = recycle.try_recv().unwrap_or_default();
                end = reader.fill(&mut batch, tag);
                if batch.frames.is_empty() {
                    continue;
                }
                let batch = Arc::new(batch);
                for tx in &others {
                    let job = Job {
                        seq,
                        batch: Arc::clone(&batch),
                    };
                    if tx.send(job).is_err() {
                        return;
                    }
                }
                ahead.push_back((seq, batch));
                seq += 1;
            }
            let Some((seq, batch)) = ahead.pop_front() else {
                break;
            };
            let (outs, text) = sh.batch(&batch);
            let d = Done::Batch {
                seq,
                outs,
                text,
                batch: Some(batch),
            };
            if done.send(d).is_err() {
                return;
            }
        }
        // The other shards finish what they were given.
        drop(others);
        if let Some(end) = end
            && done.send(Done::Eof(end)).is_err()
        {
            return;
        }
        let _ = done.send(sh.end());
    }

    /// Count events and notes into `st`.
    fn count(st: &mut Stats, (events, notes): &(Vec<Event>, Vec<Note>)) {
        for e in events {
            st.add_event(e);
        }
        for n in notes {
            st.add_note(n);
        }
    }

    /// Events the printer learns names from ([`crate::names::Names::event`]).
    fn teaches(e: &Event) -> bool {
        use crate::model::{Dir, EventKind};
        e.kind == EventKind::StreamHeader
            || (e.kind == EventKind::Tls && e.dir == Dir::ClientToServer && e.info.contains("SNI="))
    }

    /// Render `p`'s line into `text`, all but the addresses.
    fn render(
        text: &mut Vec<u8>,
        line: &mut String,
        clock: &mut crate::output::Clock,
        p: &Packet,
    ) -> Line {
        let start = text.len();
        line.clear();
        crate::output::push_line_head(line, clock, p);
        text.extend_from_slice(line.as_bytes());
        let split = text.len();
        line.clear();
        crate::output::push_line_tail(line, p);
        text.extend_from_slice(line.as_bytes());
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Line {
            start: at(start),
            split: at(split),
            end: at(text.len()),
            ends: p.src.zip(p.dst),
        }
    }

    /// What the shards' outputs need to read as one dissector's: flow
    /// numbers 0, 1, 2, … in opening order, and the flows open at once.
    #[derive(Default)]
    struct Merge {
        /// A shard's flow id (its opening frame) → the flow's number.
        ids: HashMap<u32, u32>,
        next_id: u32,
        /// Each shard's flow table size.
        lens: Vec<u64>,
        max_concurrent: u64,
    }

    impl Merge {
        fn id(&self, local: u32) -> u32 {
            self.ids.get(&local).copied().unwrap_or(local)
        }

        fn renumber(&self, events: &mut [Event]) {
            for e in events {
                e.flow = self.id(e.flow);
                self.renumber_notes(&mut e.notes);
            }
        }

        fn renumber_notes(&self, notes: &mut [Note]) {
            for n in notes {
                if let Some(f) = n.flow {
                    n.renumber(self.id(f));
                }
            }
        }

        /// Flows flushed by several shards at one frame (the idle sweep, the
        /// end): oldest flow first, as one dissector closes them.
        fn in_flow_order(&self, lists: Vec<(Vec<Event>, Vec<Note>)>) -> (Vec<Event>, Vec<Note>) {
            let mut events = Vec::new();
            let mut notes = Vec::new();
            for (mut e, mut n) in lists {
                events.append(&mut e);
                notes.append(&mut n);
            }
            // Stable: a flow's own events keep their order. Local ids are
            // opening frames, so their order is the flows' opening order.
            events.sort_by_key(|e| e.flow);
            notes.sort_by_key(|n| n.flow);
            self.renumber(&mut events);
            self.renumber_notes(&mut notes);
            (events, notes)
        }
    }

    pub(super) fn run_file_parallel(settings: Settings) -> anyhow::Result<Outcome> {
        let shards = u32::try_from(settings.threads).unwrap_or(2).max(2);
        let source = FileSource::open(&settings.path)?;
        let linktype = source.linktype();
        let path = source.path().to_owned();
        // The shards count the statistics; the printer needs the events
        // unless only figures are printed; plain lines are rendered by the
        // shards, all but the names.
        let print = !settings.quiet || settings.expert;
        let lines = settings.format == crate::cli::Format::Text
            && !settings.verbose
            && !settings.expert
            && !settings.quiet;
        // Batches ahead of the printer: what the printer has to wait for
        // when the shards are the bottleneck, what waits for the printer
        // when it is (NDJSON, -V, --expert: large events).
        let printer_bound = print && !lines;
        let (read_ahead, in_flight) = if printer_bound {
            (1, 1)
        } else {
            (READ_AHEAD, IN_FLIGHT)
        };
        // Only figures: batches four times larger, a quarter of the
        // hand-overs (each wakes a thread on a busy core).
        let block = if print {
            crate::capture::BULK_BYTES
        } else {
            FIGURES_BLOCK
        };
        let (done_tx, done_rx) = mpsc::sync_channel::<Done>(in_flight * shards as usize);
        let mut job_txs = Vec::new();
        let mut trash_txs: Vec<mpsc::Sender<Vec<Out>>> = Vec::new();
        let mut workers = Vec::new();
        let (recycle, recycle_rx) = mpsc::channel::<Batch>();
        let mut first = None;
        for shard in 0..shards {
            let mut cfg = settings.dissector.clone();
            cfg.shard = shard;
            cfg.shards = shards;
            cfg.limits.max_flows = (cfg.limits.max_flows / shards as usize).max(1);
            let (trash_tx, trash_rx) = mpsc::channel::<Vec<Out>>();
            let mode = Mode {
                stats: settings.stats.then(Stats::default),
                print,
                lines,
            };
            let sh = Shard::new(Dissector::new(cfg), shard, linktype, mode);
            trash_txs.push(trash_tx);
            if shard == 0 {
                first = Some((sh, trash_rx));
                continue;
            }
            let (tx, rx) = mpsc::sync_channel::<Job>(in_flight + read_ahead);
            let done = done_tx.clone();
            workers.push(std::thread::spawn(move || {
                worker(sh, &rx, &done, &trash_rx);
            }));
            job_txs.push(tx);
        }
        if let Some((sh, trash_rx)) = first {
            let reader = BatchReader::new(source, settings.count).with_block(block);
            let done = done_tx.clone();
            let tag = move |f: &[u8]| shard_of(linktype, f, shards);
            workers.push(std::thread::spawn(move || {
                let reading = Reading {
                    reader,
                    tag: &tag,
                    read_ahead,
                };
                reading_worker(sh, reading, job_txs, &done, &trash_rx, &recycle_rx);
            }));
        }
        drop(done_tx);
        let stdout = io::stdout();
        let mut printer = Printer::new(BufWriter::with_capacity(1 << 16, stdout.lock()), settings);
        printer.count_stats = false;
        let mut merge = Merge {
            lens: vec![0; shards as usize],
            ..Merge::default()
        };
        // seq → (shards reported, outputs, each shard's text)
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut batches_held: BTreeMap<u64, Arc<Batch>> = BTreeMap::new();
        let mut next_print = 0u64;
        let mut outcome = Outcome::Complete;
        let mut last = 0;
        let mut ends = Vec::new();
        let print_ready = |pending: &mut BTreeMap<u64, Pending>,
                           held: &mut BTreeMap<u64, Arc<Batch>>,
                           next_print: &mut u64,
                           printer: &mut Printer<_>,
                           merge: &mut Merge|
         -> io::Result<()> {
            while let Some((reported, _, _)) = pending.get(next_print) {
                if *reported < shards {
                    break;
                }
                let Some((_, mut lists, texts)) = pending.remove(next_print) else {
                    break;
                };
                let batch = held.get(next_print);
                // The clock starts at the first frame, shown or not.
                if let Some(f) = batch.and_then(|b| b.frames.first()) {
                    printer.clock.relative(f.ts);
                }
                // Frame order, merged from the shards' lists (each in frame
                // order): at one frame the other shards' sweeps first, then
                // the frame's own shard. Nothing is moved.
                {
                    let mut heads: Vec<_> =
                        lists.iter_mut().map(|l| l.iter_mut().peekable()).collect();
                    let mut group: Vec<&mut Out> = Vec::new();
                    while let Some(idx) = heads
                        .iter_mut()
                        .filter_map(|h| h.peek().map(|o| o.idx))
                        .min()
                    {
                        group.clear();
                        for h in &mut heads {
                            while let Some(o) = h.next_if(|o| o.idx == idx) {
                                group.push(o);
                            }
                        }
                        group.sort_by_key(|o| (o.owner, o.shard));
                        print_frame(
                            &mut group,
                            batch.map(|b| &**b),
                            &texts,
                            linktype,
                            printer,
                            merge,
                        )?;
                    }
                }
                // Each shard's list goes back to it, to be freed there (the
                // allocator's per-thread heaps) and reused.
                for (tx, l) in trash_txs.iter().zip(lists) {
                    let _ = tx.send(l);
                }
                if let Some(b) = held
                    .remove(next_print)
                    .and_then(|b| Arc::try_unwrap(b).ok())
                {
                    let _ = recycle.send(b);
                }
                *next_print += 1;
            }
            Ok(())
        };
        let mut absorb = |d: Done,
                          pending: &mut BTreeMap<u64, Pending>,
                          held: &mut BTreeMap<u64, Arc<Batch>>|
         -> Result<(), CaptureError> {
            match d {
                Done::Batch {
                    seq,
                    outs,
                    text,
                    batch,
                } => {
                    if let Some(b) = batch {
                        if let Some(f) = b.frames.last() {
                            last = f.number;
                        }
                        held.insert(seq, b);
                    }
                    let e = pending
                        .entry(seq)
                        .or_insert_with(|| (0, Vec::new(), Vec::new()));
                    e.0 += 1;
                    let shard = outs.first().map_or(0, |o| o.shard as usize);
                    if !outs.is_empty() {
                        put_at(&mut e.1, shard, outs);
                    }
                    if !text.is_empty() {
                        put_at(&mut e.2, shard, text);
                    }
                }
                // After the reading shard's last batch: `last` is the
                // capture's last frame.
                Done::Eof(Ok(End::Complete)) => {}
                Done::Eof(Ok(End::Truncated(m))) => outcome = truncated(&path, last, &m),
                Done::Eof(Err(e)) => return Err(e),
                Done::End {
                    events,
                    notes,
                    counters,
                    stats,
                } => ends.push((events, notes, counters, stats)),
            }
            Ok(())
        };
        for d in &done_rx {
            absorb(d, &mut pending, &mut batches_held)?;
            print_ready(
                &mut pending,
                &mut batches_held,
                &mut next_print,
                &mut printer,
                &mut merge,
            )?;
        }
        for w in workers {
            let _ = w.join();
        }
        let mut counters = Counters::default();
        let mut lists = Vec::new();
        for (events, notes, c, stats) in ends {
            lists.push((events, notes));
            counters.add(&c);
            if let Some(s) = stats {
                printer.stats.merge(*s);
            }
        }
        let (events, notes) = merge.in_flow_order(lists);
        printer.flushed(&events, &notes, last)?;
        counters.max_concurrent_flows = usize::try_from(merge.max_concurrent).unwrap_or(usize::MAX);
        printer.report(&counters)?;
        Ok(outcome)
    }

    /// `v[i] = x`, growing `v` with empty entries up to `i` first.
    fn put_at<T: Default>(v: &mut Vec<T>, i: usize, x: T) {
        if v.len() <= i {
            v.resize_with(i + 1, T::default);
        }
        if let Some(slot) = v.get_mut(i) {
            *slot = x;
        }
    }

    /// Print one frame's outputs (`group`: every shard's, the owner's last)
    /// as one dissector would have: the frame, then the flows it closed.
    fn print_frame<W: io::Write>(
        group: &mut [&mut Out],
        batch: Option<&Batch>,
        texts: &[Vec<u8>],
        linktype: i32,
        printer: &mut Printer<W>,
        merge: &mut Merge,
    ) -> io::Result<()> {
        let mut swept = Vec::new();
        let mut flushed = None;
        let mut closed = Vec::new();
        let mut number = 0;
        for o in group.iter_mut() {
            let shard = o.shard as usize;
            if let Some(n) = o.changes.len_after_insert {
                // One dissector's table right after this insertion: this
                // shard's, and every other shard's as of this frame.
                let others: u64 = merge
                    .lens
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != shard)
                    .map(|(_, l)| *l)
                    .sum();
                merge.max_concurrent = merge.max_concurrent.max(u64::from(n) + others);
            }
            if let (Some(l), Some(slot)) = (o.len, merge.lens.get_mut(shard)) {
                *slot = u64::from(l);
            }
            if let Some(id) = o.changes.created {
                merge.ids.insert(id, merge.next_id);
                merge.next_id = merge.next_id.wrapping_add(1);
            }
            closed.append(&mut o.changes.closed);
            if o.dns
                && let Some(names) = &mut printer.names
                && let Some(f) = batch.and_then(|b| b.frames.get(o.idx as usize))
                && let Some(data) = batch.and_then(|b| b.bytes.get(f.start..f.end))
                && let Some(u) = crate::link::udp_datagram(linktype, data)
            {
                names.udp(u.sport, u.payload);
            }
            if !o.swept.0.is_empty() || !o.swept.1.is_empty() {
                swept.push(std::mem::take(&mut o.swept));
            }
            if let Some(names) = &mut printer.names {
                for e in &o.learn {
                    names.event(e);
                }
            }
            if let Some(l) = &o.line {
                let text = texts.get(shard).map_or(&[][..], |t| &t[..]);
                let head = text
                    .get(l.start as usize..l.split as usize)
                    .unwrap_or_default();
                let tail = text
                    .get(l.split as usize..l.end as usize)
                    .unwrap_or_default();
                printer.rendered_line(head, l.ends, tail)?;
            }
            if let Some(p) = &mut o.packet {
                number = p.number;
                if let Some(f) = &mut p.flow {
                    *f = merge.id(*f);
                }
                merge.renumber(&mut p.events);
                merge.renumber_notes(&mut p.notes);
                printer.packet(p)?;
            }
            if o.owner {
                flushed = Some(std::mem::take(&mut o.flushed));
            }
        }
        let (mut events, mut notes) = merge.in_flow_order(swept);
        if let Some((mut e, mut n)) = flushed {
            merge.renumber(&mut e);
            merge.renumber_notes(&mut n);
            events.append(&mut e);
            notes.append(&mut n);
        }
        if !events.is_empty() || !notes.is_empty() {
            if number == 0 {
                number = group
                    .first()
                    .and_then(|o| batch.and_then(|b| b.frames.get(o.idx as usize)))
                    .map_or(0, |f| f.number);
            }
            printer.flushed(&events, &notes, number)?;
        }
        for id in closed {
            merge.ids.remove(&id);
        }
        Ok(())
    }
}

/// A first pass over the file: the names it resolves (DNS answers, SNI,
/// stream domains) and, with `jid`, the flows of that account. The same
/// dissector settings as the real pass, so flow numbers agree.
/// `--host NAME` and `--jid`, decided in first passes over the file:
/// the names' addresses join `settings.dissector.hosts`; returns the names
/// learnt and the account's flows. Shared by the headless run and the TUI.
///
/// # Errors
/// The file cannot be read, or a name is not resolved by the capture.
pub(crate) fn first_pass(
    settings: &mut Settings,
) -> anyhow::Result<(
    Option<crate::names::Names>,
    Option<std::collections::HashSet<u32>>,
)> {
    let mut learnt = None;
    if !settings.host_names.is_empty() {
        let (names, _) = prepass(settings, None)?;
        for h in &settings.host_names {
            let addrs = names.resolve(h);
            if addrs.is_empty() {
                let known = names.known();
                anyhow::bail!(
                    "--host {h}: the capture does not resolve this name (no DNS answer, TLS SNI or stream domain names it); {}",
                    if known.is_empty() {
                        "it resolves no names at all".to_owned()
                    } else {
                        format!("names it resolves: {}", known.join(", "))
                    }
                );
            }
            settings.dissector.hosts.extend(addrs);
        }
        learnt = Some(names);
    }
    let mut jid_flows = None;
    if let Some(jid) = settings.jid.clone() {
        let (names, flows) = prepass(settings, Some(&jid))?;
        learnt.get_or_insert(names);
        jid_flows = flows;
    }
    Ok((learnt, jid_flows))
}

fn prepass(
    settings: &Settings,
    jid: Option<&str>,
) -> anyhow::Result<(crate::names::Names, Option<std::collections::HashSet<u32>>)> {
    if settings.path == "-" {
        anyhow::bail!(
            "--host NAME and --jid read the capture twice: give a file, not standard input"
        );
    }
    let source = FileSource::open(&settings.path)?;
    let linktype = source.linktype();
    let mut cfg = settings.dissector.clone();
    cfg.keep_xml = jid.is_some();
    let mut dissector = Dissector::new(cfg);
    let mut names = crate::names::Names::default();
    let mut flows = jid.map(crate::views::JidFlows::new);
    let (batches, recycle, reader) = spawn_reader(source, settings.count);
    let mut packet = Packet::default();
    let mut learn = |p: &[Event], names: &mut crate::names::Names| {
        for e in p {
            names.event(e);
            if let Some(f) = &mut flows {
                f.event(e);
            }
        }
    };
    let mut last = 0;
    for msg in &batches {
        match msg {
            ReaderMsg::Batch(batch) => {
                for frame in batch.iter() {
                    last = frame.number;
                    dissector.dissect(
                        frame.number,
                        frame.ts,
                        linktype,
                        frame.data,
                        frame.len,
                        &mut packet,
                    );
                    if packet.flow.is_none()
                        && let Some(u) = crate::link::udp_datagram(linktype, frame.data)
                    {
                        names.udp(u.sport, u.payload);
                    }
                    learn(&packet.events, &mut names);
                    let (ev, _) = dissector.take_flushed();
                    learn(&ev, &mut names);
                }
                let _ = recycle.send(batch);
            }
            ReaderMsg::End(Ok(_)) => break,
            ReaderMsg::End(Err(e)) => return Err(e.into()),
        }
    }
    drop(batches);
    let _ = reader.join();
    dissector.finish(last);
    let (ev, _) = dissector.take_flushed();
    learn(&ev, &mut names);
    Ok((names, flows.map(|f| f.flows)))
}
