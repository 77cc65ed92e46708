//! Arbitrary bytes into `FrameDecoder` and `Message::decode`; the
//! invariants are in `src/invariants.rs` (shared with the corpus replay
//! test of `forkvm-protocol`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::check(data);
});
