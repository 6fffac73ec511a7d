//! Development-only test support for oidcgate: an in-process OpenID
//! Provider ([`TestIdp`]), an echoing upstream server
//! ([`upstream::EchoUpstream`]) and small networking helpers.
//!
//! The provider signs its tokens with its own JOSE code built directly on
//! `aws-lc-rs`, independent of the gateway's verifier, so tests exercise the
//! gateway against an implementation that shares no code with it.

// This crate only supports tests: failing loudly on broken invariants
// (key generation, socket binding) is the desired behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

pub mod github;
pub mod graph;
pub mod idp;
pub mod redis;
pub mod served;
pub mod tls;
pub mod upstream;
pub mod wait;

mod jose;
mod server;

pub use idp::{
    AccessTokenFormat, AssertionAud, ClientKey, ClientKeyAlg, Counters, Endpoint, Fault, IdpConfig,
    KeyChoice, Mint, RefreshTokenRule, Revocation, SigningAlg, TestIdp, TestUser,
};

/// Returns a TCP port on 127.0.0.1 that was free at the time of the call.
///
/// The port is released before returning, so another process could take it
/// in between; tests use it for servers that must be told their port up
/// front.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("listener address").port()
}
