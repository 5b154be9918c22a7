#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! xmppscope's one integration-test binary.

mod adversarial;
mod cli;
mod counts;
mod depth;
mod export;
mod fuzzing;
mod golden;
mod live;
mod prop;
mod tlsdec;
mod truth;
mod tui;
mod util;
mod views;
