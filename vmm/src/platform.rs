//! Which kind of KVM host this is.
//!
//! Ordinary KVM (VMX/SVM) runs the guest as a normal hardware-virtualised
//! guest. The PVM host of our CI machines (`kvm_pvm` module) emulates guest
//! ring-0 code instruction by instruction unless the guest is switched to
//! native execution through a control MSR, which the VMM sets before the
//! first run (docs/ARCHITECTURE.md, "Platform modes").

use std::path::Path;

use forkvm_abi::Platform;

use crate::config::PlatformChoice;

/// Where the PVM module shows up when it is loaded.
const PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// Resolves the user's choice against the host.
pub fn resolve(choice: PlatformChoice) -> Platform {
    match choice {
        PlatformChoice::Hvm => Platform::Hvm,
        PlatformChoice::Pvm => Platform::PvmNative,
        PlatformChoice::Auto if Path::new(PVM_MODULE).exists() => Platform::PvmNative,
        PlatformChoice::Auto => Platform::Hvm,
    }
}
