//! What the user asked for, independent of how it was parsed.

use std::path::PathBuf;
use std::time::Duration;

use forkvm_abi::{MAX_GUEST_MEMORY, MIN_GUEST_MEMORY};

use crate::error::{Error, Result};

/// Default guest memory.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Default KVM device.
pub const DEFAULT_KVM_DEVICE: &str = "/dev/kvm";

/// How the guest kernel should execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformChoice {
    /// Detect the host: PVM-native where the `kvm_pvm` module serves KVM, else HVM.
    Auto,
    /// Force an ordinary hardware-virtualised guest.
    Hvm,
    /// Force the PVM-native switch.
    Pvm,
}

/// A complete VM configuration.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Guest kernel ELF.
    pub kernel: PathBuf,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// KVM device node.
    pub kvm_device: PathBuf,
    /// Shell commands to run instead of the interactive prompt.
    pub script: Option<String>,
    /// Kill the guest after this long.
    pub timeout: Option<Duration>,
    /// Platform selection.
    pub platform: PlatformChoice,
    /// The initramfs (a newc cpio archive, maybe gzip-compressed).
    pub initrd: Option<PathBuf>,
    /// The first program's path and arguments (`argv[0]` is the path);
    /// `None`: the built-in init.
    pub init: Option<Vec<String>>,
    /// Number of vCPUs (1..=the host's CPUs).
    pub cpus: u32,
    /// More of a Linux kernel's command line (`--append`; bzImage only).
    pub append: Option<String>,
    /// Whether standard input feeds the serial console when there is no
    /// script (false: nothing reads it, as for an embedded Linux guest).
    pub console_input: bool,
}

impl VmConfig {
    /// The default configuration for `kernel`.
    pub fn new(kernel: PathBuf) -> Self {
        Self {
            kernel,
            memory: DEFAULT_MEMORY,
            kvm_device: PathBuf::from(DEFAULT_KVM_DEVICE),
            script: None,
            timeout: None,
            platform: PlatformChoice::Auto,
            initrd: None,
            init: None,
            cpus: 1,
            append: None,
            console_input: true,
        }
    }
}

/// Parses a memory size: a number of bytes with an optional K, M or G
/// suffix (binary units, case-insensitive, optional trailing "iB" or "B").
pub fn parse_memory_size(text: &str) -> Result<u64> {
    let bad = |why: &str| Error::MemorySize(format!("'{text}': {why}"));
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let unit_start = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(unit_start);
    if digits.is_empty() {
        return Err(bad("expected a number such as 256M or 1G"));
    }
    let number: u64 = digits.parse().map_err(|_| bad("number too large"))?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad("unknown unit (use K, M or G)")),
    };
    let bytes = number
        .checked_shl(shift)
        .filter(|b| b >> shift == number)
        .ok_or_else(|| bad("too large"))?;
    validate_memory_size(bytes).map_err(|why| bad(&why))?;
    Ok(bytes)
}

fn validate_memory_size(bytes: u64) -> std::result::Result<(), String> {
    if bytes < MIN_GUEST_MEMORY {
        return Err(format!(
            "the guest needs at least {} MiB",
            MIN_GUEST_MEMORY >> 20
        ));
    }
    // RAM above the 3 GiB MMIO hole moves up by 1 GiB.
    if bytes > MAX_GUEST_MEMORY - (1 << 30) {
        return Err(format!(
            "at most {} GiB is supported",
            (MAX_GUEST_MEMORY >> 30) - 1
        ));
    }
    if !bytes.is_multiple_of(4096) {
        return Err("must be a multiple of 4 KiB".into());
    }
    Ok(())
}

/// Most vCPUs this host can give a guest: its online CPUs, at most the
/// guest kernel's [`forkvm_abi::MAX_CPUS`].
pub fn max_cpus() -> u32 {
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    (host as u32).min(forkvm_abi::MAX_CPUS)
}

/// Checks a `--cpus` count against [`max_cpus`].
pub fn check_cpus(cpus: u32) -> Result<()> {
    let max = max_cpus();
    if (1..=max).contains(&cpus) {
        Ok(())
    } else {
        Err(Error::CpuCount { asked: cpus, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_memory_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_memory_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory_size("1gib").unwrap(), 1 << 30);
        assert_eq!(parse_memory_size("65536K").unwrap(), 64 << 20);
        assert_eq!(parse_memory_size("268435456").unwrap(), 256 << 20);
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in [
            "",
            "M",
            "1K",
            "12X",
            "-5M",
            "99999999999999999999G",
            "4097M0",
            "64G",
            "100000001",
        ] {
            assert!(parse_memory_size(bad).is_err(), "{bad} accepted");
        }
    }
}
