//! Regression tests for inputs found by the fuzz targets in `fuzz/`
//! (see fuzz/README.md). Each test names its target, the original failure
//! and the minimised input, and drives the same API as the target.

use xmppscope::model::Dir;
use xmppscope::xmpp::element::{self, Scope};
use xmppscope::xmpp::framer::{Framer, FramerEvent, FramerLimits, FramerNoteKind};
use xmppscope::xmpp::info;

/// fuzz target `element_parse`, crash-d14d8c84981c98ccfecdf2b31b80e789716c1f82:
/// "parsed an element without a name". quick-xml accepts `<` followed by
/// whitespace as a tag with an empty name, so `element::parse` returned an
/// `Element` whose `name` is "" (and `describe` labelled it). XML 1.0 §3.1:
/// a tag's Name follows `<` directly; the unit is malformed.
/// Minimised input (target context byte 0x00, then the unit): `00 3c 20 2f 3e`.
#[test]
fn element_parse_rejects_a_tag_without_a_name() {
    let scope = Scope::default();
    for unit in [
        &b"< />"[..],
        b"<\t>x</>",
        b"<\n  \x10ence to='alice@loc' type='unavailable'/>",
    ] {
        let got = element::parse(unit, &scope, false);
        if let Ok(el) = &got {
            // The display path must not panic even on what was accepted.
            let _ = info::describe(el, Dir::ClientToServer);
        }
        let err = got.expect_err("a tag without a name is not XML");
        assert!(err.offset <= unit.len() as u64, "{err:?}");
        // As a stream header too.
        assert!(element::parse(unit, &scope, true).is_err());
    }
}

/// The same bytes on the wire never reach `element::parse`: the framer
/// reports them as malformed and resynchronises on the next element.
#[test]
fn framer_reports_a_tag_without_a_name_as_malformed() {
    let mut f = Framer::new(FramerLimits::default());
    let mut notes = Vec::new();
    let mut units = Vec::new();
    f.push(b"< /><presence/>", 1, &mut |ev| match ev {
        FramerEvent::Note(n) => notes.push(n.kind),
        FramerEvent::Unit(u) => units.push(u.bytes.to_vec()),
    });
    assert!(notes.contains(&FramerNoteKind::Malformed), "{notes:?}");
    assert_eq!(units, vec![b"<presence/>".to_vec()]);
}
