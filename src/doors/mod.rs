//! doors (to be written)
