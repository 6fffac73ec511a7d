//! oidcgate: an OpenID Connect authentication gateway.
//!
//! One engine ([`gate::Gate::decide`]) serves every door: forward-auth (Traefik,
//! Caddy), nginx `auth_request`, a reverse proxy, and a tower layer. See
//! `ARCHITECTURE.md` for the code map.

pub mod cache;
pub mod config;
pub mod doors;
pub mod gate;
pub mod oidc;
pub mod policy;
pub mod session;
pub mod telemetry;
