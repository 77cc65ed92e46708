//! `clone`/`clone3` flags (`include/uapi/linux/sched.h`) and the sizes of
//! `struct clone_args`.

bitflags::bitflags! {
    /// The flags word of `clone` and `clone3` (without legacy clone's exit
    /// signal byte, [`CSIGNAL`]). Unknown bits are kept (`from_bits_retain`):
    /// legacy clone ignores them and clone3 rejects them, as Linux does.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct CloneFlags: u64 {
        const CLONE_NEWTIME = 0x0000_0080;
        const CLONE_VM = 0x0000_0100;
        const CLONE_FS = 0x0000_0200;
        const CLONE_FILES = 0x0000_0400;
        const CLONE_SIGHAND = 0x0000_0800;
        const CLONE_PIDFD = 0x0000_1000;
        const CLONE_PTRACE = 0x0000_2000;
        const CLONE_VFORK = 0x0000_4000;
        const CLONE_PARENT = 0x0000_8000;
        const CLONE_THREAD = 0x0001_0000;
        const CLONE_NEWNS = 0x0002_0000;
        const CLONE_SYSVSEM = 0x0004_0000;
        const CLONE_SETTLS = 0x0008_0000;
        const CLONE_PARENT_SETTID = 0x0010_0000;
        const CLONE_CHILD_CLEARTID = 0x0020_0000;
        const CLONE_DETACHED = 0x0040_0000;
        const CLONE_UNTRACED = 0x0080_0000;
        const CLONE_CHILD_SETTID = 0x0100_0000;
        const CLONE_NEWCGROUP = 0x0200_0000;
        const CLONE_NEWUTS = 0x0400_0000;
        const CLONE_NEWIPC = 0x0800_0000;
        const CLONE_NEWUSER = 0x1000_0000;
        const CLONE_NEWPID = 0x2000_0000;
        const CLONE_NEWNET = 0x4000_0000;
        const CLONE_IO = 0x8000_0000;
        /// clone3 only: reset signal handlers in the child.
        const CLONE_CLEAR_SIGHAND = 0x1_0000_0000;
        /// clone3 only: start the child in another cgroup.
        const CLONE_INTO_CGROUP = 0x2_0000_0000;
    }
}

impl CloneFlags {
    /// Every namespace flag.
    pub const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWNS
        .union(CloneFlags::CLONE_NEWCGROUP)
        .union(CloneFlags::CLONE_NEWUTS)
        .union(CloneFlags::CLONE_NEWIPC)
        .union(CloneFlags::CLONE_NEWUSER)
        .union(CloneFlags::CLONE_NEWPID)
        .union(CloneFlags::CLONE_NEWNET)
        .union(CloneFlags::CLONE_NEWTIME);
}

/// Legacy clone's low byte: the child's exit signal.
pub const CSIGNAL: u64 = 0xff;

/// Size of the first `struct clone_args`.
pub const CLONE_ARGS_SIZE_VER0: u64 = 64;
/// Size of `struct clone_args` with `set_tid`.
pub const CLONE_ARGS_SIZE_VER1: u64 = 80;
/// Size of `struct clone_args` with `cgroup`.
pub const CLONE_ARGS_SIZE_VER2: u64 = 88;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_kept_and_namespaces_exclude_thread_flags() {
        let raw = CloneFlags::CLONE_VM.bits() | 1 << 40;
        assert_eq!(CloneFlags::from_bits_retain(raw).bits(), raw);
        assert!(CloneFlags::NAMESPACES.contains(CloneFlags::CLONE_NEWTIME));
        assert!(!CloneFlags::NAMESPACES.intersects(CloneFlags::CLONE_THREAD | CloneFlags::CLONE_FS));
    }
}
