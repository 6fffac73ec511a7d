//! oidc (to be written)
