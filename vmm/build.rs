//! Builds the guest kernel and tells the VMM where it is.
//!
//! The kernel needs code-generation flags that a crate cannot set for
//! itself (`-C no-redzone`: interrupts arrive on the kernel stack), so it is
//! built by a nested cargo with those flags, into its own target directory
//! (`target/guest`), always optimised: a debug kernel would distort every
//! measurement. Set FORKVM_GUEST_KERNEL to use a prebuilt kernel instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FORKVM_GUEST_KERNEL");
    if let Ok(prebuilt) = env::var("FORKVM_GUEST_KERNEL") {
        println!("cargo:rustc-env=FORKVM_GUEST_KERNEL={prebuilt}");
        return;
    }

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("vmm/ sits in the workspace")
        .to_path_buf();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let guest_target_dir = target_dir.join("guest");
    let triple = env::var("TARGET").expect("set by cargo");

    for watched in [
        "guest/src",
        "guest/abi",
        "guest/Cargo.toml",
        "guest/build.rs",
        "guest/linker.ld",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--package",
            "guest",
            "--bin",
            "guest",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(&guest_target_dir)
        // Our flags only, not the outer build's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Cno-redzone=yes")
        .status()
        .expect("cannot run cargo to build the guest kernel");
    if !status.success() {
        panic!("building the guest kernel failed ({status}); the errors are above");
    }

    let kernel = guest_target_dir.join(&triple).join("release").join("guest");
    assert!(
        Path::new(&kernel).exists(),
        "guest kernel missing at {}",
        kernel.display()
    );
    println!("cargo:rustc-env=FORKVM_GUEST_KERNEL={}", kernel.display());
}
