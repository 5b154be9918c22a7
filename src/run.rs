//! The headless run: read a capture, dissect, print.

use std::io::{self, BufWriter, Write};

use crate::capture::{End, FileSource, ReaderMsg, spawn_reader};
use crate::cli::{Format, Settings};
use crate::dissect::Dissector;
use crate::model::{Event, Note, Packet, Timestamp};
use crate::output::{self, Clock, expert::Expert, stats::Stats};

/// How a run ended, for the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The capture ended inside a record: what came before was processed.
    Truncated(String),
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
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, settings: Settings) -> Self {
        Self {
            out,
            settings,
            clock: Clock::default(),
            line: String::new(),
            json: Vec::new(),
            stats: Stats::default(),
            expert: Expert::default(),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Dissect one frame and print what it completes, then what left the
    /// pipeline with it (evicted or idle flows).
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
    ) -> io::Result<()> {
        dissector.dissect(number, ts, linktype, data, wire_len, packet);
        self.packet(packet)?;
        let (events, notes) = dissector.take_flushed();
        if !events.is_empty() || !notes.is_empty() {
            self.flushed(&events, &notes, number)?;
        }
        Ok(())
    }

    /// The end of the capture (`last` is the last frame's number): what the
    /// dissector still held, the expert summary, `--stats`, and the output
    /// flushed.
    pub(crate) fn finish(&mut self, dissector: &mut Dissector, last: u64) -> anyhow::Result<()> {
        dissector.finish(last);
        let (events, notes) = dissector.take_flushed();
        self.flushed(&events, &notes, last)?;
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
            self.stats.set_counters(dissector.counters());
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

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn packet(&mut self, p: &Packet) -> io::Result<()> {
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
        if self.settings.stats {
            for e in &p.events {
                self.stats.add_event(e);
            }
            for n in &p.notes {
                self.stats.add_note(n);
            }
        }
        if self.settings.quiet {
            return Ok(());
        }
        match self.settings.format {
            Format::Text | Format::Json => {
                if output::shown(p) {
                    output::write_line(&mut self.out, &mut self.line, &mut self.clock, p)?;
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
        if self.settings.stats {
            for e in events {
                self.stats.add_event(e);
            }
            for n in notes {
                self.stats.add_note(n);
            }
        }
        if self.settings.quiet || (events.is_empty() && notes.is_empty()) {
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
pub fn run_file(settings: Settings) -> anyhow::Result<Outcome> {
    let source = FileSource::open(&settings.path)?;
    let linktype = source.linktype();
    let mut dissector = Dissector::new(settings.dissector.clone());
    let stdout = io::stdout();
    let mut printer = Printer::new(BufWriter::with_capacity(1 << 16, stdout.lock()), settings);
    let path = source.path().to_owned();
    let (batches, recycle, reader) = spawn_reader(source, printer.settings().count);
    let mut packet = Packet::default();
    let mut outcome = Outcome::Complete;
    let mut last = 0;
    for msg in &batches {
        match msg {
            ReaderMsg::Batch(batch) => {
                for frame in batch.iter() {
                    last = frame.number;
                    printer.frame(
                        &mut dissector,
                        &mut packet,
                        frame.number,
                        frame.ts,
                        linktype,
                        frame.data,
                        frame.len,
                    )?;
                }
                let _ = recycle.send(batch);
            }
            ReaderMsg::End(Ok(End::Complete)) => break,
            ReaderMsg::End(Ok(End::Truncated(m))) => {
                outcome = Outcome::Truncated(format!(
                    "{path}: the file ends in the middle of a record after frame {last} ({m}); everything before it was read"
                ));
                break;
            }
            ReaderMsg::End(Err(e)) => return Err(e.into()),
        }
    }
    drop(batches);
    let _ = reader.join();
    printer.finish(&mut dissector, last)?;
    Ok(outcome)
}
