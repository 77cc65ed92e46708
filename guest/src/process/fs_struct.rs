//! Per-process file-system context (Linux `fs_struct`): the root and the
//! working directory in the directory tree (`fs::dentry`), and the umask.
//! Shared with `CLONE_FS`, copied by `fork` otherwise (`copy_fs`).

use alloc::sync::Arc;

use spin::Mutex;

use crate::fs::dentry::Dentry;
use crate::fs::namei::Walk;
use crate::fs::permission::Access;
use crate::process::nsproxy::NsProxy;

/// The file-system context.
#[derive(Clone)]
pub struct FsStruct {
    /// Where absolute paths start and `..` stops (`chroot` moves it).
    pub root: Arc<Dentry>,
    /// Where relative paths start (`chdir` moves it).
    pub pwd: Arc<Dentry>,
    pub umask: u32,
}

/// The root of the initial mount namespace (the tree the initramfs is
/// unpacked into).
pub fn init_root() -> Arc<Dentry> {
    crate::process::initial_nsproxy().mnt_root().clone()
}

impl FsStruct {
    /// Init's context: the root of its mount namespace (`nsproxy`'s) as
    /// root and cwd (Linux `init_mount_tree`), Linux's default umask 022.
    pub fn new_shared(nsproxy: &NsProxy) -> Arc<Mutex<FsStruct>> {
        let root = nsproxy.mnt_root().clone();
        Arc::new(Mutex::new(FsStruct {
            pwd: root.clone(),
            root,
            umask: 0o022,
        }))
    }

    /// A path walk from this context, by `access`.
    pub fn walk<'a>(&'a self, access: &'a Access) -> Walk<'a> {
        Walk {
            root: &self.root,
            pwd: &self.pwd,
            access,
        }
    }

    /// Whether the root is not the root of the mount namespace `nsproxy`
    /// has (Linux `current_chrooted`, for the task owning this context).
    pub fn chrooted(&self, nsproxy: &NsProxy) -> bool {
        !Arc::ptr_eq(&self.root, nsproxy.mnt_root())
    }
}
