//! Per-process file-system context (Linux `fs_struct`): the root and the
//! working directory in the directory tree (`fs::dentry`), and the umask.
//! Shared with `CLONE_FS`, copied by `fork` otherwise (`copy_fs`).

use alloc::sync::Arc;

use spin::{Mutex, Once};

use crate::fs::dentry::Dentry;
use crate::fs::namei::Walk;
use crate::fs::permission::Access;

/// The file-system context.
#[derive(Clone)]
pub struct FsStruct {
    /// Where absolute paths start and `..` stops (`chroot` moves it).
    pub root: Arc<Dentry>,
    /// Where relative paths start (`chdir` moves it).
    pub pwd: Arc<Dentry>,
    pub umask: u32,
}

/// The root of the one directory tree, made on first use.
pub fn init_root() -> &'static Arc<Dentry> {
    static ROOT: Once<Arc<Dentry>> = Once::new();
    ROOT.call_once(Dentry::new_tree)
}

impl FsStruct {
    /// Init's context: `/` as root and cwd, Linux's default umask 022.
    pub fn new_shared() -> Arc<Mutex<FsStruct>> {
        let root = init_root().clone();
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

    /// Whether the root is not the tree's root (Linux `current_chrooted`,
    /// for the task owning this context).
    pub fn chrooted(&self) -> bool {
        !Arc::ptr_eq(&self.root, init_root())
    }
}
