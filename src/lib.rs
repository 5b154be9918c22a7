//! xmppscope: a passive analyzer for XMPP (Jabber, Google Talk) captures.
//!
//! Data flows one way:
//! `capture → link → tcp → xmpp (framer, element, info) / tls → model → output`,
//! driven by the pure [`dissect::Dissector`].

#![forbid(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod dissect;
pub mod dns;
pub mod keylog;
pub mod link;
pub mod live;
pub mod model;
pub mod names;
pub mod output;
pub mod run;
pub mod tcp;
pub mod tls;
pub mod tlsdec;
pub mod ui;
pub mod views;
pub mod xmpp;
