//! Fuzz target: the fast one-pass reader (`xmpp::lite`) against quick-xml.
//! Whenever the fast reader answers, quick-xml must accept the same unit and
//! say the same things about it (names, namespaces, attributes, text at the
//! levels the fast reader keeps); otherwise the Info and statistics of the
//! summary path would differ from the decoded XML.
//!
//! Input: byte 0 bit 0 selects the stream's scope (jabber:client + the
//! stream prefix) or none; the rest is the unit's bytes.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xmppscope::xmpp::element::{self, NS_STREAMS, Scope};
use xmppscope::xmpp::lite;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let scope = if ctl & 1 != 0 {
        Scope {
            default_ns: Arc::from("jabber:client"),
            prefixes: vec![("stream".to_owned(), Arc::from(NS_STREAMS))],
        }
    } else {
        Scope::default()
    };
    let Some(fast) = lite::parse(bytes, &scope) else {
        return;
    };
    let el = match element::parse(bytes, &scope, false) {
        Ok(el) => el,
        Err(e) => panic!("the fast reader accepted what quick-xml rejects: {e:?}"),
    };
    let slow = lite::Tree::from_element(&el);
    assert_eq!(lite::dump(&fast), lite::dump(&slow));
});
