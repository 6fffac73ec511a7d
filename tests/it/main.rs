//! End-to-end tests of the browser login through every door, over real
//! sockets: a test OpenID Provider, an echo upstream and the gate on
//! loopback, driven by a hand-rolled browser that follows each redirect
//! itself so every hop can be asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithms;
mod attacks;
mod client_auth;
mod doors;
mod faults;
mod github;
mod hardening;
mod headers;
mod layer;
mod login;
mod multi;
mod pages;
mod providers;
mod resource;
mod support;
