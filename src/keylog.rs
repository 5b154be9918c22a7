//! NSS key log files (`SSLKEYLOGFILE`), as written by OpenSSL, NSS, BoringSSL, rustls, Python's
//! `ssl` module and browsers.
//!
//! Format (one entry per line, see the NSS "Key Log Format" page and
//! draft-ietf-tls-keylogfile): `LABEL <client_random hex> <secret hex>`. Lines starting with `#`
//! and blank lines are comments. The labels used here:
//!
//! * `CLIENT_RANDOM`: the 48-byte TLS ≤ 1.2 master secret;
//! * `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_HANDSHAKE_TRAFFIC_SECRET`,
//!   `CLIENT_TRAFFIC_SECRET_0`, `SERVER_TRAFFIC_SECRET_0`: TLS 1.3 traffic secrets
//!   (RFC 8446 §7.1).
//!
//! Other known labels (`EXPORTER_SECRET`, `EARLY_EXPORTER_SECRET`, `CLIENT_EARLY_TRAFFIC_SECRET`)
//! are accepted and ignored. Any other line is counted as unusable, never fatal.
//!
//! For live capture, [`KeyLog::refresh`] re-reads a file that grew since the last read (only the
//! new complete lines); a file that shrank (truncated, replaced) is read again from the start.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The secrets known for one client random.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS ≤ 1.2 master secret (48 bytes).
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic0: Option<Vec<u8>>,
    pub server_traffic0: Option<Vec<u8>>,
}

/// A parsed key log.
#[derive(Debug, Clone, Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], Secrets>,
    /// Lines that carried a secret we use.
    pub used_lines: u64,
    /// Known labels that decryption does not need (exporter, early data).
    pub ignored_lines: u64,
    /// Lines that could not be used: unknown label, bad hex, wrong lengths.
    pub unusable_lines: u64,
    /// Where the lines came from, for [`Self::refresh`].
    path: Option<PathBuf>,
    /// Bytes of the file consumed so far (complete lines only).
    read_to: u64,
    /// An incomplete last line, kept until its newline arrives.
    partial: Vec<u8>,
    /// Bumped whenever new secrets arrive.
    generation: u64,
}

/// Largest key log line considered (longer ones are unusable).
const MAX_LINE: usize = 1024;

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 2 * 128 {
        return None;
    }
    let b = s.as_bytes();
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    b.chunks_exact(2)
        .map(|p| match p {
            [h, l] => Some((nib(*h)? << 4) | nib(*l)?),
            _ => None,
        })
        .collect()
}

impl KeyLog {
    /// An empty key log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse key log text (e.g. a whole file's contents).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut k = Self::new();
        k.add_text(text.as_bytes());
        k
    }

    /// Read a key log file; [`Self::refresh`] later reads what was appended.
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut k = Self {
            path: Some(path.to_owned()),
            ..Self::default()
        };
        k.refresh()?;
        Ok(k)
    }

    /// Read the lines appended to the file since the last read. Returns whether new secrets
    /// arrived. A file that became shorter is read again from the start (secrets already
    /// known are kept).
    ///
    /// # Errors
    /// The file cannot be opened or read.
    pub fn refresh(&mut self) -> io::Result<bool> {
        let Some(path) = self.path.clone() else {
            return Ok(false);
        };
        let mut f = File::open(&path)?;
        let len = f.metadata()?.len();
        if len < self.read_to {
            self.read_to = 0;
            self.partial.clear();
        }
        if len == self.read_to {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(self.read_to))?;
        let mut buf = Vec::new();
        f.take(len - self.read_to).read_to_end(&mut buf)?;
        self.read_to += buf.len() as u64;
        let before = self.generation;
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(&buf);
        // Keep an unterminated last line for the next read: the writer may be mid-line.
        let cut = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let rest = data.split_off(cut);
        if rest.len() <= MAX_LINE {
            self.partial = rest;
        } else {
            self.unusable_lines += 1;
        }
        self.add_text(&data);
        Ok(self.generation != before)
    }

    /// Changes each time new secrets are added (for callers caching lookups).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Client randoms with at least one secret.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The secrets for this client random.
    #[must_use]
    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.entries.get(client_random)
    }

    fn add_text(&mut self, text: &[u8]) {
        for raw in text.split(|b| *b == b'\n') {
            let Ok(line) = std::str::from_utf8(raw) else {
                self.unusable_lines += 1;
                continue;
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add_line(line);
        }
    }

    fn add_line(&mut self, line: &str) {
        let mut parts = line.split_ascii_whitespace();
        let (Some(label), Some(cr), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.unusable_lines += 1;
            return;
        };
        if matches!(
            label,
            "EXPORTER_SECRET" | "EARLY_EXPORTER_SECRET" | "CLIENT_EARLY_TRAFFIC_SECRET"
        ) {
            self.ignored_lines += 1;
            return;
        }
        let (Some(cr), Some(secret)) = (hex(cr), hex(secret)) else {
            self.unusable_lines += 1;
            return;
        };
        let Ok(cr) = <[u8; 32]>::try_from(cr.as_slice()) else {
            self.unusable_lines += 1;
            return;
        };
        let tls13_len_ok = matches!(secret.len(), 32 | 48);
        let e = self.entries.entry(cr).or_default();
        let slot = match label {
            "CLIENT_RANDOM" if secret.len() == 48 => &mut e.master,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" if tls13_len_ok => &mut e.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" if tls13_len_ok => &mut e.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" if tls13_len_ok => &mut e.client_traffic0,
            "SERVER_TRAFFIC_SECRET_0" if tls13_len_ok => &mut e.server_traffic0,
            _ => {
                if *e == Secrets::default() {
                    self.entries.remove(&cr);
                }
                self.unusable_lines += 1;
                return;
            }
        };
        if slot.as_deref() != Some(secret.as_slice()) {
            *slot = Some(secret);
            self.generation += 1;
        }
        self.used_lines += 1;
    }

    /// One line for the user: how many lines were used and how many not.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "key log: {} client randoms ({} lines used, {} ignored, {} unusable)",
            self.entries.len(),
            self.used_lines,
            self.ignored_lines,
            self.unusable_lines
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::io::Write;

    const CR: &str = "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899";

    #[test]
    fn parses_labels_and_counts_bad_lines() {
        let text = format!(
            "# comment\n\nCLIENT_RANDOM {CR} {}\nCLIENT_TRAFFIC_SECRET_0 {CR} {}\n\
             EXPORTER_SECRET {CR} {}\nBOGUS {CR} 00\nCLIENT_RANDOM zz 00\nCLIENT_RANDOM {CR} 0011\n\
             only two\n",
            "11".repeat(48),
            "22".repeat(48),
            "33".repeat(48)
        );
        let k = KeyLog::parse(&text);
        let s = k.get(&hex(CR).unwrap().try_into().unwrap()).unwrap();
        assert_eq!(s.master.as_deref(), Some(&[0x11; 48][..]));
        assert_eq!(s.client_traffic0.as_deref(), Some(&[0x22; 48][..]));
        assert!(s.server_traffic0.is_none());
        assert_eq!(k.used_lines, 2);
        assert_eq!(k.ignored_lines, 1);
        assert_eq!(k.unusable_lines, 4);
    }

    #[test]
    fn refresh_reads_appended_lines_and_waits_for_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "").unwrap();
        let mut k = KeyLog::open(&p).unwrap();
        assert!(k.is_empty());
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let line = format!("CLIENT_RANDOM {CR} {}\n", "11".repeat(48));
        let (a, b) = line.split_at(40);
        f.write_all(a.as_bytes()).unwrap();
        f.flush().unwrap();
        assert!(!k.refresh().unwrap());
        f.write_all(b.as_bytes()).unwrap();
        f.flush().unwrap();
        assert!(k.refresh().unwrap());
        assert_eq!(k.len(), 1);
        assert_eq!(k.unusable_lines, 0);
        // Truncated and rewritten: read again, nothing lost.
        std::fs::write(&p, "x\n").unwrap();
        assert!(!k.refresh().unwrap());
        assert_eq!(k.len(), 1);
        assert_eq!(k.unusable_lines, 1);
    }
}
