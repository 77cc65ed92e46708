//! Links the user programs as freestanding static non-PIE ELFs at the default
//! address (text at 0x400000), entered at `_start` (see `src/start.rs`).
//!
//! Only `bins` get these flags: the library's unit tests and the integration
//! tests are ordinary std test binaries linked the usual way.
fn main() {
    for arg in [
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        "-Wl,-e,_start",
        // `_start` lives in this crate's rlib; make the linker pull it in even
        // though nothing in a program refers to it by name.
        "-Wl,-u,_start",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
