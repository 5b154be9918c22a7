//! The interactive TUI: Ethereal's three panes for XMPP (packet table,
//! decoded XML, bytes), with search, a filter bar, follow stream and a flows
//! view, in ratatui + crossterm.
//!
//! ```text
//!  loader thread ──Loaded batches──┐
//!  input thread ───Key/Mouse/Resize┤
//!  decoder thread ─Detail/Transcript┼─▶ one channel ─▶ App::update ─▶ view()
//!  search thread ──SearchHits──────┘                      │
//!                ◀───────────── Commands ─────────────────┘
//! ```
//!
//! The loader dissects the file once and keeps a compact [`index::Row`] per
//! packet; the selected packet's bytes and XML are decoded again on demand
//! ([`decode`]). The terminal is restored on quit, Ctrl-C, SIGTERM/SIGHUP,
//! error and panic; Ctrl-Z suspends.

pub mod app;
pub mod decode;
pub mod filter;
pub mod index;
pub mod layout;
pub mod loader;
pub mod pcapidx;
pub mod theme;
pub mod view;
pub mod xml;

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Once};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};

use crate::capture::FileSource;
use crate::cli::Settings;
use crate::run::Outcome;

use app::{App, AppEvent, Command};
use decode::Decoder;
use theme::Theme;

/// Set by the panic hook: the main loop stops at once.
static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Give the terminal back: cooked mode, main screen, no mouse, cursor shown.
/// Safe to call more than once.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
}

fn enter_terminal() -> io::Result<()> {
    enable_raw_mode()?;
    execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        cursor::Hide
    )
}

/// The terminal in TUI mode; dropping it restores the terminal.
struct TermGuard {
    term: Terminal<CrosstermBackend<Stdout>>,
}

impl TermGuard {
    fn enter() -> anyhow::Result<Self> {
        HOOK.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICKED.store(true, Ordering::SeqCst);
                restore_terminal();
                prev(info);
            }));
        });
        if let Err(e) = enter_terminal() {
            restore_terminal();
            return Err(e).context("cannot set up the terminal");
        }
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(term) => Ok(Self { term }),
            Err(e) => {
                restore_terminal();
                Err(e).context("cannot set up the terminal")
            }
        }
    }

    /// Ctrl-Z: restore, stop until `fg`, then take the terminal again.
    fn suspend(&mut self) -> anyhow::Result<()> {
        restore_terminal();
        signal_hook::low_level::raise(signal_hook::consts::SIGTSTP)?;
        enter_terminal()?;
        // A full redraw. (`Terminal::clear` would ask the terminal where
        // the cursor is, racing the input thread for the answer.)
        let size = self.term.size()?;
        self.term
            .resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))?;
        Ok(())
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Keys, mouse and resizes, forwarded to the app's channel.
fn spawn_input(tx: Sender<AppEvent>) {
    let _ = thread::Builder::new().name("input".into()).spawn(move || {
        loop {
            let ev = match event::read() {
                Ok(Event::Key(k)) => AppEvent::Key(k),
                Ok(Event::Mouse(m)) => AppEvent::Mouse(m),
                Ok(Event::Resize(w, h)) => AppEvent::Resize(w, h),
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
}

/// Decodes details and transcripts; only the newest request of each kind
/// waiting is served.
fn spawn_decoder(decoder: Decoder, rx: Receiver<Command>, tx: Sender<AppEvent>) {
    let _ = thread::Builder::new()
        .name("decoder".into())
        .spawn(move || {
            let mut decoder = decoder;
            while let Ok(first) = rx.recv() {
                let mut detail = None;
                let mut follow = None;
                for c in std::iter::once(first).chain(rx.try_iter()) {
                    match c {
                        Command::Detail(r) => detail = Some(r),
                        Command::Follow(r) => follow = Some(r),
                        Command::Search { .. } | Command::Suspend => {}
                    }
                }
                if let Some(r) = detail
                    && tx.send(AppEvent::Detail(decoder.detail(&r))).is_err()
                {
                    return;
                }
                if let Some(r) = follow {
                    let t = decoder.follow(&r);
                    if tx.send(AppEvent::Transcript(Box::new(t))).is_err() {
                        return;
                    }
                }
            }
        });
}

/// Run the TUI on `settings.path` until the user quits.
///
/// # Errors
/// The capture cannot be opened, or the terminal cannot be used.
pub fn run_tui(settings: Settings) -> anyhow::Result<Outcome> {
    let path = settings.path.clone();
    let cfg = settings.dissector.clone();
    // Fail before taking the terminal when the file cannot be read.
    let linktype = if path == "-" {
        0
    } else {
        FileSource::open(&path)?.linktype()
    };
    let (tx, rx) = mpsc::channel::<AppEvent>();
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let tx = tx.clone();
        let cancel = cancel.clone();
        let path = path.clone();
        let cfg = cfg.clone();
        let count = settings.count;
        thread::Builder::new()
            .name("loader".into())
            .spawn(move || {
                loader::load(&path, &cfg, count, &cancel, &mut |l| {
                    tx.send(AppEvent::Loaded(Box::new(l))).is_ok()
                });
            })
            .context("cannot start the loader thread")?;
    }
    let (dec_tx, dec_rx) = mpsc::channel::<Command>();
    spawn_decoder(Decoder::new(&path, linktype, &cfg), dec_rx, tx.clone());
    let terminate = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        let _ = signal_hook::flag::register(sig, terminate.clone());
    }
    let search_gen = Arc::new(AtomicU64::new(0));

    let mut guard = TermGuard::enter()?;
    let size = guard.term.size().unwrap_or_default();
    let mut app = App::new(
        &path,
        Theme::from_env(),
        cfg.show_secrets,
        (size.width, size.height),
    );
    spawn_input(tx.clone());
    let result = (|| -> anyhow::Result<()> {
        loop {
            guard.term.draw(|f| view::view(&app, f))?;
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(ev) => {
                    app.update(ev);
                    // Take everything queued before drawing again.
                    for ev in rx.try_iter().take(4096) {
                        app.update(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if PANICKED.load(Ordering::SeqCst) {
                anyhow::bail!("internal error: a thread panicked (see above)");
            }
            if terminate.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut last_detail = None;
            for c in app.take_commands() {
                match c {
                    Command::Detail(r) => last_detail = Some(Command::Detail(r)),
                    Command::Follow(r) => {
                        let _ = dec_tx.send(Command::Follow(r));
                    }
                    Command::Search { generation, re } => {
                        search_gen.store(generation, Ordering::SeqCst);
                        let (tx, path, cfg, current) =
                            (tx.clone(), path.clone(), cfg.clone(), search_gen.clone());
                        let count = settings.count;
                        let _ = thread::Builder::new().name("search".into()).spawn(move || {
                            decode::search(&path, &cfg, count, &re, generation, &mut |h| {
                                current.load(Ordering::SeqCst) == generation
                                    && tx.send(AppEvent::Search(h)).is_ok()
                            });
                        });
                    }
                    Command::Suspend => {
                        guard.suspend()?;
                        let s = guard.term.size().unwrap_or_default();
                        app.update(AppEvent::Resize(s.width, s.height));
                    }
                }
            }
            if let Some(c) = last_detail {
                let _ = dec_tx.send(c);
            }
            if app.quit {
                return Ok(());
            }
        }
    })();
    cancel.store(true, Ordering::SeqCst);
    search_gen.store(u64::MAX, Ordering::SeqCst);
    drop(guard);
    result?;
    match &app.progress.problem {
        Some(p) if p.contains("middle of a record") => {
            Ok(Outcome::Truncated(format!("{path}: {p}")))
        }
        Some(p) if app.index.is_empty() => Err(anyhow::anyhow!("{p}")),
        _ => Ok(Outcome::Complete),
    }
}
