//! Namespaces (Linux `nsproxy`): each kind is a reference-counted object;
//! a task's `NsProxy` points at one of each, shared until a clone with a
//! `CLONE_NEW*` flag gives the child new ones (`copy_namespaces`).
//!
//! The UTS namespace carries its host and domain names (`sethostname`,
//! `uname`); the IPC namespace holds its System V semaphore sets
//! (`ipc::sem`); the mount namespace holds the root of its directory tree
//! (Linux `mnt_namespace->root`), where init's root and cwd come from
//! (`FsStruct::new_shared`) and what `chroot` is measured against
//! (`FsStruct::chrooted`). There is one file system (the ramfs) and no
//! `mount(2)`, so a new mount namespace's tree is a copy of one mount:
//! the same root directory (`copy_mnt_ns` on Linux copies the mounts,
//! which still show the same dentries). Network, cgroup and time
//! namespaces exist as objects with an identity but have nothing inside
//! to isolate yet. Pid
//! namespaces are in `pid_ns`, user namespaces in `user_ns`. Every
//! namespace is owned by the user namespace of the task that created it:
//! capabilities over that one govern it (e.g. `sethostname`).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use forkvm_abi::linux::clone::CloneFlags;
use spin::Mutex;

use crate::fs::dentry::Dentry;

/// Longest host or domain name (`__NEW_UTS_LEN`).
pub const UTS_LEN: usize = 64;

static NEXT_NS_ID: AtomicU64 = AtomicU64::new(1);
/// Live namespaces of each kind: uts, ipc, mnt, net, cgroup, time.
static LIVE: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// The kinds of namespace objects that exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsKind {
    Uts = 0,
    Ipc = 1,
    Mnt = 2,
    Net = 3,
    Cgroup = 4,
    Time = 5,
}

impl NsKind {
    pub const ALL: [NsKind; 6] = [
        NsKind::Uts,
        NsKind::Ipc,
        NsKind::Mnt,
        NsKind::Net,
        NsKind::Cgroup,
        NsKind::Time,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NsKind::Uts => "uts",
            NsKind::Ipc => "ipc",
            NsKind::Mnt => "mnt",
            NsKind::Net => "net",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }
}

/// A namespace: its identity (what `/proc/PID/ns/*` would show), and for
/// UTS the names.
pub struct Namespace {
    pub kind: NsKind,
    pub id: u64,
    /// The owning user namespace.
    pub user_ns: Arc<super::user_ns::UserNamespace>,
    pub uts: Mutex<UtsNames>,
    /// For IPC: its semaphore sets (a new IPC namespace starts empty).
    pub sem: Mutex<crate::ipc::sem::SemIds>,
    /// For mount: the root of its tree (Linux `mnt_namespace->root`);
    /// `None` for the other kinds.
    pub root: Option<Arc<Dentry>>,
}

/// Host and domain name of a UTS namespace.
#[derive(Clone, Copy)]
pub struct UtsNames {
    pub hostname: [u8; UTS_LEN],
    pub hostname_len: usize,
    pub domainname: [u8; UTS_LEN],
    pub domainname_len: usize,
}

impl UtsNames {
    fn initial() -> UtsNames {
        let mut names = UtsNames {
            hostname: [0; UTS_LEN],
            hostname_len: 6,
            domainname: [0; UTS_LEN],
            domainname_len: 6,
        };
        names.hostname[..6].copy_from_slice(b"forkvm");
        names.domainname[..6].copy_from_slice(b"(none)");
        names
    }
}

impl Namespace {
    /// A new namespace of `kind` owned by `user_ns`; a UTS one starts
    /// with `names`, a mount one has `root` as its root.
    fn new(
        kind: NsKind,
        names: UtsNames,
        user_ns: &Arc<super::user_ns::UserNamespace>,
        root: Option<Arc<Dentry>>,
    ) -> Arc<Namespace> {
        LIVE[kind as usize].fetch_add(1, Ordering::Relaxed);
        Arc::new(Namespace {
            kind,
            id: NEXT_NS_ID.fetch_add(1, Ordering::Relaxed),
            user_ns: user_ns.clone(),
            uts: Mutex::new(names),
            sem: Mutex::new(crate::ipc::sem::SemIds::new(user_ns)),
            root,
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        LIVE[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live namespaces of `kind`.
pub fn live(kind: NsKind) -> u64 {
    LIVE[kind as usize].load(Ordering::Relaxed)
}

/// One namespace of each kind.
#[derive(Clone)]
pub struct NsProxy {
    pub namespaces: [Arc<Namespace>; 6],
    /// Where children's pids live (Linux `pid_ns_for_children`).
    pub pid_ns_for_children: Arc<super::pid_ns::PidNamespace>,
}

impl NsProxy {
    /// The initial namespaces (init's); the mount namespace's root is a
    /// new tree (Linux `init_mount_tree`: the rootfs the initramfs is
    /// unpacked into).
    pub fn initial() -> Arc<NsProxy> {
        let names = UtsNames::initial();
        Arc::new(NsProxy {
            namespaces: NsKind::ALL.map(|kind| {
                let root = (kind == NsKind::Mnt).then(Dentry::new_tree);
                Namespace::new(kind, names, super::user_ns::init_user_ns(), root)
            }),
            pid_ns_for_children: super::pid_ns::initial(),
        })
    }

    pub fn get(&self, kind: NsKind) -> &Arc<Namespace> {
        &self.namespaces[kind as usize]
    }

    /// The root of the mount namespace's tree.
    pub fn mnt_root(&self) -> &Arc<Dentry> {
        self.get(NsKind::Mnt)
            .root
            .as_ref()
            .expect("a mount namespace has a root")
    }

    /// The child's namespaces for clone `flags` (Linux `copy_namespaces`):
    /// the same proxy if no namespace flag is set, else new namespaces of
    /// the flagged kinds, owned by `user_ns` (a new UTS namespace copies
    /// the names; a new mount namespace is Linux `copy_mnt_ns`: a copy of
    /// the tree, whose root is the same directory here, as there is one
    /// mount. Linux then moves the task's root and cwd to the copied
    /// mounts; with one mount they are the same directories, so the
    /// fs_struct is left as it is).
    pub fn copy(
        self: &Arc<Self>,
        flags: CloneFlags,
        kind_flags: &[(NsKind, CloneFlags)],
        new_pid_ns: bool,
        user_ns: &Arc<super::user_ns::UserNamespace>,
    ) -> Result<Arc<NsProxy>, i32> {
        if !new_pid_ns && kind_flags.iter().all(|&(_, flag)| !flags.contains(flag)) {
            return Ok(self.clone());
        }
        let mut proxy = (**self).clone();
        if new_pid_ns {
            proxy.pid_ns_for_children =
                super::pid_ns::PidNamespace::new_child(&self.pid_ns_for_children, user_ns)?;
        }
        for &(kind, flag) in kind_flags {
            if flags.contains(flag) {
                let old = self.get(kind);
                let names = *old.uts.lock();
                proxy.namespaces[kind as usize] =
                    Namespace::new(kind, names, user_ns, old.root.clone());
            }
        }
        Ok(Arc::new(proxy))
    }
}
