//! Property tests of the whole dissector: for streams built from many
//! stanzas, every way of cutting the bytes into TCP segments (byte by byte
//! included), and delivering the segments out of order with retransmitted
//! copies, yields the same events.

use etherparse::PacketBuilder;
use proptest::prelude::*;
use xmppscope::dissect::{Config, Dissector};
use xmppscope::link::dlt;
use xmppscope::model::{Packet, Timestamp};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [203, 0, 113, 5];

fn pieces() -> Vec<&'static str> {
    vec![
        "<message to='bob@example.com' type='chat' id='m1'><body>h\u{e9}llo &amp; &lt;3 \u{1F600}</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='bob@example.com' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<presence><show>away</show><status>in a &quot;meeting&quot; &gt; lunch</status></presence>",
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type=\"set\" id=\"b1\"><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>a>b</resource></bind></iq>",
        " ",
        "<message type='chat'><body><![CDATA[<not a tag>]]></body></message>",
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<!-- a comment > here -->",
    ]
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

fn frame(from_client: bool, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_client {
        (CLIENT, SERVER, 40000, 5222)
    } else {
        (SERVER, CLIENT, 5222, 40000)
    };
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 65535);
    if syn {
        b = b.syn();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// (kind, info) of every event, in order.
fn events_of(frames: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut d = Dissector::new(Config::default());
    let mut p = Packet::default();
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp {
            secs: 1_000 + i as i64,
            nanos: 0,
        };
        d.dissect(i as u64 + 1, ts, dlt::EN10MB, f, f.len() as u32, &mut p);
        out.extend(
            p.events
                .iter()
                .map(|e| (e.kind_name().to_owned(), e.info.clone())),
        );
    }
    // A whitespace keepalive is whitespace sent in a segment of its own
    // (RFC 6120 §4.6.1), so it depends on the cut by definition: leave it out.
    d.finish(frames.len() as u64);
    let (late, _) = d.take_flushed();
    out.extend(
        late.iter()
            .map(|e| (e.kind_name().to_owned(), e.info.clone())),
    );
    out.retain(|(k, _)| k != "keepalive");
    out
}

/// The client's byte stream: header, then the chosen pieces.
fn stream(choice: &[usize]) -> Vec<u8> {
    let p = pieces();
    let mut s = HEADER.as_bytes().to_vec();
    for &c in choice {
        s.extend_from_slice(p[c % p.len()].as_bytes());
    }
    s
}

/// SYN, then the stream cut at `cuts`, with an initial sequence number.
fn segments(s: &[u8], cuts: &[usize], isn: u32) -> Vec<(u32, Vec<u8>)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (s.len() + 1)).collect();
    points.push(0);
    points.push(s.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| {
            (
                isn.wrapping_add(1).wrapping_add(w[0] as u32),
                s[w[0]..w[1]].to_vec(),
            )
        })
        .collect()
}

fn frames_of(segs: &[(u32, Vec<u8>)], isn: u32) -> Vec<Vec<u8>> {
    let mut f = vec![frame(true, isn, true, b"")];
    f.extend(
        segs.iter()
            .map(|(seq, data)| frame(true, *seq, false, data)),
    );
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_cut_gives_the_same_events(
        choice in prop::collection::vec(0usize..9, 1..25),
        cuts in prop::collection::vec(any::<usize>(), 0..60),
        isn in any::<u32>(),
    ) {
        let s = stream(&choice);
        let whole = events_of(&frames_of(&segments(&s, &[], isn), isn));
        let cut = events_of(&frames_of(&segments(&s, &cuts, isn), isn));
        prop_assert_eq!(&cut, &whole);
        // One stream header, and every stanza of the choice is there.
        prop_assert_eq!(whole.iter().filter(|(k, _)| k == "stream_header").count(), 1);
    }

    #[test]
    fn reordered_and_retransmitted_segments_give_the_same_events(
        choice in prop::collection::vec(0usize..9, 1..25),
        cuts in prop::collection::vec(any::<usize>(), 1..60),
        swaps in prop::collection::vec((any::<usize>(), 1usize..4), 0..10),
        dups in prop::collection::vec(any::<usize>(), 0..10),
        isn in any::<u32>(),
    ) {
        let s = stream(&choice);
        let whole = events_of(&frames_of(&segments(&s, &[], isn), isn));
        let mut segs = segments(&s, &cuts, isn);
        for d in dups {
            let i = d % segs.len();
            let copy = segs[i].clone();
            segs.insert((i + 2).min(segs.len()), copy);
        }
        let n = segs.len();
        for (i, k) in swaps {
            let a = i % n;
            let b = (a + k).min(n - 1);
            segs.swap(a, b);
        }
        prop_assert_eq!(events_of(&frames_of(&segs, isn)), whole);
    }
}

/// Byte by byte, the exhaustive case.
#[test]
fn byte_by_byte_gives_the_same_events() {
    let s = stream(&[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let isn = u32::MAX - 100; // crosses the 2^32 wrap
    let whole = events_of(&frames_of(&segments(&s, &[], isn), isn));
    let every: Vec<usize> = (1..s.len()).collect();
    let bytewise = events_of(&frames_of(&segments(&s, &every, isn), isn));
    assert_eq!(bytewise, whole);
    let infos: Vec<&str> = whole.iter().map(|(_, i)| i.as_str()).collect();
    assert!(infos.contains(&"STREAM > example.com"), "{infos:?}");
    assert!(
        infos
            .iter()
            .any(|i| i.starts_with("MESSAGE > bob@example.com \"h\u{e9}llo & <3")),
        "{infos:?}"
    );
    assert!(infos.contains(&"IQ(set) BIND"), "{infos:?}");
    assert!(infos.contains(&"SM r"), "{infos:?}");
}

/// Every field an event carries but the frames it came in (which depend on
/// the cut by definition), keepalives left out as above.
fn full_events_of(frames: &[Vec<u8>]) -> Vec<String> {
    let mut d = Dissector::new(Config::default());
    let mut p = Packet::default();
    let mut out = Vec::new();
    let show = |e: &xmppscope::model::Event| {
        format!(
            "{} {:?} {} {{{}}} {:?} {:?} {:?} {:?} @{}+{} body={} {:?} {:?} {:?} resp={:?}",
            e.kind_name(),
            e.info,
            e.name,
            e.ns,
            e.typ,
            e.id,
            e.from,
            e.to,
            e.offset,
            e.len,
            e.has_body,
            e.chat_state,
            e.facts,
            e.notes,
            e.response_to,
        )
    };
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp {
            secs: 1_000 + i as i64,
            nanos: 0,
        };
        d.dissect(i as u64 + 1, ts, dlt::EN10MB, f, f.len() as u32, &mut p);
        out.extend(
            p.events
                .iter()
                .filter(|e| e.kind_name() != "keepalive")
                .map(show),
        );
    }
    d.finish(frames.len() as u64);
    let (late, _) = d.take_flushed();
    out.extend(
        late.iter()
            .filter(|e| e.kind_name() != "keepalive")
            .map(show),
    );
    out
}

/// Elements complete in one segment are cut and read in one pass
/// (`lite::frame`), the others by the framer and `lite::parse` or
/// quick-xml: whole, one piece per segment and byte by byte, every field
/// of every event is the same.
#[test]
fn fast_and_framed_elements_give_the_same_event_fields() {
    let mut choice: Vec<usize> = (0..9).collect();
    choice.extend([4, 0, 2, 7, 3, 1, 5, 5, 0]);
    let s = stream(&choice);
    let isn = 7;
    let whole = full_events_of(&frames_of(&segments(&s, &[], isn), isn));
    assert!(whole.len() > 15, "{whole:#?}");
    let mut at = HEADER.len();
    let mut piece_cuts = vec![at];
    for &c in &choice {
        at += pieces()[c % pieces().len()].len();
        piece_cuts.push(at);
    }
    let per_piece = full_events_of(&frames_of(&segments(&s, &piece_cuts, isn), isn));
    assert_eq!(per_piece, whole);
    let every: Vec<usize> = (1..s.len()).collect();
    let bytewise = full_events_of(&frames_of(&segments(&s, &every, isn), isn));
    assert_eq!(bytewise, whole);
}
