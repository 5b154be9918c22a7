//! Link and IP layers: a captured frame's bytes → the TCP segment it carries.
//!
//! The link-layer header is chosen by the capture's DLT (libpcap's
//! `LINKTYPE_*` numbers, <https://www.tcpdump.org/linktypes.html>); IP and
//! TCP are sliced with `etherparse` in its lax mode, so a frame cut by the
//! snaplen keeps the layers that are whole and says where it stopped.
//! Nothing here allocates or copies: the returned [`TcpSegment`] borrows the
//! frame.

use std::fmt;
use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice, TcpSlice};

/// libpcap link types this module understands.
pub mod dlt {
    pub const NULL: i32 = 0;
    pub const EN10MB: i32 = 1;
    /// `LINKTYPE_RAW` on most systems (DLT 12 on some BSDs, 14 on OpenBSD).
    pub const RAW: i32 = 101;
    pub const RAW_BSD: i32 = 12;
    pub const RAW_OPENBSD: i32 = 14;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// Is this link type one we can dissect?
#[must_use]
pub fn supported(linktype: i32) -> bool {
    matches!(
        linktype,
        dlt::NULL
            | dlt::EN10MB
            | dlt::RAW
            | dlt::RAW_BSD
            | dlt::RAW_OPENBSD
            | dlt::LOOP
            | dlt::LINUX_SLL
            | dlt::IPV4
            | dlt::IPV6
            | dlt::LINUX_SLL2
    )
}

/// Human name of a link type, for messages.
#[must_use]
pub fn linktype_name(linktype: i32) -> String {
    let name = match linktype {
        dlt::NULL => "BSD loopback (NULL)",
        dlt::EN10MB => "Ethernet",
        dlt::RAW | dlt::RAW_BSD | dlt::RAW_OPENBSD => "raw IP",
        dlt::LOOP => "OpenBSD loopback (LOOP)",
        dlt::LINUX_SLL => "Linux cooked (SLL)",
        dlt::IPV4 => "raw IPv4",
        dlt::IPV6 => "raw IPv6",
        dlt::LINUX_SLL2 => "Linux cooked v2 (SLL2)",
        _ => return format!("link type {linktype}"),
    };
    format!("{name} ({linktype})")
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// A VLAN tag's ethertype: 802.1Q (0x8100), 802.1ad QinQ (0x88A8) and
/// the pre-standard 0x9100. A match, not a slice search (that was an
/// out-of-line call on every frame).
fn is_vlan(t: u16) -> bool {
    matches!(t, 0x8100 | 0x88A8 | 0x9100)
}

/// At most this many stacked VLAN tags are skipped.
const MAX_VLAN_TAGS: usize = 4;

/// Which layer a frame stopped at, and where: shown as an expert note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStop {
    /// Not IP (ARP, LLDP, …): nothing wrong, just nothing for us.
    NotIp,
    /// IP but not TCP (UDP, ICMP, …).
    NotTcp,
    /// A fragment of an IP datagram (not reassembled).
    Fragment,
    /// A header did not fit in the captured bytes or was invalid.
    Malformed { layer: &'static str, offset: usize },
}

impl fmt::Display for LinkStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIp => f.write_str("not IP"),
            Self::NotTcp => f.write_str("not TCP"),
            Self::Fragment => f.write_str("IP fragment (fragments are not reassembled)"),
            Self::Malformed { layer, offset } => {
                write!(
                    f,
                    "malformed or truncated {layer} header at offset {offset}"
                )
            }
        }
    }
}

/// A TCP segment, borrowed from its frame.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub has_ack: bool,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// The payload's real length according to the IP header (more than
    /// `payload.len()` when the snaplen cut the frame).
    pub wire_len: usize,
}

/// Slice a frame down to its TCP segment.
///
/// # Errors
/// Returns where and why the frame is not a (whole-header) TCP segment.
pub fn tcp_segment(linktype: i32, frame: &[u8]) -> Result<TcpSegment<'_>, LinkStop> {
    let ip = ip_bytes(linktype, frame)?;
    if let Some(seg) = plain_ipv4_tcp(ip).or_else(|| plain_ipv6_tcp(ip)) {
        return Ok(seg);
    }
    ip_to_tcp(ip, frame.len() - ip.len())
}

/// The usual IPv6 frame read directly: TCP right after the fixed header
/// (no extension headers), the payload length within the captured bytes
/// and not zero (a jumbogram), a whole TCP header. Anything else (`None`)
/// goes through etherparse ([`ip_to_tcp`]), which reads these the same way.
fn plain_ipv6_tcp(ip: &[u8]) -> Option<TcpSegment<'_>> {
    let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
    // Version 6 (RFC 8200 §3); next header TCP.
    if h[0] >> 4 != 6 || h[6] != 6 {
        return None;
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if plen == 0 {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = h.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::from(b))
    };
    plain_tcp(ip.get(40..40 + plen)?, addr(8)?, addr(24)?)
}

/// A whole TCP header at the start of `tcp` (the IP payload, cut to the
/// IP header's length), read directly.
fn plain_tcp(tcp: &[u8], src: IpAddr, dst: IpAddr) -> Option<TcpSegment<'_>> {
    let th: &[u8; 20] = tcp.get(..20)?.try_into().ok()?;
    let header_len = usize::from((th[12] & 0xf0) >> 2);
    if header_len < 20 {
        return None;
    }
    let payload = tcp.get(header_len..)?;
    let flags = th[13];
    Some(TcpSegment {
        src,
        dst,
        sport: u16::from_be_bytes([th[0], th[1]]),
        dport: u16::from_be_bytes([th[2], th[3]]),
        seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
        ack: u32::from_be_bytes([th[8], th[9], th[10], th[11]]),
        syn: flags & 0x02 != 0,
        fin: flags & 0x01 != 0,
        rst: flags & 0x04 != 0,
        has_ack: flags & 0x10 != 0,
        payload,
        wire_len: payload.len(),
    })
}

/// The usual frame read directly: IPv4 without options, not a fragment,
/// whole (total length within the captured bytes), carrying TCP with a
/// whole header. Anything else (`None`) goes through etherparse
/// ([`ip_to_tcp`]), which reads these the same way.
fn plain_ipv4_tcp(ip: &[u8]) -> Option<TcpSegment<'_>> {
    let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
    // Version 4, header length 5 words; TCP.
    if h[0] != 0x45 || h[9] != 6 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // More fragments, or a fragment offset.
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 || total < 20 {
        return None;
    }
    plain_tcp(
        ip.get(20..total)?,
        IpAddr::from([h[12], h[13], h[14], h[15]]),
        IpAddr::from([h[16], h[17], h[18], h[19]]),
    )
}

/// An end of a TCP segment as integers: the address's bits (an IPv4
/// address widened, an IPv6 address as is) and the port.
pub type EndBits = (u128, u16);

/// The two ends of a TCP segment, from source to destination, as
/// [`tcp_segment`] reads them (addresses as [`EndBits`]): what the parallel
/// run's reader hashes to tag each frame with its shard. The usual frame
/// (Ethernet without VLAN tags, IPv4 without options or IPv6 without
/// extension headers, a whole TCP header) is read here from its bytes,
/// with the checks `plain_ipv4_tcp` and `plain_ipv6_tcp` make, building
/// neither a segment nor an address; the rest by [`tcp_segment`].
#[must_use]
#[inline]
pub fn tcp_end_bits(linktype: i32, frame: &[u8]) -> Option<(EndBits, EndBits)> {
    let ip = frame.get(14..).unwrap_or_default();
    // The TCP header's ports, when `tcp` (the IP payload, cut to the IP
    // header's length) starts with a whole one.
    let ports = |tcp: &[u8]| -> Option<(u16, u16)> {
        let th: &[u8; 20] = tcp.get(..20)?.try_into().ok()?;
        let header_len = usize::from((th[12] & 0xf0) >> 2);
        if header_len < 20 || header_len > tcp.len() {
            return None;
        }
        Some((
            u16::from_be_bytes([th[0], th[1]]),
            u16::from_be_bytes([th[2], th[3]]),
        ))
    };
    let fast = match (linktype, frame.get(12..14)) {
        (dlt::EN10MB, Some(&[0x08, 0x00])) => {
            // As `plain_ipv4_tcp`: version 4, 5 header words, TCP, not a
            // fragment, the total length captured.
            let h: Option<&[u8; 20]> = ip.get(..20).and_then(|h| h.try_into().ok());
            h.filter(|h| h[0] == 0x45 && h[9] == 6)
                .filter(|h| u16::from_be_bytes([h[6], h[7]]) & 0x3fff == 0)
                .and_then(|h| {
                    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                    let (sport, dport) = ports(ip.get(20..total)?)?;
                    let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
                    let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
                    Some(((u128::from(src), sport), (u128::from(dst), dport)))
                })
        }
        (dlt::EN10MB, Some(&[0x86, 0xDD])) => {
            // As `plain_ipv6_tcp`: version 6, TCP next, not a jumbogram,
            // the payload captured.
            let h: Option<&[u8; 40]> = ip.get(..40).and_then(|h| h.try_into().ok());
            h.filter(|h| h[0] >> 4 == 6 && h[6] == 6).and_then(|h| {
                let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
                if plen == 0 {
                    return None;
                }
                let (sport, dport) = ports(ip.get(40..40 + plen)?)?;
                let bits = |at: usize| -> Option<u128> {
                    Some(u128::from_be_bytes(h.get(at..at + 16)?.try_into().ok()?))
                };
                Some(((bits(8)?, sport), (bits(24)?, dport)))
            })
        }
        _ => None,
    };
    if fast.is_some() {
        return fast;
    }
    // UDP (DNS, mostly) is not TCP however the rest reads (17 is no
    // extension header that could lead to TCP, RFC 8200 §4).
    let udp = match frame.get(12..14) {
        Some(&[0x08, 0x00]) => ip.first() == Some(&0x45) && ip.get(9) == Some(&17),
        Some(&[0x86, 0xDD]) => ip.first().is_some_and(|b| b >> 4 == 6) && ip.get(6) == Some(&17),
        _ => false,
    };
    if linktype == dlt::EN10MB && udp {
        return None;
    }
    let seg = tcp_segment(linktype, frame).ok()?;
    Some((
        (addr_bits(seg.src), seg.sport),
        (addr_bits(seg.dst), seg.dport),
    ))
}

/// An address's bits: an IPv4 address widened, an IPv6 address as is.
#[must_use]
pub fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(v.to_bits()),
        IpAddr::V6(v) => v.to_bits(),
    }
}

/// A UDP datagram, borrowed from its frame (for DNS answers: the TCP path
/// never calls this).
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
}

/// Slice a frame down to its UDP datagram, if it carries a whole UDP header
/// (and is not a fragment).
#[must_use]
pub fn udp_datagram(linktype: i32, frame: &[u8]) -> Option<UdpDatagram<'_>> {
    let ip = ip_bytes(linktype, frame).ok()?;
    let (slice, _ext_err) = LaxIpSlice::from_slice(ip).ok()?;
    let payload = slice.payload();
    if payload.fragmented || payload.ip_number != IpNumber::UDP {
        return None;
    }
    let udp = etherparse::UdpSlice::from_slice_lax(payload.payload).ok()?;
    Some(UdpDatagram {
        src: slice.source_addr(),
        dst: slice.destination_addr(),
        sport: udp.source_port(),
        dport: udp.destination_port(),
        payload: udp.payload(),
    })
}

/// The source and destination addresses of a frame's IP header, whatever
/// it carries (TCP, UDP, ICMP, a fragment): what `ip.addr == X` in a tshark
/// display filter looks at. `None` for frames that are not IP.
#[must_use]
pub fn ip_addresses(linktype: i32, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = ip_bytes(linktype, frame).ok()?;
    let (slice, _ext_err) = LaxIpSlice::from_slice(ip).ok()?;
    Some((slice.source_addr(), slice.destination_addr()))
}

/// The IP packet inside a frame of the given link type.
fn ip_bytes(linktype: i32, frame: &[u8]) -> Result<&[u8], LinkStop> {
    let malformed = |layer| LinkStop::Malformed { layer, offset: 0 };
    match linktype {
        dlt::EN10MB => {
            let mut ethertype = be16(frame, 12).ok_or(malformed("Ethernet"))?;
            let mut off = 14;
            let mut tags = 0;
            while is_vlan(ethertype) && tags < MAX_VLAN_TAGS {
                ethertype = be16(frame, off + 2).ok_or(LinkStop::Malformed {
                    layer: "802.1Q VLAN",
                    offset: off,
                })?;
                off += 4;
                tags += 1;
            }
            by_ethertype(ethertype, frame.get(off..).unwrap_or_default())
        }
        dlt::LINUX_SLL => {
            // 16-byte header, protocol (an ethertype) at offset 14.
            let proto = be16(frame, 14).ok_or(malformed("Linux SLL"))?;
            by_ethertype(proto, frame.get(16..).unwrap_or_default())
        }
        dlt::LINUX_SLL2 => {
            // 20-byte header, protocol type at offset 0.
            let proto = be16(frame, 0).ok_or(malformed("Linux SLL2"))?;
            if frame.len() < 20 {
                return Err(malformed("Linux SLL2"));
            }
            by_ethertype(proto, frame.get(20..).unwrap_or_default())
        }
        dlt::NULL | dlt::LOOP => {
            // 4-byte address family: host byte order for NULL (so either
            // order on a foreign capture), network order for LOOP.
            let b = frame.get(..4).ok_or(malformed("BSD loopback"))?;
            let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let family = if linktype == dlt::LOOP || le > 0xFFFF {
                be
            } else {
                le
            };
            let rest = frame.get(4..).unwrap_or_default();
            match family {
                2 => Ok(rest),
                // AF_INET6 is 10 on Linux, 24 on NetBSD/OpenBSD, 28 on
                // FreeBSD, 30 on macOS.
                10 | 24 | 28 | 30 => Ok(rest),
                _ => Err(LinkStop::NotIp),
            }
        }
        dlt::RAW | dlt::RAW_BSD | dlt::RAW_OPENBSD | dlt::IPV4 | dlt::IPV6 => Ok(frame),
        _ => Err(LinkStop::NotIp),
    }
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Result<&[u8], LinkStop> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(rest),
        _ => Err(LinkStop::NotIp),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn ip_to_tcp(ip: &[u8], ip_offset: usize) -> Result<TcpSegment<'_>, LinkStop> {
    let (slice, _ext_err) = LaxIpSlice::from_slice(ip).map_err(|_| LinkStop::Malformed {
        layer: "IP",
        offset: ip_offset,
    })?;
    let payload = slice.payload();
    if payload.fragmented {
        return Err(LinkStop::Fragment);
    }
    if payload.ip_number != IpNumber::TCP {
        return Err(LinkStop::NotTcp);
    }
    let tcp_offset = ip_offset + (ip.len() - payload.payload.len());
    let tcp = TcpSlice::from_slice(payload.payload).map_err(|_| LinkStop::Malformed {
        layer: "TCP",
        offset: tcp_offset,
    })?;
    let header_len = tcp.header_slice().len();
    let data = tcp.payload();
    // The real payload length comes from the IP header when the capture
    // was cut short; a zero IPv4 total length (TSO) falls back to what was
    // captured.
    let wire_len = if payload.incomplete {
        let ip_payload_len = match &slice {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4)
            }
            LaxIpSlice::Ipv6(v6) => usize::from(v6.header().payload_length())
                .saturating_sub(v6.extensions().slice().len()),
        };
        ip_payload_len.saturating_sub(header_len).max(data.len())
    } else {
        data.len()
    };
    Ok(TcpSegment {
        src: slice.source_addr(),
        dst: slice.destination_addr(),
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        has_ack: tcp.ack(),
        payload: data,
        wire_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 5222, 1000, 65535);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn tcp_v6(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x30; 16], 64)
            .tcp(40000, 5222, 1000, 65535);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn udp_frame(v6: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let b = if v6 {
            b.ipv6([0x20; 16], [0x30; 16], 64)
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let mut out = Vec::new();
        b.udp(53, 40000).write(&mut out, b"dns").unwrap();
        out
    }

    type PlainReader = fn(&[u8]) -> Option<TcpSegment<'_>>;

    /// What a segment says, for comparisons.
    fn fields(s: &TcpSegment<'_>) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {} {} {:?} {}",
            s.src,
            s.dst,
            s.sport,
            s.dport,
            s.seq,
            s.ack,
            s.syn,
            s.fin,
            s.rst,
            s.has_ack,
            s.payload,
            s.wire_len
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Whatever the direct IPv4 and IPv6 readings accept, etherparse
        /// reads the same way (header bytes overwritten at random, frames
        /// cut or padded).
        #[test]
        fn plain_ip_reading_agrees_with_etherparse(
            v6 in proptest::prelude::any::<bool>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            edits in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 0..4),
            cut in 0usize..140,
            pad in 0usize..8,
        ) {
            let (f, header, fast): (_, usize, PlainReader) = if v6 {
                (tcp_v6(&payload), 80, plain_ipv6_tcp)
            } else {
                (tcp_v4(&payload), 60, plain_ipv4_tcp)
            };
            let mut ip = f[14..].to_vec();
            for (at, v) in edits {
                if let Some(b) = ip.get_mut(at % header) {
                    *b = v;
                }
            }
            ip.truncate(cut.max(1));
            ip.extend(std::iter::repeat_n(0u8, pad));
            if let Some(fast) = fast(&ip) {
                let slow = ip_to_tcp(&ip, 0);
                proptest::prop_assert!(slow.is_ok(), "{:?}", slow.err());
                if let Ok(slow) = slow {
                    proptest::prop_assert_eq!(fields(&fast), fields(&slow));
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The quick endpoints are the segment's, whatever the header bytes,
        /// for IPv4 and IPv6, TCP and UDP.
        #[test]
        fn tcp_end_bits_agree_with_tcp_segment(
            v6 in proptest::prelude::any::<bool>(),
            udp in proptest::prelude::any::<bool>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            edits in proptest::collection::vec((0usize..94, proptest::prelude::any::<u8>()), 0..4),
            cut in 0usize..140,
        ) {
            let mut f = match (v6, udp) {
                (false, false) => tcp_v4(&payload),
                (true, false) => tcp_v6(&payload),
                (false, true) => udp_frame(false),
                (true, true) => udp_frame(true),
            };
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut.max(1));
            let slow = tcp_segment(dlt::EN10MB, &f)
                .ok()
                .map(|s| ((addr_bits(s.src), s.sport), (addr_bits(s.dst), s.dport)));
            proptest::prop_assert_eq!(tcp_end_bits(dlt::EN10MB, &f), slow);
        }
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = tcp_v4(b"<presence/>");
        let s = tcp_segment(dlt::EN10MB, &f).unwrap();
        assert_eq!(s.dport, 5222);
        assert_eq!(s.seq, 1000);
        assert_eq!(s.payload, b"<presence/>");
        assert_eq!(s.wire_len, 11);
        assert_eq!(s.src.to_string(), "10.0.0.1");
    }

    #[test]
    fn vlan_and_qinq_tags_are_skipped() {
        let f = tcp_v4(b"x");
        for tags in [
            vec![0x81u8, 0x00],
            vec![0x88, 0xA8, 0, 5, 0x81, 0x00],
            vec![0x91, 0x00, 0, 5, 0x81, 0x00],
        ] {
            let mut g = f[..12].to_vec();
            g.extend_from_slice(&tags);
            g.extend_from_slice(&[0, 7]); // VLAN id of the innermost tag
            g.extend_from_slice(&f[12..]);
            let s = tcp_segment(dlt::EN10MB, &g).unwrap();
            assert_eq!(s.payload, b"x");
        }
    }

    #[test]
    fn sll_sll2_null_loop_raw() {
        let f = tcp_v4(b"abc");
        let ip = &f[14..];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(ip);
        assert_eq!(tcp_segment(dlt::LINUX_SLL, &sll).unwrap().payload, b"abc");
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(ip);
        assert_eq!(tcp_segment(dlt::LINUX_SLL2, &sll2).unwrap().payload, b"abc");
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        assert_eq!(tcp_segment(dlt::NULL, &null).unwrap().payload, b"abc");
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(ip);
        assert_eq!(tcp_segment(dlt::NULL, &null_be).unwrap().payload, b"abc");
        assert_eq!(tcp_segment(dlt::LOOP, &null_be).unwrap().payload, b"abc");
        assert_eq!(tcp_segment(dlt::RAW, ip).unwrap().payload, b"abc");
    }

    #[test]
    fn ipv6_with_extension_header() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(5222, 40000, 7, 100);
        let mut v6 = Vec::new();
        b.write(&mut v6, b"<iq/>").unwrap();
        // Insert a hop-by-hop options header (8 bytes) after the fixed header.
        let mut with_ext = v6[..40].to_vec();
        with_ext[6] = 0; // next header: hop-by-hop
        let plen = u16::from_be_bytes([v6[4], v6[5]]) + 8;
        with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
        with_ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // next: TCP, PadN
        with_ext.extend_from_slice(&v6[40..]);
        let s = tcp_segment(dlt::RAW, &with_ext).unwrap();
        assert_eq!(s.sport, 5222);
        assert_eq!(s.payload, b"<iq/>");
    }

    #[test]
    fn snaplen_cut_keeps_wire_length() {
        let f = tcp_v4(&[b'a'; 100]);
        let cut = &f[..f.len() - 40];
        let s = tcp_segment(dlt::EN10MB, cut).unwrap();
        assert_eq!(s.payload.len(), 60);
        assert_eq!(s.wire_len, 100);
    }

    #[test]
    fn every_prefix_is_handled_without_panic() {
        let f = tcp_v4(b"<message><body>hi</body></message>");
        for lt in [
            dlt::EN10MB,
            dlt::LINUX_SLL,
            dlt::LINUX_SLL2,
            dlt::NULL,
            dlt::RAW,
        ] {
            for n in 0..=f.len() {
                let _ = tcp_segment(lt, &f[..n]);
            }
        }
        // A cut inside the Ethernet header says so.
        assert!(matches!(
            tcp_segment(dlt::EN10MB, &f[..10]),
            Err(LinkStop::Malformed {
                layer: "Ethernet",
                ..
            })
        ));
        assert!(matches!(
            tcp_segment(dlt::EN10MB, &f[..40]),
            Err(LinkStop::Malformed { layer: "TCP", .. })
        ));
    }

    #[test]
    fn non_ip_and_non_tcp() {
        let mut arp = tcp_v4(b"");
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(tcp_segment(dlt::EN10MB, &arp).unwrap_err(), LinkStop::NotIp);
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 1)
            .udp(53, 53);
        let mut udp = Vec::new();
        b.write(&mut udp, b"dns").unwrap();
        assert_eq!(
            tcp_segment(dlt::EN10MB, &udp).unwrap_err(),
            LinkStop::NotTcp
        );
        let d = udp_datagram(dlt::EN10MB, &udp).unwrap();
        assert_eq!((d.sport, d.dport, d.payload), (53, 53, &b"dns"[..]));
        assert!(udp_datagram(dlt::EN10MB, &tcp_v4(b"x")).is_none());
        for n in 0..udp.len() {
            let _ = udp_datagram(dlt::EN10MB, &udp[..n]);
        }
    }
}
