//! The TUI as a user runs it: the real binary in a detached tmux session of
//! fixed size, driven with `send-keys`, read with `capture-pane`. Each test
//! runs its own tmux server (`-L`), killed when the test ends.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util;

const PLAIN: &str = "captures/prosody-plain-signin-chat.pcap";
/// The longest a screen may take to show what is expected.
const WAIT: Duration = Duration::from_secs(10);

/// A private tmux server with one session running `sh`.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// `None` (skip) when tmux is missing, except under CI.
    pub(crate) fn start(name: &str, w: u16, h: u16) -> Option<Self> {
        let have = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "tmux is missing, and CI=true: the TUI end-to-end test cannot be skipped in CI"
                );
            }
            eprintln!("SKIPPED: tmux not installed; the TUI end-to-end test did not run");
            return None;
        }
        let t = Self {
            socket: format!("xmppscope-{name}-{}", std::process::id()),
        };
        let root = util::root();
        let out = t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            "-c",
            root.to_str().unwrap(),
            "env",
            "PS1=PROMPT$ ",
            "TERM=xterm-256color",
            "sh",
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.wait_for("the shell prompt", |s| s.contains("PROMPT$"));
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "send-keys {keys:?}");
    }

    pub(crate) fn literal(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "e2e", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text:?}");
    }

    pub(crate) fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "e2e"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn display(&self, format: &str) -> String {
        let out = self.tmux(&["display-message", "-p", "-t", "e2e", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Poll the screen until `ok` holds (at most [`WAIT`]); returns it.
    pub(crate) fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                no_secret(&s);
                return s;
            }
            assert!(
                start.elapsed() < WAIT,
                "waited {WAIT:?} for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run the binary with these arguments, then print its exit status.
    pub(crate) fn run(&self, args: &str) {
        let bin = env!("CARGO_BIN_EXE_xmppscope");
        self.literal(&format!("'{bin}' {args}; echo \"EXIT=$?\""));
        self.keys(&["Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn no_secret(screen: &str) {
    assert!(
        !screen.contains("alice-wonderland-42"),
        "password on screen:\n{screen}"
    );
    assert!(
        !screen.contains("AGFsaWNl"),
        "base64 of the credentials on screen:\n{screen}"
    );
}

/// Down, `/` search, `h`, `F`, `q`; then the shell is back.
#[test]
fn keys_in_tmux_then_the_terminal_is_restored() {
    let Some(t) = Tmux::start("keys", 120, 40) else {
        return;
    };
    t.run(&format!("--tui -r {PLAIN}"));
    let s = t.wait_for("the packet table", |s| {
        s.contains("AUTH PLAIN user=alice") && s.contains("▼ STREAM > localhost")
    });
    assert!(
        s.contains("xmppscope │ captures/prosody-plain-signin-chat.pcap"),
        "{s}"
    );
    assert!(
        s.contains("No.") && s.contains("Proto") && s.contains("Info"),
        "{s}"
    );
    assert_eq!(
        t.display("#{alternate_on}"),
        "1",
        "the TUI uses the alternate screen"
    );

    // Down: the second XMPP packet, decoded.
    t.keys(&["Down"]);
    t.wait_for("frame 6 decoded", |s| {
        s.contains("Frame 6:") && s.contains("▼ STREAM < localhost")
    });

    // Search the XML: the message body is only complete there.
    t.keys(&["/"]);
    t.literal("lunch today");
    t.wait_for("the search bar", |s| s.contains("/lunch today"));
    t.keys(&["Enter"]);
    let s = t.wait_for("the first match", |s| {
        s.contains("<body>Hi Bob! Are you free for lunch today?</body>")
    });
    assert!(s.contains("Frame 51:"), "{s}");
    assert!(s.contains("/lunch today/ 2 matches"), "{s}");
    t.keys(&["n"]);
    t.wait_for("the second match", |s| s.contains("Frame 53:"));

    // The selected row's host: both flows, both directions.
    t.keys(&["h"]);
    t.wait_for("the host filter", |s| s.contains("filter: host 127.0.0.1"));

    // Follow the flow: a transcript, one line per event.
    t.keys(&["F"]);
    let s = t.wait_for("the transcript", |s| {
        s.contains("Follow flow 1") && s.contains("S→C MESSAGE < alice@localhost/balcony: Hi Bob! Are you free for lunch today? [active]")
    });
    assert!(
        s.contains("C→S MESSAGE > alice@localhost: Sure, 12:30 at the usual place? [active]"),
        "{s}"
    );

    // Quit: the shell prompt is back on the main screen.
    t.keys(&["q"]);
    let s = t.wait_for("the exit", |s| s.contains("EXIT=0"));
    assert!(
        !s.contains("Follow flow"),
        "the TUI is still on screen:\n{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("PROMPT$") && !l.contains("xmppscope")),
        "{s}"
    );
    assert_eq!(
        t.display("#{alternate_on}"),
        "0",
        "left the alternate screen"
    );
    // The terminal is back in cooked mode: typed text echoes, a command runs.
    t.literal("echo cooked-$((1+1))");
    t.keys(&["Enter"]);
    t.wait_for("a shell command", |s| s.contains("cooked-2"));
}

/// Tiny and odd sizes, help, then Ctrl-C: no panic, terminal restored.
#[test]
fn resize_help_and_ctrl_c_in_tmux() {
    let Some(t) = Tmux::start("resize", 80, 24) else {
        return;
    };
    t.run(&format!("--tui -r {PLAIN}"));
    t.wait_for("the packet table", |s| s.contains("AUTH PLAIN user=alice"));
    for (w, h) in [("20", "5"), ("2", "2"), ("200", "60"), ("80", "24")] {
        let out = t.tmux(&["resize-window", "-t", "e2e", "-x", w, "-y", h]);
        assert!(out.status.success());
        std::thread::sleep(Duration::from_millis(150));
        no_secret(&t.screen());
    }
    t.wait_for("the table again", |s| s.contains("AUTH PLAIN user=alice"));
    t.keys(&["?"]);
    t.wait_for("the help", |s| {
        s.contains("Keys · any key closes") && s.contains("follow the flow")
    });
    t.keys(&["Escape"]);
    t.keys(&["c"]);
    t.wait_for("the flows view", |s| {
        s.contains("Flows (2)") && s.contains("online (bob)")
    });
    t.keys(&["C-c"]);
    t.wait_for("the exit", |s| s.contains("EXIT=0"));
    assert_eq!(t.display("#{alternate_on}"), "0");
}

/// Ctrl-Z gives the shell back; `fg` redraws the TUI where it was.
#[test]
fn ctrl_z_suspends_and_fg_resumes() {
    let Some(t) = Tmux::start("suspend", 100, 30) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_xmppscope");
    t.literal(&format!("'{bin}' --tui -r {PLAIN}"));
    t.keys(&["Enter"]);
    t.wait_for("the packet table", |s| s.contains("AUTH PLAIN user=alice"));
    t.keys(&["j", "j"]);
    t.wait_for("frame 8", |s| s.contains("Frame 8:"));
    t.keys(&["C-z"]);
    t.wait_for("the job stopped", |s| s.contains("Stopped"));
    assert_eq!(
        t.display("#{alternate_on}"),
        "0",
        "suspended on the main screen"
    );
    t.literal("fg");
    t.keys(&["Enter"]);
    let s = t.wait_for("the TUI again", |s| {
        s.contains("Frame 8:") && s.contains("AUTH PLAIN user=alice")
    });
    assert!(s.contains("[masked: use --show-secrets]"), "{s}");
    assert_eq!(t.display("#{alternate_on}"), "1");
    t.keys(&["q"]);
    t.wait_for("the shell", |s| !s.contains("Frame 8:"));
    assert_eq!(t.display("#{alternate_on}"), "0");
}

/// Piped output is not a terminal: the headless lines, as before.
#[test]
fn not_a_terminal_prints_lines() {
    let out = util::bin()
        .current_dir(util::root())
        .args(["-r", PLAIN])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("AUTH PLAIN user=alice"));
    assert!(!text.contains("\u{1b}["), "no escape sequences when piped");
}
