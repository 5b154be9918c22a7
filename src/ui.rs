//! The interactive TUI: Ethereal's three panes for XMPP (packet table,
//! decoded XML, bytes), with search, a filter bar, follow stream and a flows
//! view, in ratatui + crossterm.
//!
//! ```text
//!  loader thread ──Loaded batches──┐
//!  input thread ───Key/Mouse/Resize┤
//!  decoder thread ─Detail/Transcript┼─▶ one channel ─▶ App::update ─▶ view()
//!  search thread ──SearchHits──────┤                      │
//!  story thread ───Story───────────┘                      │
//!                ◀───────────── Commands ─────────────────┘
//! ```
//!
//! The loader dissects the file once and the index keeps 32 bytes per
//! packet ([`index::Row`], packed) plus its Info text LZ4-compressed in
//! blocks ([`textstore`]); the selected packet's bytes and XML are decoded again on demand
//! ([`decode`]). The terminal is restored on quit, Ctrl-C, SIGTERM/SIGHUP,
//! error and panic; Ctrl-Z suspends.

pub mod app;
pub mod decode;
pub mod filter;
pub mod index;
pub mod layout;
pub mod loader;
pub mod pcapidx;
pub mod story;
pub mod textstore;
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

use std::path::PathBuf;

use crate::capture::FileSource;
use crate::cli::Settings;
use crate::dissect::Config;
use crate::live::{Ended, LiveOptions, Session, privs};
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
                        Command::Search { .. } | Command::Suspend | Command::Story { .. } => {}
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

/// `--host NAME` and `--jid` (with `--tui`): decided in a first pass over
/// the file, as headless ([`crate::run::first_pass`]); the names'
/// addresses join the dissector's hosts. Returns `--jid`'s flows.
fn names_and_account(
    settings: &mut Settings,
) -> anyhow::Result<Option<std::collections::HashSet<u32>>> {
    if settings.host_names.is_empty() && settings.jid.is_none() {
        return Ok(None);
    }
    eprintln!(
        "xmppscope: reading {} once for --host NAME / --jid…",
        settings.path
    );
    Ok(crate::run::first_pass(settings)?.1)
}

/// `--jid`: the table shows the account's flows (a filter the user can
/// clear) and the story views keep to the account.
fn start_with_jid(app: &mut App, jid: Option<&str>, flows: Option<std::collections::HashSet<u32>>) {
    let Some(jid) = jid else { return };
    let flows = flows.unwrap_or_default();
    app.story.jid = Some(jid.to_owned());
    let mut v: Vec<u32> = flows.into_iter().collect();
    v.sort_unstable();
    let ids: Vec<String> = v.iter().map(ToString::to_string).collect();
    if ids.is_empty() {
        app.status = Some(format!(
            "--jid {jid}: no flow of this account in the capture"
        ));
        return;
    }
    if app.apply_filter(&format!("flow {}", ids.join(","))).is_ok() {
        app.status = Some(format!("--jid {jid}: its flows only; Esc shows all"));
    }
}

/// A live capture feeding the TUI: the loader thread that owns it, and the
/// TUI's own temporary savefile (when no `-w` was given).
struct LiveRun {
    loader: thread::JoinHandle<Ended>,
    temp_dir: Option<PathBuf>,
}

/// Where a live capture's packets go when the user gave no `-w`: a fresh
/// private directory (mode 0700, refused when the name exists, so nothing
/// there can be a planted link) in the temporary directory, as Wireshark
/// keeps a temporary file. Removed on exit.
fn temp_savefile(user: Option<&str>) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::DirBuilderExt as _;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("xmppscope-{}-{stamp}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create the temporary directory {}", dir.display()))?;
    let file = dir.join("live.pcapng");
    if let Some(user) = user {
        // After -Z the TUI re-reads the file as that user.
        privs::give_to(&dir, user)
            .with_context(|| format!("-Z {user}: cannot hand {} to that user", dir.display()))?;
    }
    Ok((dir, file))
}

/// Open the interfaces (before the terminal is taken, so that errors read
/// normally) and start the loader on the live capture.
fn start_live(
    settings: &Settings,
    live: &LiveOptions,
    tx: &Sender<AppEvent>,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<(String, i32, LiveRun)> {
    if live.savefile.as_deref() == Some("-") {
        anyhow::bail!(
            "-w - writes the packets to standard output, which the TUI draws on: give a file name, or --no-tui"
        );
    }
    let temp = match &live.savefile {
        Some(_) => None,
        None => Some(temp_savefile(live.user.as_deref())?),
    };
    let temp_file = temp.as_ref().map(|(_, f)| f.to_string_lossy().into_owned());
    let started = Session::start(
        live,
        temp_file.as_deref(),
        settings.count,
        settings.dissector.keylog.as_deref(),
        // The TUI stops the capture through `cancel` (q, Ctrl-C, signals).
        Arc::new(AtomicBool::new(false)),
        false,
    );
    let session = match started {
        Ok(s) => s,
        Err(e) => {
            if let Some((dir, _)) = &temp {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    };
    let lts = session.linktypes();
    let linktype = lts.first().copied().unwrap_or_default();
    if lts.iter().any(|&l| l != linktype) {
        let _ = session.finish();
        if let Some((dir, _)) = &temp {
            let _ = std::fs::remove_dir_all(dir);
        }
        anyhow::bail!(
            "the interfaces have different link types; the TUI shows one link type at a time: capture them separately, or headless with --no-tui"
        );
    }
    let path = session.savefile().unwrap_or_default().to_owned();
    let (tx, cancel, cfg) = (tx.clone(), cancel.clone(), settings.dissector.clone());
    let temporary = temp.is_some();
    let loader = thread::Builder::new()
        .name("live-loader".into())
        .spawn(move || {
            loader::load_live(session, temporary, &cfg, &cancel, &mut |l| {
                tx.send(AppEvent::Loaded(Box::new(l))).is_ok()
            })
        })
        .context("cannot start the capture thread")?;
    Ok((
        path,
        linktype,
        LiveRun {
            loader,
            temp_dir: temp.map(|(d, _)| d),
        },
    ))
}

/// Run the TUI on `settings.path`, or on the live capture of
/// `settings.live`, until the user quits.
///
/// # Errors
/// The capture cannot be opened, or the terminal cannot be used.
pub fn run_tui(mut settings: Settings) -> anyhow::Result<Outcome> {
    // (--host NAME and --jid are refused with -i by the flags.)
    let jid_flows = names_and_account(&mut settings)?;
    let cfg = settings.dissector.clone();
    let (tx, rx) = mpsc::channel::<AppEvent>();
    let cancel = Arc::new(AtomicBool::new(false));
    let (path, linktype, live) = match &settings.live {
        Some(l) => {
            let (path, linktype, run) = start_live(&settings, l, &tx, &cancel)?;
            (path, linktype, Some(run))
        }
        None => {
            let path = settings.path.clone();
            // Fail before taking the terminal when the file cannot be read.
            let linktype = if path == "-" {
                0
            } else {
                FileSource::open(&path)?.linktype()
            };
            let tx = tx.clone();
            let cancel = cancel.clone();
            let cfg = cfg.clone();
            let count = settings.count;
            let p = path.clone();
            thread::Builder::new()
                .name("loader".into())
                .spawn(move || {
                    loader::load(&p, &cfg, count, &cancel, &mut |l| {
                        tx.send(AppEvent::Loaded(Box::new(l))).is_ok()
                    });
                })
                .context("cannot start the loader thread")?;
            (path, linktype, None)
        }
    };
    let result = run_screen(
        &settings, jid_flows, &path, linktype, &cfg, tx, &rx, &cancel,
    );
    cancel.store(true, Ordering::SeqCst);
    let Some(live) = live else {
        return result;
    };
    // The terminal is back: the capture's statistics go where tcpdump's do.
    let ended = live.loader.join();
    let mut outcome = result;
    match ended {
        Ok(ended) => {
            eprint!("{}", crate::live::stats_report(&ended.stats));
            if let Some(dir) = &live.temp_dir {
                let _ = std::fs::remove_dir_all(dir);
                eprintln!(
                    "xmppscope: {} packets were shown from a temporary file, now removed (-w FILE keeps them)",
                    ended.saved
                );
            }
            if let (Ok(_), Some(e)) = (&outcome, ended.error) {
                outcome = Err(e);
            }
        }
        Err(_) => {
            if let Some(dir) = &live.temp_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            outcome = Err(anyhow::anyhow!(
                "internal error: the capture thread panicked"
            ));
        }
    }
    outcome
}

/// The screen's loop: draw, take events, run the app's commands.
#[allow(clippy::too_many_arguments)]
fn run_screen(
    settings: &Settings,
    jid_flows: Option<std::collections::HashSet<u32>>,
    path: &str,
    linktype: i32,
    cfg: &Config,
    tx: Sender<AppEvent>,
    rx: &Receiver<AppEvent>,
    cancel: &Arc<AtomicBool>,
) -> anyhow::Result<Outcome> {
    let path = path.to_owned();
    let (dec_tx, dec_rx) = mpsc::channel::<Command>();
    spawn_decoder(Decoder::new(&path, linktype, cfg), dec_rx, tx.clone());
    let terminate = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        let _ = signal_hook::flag::register(sig, terminate.clone());
    }
    let search_gen = Arc::new(AtomicU64::new(0));
    let story_gen = Arc::new(AtomicU64::new(0));

    let mut guard = TermGuard::enter()?;
    let size = guard.term.size().unwrap_or_default();
    let mut app = App::new(
        &path,
        Theme::from_env(),
        cfg.show_secrets,
        (size.width, size.height),
    );
    app.resolve_names = settings.resolve_names;
    start_with_jid(&mut app, settings.jid.as_deref(), jid_flows);
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
                    Command::Story { generation, jid } => {
                        // Read the file again (it may have grown: a live
                        // savefile); a newer request cancels this one.
                        story_gen.store(generation, Ordering::SeqCst);
                        let (tx, path, cfg, current) =
                            (tx.clone(), path.clone(), cfg.clone(), story_gen.clone());
                        let count = settings.count;
                        let _ = thread::Builder::new().name("story".into()).spawn(move || {
                            let go_on = || current.load(Ordering::SeqCst) == generation;
                            let data = story::compute(&path, &cfg, count, jid.as_deref(), &go_on);
                            if go_on() {
                                let r = story::StoryResult::new(generation, data);
                                let _ = tx.send(AppEvent::Story(Box::new(r)));
                            }
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
    story_gen.store(u64::MAX, Ordering::SeqCst);
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
