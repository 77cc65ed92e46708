//! `clone`/`clone3` flags (`include/uapi/linux/sched.h`) and the sizes of
//! `struct clone_args`.

// The values, as the raw words the system calls take (user programs build
// flag words from them, exit signal included); `CloneFlags` names the same bits.
pub const CLONE_NEWTIME: u64 = 0x0000_0080;
pub const CLONE_VM: u64 = 0x0000_0100;
pub const CLONE_FS: u64 = 0x0000_0200;
pub const CLONE_FILES: u64 = 0x0000_0400;
pub const CLONE_SIGHAND: u64 = 0x0000_0800;
pub const CLONE_PIDFD: u64 = 0x0000_1000;
pub const CLONE_PTRACE: u64 = 0x0000_2000;
pub const CLONE_VFORK: u64 = 0x0000_4000;
pub const CLONE_PARENT: u64 = 0x0000_8000;
pub const CLONE_THREAD: u64 = 0x0001_0000;
pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_SYSVSEM: u64 = 0x0004_0000;
pub const CLONE_SETTLS: u64 = 0x0008_0000;
pub const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
pub const CLONE_DETACHED: u64 = 0x0040_0000;
pub const CLONE_UNTRACED: u64 = 0x0080_0000;
pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;
pub const CLONE_NEWNET: u64 = 0x4000_0000;
pub const CLONE_IO: u64 = 0x8000_0000;
/// clone3 only: reset signal handlers in the child.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// clone3 only: start the child in another cgroup.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

bitflags::bitflags! {
    /// The flags word of `clone` and `clone3` (without legacy clone's exit
    /// signal byte, [`CSIGNAL`]). Unknown bits are kept (`from_bits_retain`):
    /// legacy clone ignores them and clone3 rejects them, as Linux does.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct CloneFlags: u64 {
        const CLONE_NEWTIME = CLONE_NEWTIME;
        const CLONE_VM = CLONE_VM;
        const CLONE_FS = CLONE_FS;
        const CLONE_FILES = CLONE_FILES;
        const CLONE_SIGHAND = CLONE_SIGHAND;
        const CLONE_PIDFD = CLONE_PIDFD;
        const CLONE_PTRACE = CLONE_PTRACE;
        const CLONE_VFORK = CLONE_VFORK;
        const CLONE_PARENT = CLONE_PARENT;
        const CLONE_THREAD = CLONE_THREAD;
        const CLONE_NEWNS = CLONE_NEWNS;
        const CLONE_SYSVSEM = CLONE_SYSVSEM;
        const CLONE_SETTLS = CLONE_SETTLS;
        const CLONE_PARENT_SETTID = CLONE_PARENT_SETTID;
        const CLONE_CHILD_CLEARTID = CLONE_CHILD_CLEARTID;
        const CLONE_DETACHED = CLONE_DETACHED;
        const CLONE_UNTRACED = CLONE_UNTRACED;
        const CLONE_CHILD_SETTID = CLONE_CHILD_SETTID;
        const CLONE_NEWCGROUP = CLONE_NEWCGROUP;
        const CLONE_NEWUTS = CLONE_NEWUTS;
        const CLONE_NEWIPC = CLONE_NEWIPC;
        const CLONE_NEWUSER = CLONE_NEWUSER;
        const CLONE_NEWPID = CLONE_NEWPID;
        const CLONE_NEWNET = CLONE_NEWNET;
        const CLONE_IO = CLONE_IO;
        /// clone3 only: reset signal handlers in the child.
        const CLONE_CLEAR_SIGHAND = CLONE_CLEAR_SIGHAND;
        /// clone3 only: start the child in another cgroup.
        const CLONE_INTO_CGROUP = CLONE_INTO_CGROUP;
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
