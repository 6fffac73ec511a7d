//! gate (to be written)
