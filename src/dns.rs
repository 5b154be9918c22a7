//! A small DNS message parser (RFC 1035 §4), enough to learn names from the
//! answers a capture holds: A, AAAA (RFC 3596), CNAME chains and SRV
//! (RFC 2782) targets of `_xmpp-client._tcp` / `_xmpp-server._tcp`.
//!
//! Hostile input is expected: every read is bounds-checked, compression
//! pointers are followed at most [`MAX_POINTER_HOPS`] times (a loop stops
//! there), names are capped at 255 bytes (RFC 1035 §2.3.4) and at most
//! [`MAX_RECORDS`] records are read from one message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed while reading one name (RFC 1035 §4.1.4
/// allows pointers to pointers; a loop would never end).
pub const MAX_POINTER_HOPS: usize = 16;
/// Resource records read from one message (answer + authority + additional).
pub const MAX_RECORDS: usize = 64;
/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire.
const MAX_NAME: usize = 255;

/// The UDP port DNS uses (RFC 1035 §4.2.1).
pub const PORT: u16 = 53;

/// The data of one answer record we understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// A (RFC 1035 §3.4.1) or AAAA (RFC 3596 §2.2).
    Addr(IpAddr),
    /// CNAME (RFC 1035 §3.3.1): the owner is an alias of this name.
    Cname(String),
    /// SRV (RFC 2782): priority, weight, port, target.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

/// One resource record: owner name (lowercase, no trailing dot) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Rdata,
}

/// A parsed response: the question names and the records understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    pub questions: Vec<String>,
    pub records: Vec<Record>,
}

/// Why a message was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    Truncated,
    /// QR bit clear (RFC 1035 §4.1.1): a query, not a response.
    NotResponse,
    BadName,
    PointerLoop,
}

fn be16(b: &[u8], at: usize) -> Result<u16, DnsError> {
    let s = b
        .get(at..at.checked_add(2).ok_or(DnsError::Truncated)?)
        .ok_or(DnsError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Result<u32, DnsError> {
    let s = b
        .get(at..at.checked_add(4).ok_or(DnsError::Truncated)?)
        .ok_or(DnsError::Truncated)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Read the name at `at`; returns it and the offset just past it in the
/// message (past the first pointer, if any: RFC 1035 §4.1.4).
fn name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut pos = at;
    let mut end = None;
    let mut hops = 0;
    let mut wire = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    let next = end.unwrap_or(pos + 1);
                    return Ok((out, next));
                }
                let l = usize::from(len);
                wire += l + 1;
                if wire > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                if !out.is_empty() {
                    out.push('.');
                }
                for &c in label {
                    // Names are shown and compared: keep printable ASCII,
                    // escape the rest (RFC 1035 §5.1 style).
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        out.push(char::from(c.to_ascii_lowercase()));
                    } else {
                        out.push_str(&format!("\\{c:03}"));
                    }
                }
                pos += 1 + l;
            }
            0xC0 => {
                // RFC 1035 §4.1.4: a pointer to an earlier name.
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(DnsError::PointerLoop);
                }
                let p = usize::from(be16(msg, pos)? & 0x3FFF);
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = p;
            }
            // 0x40 / 0x80: extended label types (RFC 6891 §5), unused.
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Parse a DNS response (RFC 1035 §4.1). Records of other types are skipped.
///
/// # Errors
/// The message is a query, is cut short before its question, or a name is
/// malformed. A record cut short ends the list (what came before is kept).
pub fn parse(msg: &[u8]) -> Result<Response, DnsError> {
    let id = be16(msg, 0)?;
    let flags = be16(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::NotResponse);
    }
    let qd = usize::from(be16(msg, 4)?);
    let rr = usize::from(be16(msg, 6)?) + usize::from(be16(msg, 8)?) + usize::from(be16(msg, 10)?);
    let mut pos = 12;
    let mut resp = Response {
        id,
        ..Response::default()
    };
    for _ in 0..qd.min(MAX_RECORDS) {
        let (n, next) = name(msg, pos)?;
        resp.questions.push(n);
        pos = next.checked_add(4).ok_or(DnsError::Truncated)?;
        if pos > msg.len() {
            return Err(DnsError::Truncated);
        }
    }
    for _ in 0..rr.min(MAX_RECORDS) {
        let Ok(next) = record(msg, pos, &mut resp.records) else {
            break;
        };
        pos = next;
    }
    Ok(resp)
}

fn record(msg: &[u8], at: usize, out: &mut Vec<Record>) -> Result<usize, DnsError> {
    let (owner, pos) = name(msg, at)?;
    let typ = be16(msg, pos)?;
    let class = be16(msg, pos + 2)?;
    let ttl = be32(msg, pos + 4)?;
    let rdlen = usize::from(be16(msg, pos + 8)?);
    let rd = pos + 10;
    let end = rd + rdlen;
    let data = msg.get(rd..end).ok_or(DnsError::Truncated)?;
    // Class IN only (RFC 1035 §3.2.4); mDNS sets the top bit (cache flush).
    if class & 0x7FFF != 1 {
        return Ok(end);
    }
    let rdata = match typ {
        1 if data.len() == 4 => Some(Rdata::Addr(IpAddr::V4(Ipv4Addr::new(
            data[0], data[1], data[2], data[3],
        )))),
        28 if data.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(data);
            Some(Rdata::Addr(IpAddr::V6(Ipv6Addr::from(a))))
        }
        5 => Some(Rdata::Cname(name(msg, rd)?.0)),
        // RFC 2782: priority, weight, port, target (not compressed by the
        // RFC, but compressed in the wild: read it as any name).
        33 if rdlen >= 7 => Some(Rdata::Srv {
            priority: be16(msg, rd)?,
            weight: be16(msg, rd + 2)?,
            port: be16(msg, rd + 4)?,
            target: name(msg, rd + 6)?.0,
        }),
        _ => None,
    };
    if let Some(data) = rdata {
        out.push(Record {
            name: owner,
            ttl,
            data,
        });
    }
    Ok(end)
}

/// Is this an XMPP SRV owner name (RFC 6120 §3.2.1)?
#[must_use]
pub fn is_xmpp_srv(name: &str) -> bool {
    name.starts_with("_xmpp-client._tcp.") || name.starts_with("_xmpp-server._tcp.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.') {
            v.push(u8::try_from(l.len()).unwrap());
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    fn rr(out: &mut Vec<u8>, owner: &[u8], typ: u16, data: &[u8]) {
        out.extend_from_slice(owner);
        out.extend_from_slice(&typ.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
    }

    fn response(q: &str, n: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&n.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&enc(q));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    #[test]
    fn cname_chain_and_a_with_compression() {
        let mut m = response("talk.google.com", 2);
        // talk.google.com CNAME talk.l.google.com (compressed suffix)
        let mut target = vec![4, b't', b'a', b'l', b'k', 1, b'l'];
        target.extend_from_slice(&[0xC0, 17]); // "google.com" at offset 12+5
        rr(&mut m, &[0xC0, 12], 5, &target);
        let alias_at = m.len() - target.len();
        let ptr = [
            0xC0 | u8::try_from(alias_at >> 8).unwrap(),
            u8::try_from(alias_at & 0xFF).unwrap(),
        ];
        rr(&mut m, &ptr, 1, &[74, 125, 1, 2]);
        let r = parse(&m).unwrap();
        assert_eq!(r.questions, vec!["talk.google.com"]);
        assert_eq!(r.records[0].data, Rdata::Cname("talk.l.google.com".into()));
        assert_eq!(r.records[1].name, "talk.l.google.com");
        assert_eq!(
            r.records[1].data,
            Rdata::Addr("74.125.1.2".parse().unwrap())
        );
    }

    #[test]
    fn srv_and_aaaa() {
        let mut m = response("_xmpp-client._tcp.example.com", 2);
        let mut d = vec![0, 5, 0, 0, 0x14, 0x66];
        d.extend_from_slice(&enc("xmpp1.example.com"));
        rr(&mut m, &[0xC0, 12], 33, &d);
        let mut a6 = [0u8; 16];
        a6[0] = 0x20;
        a6[1] = 0x01;
        a6[15] = 9;
        rr(&mut m, &enc("xmpp1.example.com"), 28, &a6);
        let r = parse(&m).unwrap();
        assert!(is_xmpp_srv(&r.records[0].name));
        assert_eq!(
            r.records[0].data,
            Rdata::Srv {
                priority: 5,
                weight: 0,
                port: 5222,
                target: "xmpp1.example.com".into()
            }
        );
        assert_eq!(r.records[1].data, Rdata::Addr("2001::9".parse().unwrap()));
    }

    #[test]
    fn pointer_loops_stop() {
        // The question name points at itself.
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12];
        assert_eq!(parse(&m), Err(DnsError::PointerLoop));
        // Two pointers pointing at each other.
        m.truncate(12);
        m.extend_from_slice(&[0xC0, 14, 0xC0, 12]);
        assert_eq!(parse(&m), Err(DnsError::PointerLoop));
    }

    #[test]
    fn queries_and_every_truncation_are_safe() {
        let mut m = response("im.example.net", 1);
        rr(&mut m, &[0xC0, 12], 1, &[203, 0, 113, 5]);
        assert_eq!(parse(&m).unwrap().records.len(), 1);
        for n in 0..m.len() {
            let r = parse(&m[..n]);
            if let Ok(r) = r {
                assert!(r.records.is_empty());
            }
        }
        let mut q = m.clone();
        q[2] = 0x01;
        assert_eq!(parse(&q), Err(DnsError::NotResponse));
        // Random bytes never panic.
        let mut x: u32 = 7;
        for _ in 0..2000 {
            let mut b = m.clone();
            for _ in 0..4 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (x as usize >> 8) % b.len();
                b[i] = (x >> 16) as u8;
            }
            let _ = parse(&b);
        }
    }

    #[test]
    fn overlong_names_are_refused() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.push(0);
        m.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadName));
    }
}
