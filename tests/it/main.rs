//! Integration tests placeholder.
#[test]
fn placeholder() {}
