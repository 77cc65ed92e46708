//! Errors the VMM reports to the user, one clear line each.

use std::fmt;
use std::path::PathBuf;

/// Everything that can stop forkvm before or while the guest runs.
#[derive(Debug)]
pub enum Error {
    /// The KVM device does not exist.
    KvmMissing(PathBuf),
    /// The KVM device exists but cannot be opened by this user.
    KvmPermission(PathBuf),
    /// The device does not speak the KVM API.
    NotKvm(PathBuf),
    /// Any other failure opening or talking to KVM.
    Kvm(&'static str, kvm_ioctls::Error),
    /// The kernel image cannot be read.
    KernelFile(PathBuf, std::io::Error),
    /// The kernel image is not a loadable x86-64 ELF.
    KernelFormat(PathBuf, String),
    /// The guest memory size is unusable.
    MemorySize(String),
    /// Guest memory could not be created or written.
    Memory(String),
    /// The boot script is too long.
    ScriptTooLong { len: usize, max: u64 },
    /// The initramfs cannot be read.
    InitrdFile(PathBuf, std::io::Error),
    /// The initramfs is not an archive forkvm can load.
    InitrdFormat(PathBuf, String),
    /// The initramfs does not fit the guest's memory.
    InitrdTooLarge { size: u64, max: u64, memory: u64 },
    /// `--init`'s path and arguments do not fit the boot area.
    InitTooLong { len: usize, max: u64 },
    /// `--cpus` asked for no vCPU, or more than the host (or the guest
    /// kernel) has.
    CpuCount { asked: u32, max: u32 },
    /// A Linux kernel cannot be booted as asked (see `linux_boot`).
    LinuxBoot(String),
    /// Host-side I/O (terminal, event loop) failed.
    Io(&'static str, std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KvmMissing(path) => write!(
                f,
                "{} does not exist: forkvm needs Linux KVM (load the kvm_intel or kvm_amd module, \
                 or enable nested virtualisation for this VM)",
                path.display()
            ),
            Error::KvmPermission(path) => write!(
                f,
                "no permission to open {}: add your user to the 'kvm' group (sudo usermod -aG kvm $USER, \
                 then log in again) or run as root",
                path.display()
            ),
            Error::NotKvm(path) => write!(f, "{} is not a KVM device (KVM_GET_API_VERSION failed)", path.display()),
            Error::Kvm(what, e) => write!(f, "KVM: {what}: {e}"),
            Error::KernelFile(path, e) => write!(f, "cannot read kernel image {}: {e}", path.display()),
            Error::KernelFormat(path, why) => {
                write!(f, "kernel image {} is not a loadable x86-64 ELF: {why}", path.display())
            }
            Error::MemorySize(why) => write!(f, "bad guest memory size: {why}"),
            Error::Memory(why) => write!(f, "guest memory: {why}"),
            Error::ScriptTooLong { len, max } => {
                write!(f, "the -c script is {len} bytes; at most {max} fit in the guest's boot area")
            }
            Error::InitrdFile(path, e) => write!(f, "cannot read initramfs {}: {e}", path.display()),
            Error::InitrdFormat(path, why) => write!(f, "initramfs {}: {why}", path.display()),
            Error::InitrdTooLarge { size, max, memory } => write!(
                f,
                "the initramfs is too large: {size} bytes, at most {max} fit in {} MiB of guest memory (use a larger --mem)",
                memory >> 20
            ),
            Error::InitTooLong { len, max } => {
                write!(f, "--init's path and arguments take {len} bytes; at most {max} fit in the guest's boot area")
            }
            Error::CpuCount { asked, max } => write!(
                f,
                "--cpus {asked}: the guest can have 1 to {max} vCPUs (this host has {max} CPUs \
                 available, the guest kernel at most {})",
                forkvm_abi::MAX_CPUS
            ),
            Error::LinuxBoot(why) => write!(f, "cannot boot the Linux kernel: {why}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Result with the VMM's error.
pub type Result<T> = std::result::Result<T, Error>;
