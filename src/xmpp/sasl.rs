//! SASL payloads decoded (RFC 6120 §6): the base64 text of `auth`,
//! `challenge`, `response` and `success` turned into named fields, with
//! passwords, proofs and tokens masked unless `--show-secrets` is given.
//!
//! Mechanisms: PLAIN (RFC 4616), SCRAM-SHA-1/-256 and their -PLUS variants
//! (RFC 5802, RFC 7677), DIGEST-MD5 (RFC 2831, historic), X-OAUTH2 and
//! X-GOOGLE-TOKEN (Google Talk: `\0user\0token` like PLAIN), OAUTHBEARER
//! (RFC 7628), EXTERNAL (RFC 4422 appendix A), ANONYMOUS (RFC 4505).
//! Nothing here computes or checks a proof: the fields are only read.

use base64::Engine as _;

/// What replaces a secret in every output.
pub const MASK: &str = "[masked: use --show-secrets]";

/// Which SASL element carried the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `<auth>` with its initial response.
    Auth,
    Challenge,
    Response,
    /// `<success>` with additional data (SCRAM server-final).
    Success,
}

/// The decoded payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Which message this is (`client-first`, `server-first`, `credentials`…).
    pub message: Option<&'static str>,
    /// (name, value) in wire order; secrets already masked unless asked.
    pub fields: Vec<(String, String)>,
    /// The authentication identity, when the message names one.
    pub user: Option<String>,
    /// The message holds a password, proof or token.
    pub has_secret: bool,
    /// The text was not base64 (RFC 4648 §4): kept raw, with a note.
    pub undecodable: bool,
    /// Empty payload (`=` or nothing; RFC 6120 §6.4.2).
    pub empty: bool,
}

impl Decoded {
    fn push(&mut self, k: &str, v: &str) {
        self.fields.push((k.to_owned(), v.to_owned()));
    }
    fn secret(&mut self, k: &str, v: &str, show: bool) {
        self.has_secret = true;
        self.fields
            .push((k.to_owned(), if show { v.to_owned() } else { MASK.into() }));
    }
}

/// Decode base64 text (whitespace ignored). `None` if it is not base64.
#[must_use]
pub fn b64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
}

/// Decode one SASL payload. `mech` is the mechanism named by the `auth` of
/// this flow, when seen; without it the content decides.
#[must_use]
pub fn decode(mech: Option<&str>, step: Step, text: &str, show_secrets: bool) -> Decoded {
    let mut d = Decoded::default();
    let t = text.trim();
    if t.is_empty() || t == "=" {
        d.empty = true;
        return d;
    }
    let Some(raw) = b64(t) else {
        d.undecodable = true;
        return d;
    };
    let s = String::from_utf8_lossy(&raw);
    let mech = mech.unwrap_or("").to_ascii_uppercase();
    if mech.starts_with("SCRAM-") || (mech.is_empty() && looks_scram(&s)) {
        scram(&s, step, show_secrets, &mut d);
    } else if mech == "DIGEST-MD5" || (mech.is_empty() && s.contains("nonce=\"")) {
        digest_md5(&s, step, show_secrets, &mut d);
    } else if mech == "PLAIN" || mech == "X-OAUTH2" || mech == "X-GOOGLE-TOKEN" {
        if step == Step::Auth || step == Step::Response {
            nul_separated(&raw, &mech, show_secrets, &mut d);
        } else {
            d.push("data", &s);
        }
    } else if mech == "OAUTHBEARER" {
        oauthbearer(&s, show_secrets, &mut d);
    } else if mech == "EXTERNAL" {
        // RFC 4422 appendix A: the initial response is the authzid.
        d.message = Some("authzid");
        d.push("authzid", &s);
    } else if mech == "ANONYMOUS" {
        // RFC 4505 §2: optional trace information.
        d.message = Some("trace");
        d.push("trace", &s);
    } else if step == Step::Auth && raw.contains(&0) {
        // Unknown mechanism shaped like PLAIN: treat the last part as secret.
        nul_separated(&raw, "", show_secrets, &mut d);
    } else if show_secrets {
        d.push("data", &s);
    } else {
        // Unknown mechanism: the content could be anything, including a secret.
        d.has_secret = true;
        d.push("data", MASK);
    }
    d
}

fn looks_scram(s: &str) -> bool {
    s.starts_with("n,")
        || s.starts_with("y,")
        || s.starts_with("p=")
        || (s.starts_with("r=") && s.contains(",s="))
        || s.starts_with("c=")
        || s.starts_with("v=")
}

/// PLAIN (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`; X-OAUTH2 and
/// X-GOOGLE-TOKEN use the same layout with a token in place of the password.
fn nul_separated(raw: &[u8], mech: &str, show: bool, d: &mut Decoded) {
    let mut parts = raw.split(|b| *b == 0);
    let authzid = parts.next().unwrap_or_default();
    let user = parts.next();
    let pass = parts.next();
    d.message = Some("credentials");
    if !authzid.is_empty() {
        d.push("authzid", &String::from_utf8_lossy(authzid));
    }
    if let Some(u) = user {
        let u = String::from_utf8_lossy(u).into_owned();
        d.push("authcid", &u);
        d.user = Some(u);
    }
    if let Some(p) = pass {
        let name = if mech == "PLAIN" || mech.is_empty() {
            "password"
        } else {
            "token"
        };
        d.secret(name, &String::from_utf8_lossy(p), show);
    }
}

/// SCRAM (RFC 5802 §5, §7): comma-separated `a=value` attributes after an
/// optional GS2 header.
fn scram(s: &str, step: Step, show: bool, d: &mut Decoded) {
    let mut rest = s;
    if step == Step::Auth || s.starts_with("n,") || s.starts_with("y,") || s.starts_with("p=") {
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","  (RFC 5802 §7)
        let mut it = s.splitn(3, ',');
        let flag = it.next().unwrap_or("");
        let authz = it.next().unwrap_or("");
        rest = it.next().unwrap_or("");
        d.message = Some("client-first");
        let cb = match flag {
            "n" => "n (client does not support channel binding)".to_owned(),
            "y" => "y (client supports it, thinks the server does not)".to_owned(),
            f => f
                .strip_prefix("p=")
                .map_or_else(|| f.to_owned(), |t| format!("p (channel binding {t})")),
        };
        d.push("gs2-cbind-flag", &cb);
        if let Some(a) = authz.strip_prefix("a=") {
            d.push("authzid", &unescape_saslname(a));
        }
    }
    let attrs: Vec<(&str, &str)> = rest
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let has = |k: &str| attrs.iter().any(|(a, _)| *a == k);
    if d.message.is_none() {
        d.message = Some(if has("p") {
            "client-final"
        } else if has("v") || has("e") {
            "server-final"
        } else if has("s") {
            "server-first"
        } else {
            "scram"
        });
    }
    for (k, v) in attrs {
        match k {
            "n" => {
                let u = unescape_saslname(v);
                d.push("n (user)", &u);
                d.user = Some(u);
            }
            "r" => d.push("r (nonce)", v),
            "s" => d.push("s (salt)", v),
            "i" => d.push("i (iterations)", v),
            "c" => d.push("c (channel binding)", v),
            "p" => d.secret("p (proof)", v, show),
            "v" => d.secret("v (server signature)", v, show),
            "e" => d.push("e (error)", v),
            "m" => d.push("m (extension)", v),
            other => d.push(other, v),
        }
    }
}

/// RFC 5802 §5.1: `=2C` is ',' and `=3D` is '='.
fn unescape_saslname(s: &str) -> String {
    s.replace("=2C", ",").replace("=3D", "=")
}

/// DIGEST-MD5 (RFC 2831 §2.1): `key=value` or `key="quoted"` separated by commas.
fn digest_md5(s: &str, step: Step, show: bool, d: &mut Decoded) {
    let params = digest_params(s);
    d.message = Some(match step {
        Step::Challenge if params.iter().any(|(k, _)| k == "rspauth") => "server-final",
        Step::Challenge => "digest-challenge",
        Step::Response | Step::Auth => "digest-response",
        Step::Success => "server-final",
    });
    for (k, v) in params {
        match k.as_str() {
            // The hash the password went into, and the server's proof.
            "response" | "rspauth" => d.secret(&k, &v, show),
            "username" => {
                d.user = Some(v.clone());
                d.push(&k, &v);
            }
            _ => d.push(&k, &v),
        }
    }
}

/// Split DIGEST-MD5 parameters, honouring quotes and `\` escapes.
#[must_use]
pub fn digest_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                val.push(n);
                            }
                        }
                        '"' => break,
                        c => val.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
        }
        if !key.trim().is_empty() {
            out.push((key.trim().to_owned(), val));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// OAUTHBEARER (RFC 7628 §3.1): gs2 header, then `\x01key=value` pairs.
fn oauthbearer(s: &str, show: bool, d: &mut Decoded) {
    d.message = Some("client-request");
    let mut parts = s.split('\x01');
    if let Some(gs2) = parts.next() {
        d.push("gs2-header", gs2);
        if let Some(a) = gs2.split(',').find_map(|p| p.strip_prefix("a=")) {
            d.user = Some(unescape_saslname(a));
        }
    }
    for p in parts.filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some(("auth", v)) => d.secret("auth", v, show),
            Some((k, v)) => d.push(k, v),
            None => d.push("data", p),
        }
    }
}

/// The user named in an `auth` initial response, for the Info column
/// (never a secret).
#[must_use]
pub fn auth_user(mech: &str, text: &str) -> Option<String> {
    let d = decode(Some(mech), Step::Auth, text, false);
    d.user.filter(|u| !u.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn field<'a>(d: &'a Decoded, k: &str) -> &'a str {
        &d.fields.iter().find(|(a, _)| a == k).unwrap().1
    }

    #[test]
    fn plain_masked_and_shown() {
        let t = enc("\0juliet\0r0m30");
        let d = decode(Some("PLAIN"), Step::Auth, &t, false);
        assert_eq!(d.user.as_deref(), Some("juliet"));
        assert_eq!(field(&d, "password"), MASK);
        assert!(d.has_secret);
        let d = decode(Some("PLAIN"), Step::Auth, &t, true);
        assert_eq!(field(&d, "password"), "r0m30");
    }

    #[test]
    fn scram_sha1_rfc5802_example() {
        // The exchange of RFC 5802 §5.
        let cf = enc("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let d = decode(Some("SCRAM-SHA-1"), Step::Auth, &cf, false);
        assert_eq!(d.message, Some("client-first"));
        assert_eq!(d.user.as_deref(), Some("user"));
        assert_eq!(field(&d, "r (nonce)"), "fyko+d2lbbFgONRv9qkxdawL");
        let sf = enc("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
        let d = decode(Some("SCRAM-SHA-1"), Step::Challenge, &sf, false);
        assert_eq!(d.message, Some("server-first"));
        assert_eq!(field(&d, "i (iterations)"), "4096");
        let cfin = enc(
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        );
        let d = decode(Some("SCRAM-SHA-1"), Step::Response, &cfin, false);
        assert_eq!(d.message, Some("client-final"));
        assert_eq!(field(&d, "p (proof)"), MASK);
        assert_eq!(field(&d, "c (channel binding)"), "biws");
        let sfin = enc("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
        let d = decode(None, Step::Success, &sfin, false);
        assert_eq!(d.message, Some("server-final"));
        assert!(d.has_secret);
    }

    #[test]
    fn scram_plus_gs2_header() {
        let t = enc("p=tls-exporter,a=admin=2Cx,n=bob,r=abc");
        let d = decode(Some("SCRAM-SHA-256-PLUS"), Step::Auth, &t, false);
        assert!(field(&d, "gs2-cbind-flag").contains("tls-exporter"));
        assert_eq!(field(&d, "authzid"), "admin,x");
        assert_eq!(d.user.as_deref(), Some("bob"));
    }

    #[test]
    fn digest_md5_params() {
        let c = enc(
            "realm=\"jabber.org\",nonce=\"a\\\"b\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
        );
        let d = decode(Some("DIGEST-MD5"), Step::Challenge, &c, false);
        assert_eq!(field(&d, "nonce"), "a\"b");
        assert_eq!(field(&d, "algorithm"), "md5-sess");
        let r = enc(
            "username=\"rob\",realm=\"jabber.org\",nonce=\"x\",cnonce=\"y\",nc=00000001,qop=auth,digest-uri=\"xmpp/jabber.org\",response=d388dad90d4bbd760a152321f2143af7,charset=utf-8",
        );
        let d = decode(None, Step::Response, &r, false);
        assert_eq!(d.user.as_deref(), Some("rob"));
        assert_eq!(field(&d, "response"), MASK);
        assert_eq!(field(&d, "digest-uri"), "xmpp/jabber.org");
    }

    #[test]
    fn google_mechanisms_and_others() {
        let t = enc("\0romeo@gmail.com\0ya29.secret-token");
        let d = decode(Some("X-OAUTH2"), Step::Auth, &t, false);
        assert_eq!(d.user.as_deref(), Some("romeo@gmail.com"));
        assert_eq!(field(&d, "token"), MASK);
        let d = decode(Some("X-GOOGLE-TOKEN"), Step::Auth, &t, true);
        assert_eq!(field(&d, "token"), "ya29.secret-token");
        let d = decode(Some("EXTERNAL"), Step::Auth, "=", false);
        assert!(d.empty);
        let d = decode(Some("ANONYMOUS"), Step::Auth, &enc("trace@x"), false);
        assert_eq!(field(&d, "trace"), "trace@x");
        let d = decode(Some("PLAIN"), Step::Auth, "not base64!!", false);
        assert!(d.undecodable);
        let b = enc("n,a=u@x,\x01host=x\x01auth=Bearer tok\x01\x01");
        let d = decode(Some("OAUTHBEARER"), Step::Auth, &b, false);
        assert_eq!(field(&d, "auth"), MASK);
    }
}
