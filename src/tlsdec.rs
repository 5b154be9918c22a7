//! TLS decryption with secrets from an NSS key log ([`crate::keylog`]).
//!
//! Primitives come from the RustCrypto crates (`hkdf`, `hmac`, `sha1`, `sha2`, `aes-gcm`,
//! `chacha20poly1305`, `aes` + `cbc`); this module only arranges them as the RFCs say:
//!
//! * TLS 1.3 (RFC 8446): traffic keys and IVs by HKDF-Expand-Label (§7.1, §7.3), the per-record
//!   nonce (§5.3), the inner content type after the zero padding (§5.2), the switch from
//!   handshake to application traffic secrets after each side's Finished, and KeyUpdate
//!   (`traffic upd`, §7.2). Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
//!   TLS_CHACHA20_POLY1305_SHA256.
//! * TLS 1.2 (RFC 5246): the PRF with SHA-256 or SHA-384 (§5), the key block (§6.3), AES-GCM
//!   with its explicit nonce (RFC 5288 §3), ChaCha20-Poly1305 (RFC 7905 §2), and AES-CBC with
//!   HMAC-SHA1/SHA256/SHA384 (§6.2.3.2), MAC-then-encrypt or encrypt-then-MAC (RFC 7366; told
//!   apart by which MAC verifies, as the extension is not tracked).
//!
//! [`FlowDecrypt`] holds one TCP flow's state: the randoms and cipher suite seen in the
//! plaintext hellos, and per direction a record splitter, the current keys and sequence
//! number. It is fed the same in-order bytes as [`crate::tls::TlsStream`] and returns one
//! [`Decrypted`] per protected record it could open, plus [`Why`] notes explaining what it
//! could not.

use std::collections::VecDeque;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

use crate::keylog::{KeyLog, Secrets};
use crate::tls::{self, ServerHello, TlsEvent};

/// Largest TLS record payload accepted (RFC 5246 §6.2.3: 2^14 + 2048).
const MAX_PAYLOAD: usize = (1 << 14) + 2048;
/// Largest decrypted handshake message reassembled.
const MAX_HS_MESSAGE: usize = 64 * 1024;
/// Protected records held per direction while the key is not (yet) in the key log.
const MAX_PENDING_BYTES: usize = 256 * 1024;

/// Hash of a suite's PRF / HKDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    /// Output size in bytes.
    #[must_use]
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }
}

/// Record MAC of a CBC suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlg {
    Sha1,
    Sha256,
    Sha384,
}

impl MacAlg {
    fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
        }
    }
}

/// Bulk encryption of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    /// AES-CBC with this key length and record MAC.
    AesCbc {
        key_len: usize,
        mac: MacAlg,
    },
}

impl Bulk {
    fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
            Self::AesCbc { key_len, .. } => key_len,
        }
    }
}

/// A cipher suite this module can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub tls13: bool,
    pub bulk: Bulk,
    pub hash: HashAlg,
}

/// The suites supported (IANA TLS Cipher Suites registry numbers).
#[must_use]
pub fn suite(id: u16) -> Option<Suite> {
    use Bulk::{Aes128Gcm, Aes256Gcm, AesCbc, ChaCha20Poly1305};
    use HashAlg::{Sha256, Sha384};
    let (tls13, bulk, hash) = match id {
        0x1301 => (true, Aes128Gcm, Sha256),
        0x1302 => (true, Aes256Gcm, Sha384),
        0x1303 => (true, ChaCha20Poly1305, Sha256),
        // *_WITH_AES_128_GCM_SHA256 (RSA, DHE_RSA, ECDHE_ECDSA, ECDHE_RSA)
        0x009C | 0x009E | 0xC02B | 0xC02F => (false, Aes128Gcm, Sha256),
        // *_WITH_AES_256_GCM_SHA384
        0x009D | 0x009F | 0xC02C | 0xC030 => (false, Aes256Gcm, Sha384),
        // *_WITH_CHACHA20_POLY1305_SHA256 (ECDHE_RSA, ECDHE_ECDSA, DHE_RSA)
        0xCCA8..=0xCCAA => (false, ChaCha20Poly1305, Sha256),
        // *_WITH_AES_128_CBC_SHA (RSA, DHE_RSA, ECDHE_ECDSA, ECDHE_RSA)
        0x002F | 0x0033 | 0xC009 | 0xC013 => (
            false,
            AesCbc {
                key_len: 16,
                mac: MacAlg::Sha1,
            },
            Sha256,
        ),
        // *_WITH_AES_256_CBC_SHA
        0x0035 | 0x0039 | 0xC00A | 0xC014 => (
            false,
            AesCbc {
                key_len: 32,
                mac: MacAlg::Sha1,
            },
            Sha256,
        ),
        // *_WITH_AES_128_CBC_SHA256
        0x003C | 0x0067 | 0xC023 | 0xC027 => (
            false,
            AesCbc {
                key_len: 16,
                mac: MacAlg::Sha256,
            },
            Sha256,
        ),
        // *_WITH_AES_256_CBC_SHA256
        0x003D | 0x006B => (
            false,
            AesCbc {
                key_len: 32,
                mac: MacAlg::Sha256,
            },
            Sha256,
        ),
        // ECDHE_*_WITH_AES_256_CBC_SHA384
        0xC024 | 0xC028 => (
            false,
            AesCbc {
                key_len: 32,
                mac: MacAlg::Sha384,
            },
            Sha384,
        ),
        _ => return None,
    };
    Some(Suite {
        id,
        tls13,
        bulk,
        hash,
    })
}

fn hmac(alg: MacAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    macro_rules! run {
        ($d:ty) => {{
            // HMAC takes keys of any length: this never fails.
            let Ok(mut m) = <Hmac<$d> as Mac>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        MacAlg::Sha1 => run!(sha1::Sha1),
        MacAlg::Sha256 => run!(Sha256),
        MacAlg::Sha384 => run!(Sha384),
    }
}

/// The TLS 1.2 PRF (RFC 5246 §5): `P_hash(secret, label + seed)` truncated to `len`.
#[must_use]
pub fn prf12(hash: HashAlg, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let mac = match hash {
        HashAlg::Sha256 => MacAlg::Sha256,
        HashAlg::Sha384 => MacAlg::Sha384,
    };
    let mut out = Vec::with_capacity(len + 48);
    // A(1) = HMAC(secret, label + seed); A(i) = HMAC(secret, A(i-1)).
    let mut a = hmac(mac, secret, &[label, seed]);
    while out.len() < len {
        out.extend_from_slice(&hmac(mac, secret, &[&a, label, seed]));
        a = hmac(mac, secret, &[&a]);
    }
    out.truncate(len);
    out
}

/// HKDF-Expand-Label (RFC 8446 §7.1). `None` if the secret is shorter than the hash.
#[must_use]
pub fn hkdf_expand_label(
    hash: HashAlg,
    secret: &[u8],
    label: &str,
    context: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len() + context.len());
    info.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    info.push(u8::try_from(full.len()).ok()?);
    info.extend_from_slice(full.as_bytes());
    info.push(u8::try_from(context.len()).ok()?);
    info.extend_from_slice(context);
    let mut out = vec![0; len];
    match hash {
        HashAlg::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        HashAlg::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// TLS 1.3 traffic key and IV from a traffic secret (RFC 8446 §7.3).
#[must_use]
pub fn tls13_key_iv(suite: Suite, secret: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let key = hkdf_expand_label(suite.hash, secret, "key", &[], suite.bulk.key_len())?;
    let iv = hkdf_expand_label(suite.hash, secret, "iv", &[], 12)?;
    Some((key, iv))
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    Cbc {
        key: Vec<u8>,
        mac_key: Vec<u8>,
        mac: MacAlg,
        /// Encrypt-then-MAC (RFC 7366), once a record told.
        etm: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceMode {
    /// RFC 8446 §5.3 and RFC 7905: IV XOR sequence number.
    Xor,
    /// RFC 5288: 4-byte salt + 8-byte explicit nonce in the record.
    Explicit,
    /// CBC: explicit IV block in the record.
    Cbc,
}

/// Why a protected record could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Authentication tag (or MAC / padding) did not verify: wrong key or sequence.
    BadTag,
    /// The record is too short for its cipher.
    TooShort,
    /// TLS 1.3 inner plaintext is all zeros (RFC 8446 §5.4).
    NoContentType,
}

/// Keys of one direction with its sequence number.
pub struct RecordKeys {
    cipher: Cipher,
    iv: Vec<u8>,
    mode: NonceMode,
    tls13: bool,
    seq: u64,
}

impl RecordKeys {
    fn aead(bulk: Bulk, key: &[u8]) -> Option<Cipher> {
        Some(match bulk {
            Bulk::Aes128Gcm => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Bulk::Aes256Gcm => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Bulk::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?))
            }
            Bulk::AesCbc { .. } => return None,
        })
    }

    /// TLS 1.3 keys from a traffic secret.
    #[must_use]
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<Self> {
        let (key, iv) = tls13_key_iv(suite, secret)?;
        Some(Self {
            cipher: Self::aead(suite.bulk, &key)?,
            iv,
            mode: NonceMode::Xor,
            tls13: true,
            seq: 0,
        })
    }

    /// TLS 1.2 keys of one side from the master secret (RFC 5246 §6.3).
    #[must_use]
    pub fn tls12(
        suite: Suite,
        master: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        client_side: bool,
    ) -> Option<Self> {
        let (mac_len, key_len, iv_len) = match suite.bulk {
            Bulk::Aes128Gcm | Bulk::Aes256Gcm => (0, suite.bulk.key_len(), 4),
            Bulk::ChaCha20Poly1305 => (0, 32, 12),
            Bulk::AesCbc { key_len, mac } => (mac.len(), key_len, 16),
        };
        let mut seed = Vec::with_capacity(64);
        seed.extend_from_slice(server_random);
        seed.extend_from_slice(client_random);
        let block = prf12(
            suite.hash,
            master,
            b"key expansion",
            &seed,
            2 * (mac_len + key_len + iv_len),
        );
        // client_write_MAC_key, server_write_MAC_key, client_write_key, server_write_key,
        // client_write_IV, server_write_IV.
        let mut parts = Vec::new();
        let mut at = 0;
        for l in [mac_len, mac_len, key_len, key_len, iv_len, iv_len] {
            parts.push(block.get(at..at + l)?.to_vec());
            at += l;
        }
        let pick = |c: usize, s: usize| -> Option<Vec<u8>> {
            parts.get(if client_side { c } else { s }).cloned()
        };
        let (mac_key, key, iv) = (pick(0, 1)?, pick(2, 3)?, pick(4, 5)?);
        let (cipher, mode) = match suite.bulk {
            Bulk::AesCbc { mac, .. } => (
                Cipher::Cbc {
                    key,
                    mac_key,
                    mac,
                    etm: None,
                },
                NonceMode::Cbc,
            ),
            Bulk::ChaCha20Poly1305 => (Self::aead(suite.bulk, &key)?, NonceMode::Xor),
            _ => (Self::aead(suite.bulk, &key)?, NonceMode::Explicit),
        };
        Some(Self {
            cipher,
            iv,
            mode,
            tls13: false,
            seq: 0,
        })
    }

    fn xor_nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        for (d, s) in n.iter_mut().zip(&self.iv) {
            *d = *s;
        }
        for (d, s) in n.iter_mut().skip(4).zip(self.seq.to_be_bytes()) {
            *d ^= s;
        }
        n
    }

    fn aead_open(&self, nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let p = Payload { msg, aad };
        let r = match &self.cipher {
            Cipher::Aes128(c) => c.decrypt(nonce.into(), p),
            Cipher::Aes256(c) => c.decrypt(nonce.into(), p),
            Cipher::ChaCha(c) => c.decrypt(nonce.into(), p),
            Cipher::Cbc { .. } => return Err(OpenError::BadTag),
        };
        r.map_err(|_| OpenError::BadTag)
    }

    /// Opens one record (`header` is its 5-byte header). On success returns the real content
    /// type and the plaintext, and advances the sequence number.
    ///
    /// # Errors
    /// The record does not authenticate or is malformed.
    pub fn open(&mut self, header: [u8; 5], payload: &[u8]) -> Result<(u8, Vec<u8>), OpenError> {
        let [ct, v1, v2, ..] = header;
        let r = if self.tls13 {
            let nonce = self.xor_nonce();
            let mut inner = self.aead_open(&nonce, payload, &header)?;
            // RFC 8446 §5.2: content, then the type, then zeros.
            let Some(pos) = inner.iter().rposition(|b| *b != 0) else {
                return Err(OpenError::NoContentType);
            };
            let typ = inner.get(pos).copied().unwrap_or(0);
            inner.truncate(pos);
            (typ, inner)
        } else {
            let aad = |len: usize| -> Vec<u8> {
                let mut a = self.seq.to_be_bytes().to_vec();
                a.extend_from_slice(&[ct, v1, v2]);
                a.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
                a
            };
            match self.mode {
                NonceMode::Explicit => {
                    let (explicit, body) =
                        payload.split_at_checked(8).ok_or(OpenError::TooShort)?;
                    let len = body.len().checked_sub(16).ok_or(OpenError::TooShort)?;
                    let mut nonce = [0u8; 12];
                    for (d, s) in nonce.iter_mut().zip(self.iv.iter().chain(explicit)) {
                        *d = *s;
                    }
                    (ct, self.aead_open(&nonce, body, &aad(len))?)
                }
                NonceMode::Xor => {
                    let len = payload.len().checked_sub(16).ok_or(OpenError::TooShort)?;
                    let nonce = self.xor_nonce();
                    (ct, self.aead_open(&nonce, payload, &aad(len))?)
                }
                NonceMode::Cbc => (ct, self.open_cbc([ct, v1, v2], payload)?),
            }
        };
        self.seq = self.seq.wrapping_add(1);
        Ok(r)
    }

    fn open_cbc(&mut self, hdr: [u8; 3], payload: &[u8]) -> Result<Vec<u8>, OpenError> {
        let seq = self.seq.to_be_bytes();
        let Cipher::Cbc {
            key,
            mac_key,
            mac,
            etm,
        } = &mut self.cipher
        else {
            return Err(OpenError::BadTag);
        };
        let (mac, maclen) = (*mac, mac.len());
        let mac_of = |body: &[u8]| -> Vec<u8> {
            let len = u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes();
            hmac(mac, mac_key, &[&seq, &hdr, &len, body])
        };
        let decrypt = |data: &[u8]| -> Result<Vec<u8>, OpenError> {
            let (iv, ct) = data.split_at_checked(16).ok_or(OpenError::TooShort)?;
            if ct.is_empty() || ct.len() % 16 != 0 {
                return Err(OpenError::TooShort);
            }
            let mut buf = ct.to_vec();
            let plain = match key.len() {
                16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                    .map_err(|_| OpenError::BadTag)?
                    .decrypt_padded_mut::<NoPadding>(&mut buf)
                    .map_err(|_| OpenError::BadTag)?
                    .to_vec(),
                _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                    .map_err(|_| OpenError::BadTag)?
                    .decrypt_padded_mut::<NoPadding>(&mut buf)
                    .map_err(|_| OpenError::BadTag)?
                    .to_vec(),
            };
            // Padding: `pad` bytes of value `pad`, then the length byte (RFC 5246 §6.2.3.2).
            let pad = usize::from(*plain.last().ok_or(OpenError::TooShort)?);
            let body_len = plain.len().checked_sub(pad + 1).ok_or(OpenError::BadTag)?;
            if plain
                .get(body_len..)
                .is_none_or(|p| p.iter().any(|b| usize::from(*b) != pad))
            {
                return Err(OpenError::BadTag);
            }
            let mut plain = plain;
            plain.truncate(body_len);
            Ok(plain)
        };
        // Encrypt-then-MAC: the MAC covers IV + ciphertext (RFC 7366 §3).
        if *etm != Some(false) && payload.len() > maclen {
            let (data, tag) = payload.split_at(payload.len() - maclen);
            if mac_of(data) == tag {
                *etm = Some(true);
                return decrypt(data);
            }
            if *etm == Some(true) {
                return Err(OpenError::BadTag);
            }
        }
        // Not encrypt-then-MAC: MAC-then-encrypt, or a record that authenticates neither way.
        let plain =
            decrypt(payload).map_err(|e| if etm.is_none() { OpenError::BadTag } else { e })?;
        let body_len = plain.len().checked_sub(maclen).ok_or(OpenError::BadTag)?;
        let (body, tag) = plain.split_at(body_len);
        if mac_of(body) != tag {
            return Err(OpenError::BadTag);
        }
        *etm = Some(false);
        Ok(body.to_vec())
    }
}

/// Why a direction of a flow is not decrypted (one note each per flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The key log has no secret for this ClientHello's random.
    NoKey(String),
    /// The negotiated cipher suite is not supported here.
    UnsupportedSuite(String),
    /// No ClientHello/ServerHello in the capture: it started after the handshake.
    MidSession(String),
    /// A record did not authenticate (wrong key, or records lost).
    BadTag(String),
    /// TCP bytes were lost: the sequence number cannot be known any more.
    Lost(String),
}

/// One protected record opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// Stream offset of the record's header (as in [`tls::TlsRecord::start`]).
    pub start: u64,
    /// Frame in which the record's last byte arrived.
    pub frame: u64,
    /// Real content type (inner type for TLS 1.3).
    pub content_type: u8,
    /// Application data to feed to the XMPP framer (empty for other types).
    pub data: Vec<u8>,
    /// Wireshark-like Info for the record: "Finished", "Application Data (decrypted, 94
    /// bytes)", "Alert (Level: Warning, Description: Close Notify)", ….
    pub summary: String,
}

/// Output of [`FlowDecrypt::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecOut {
    Record(Decrypted),
    Note(Why),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// TLS 1.3 handshake traffic keys in use.
    Handshake,
    /// Application traffic (TLS 1.3 after Finished; TLS 1.2 after ChangeCipherSpec).
    Application,
}

struct Record {
    header: [u8; 5],
    payload: Vec<u8>,
    start: u64,
    frame: u64,
}

#[derive(Default)]
struct Dir {
    /// Bytes of the record being split.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    buf_start: u64,
    started: bool,
    keys: Option<RecordKeys>,
    stage: Option<Stage>,
    /// Current TLS 1.3 traffic secret (for KeyUpdate).
    secret: Vec<u8>,
    /// TLS 1.2: ChangeCipherSpec seen in this direction.
    ccs: bool,
    /// Decrypted handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
    /// Nothing more will be decrypted in this direction.
    dead: bool,
    /// Protected records waiting for a key to appear in the key log.
    pending: VecDeque<Record>,
    pending_bytes: usize,
}

/// Decryption state of one flow.
#[derive(Default)]
pub struct FlowDecrypt {
    client_random: Option<[u8; 32]>,
    server_hello: Option<ServerHello>,
    /// Client to server, server to client.
    dirs: [Dir; 2],
    /// Notes already given (one per kind per flow).
    noted_key: bool,
    noted_other: bool,
}

impl FlowDecrypt {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Learn the randoms and suite from the recognizer's events of one direction.
    pub fn observe(&mut self, events: &[TlsEvent]) {
        for ev in events {
            let TlsEvent::Record(r) = ev else { continue };
            for h in &r.handshakes {
                if let Some(ch) = &h.client_hello {
                    self.client_random = Some(ch.random);
                }
                if let Some(sh) = h
                    .server_hello
                    .as_ref()
                    .filter(|s| !s.is_hello_retry_request())
                {
                    self.server_hello = Some(sh.clone());
                }
            }
        }
    }

    /// Whether any record of this flow was decrypted or is being.
    #[must_use]
    pub fn active(&self, client_to_server: bool) -> bool {
        self.dirs
            .get(usize::from(!client_to_server))
            .is_some_and(|d| d.keys.is_some())
    }

    /// TCP lost bytes in this direction: records can no longer be numbered.
    pub fn gap(&mut self, client_to_server: bool, out: &mut Vec<DecOut>) {
        let Some(d) = self.dirs.get_mut(usize::from(!client_to_server)) else {
            return;
        };
        if d.keys.is_some() && !d.dead {
            out.push(DecOut::Note(Why::Lost(format!(
                "{}: TCP bytes were not captured inside the TLS stream; the record sequence \
                 number is lost, so the rest of this direction is not decrypted",
                side(client_to_server)
            ))));
        }
        d.dead = true;
        d.buf.clear();
        d.pending.clear();
    }

    /// Feed in-order bytes of one direction (`offset`: stream offset of `bytes[0]`).
    pub fn push(
        &mut self,
        client_to_server: bool,
        bytes: &[u8],
        offset: u64,
        frame: u64,
        keylog: &KeyLog,
        out: &mut Vec<DecOut>,
    ) {
        let i = usize::from(!client_to_server);
        let mut input = bytes;
        let mut at = offset;
        while !input.is_empty() {
            let Some(d) = self.dirs.get_mut(i) else {
                return;
            };
            if d.dead {
                return;
            }
            if !d.started {
                d.started = true;
                d.buf_start = at;
            }
            let need = match d.buf.get(3..5) {
                Some(&[a, b]) => 5 + usize::from(u16::from_be_bytes([a, b])),
                _ => 5,
            };
            let take = need.saturating_sub(d.buf.len()).min(input.len());
            let (now, rest) = input.split_at(take);
            d.buf.extend_from_slice(now);
            input = rest;
            at += take as u64;
            if d.buf.len() == 5 && need == 5 {
                let len = d
                    .buf
                    .get(3..5)
                    .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
                if len > MAX_PAYLOAD {
                    d.dead = true;
                    return;
                }
                if len > 0 {
                    continue;
                }
            }
            if d.buf.len() < need {
                continue;
            }
            let all = std::mem::take(&mut d.buf);
            let start = d.buf_start;
            d.buf_start = at;
            let (h, payload) = all.split_at(5);
            let mut header = [0u8; 5];
            header.copy_from_slice(h);
            let rec = Record {
                header,
                payload: payload.to_vec(),
                start,
                frame,
            };
            self.record(i, rec, keylog, out);
        }
    }

    /// Records of this direction wait for a key.
    #[must_use]
    pub fn holding(&self, client_to_server: bool) -> bool {
        self.dirs
            .get(usize::from(!client_to_server))
            .is_some_and(|d| !d.pending.is_empty())
    }

    /// The frame of the first record of this direction waiting for a key.
    #[must_use]
    pub fn next_held(&self, client_to_server: bool) -> Option<u64> {
        self.dirs
            .get(usize::from(!client_to_server))
            .and_then(|d| d.pending.front())
            .map(|r| r.frame)
    }

    /// Decrypt the first record of this direction held for a key, if the
    /// key log now has the key; false when it does not (or none is held).
    pub fn release_one(
        &mut self,
        client_to_server: bool,
        keylog: &KeyLog,
        out: &mut Vec<DecOut>,
    ) -> bool {
        let i = usize::from(!client_to_server);
        if !self.holding(client_to_server)
            || (self.dirs.get(i).is_some_and(|d| d.keys.is_none()) && !self.setup(i, keylog, out))
        {
            return false;
        }
        let Some(r) = self.dirs.get_mut(i).and_then(|d| {
            let r = d.pending.pop_front()?;
            d.pending_bytes = d.pending_bytes.saturating_sub(r.payload.len());
            Some(r)
        }) else {
            return false;
        };
        self.open_one(i, r, keylog, out);
        true
    }

    /// Decrypt the records of this direction held for a key, if the key
    /// log now has it (live capture: the client appended its secrets
    /// after its records were captured). Without this, they would wait for
    /// the next record of the same direction, and show out of order with
    /// the other direction's.
    pub fn release(&mut self, client_to_server: bool, keylog: &KeyLog, out: &mut Vec<DecOut>) {
        let i = usize::from(!client_to_server);
        if !self.holding(client_to_server)
            || (self.dirs.get(i).is_some_and(|d| d.keys.is_none()) && !self.setup(i, keylog, out))
        {
            return;
        }
        let held: Vec<Record> = self
            .dirs
            .get_mut(i)
            .map(|d| {
                d.pending_bytes = 0;
                d.pending.drain(..).collect()
            })
            .unwrap_or_default();
        for r in held {
            self.open_one(i, r, keylog, out);
        }
    }

    fn protected(&self, i: usize, ct: u8) -> bool {
        let Some(d) = self.dirs.get(i) else {
            return false;
        };
        match &self.server_hello {
            // Everything protected has the outer type application_data (RFC 8446 §5.2).
            Some(sh) if sh.negotiated_version() == tls::TLS13 => ct == tls::CT_APPLICATION_DATA,
            // RFC 5246 §7.1: protected after this direction's ChangeCipherSpec.
            Some(_) => d.ccs && ct != tls::CT_CHANGE_CIPHER_SPEC,
            // No hello at all: application data means the capture began mid-session (noted
            // by `setup`). After a ClientHello alone it is 0-RTT early data: skipped.
            None => ct == tls::CT_APPLICATION_DATA && self.client_random.is_none(),
        }
    }

    fn record(&mut self, i: usize, rec: Record, keylog: &KeyLog, out: &mut Vec<DecOut>) {
        let ct = rec.header[0];
        if !self.protected(i, ct) {
            if ct == tls::CT_CHANGE_CIPHER_SPEC
                && let Some(d) = self.dirs.get_mut(i)
            {
                d.ccs = true;
            }
            return;
        }
        if self.dirs.get(i).is_some_and(|d| d.keys.is_none()) && !self.setup(i, keylog, out) {
            if let Some(d) = self.dirs.get_mut(i)
                && !d.dead
            {
                d.pending_bytes += rec.payload.len();
                d.pending.push_back(rec);
                if d.pending_bytes > MAX_PENDING_BYTES {
                    d.pending.clear();
                    d.dead = true;
                }
            }
            return;
        }
        // A key that appeared late (live capture): the held records come first.
        self.release(i == 0, keylog, out);
        self.open_one(i, rec, keylog, out);
    }

    fn open_one(&mut self, i: usize, rec: Record, keylog: &KeyLog, out: &mut Vec<DecOut>) {
        let c2s = i == 0;
        let Some(d) = self.dirs.get_mut(i) else {
            return;
        };
        if d.dead {
            return;
        }
        let Some(keys) = d.keys.as_mut() else {
            return;
        };
        let seq = keys.seq;
        let mut opened = keys.open(rec.header, &rec.payload);
        if opened.is_err() && d.stage == Some(Stage::Handshake) {
            // Finished may have been missed: try the application secret once.
            let (suite, secret) = self.app_secret(i, keylog);
            if let (Some(s), Some(sec)) = (suite, secret)
                && let Some(mut k) = RecordKeys::tls13(s, &sec)
                && let Ok(r) = k.open(rec.header, &rec.payload)
                && let Some(d) = self.dirs.get_mut(i)
            {
                d.keys = Some(k);
                d.secret = sec;
                d.stage = Some(Stage::Application);
                d.hs.clear();
                opened = Ok(r);
            }
        }
        let Some(d) = self.dirs.get_mut(i) else {
            return;
        };
        match opened {
            Ok((typ, plain)) => {
                let summary = self.describe(i, typ, &plain, keylog);
                let data = if typ == tls::CT_APPLICATION_DATA {
                    plain
                } else {
                    Vec::new()
                };
                out.push(DecOut::Record(Decrypted {
                    start: rec.start,
                    frame: rec.frame,
                    content_type: typ,
                    data,
                    summary,
                }));
            }
            Err(e) => {
                d.dead = true;
                let what = match e {
                    OpenError::BadTag => "authentication tag failure",
                    OpenError::TooShort => "record too short for its cipher",
                    OpenError::NoContentType => "no content type in the inner plaintext",
                };
                out.push(DecOut::Note(Why::BadTag(format!(
                    "{}: {what} on the record at stream offset {} (sequence number {seq}): \
                     the key log's secret does not match this connection; the rest of this \
                     direction is not decrypted",
                    side(c2s),
                    rec.start
                ))));
            }
        }
    }

    fn app_secret(&self, i: usize, keylog: &KeyLog) -> (Option<Suite>, Option<Vec<u8>>) {
        let suite = self
            .server_hello
            .as_ref()
            .and_then(|s| suite(s.cipher_suite));
        let secret = self
            .client_random
            .as_ref()
            .and_then(|cr| keylog.get(cr))
            .and_then(|s| {
                if i == 0 {
                    s.client_traffic0.clone()
                } else {
                    s.server_traffic0.clone()
                }
            });
        (suite, secret)
    }

    /// Derive the first keys of direction `i`. False (with a note once) if impossible now.
    fn setup(&mut self, i: usize, keylog: &KeyLog, out: &mut Vec<DecOut>) -> bool {
        let c2s = i == 0;
        let (Some(cr), Some(sh)) = (self.client_random, self.server_hello.clone()) else {
            if !self.noted_other {
                self.noted_other = true;
                out.push(DecOut::Note(Why::MidSession(
                    "TLS not decrypted: the capture started after the handshake (no \
                     ClientHello and ServerHello seen), so the randoms and cipher suite are \
                     unknown"
                        .into(),
                )));
            }
            self.kill(i);
            return false;
        };
        let name = tls::cipher_suite_name(sh.cipher_suite);
        let Some(suite) = suite(sh.cipher_suite) else {
            if !self.noted_other {
                self.noted_other = true;
                out.push(DecOut::Note(Why::UnsupportedSuite(format!(
                    "TLS not decrypted: cipher suite {name} (0x{:04X}) is not supported",
                    sh.cipher_suite
                ))));
            }
            self.kill(i);
            return false;
        };
        let v = sh.negotiated_version();
        if suite.tls13 != (v == tls::TLS13) || !(v == tls::TLS13 || v == 0x0303) {
            if !self.noted_other {
                self.noted_other = true;
                out.push(DecOut::Note(Why::UnsupportedSuite(format!(
                    "TLS not decrypted: {} with {name} is not supported (TLS 1.2 and 1.3 only)",
                    tls::version_name(v)
                ))));
            }
            self.kill(i);
            return false;
        }
        let secrets: Option<&Secrets> = keylog.get(&cr);
        let keys = if suite.tls13 {
            let s = secrets.and_then(|s| {
                if c2s {
                    s.client_handshake.clone()
                } else {
                    s.server_handshake.clone()
                }
            });
            s.and_then(|s| RecordKeys::tls13(suite, &s).map(|k| (k, s)))
        } else {
            secrets.and_then(|s| s.master.as_ref()).and_then(|m| {
                RecordKeys::tls12(suite, m, &cr, &sh.random, c2s).map(|k| (k, Vec::new()))
            })
        };
        let Some((keys, secret)) = keys else {
            if !self.noted_key {
                self.noted_key = true;
                let label = if suite.tls13 {
                    "*_HANDSHAKE_TRAFFIC_SECRET"
                } else {
                    "CLIENT_RANDOM"
                };
                out.push(DecOut::Note(Why::NoKey(format!(
                    "TLS not decrypted: the key log has no {label} line for client random {} \
                     ({}, {name})",
                    hex(&cr),
                    tls::version_name(v)
                ))));
            }
            return false;
        };
        let Some(d) = self.dirs.get_mut(i) else {
            return false;
        };
        d.keys = Some(keys);
        d.secret = secret;
        d.stage = Some(if suite.tls13 {
            Stage::Handshake
        } else {
            Stage::Application
        });
        true
    }

    fn kill(&mut self, i: usize) {
        if let Some(d) = self.dirs.get_mut(i) {
            d.dead = true;
            d.pending.clear();
        }
    }

    /// Summary of a decrypted record; handles the TLS 1.3 key changes its handshake messages
    /// cause.
    fn describe(&mut self, i: usize, typ: u8, plain: &[u8], keylog: &KeyLog) -> String {
        match typ {
            tls::CT_APPLICATION_DATA => {
                format!("Application Data (decrypted, {} bytes)", plain.len())
            }
            tls::CT_ALERT => match plain {
                [level, desc, ..] => format!(
                    "Alert (Level: {}, Description: {})",
                    tls::alert_level_name(*level),
                    tls::alert_description_name(*desc)
                ),
                _ => "Alert".into(),
            },
            tls::CT_HANDSHAKE => self.handshake(i, plain, keylog),
            t => tls::content_type_name(t).to_owned(),
        }
    }

    fn handshake(&mut self, i: usize, plain: &[u8], keylog: &KeyLog) -> String {
        let suite = self
            .server_hello
            .as_ref()
            .and_then(|s| suite(s.cipher_suite));
        let (_, app) = self.app_secret(i, keylog);
        let Some(d) = self.dirs.get_mut(i) else {
            return String::new();
        };
        d.hs.extend_from_slice(plain);
        let mut parts = Vec::new();
        while let Some(&[t, a, b, c]) = d.hs.get(..4) {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if len > MAX_HS_MESSAGE {
                d.hs.clear();
                parts.push(format!("{} (too large)", tls::handshake_name(t)));
                break;
            }
            let Some(body) = d.hs.get(4..4 + len) else {
                parts.push(format!("{} (fragment)", tls::handshake_name(t)));
                break;
            };
            let mut s = tls::handshake_name(t).to_owned();
            if t == tls::HS_CERTIFICATE {
                s = certificate_summary(body, suite.is_some_and(|s| s.tls13));
            }
            let mut update = false;
            if t == 24 {
                update = true;
                if body.first() == Some(&1) {
                    s.push_str(" (update requested)");
                }
            }
            parts.push(s);
            d.hs.drain(..4 + len);
            let Some(suite) = suite.filter(|s| s.tls13) else {
                continue;
            };
            if t == 20 && d.stage == Some(Stage::Handshake) {
                // RFC 8446 §7.1: after this side's Finished come the application secrets.
                if let Some(sec) = app.clone()
                    && let Some(k) = RecordKeys::tls13(suite, &sec)
                {
                    d.keys = Some(k);
                    d.secret = sec;
                }
                d.stage = Some(Stage::Application);
            } else if update && d.stage == Some(Stage::Application) {
                // RFC 8446 §7.2: application_traffic_secret_N+1.
                if let Some(next) = hkdf_expand_label(
                    suite.hash,
                    &d.secret,
                    "traffic upd",
                    &[],
                    suite.hash.output_len(),
                ) && let Some(k) = RecordKeys::tls13(suite, &next)
                {
                    d.keys = Some(k);
                    d.secret = next;
                }
            }
        }
        if parts.is_empty() {
            "Handshake (fragment)".into()
        } else {
            parts.join(", ")
        }
    }
}

fn side(c2s: bool) -> &'static str {
    if c2s { "c2s" } else { "s2c" }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// "Certificate (CN/SAN …; issuer …)" for a Certificate message (RFC 8446 §4.4.2 in TLS 1.3:
/// request context first; RFC 5246 §7.4.2 otherwise).
fn certificate_summary(body: &[u8], tls13: bool) -> String {
    let leaf = leaf_certificate(body, tls13);
    let Some(der) = leaf else {
        return "Certificate".into();
    };
    let subjects = tls::certificate_subjects(der);
    let issuer = issuer_common_name(der);
    match (subjects.is_empty(), issuer) {
        (true, None) => "Certificate".into(),
        (false, None) => format!("Certificate ({})", subjects.join(", ")),
        (true, Some(i)) => format!("Certificate (issuer {i})"),
        (false, Some(i)) => format!("Certificate ({}; issuer {i})", subjects.join(", ")),
    }
}

fn leaf_certificate(body: &[u8], tls13: bool) -> Option<&[u8]> {
    let mut rest = body;
    if tls13 {
        let n = usize::from(*rest.first()?);
        rest = rest.get(1 + n..)?;
    }
    let list_len = u24(rest)?;
    let list = rest.get(3..3 + list_len)?;
    let len = u24(list)?;
    list.get(3..3 + len)
}

fn u24(b: &[u8]) -> Option<usize> {
    match b.get(..3)? {
        &[a, b, c] => Some(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)),
        _ => None,
    }
}

/// One DER TLV: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 3 {
            return None;
        }
        let mut l = 0usize;
        for k in 0..n {
            l = l << 8 | usize::from(*input.get(2 + k)?);
        }
        (l, 2 + n)
    };
    let content = input.get(hdr..hdr + len)?;
    Some((tag, content, input.get(hdr + len..)?))
}

/// The issuer's commonName (X.509 TBSCertificate, RFC 5280 §4.1).
fn issuer_common_name(cert: &[u8]) -> Option<String> {
    let (_, c, _) = der(cert)?; // Certificate
    let (_, tbs, _) = der(c)?; // TBSCertificate
    let mut rest = tbs;
    let (tag, _, r) = der(rest)?;
    if tag == 0xA0 {
        rest = r; // [0] version
    }
    let (_, _, r) = der(rest)?; // serialNumber
    let (_, _, r) = der(r)?; // signature
    let (_, issuer, _) = der(r)?;
    let mut sets = issuer;
    while let Some((_, set, next)) = der(sets) {
        let mut atvs = set;
        while let Some((_, atv, n2)) = der(atvs) {
            if let Some((0x06, oid, v)) = der(atv)
                && oid == [0x55, 0x04, 0x03]
                && let Some((_, value, _)) = der(v)
            {
                let s: String = String::from_utf8_lossy(value)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .take(255)
                    .collect();
                return Some(s);
            }
            atvs = n2;
        }
        sets = next;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 8448 §3 "Simple 1-RTT Handshake" (TLS_AES_128_GCM_SHA256):
    // "{server} derive write traffic keys for handshake data" and
    // "{client} derive write traffic keys for handshake data".
    #[test]
    fn rfc8448_handshake_traffic_keys() {
        let s = suite(0x1301).unwrap();
        let server_hs = h("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4
                           e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        let (key, iv) = tls13_key_iv(s, &server_hs).unwrap();
        assert_eq!(key, h("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"));
        assert_eq!(iv, h("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
        let client_hs = h("b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f
                           3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21");
        let (key, iv) = tls13_key_iv(s, &client_hs).unwrap();
        assert_eq!(key, h("db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01"));
        assert_eq!(iv, h("5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"));
    }

    // RFC 8448 §3: "{client} send handshake record" (the client Finished, sequence number 0
    // under the client handshake traffic keys) and "{client} construct a Finished handshake
    // message".
    #[test]
    fn rfc8448_client_finished_record_decrypts() {
        let s = suite(0x1301).unwrap();
        let client_hs = h("b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f
                           3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21");
        let mut k = RecordKeys::tls13(s, &client_hs).unwrap();
        let rec = h("17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c
                     56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac
                     98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46");
        let mut hdr = [0u8; 5];
        hdr.copy_from_slice(&rec[..5]);
        let (typ, plain) = k.open(hdr, &rec[5..]).unwrap();
        assert_eq!(typ, tls::CT_HANDSHAKE);
        assert_eq!(
            plain,
            h(
                "14 00 00 20 a8 ec 43 6d 67 76 34 ae 52 5a c1 fc eb e1 1a 03 9e c1 76 94
               fa c6 e9 85 27 b6 42 f2 ed d5 ce 61"
            )
        );
        // A second try is sequence number 1: the tag no longer verifies.
        assert_eq!(k.open(hdr, &rec[5..]), Err(OpenError::BadTag));
    }

    // The TLS 1.2 P_SHA256 vector posted to the IETF TLS WG list (msg03416, 2009) and
    // reproduced by `openssl kdf -kdfopt digest:SHA256 ... TLS1-PRF`.
    #[test]
    fn tls12_prf_sha256_vector() {
        let out = prf12(
            HashAlg::Sha256,
            &h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        assert_eq!(
            out,
            h(
                "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a\
               6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab\
               4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701\
               87347b66"
            )
        );
    }

    /// Seal a TLS 1.3 record the way RFC 8446 §5.2 says (test helper, with the same crate).
    fn seal13(suite: Suite, secret: &[u8], seq: u64, typ: u8, content: &[u8]) -> Vec<u8> {
        let (key, iv) = tls13_key_iv(suite, secret).unwrap();
        let mut inner = content.to_vec();
        inner.push(typ);
        let len = u16::try_from(inner.len() + 16).unwrap();
        let mut rec = vec![23, 3, 3];
        rec.extend_from_slice(&len.to_be_bytes());
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&iv);
        for (d, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
            *d ^= s;
        }
        let c = Aes128Gcm::new_from_slice(&key).unwrap();
        let ct = c
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &inner,
                    aad: &rec,
                },
            )
            .unwrap();
        rec.extend_from_slice(&ct);
        rec
    }

    fn hello_events(cr: [u8; 32]) -> (Vec<TlsEvent>, Vec<TlsEvent>) {
        let record = |hs: tls::Handshake| {
            TlsEvent::Record(tls::TlsRecord {
                content_type: 22,
                version: 0x0303,
                length: 0,
                start: 0,
                end: 0,
                handshakes: vec![hs],
                alert: None,
                encrypted: false,
                incomplete_handshake: None,
            })
        };
        let ch = tls::Handshake {
            msg_type: 1,
            length: 0,
            client_hello: Some(tls::ClientHello {
                legacy_version: 0x0303,
                random: cr,
                sni: None,
                alpn: Vec::new(),
                supported_versions: vec![0x0304],
                cipher_suites: vec![0x1301],
            }),
            server_hello: None,
            certificate_subjects: Vec::new(),
        };
        let sh = tls::Handshake {
            msg_type: 2,
            length: 0,
            client_hello: None,
            server_hello: Some(ServerHello {
                legacy_version: 0x0303,
                random: [9; 32],
                cipher_suite: 0x1301,
                selected_version: Some(0x0304),
            }),
            certificate_subjects: Vec::new(),
        };
        (vec![record(ch)], vec![record(sh)])
    }

    /// Handshake keys, the switch after Finished, and a KeyUpdate (RFC 8446 §7.2) in the
    /// server direction; split into 1-byte pushes.
    #[test]
    fn tls13_finished_then_key_update() {
        let s = suite(0x1301).unwrap();
        let cr = [5u8; 32];
        let hs = vec![0x11; 32];
        let ap0 = vec![0x22; 32];
        let ap1 = hkdf_expand_label(HashAlg::Sha256, &ap0, "traffic upd", &[], 32).unwrap();
        let crx = hex(&cr);
        let log = KeyLog::parse(&format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {crx} {}\nSERVER_TRAFFIC_SECRET_0 {crx} {}\n",
            hex(&hs),
            hex(&ap0)
        ));
        let mut wire = Vec::new();
        // EncryptedExtensions + Finished in one record.
        let mut msgs = vec![8, 0, 0, 2, 0, 0];
        msgs.extend_from_slice(&[20, 0, 0, 32]);
        msgs.extend_from_slice(&[0xAB; 32]);
        wire.extend(seal13(s, &hs, 0, 22, &msgs));
        wire.extend(seal13(s, &ap0, 0, 23, b"<a/>"));
        wire.extend(seal13(s, &ap0, 1, 22, &[24, 0, 0, 1, 0]));
        wire.extend(seal13(s, &ap1, 0, 23, b"<b/>"));
        let mut f = FlowDecrypt::new();
        let (c, sv) = hello_events(cr);
        f.observe(&c);
        f.observe(&sv);
        let mut out = Vec::new();
        for (i, b) in wire.iter().enumerate() {
            f.push(false, &[*b], i as u64, 7, &log, &mut out);
        }
        let got: Vec<(String, Vec<u8>)> = out
            .iter()
            .map(|o| match o {
                DecOut::Record(d) => (d.summary.clone(), d.data.clone()),
                DecOut::Note(w) => panic!("{w:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("Encrypted Extensions, Finished".into(), vec![]),
                (
                    "Application Data (decrypted, 4 bytes)".into(),
                    b"<a/>".to_vec()
                ),
                ("Key Update".into(), vec![]),
                (
                    "Application Data (decrypted, 4 bytes)".into(),
                    b"<b/>".to_vec()
                ),
            ]
        );
    }

    /// AES-CBC records sealed both ways RFC 5246 §6.2.3.2 (MAC-then-encrypt) and RFC 7366
    /// (encrypt-then-MAC) open with the same keys.
    #[test]
    fn tls12_cbc_mac_then_encrypt_and_encrypt_then_mac() {
        use cbc::cipher::BlockEncryptMut;
        let st = suite(0xC013).unwrap(); // ECDHE_RSA_WITH_AES_128_CBC_SHA
        let (master, cr, sr) = ([3u8; 48], [1u8; 32], [2u8; 32]);
        let mut seed = sr.to_vec();
        seed.extend_from_slice(&cr);
        let block = prf12(
            HashAlg::Sha256,
            &master,
            b"key expansion",
            &seed,
            2 * (20 + 16 + 16),
        );
        let (mac_key, key) = (&block[..20], &block[40..56]);
        let enc = |plain: &[u8], iv: [u8; 16]| -> Vec<u8> {
            let mut p = plain.to_vec();
            let pad = 15 - (p.len() % 16);
            p.extend(std::iter::repeat_n(u8::try_from(pad).unwrap(), pad + 1));
            let n = p.len();
            let ct = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                .unwrap()
                .encrypt_padded_mut::<NoPadding>(&mut p, n)
                .unwrap()
                .to_vec();
            let mut r = iv.to_vec();
            r.extend(ct);
            r
        };
        let hdr = |len: usize| [23u8, 3, 3, (len >> 8) as u8, len as u8];
        let content = b"<presence/>";
        // MAC-then-encrypt, sequence 0.
        let mac = hmac(
            MacAlg::Sha1,
            mac_key,
            &[&0u64.to_be_bytes(), &[23, 3, 3], &[0, 11], content],
        );
        let mut plain = content.to_vec();
        plain.extend(mac);
        let rec = enc(&plain, [7; 16]);
        let mut k = RecordKeys::tls12(st, &master, &cr, &sr, true).unwrap();
        assert_eq!(
            k.open(hdr(rec.len()), &rec).unwrap(),
            (23, content.to_vec())
        );
        // Encrypt-then-MAC, with fresh keys.
        let body = enc(content, [8; 16]);
        let len = u16::try_from(body.len()).unwrap().to_be_bytes();
        let mac = hmac(
            MacAlg::Sha1,
            mac_key,
            &[&0u64.to_be_bytes(), &[23, 3, 3], &len, &body],
        );
        let mut rec = body.clone();
        rec.extend(mac);
        let mut k = RecordKeys::tls12(st, &master, &cr, &sr, true).unwrap();
        assert_eq!(
            k.open(hdr(rec.len()), &rec).unwrap(),
            (23, content.to_vec())
        );
        // A flipped bit fails.
        let mut bad = rec.clone();
        bad[20] ^= 1;
        let mut k = RecordKeys::tls12(st, &master, &cr, &sr, true).unwrap();
        assert_eq!(k.open(hdr(bad.len()), &bad), Err(OpenError::BadTag));
    }

    /// TLS_AES_128_CCM_SHA256 is not supported: one note, nothing decrypted, no panic.
    #[test]
    fn unsupported_suite_is_noted_once() {
        let (c, mut sv) = hello_events([5; 32]);
        if let Some(TlsEvent::Record(r)) = sv.first_mut()
            && let Some(sh) = r
                .handshakes
                .first_mut()
                .and_then(|h| h.server_hello.as_mut())
        {
            sh.cipher_suite = 0x1304;
        }
        let mut f = FlowDecrypt::new();
        f.observe(&c);
        f.observe(&sv);
        let mut out = Vec::new();
        let rec = [23u8, 3, 3, 0, 20]
            .iter()
            .copied()
            .chain([0; 20])
            .collect::<Vec<_>>();
        for dir in [true, false, true] {
            f.push(dir, &rec, 0, 1, &KeyLog::new(), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(&out[0], DecOut::Note(Why::UnsupportedSuite(t)) if t.contains("TLS_AES_128_CCM_SHA256")),
            "{out:?}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let kl = KeyLog::new();
        let mut f = FlowDecrypt::new();
        let mut out = Vec::new();
        for n in 0..600u32 {
            let b: Vec<u8> = (0..n).map(|i| (i.wrapping_mul(31) ^ n) as u8).collect();
            f.push(n % 2 == 0, &b, 0, 1, &kl, &mut out);
        }
        let mut k =
            RecordKeys::tls12(suite(0xC014).unwrap(), &[7; 48], &[1; 32], &[2; 32], true).unwrap();
        for n in [0usize, 15, 16, 31, 32, 47, 48, 64, 80] {
            assert!(k.open([23, 3, 3, 0, 0], &vec![0; n]).is_err());
        }
    }
}
