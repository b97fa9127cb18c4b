//! The `voice-gateway` binary (wired up in the next commit).
fn main() {}
