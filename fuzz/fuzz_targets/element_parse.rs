//! Fuzz target: the display path of one framed unit — `element::parse`,
//! then everything the printers and the TUI derive from the element:
//! `info::describe`, `info::stream_header`, `detail::details`,
//! `detail::pretty`, `detail::write_readable`, `detail::stream_header`, the
//! SASL decoder.
//!
//! Input: byte 0 selects the context, the rest is the unit's bytes.
//!
//! ```text
//! bit 0    direction (client→server / server→client)
//! bit 1    open_only (parse as a stream header)
//! bit 2    parse in the stream's scope (jabber:client + stream prefix)
//! bit 3    show_secrets
//! bits 4-5 SASL mechanism of the flow: none, PLAIN, SCRAM-SHA-1, DIGEST-MD5
//! ```
//!
//! Besides "no panic", a successful parse must give an element with a
//! non-empty name, and parsing is deterministic.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xmppscope::model::Dir;
use xmppscope::xmpp::element::{self, NS_STREAMS, Scope};
use xmppscope::xmpp::sasl::{self, Step};
use xmppscope::xmpp::{detail, info};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let dir = if ctl & 1 == 0 {
        Dir::ClientToServer
    } else {
        Dir::ServerToClient
    };
    let open_only = ctl & 2 != 0;
    let scope = if ctl & 4 != 0 {
        Scope {
            default_ns: Arc::from("jabber:client"),
            prefixes: vec![("stream".to_owned(), Arc::from(NS_STREAMS))],
        }
    } else {
        Scope::default()
    };
    let show_secrets = ctl & 8 != 0;
    let mech =
        [None, Some("PLAIN"), Some("SCRAM-SHA-1"), Some("DIGEST-MD5")][usize::from(ctl >> 4 & 3)];

    let parsed = element::parse(bytes, &scope, open_only);
    assert_eq!(
        parsed,
        element::parse(bytes, &scope, open_only),
        "not deterministic"
    );
    let el = match parsed {
        Ok(el) => el,
        Err(e) => {
            assert!(
                e.offset <= 3 * bytes.len() as u64 + 1,
                "error offset {} far past the unit ({} bytes)",
                e.offset,
                bytes.len()
            );
            return;
        }
    };
    assert!(!el.name.is_empty(), "parsed an element without a name");
    let _ = el.local();
    let inner = el.scope_inside(&scope);

    if open_only {
        let _ = info::stream_header(&el, dir);
        let v = detail::stream_header(&el);
        let mut s = String::new();
        detail::write_readable(&v, 4, &mut s);
        return;
    }
    let d = info::describe(&el, dir);
    let _ = (d.kind(), info::preview(&d.info, 60), info::short_ns(&el.ns));
    let (v, _notes) = detail::details(
        &el,
        detail::Ctx {
            sasl_mech: mech,
            show_secrets,
        },
    );
    let mut s = String::new();
    detail::write_readable(&v, 4, &mut s);
    let _ = detail::pretty(&el, show_secrets, mech);
    let _ = detail::secret_text(&el, Some(&inner.default_ns), mech);
    for step in [Step::Auth, Step::Challenge, Step::Response, Step::Success] {
        let _ = sasl::decode(mech, step, &el.text, show_secrets);
    }
    if let Some(m) = el.attr("mechanism") {
        let _ = sasl::auth_user(m, &el.text);
    }
    let _ = sasl::digest_params(&el.text);
});
