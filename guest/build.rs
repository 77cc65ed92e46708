//! Links the kernel as a freestanding static ELF with our own linker script.
//! Code-generation flags (no red zone) cannot be set here: vmm/build.rs
//! builds the kernel with them (see docs/ARCHITECTURE.md, "Building the guest").
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    for arg in [
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        &format!("-Wl,-T,{dir}/linker.ld"),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
