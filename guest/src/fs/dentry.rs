//! The directory tree: a ramfs of directories only (Linux's dentries of a
//! `ramfs` mount, with the inode folded in). There are no regular files,
//! links or mounts, so every path names a directory or nothing.
//!
//! A directory owns its children (`Arc`s in its map) and each child holds
//! its parent (`Arc`), so the tree lives as long as it is reachable from
//! the root. `rmdir` takes an empty directory out of its parent's map and
//! marks it dead (Linux `S_DEAD`): a task whose cwd or root it still is
//! keeps it alive, `..` from it still reaches the old parent, and nothing
//! can be created in it. Since only empty directories are removed, taking
//! the child out of the map breaks the only cycle.
//!
//! Names and parents never change (no `rename`), so only the children and
//! the dead flag sit under a lock. Lock order: a parent before its child.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use super::permission::S_ISGID;
use crate::errno::{EEXIST, ENAMETOOLONG, ENOENT, ENOTEMPTY};

/// Longest name of a directory entry (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Who owns a directory (the creator's file-system ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// root:root, the owner of the initial tree.
const ROOT_OWNER: Owner = Owner { uid: 0, gid: 0 };

/// One directory.
pub struct Dentry {
    /// The name in its parent (empty for the root).
    name: Box<[u8]>,
    /// The directory it was created in; `None` for the root of the tree.
    parent: Option<Arc<Dentry>>,
    /// Permission bits (`0o7777`): from `mkdir`, less the umask.
    mode: u32,
    owner: Owner,
    state: Mutex<DirState>,
}

/// The mutable part of a directory.
struct DirState {
    children: BTreeMap<Box<[u8]>, Arc<Dentry>>,
    /// Removed by `rmdir` (Linux `IS_DEADDIR`).
    dead: bool,
}

impl Dentry {
    fn new(name: &[u8], parent: Option<Arc<Dentry>>, mode: u32, owner: Owner) -> Arc<Dentry> {
        Arc::new(Dentry {
            name: name.into(),
            parent,
            mode,
            owner,
            state: Mutex::new(DirState {
                children: BTreeMap::new(),
                dead: false,
            }),
        })
    }

    /// A new tree: a root directory with `/tmp` (mode 1777, as on Linux),
    /// `/bin`, `/dev` and `/proc`, the directories test programs expect
    /// on the host too.
    pub fn new_tree() -> Arc<Dentry> {
        let root = Dentry::new(b"", None, 0o755, ROOT_OWNER);
        for (name, mode) in [
            (&b"tmp"[..], 0o1777),
            (b"bin", 0o755),
            (b"dev", 0o755),
            (b"proc", 0o555),
        ] {
            root.mkdir(name, mode, ROOT_OWNER)
                .expect("a fresh root has room");
        }
        root
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The parent; `None` at the root of the tree.
    pub fn parent(&self) -> Option<&Arc<Dentry>> {
        self.parent.as_ref()
    }

    /// Whether `rmdir` removed it.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    pub fn mode(&self) -> u32 {
        self.mode
    }

    pub fn uid(&self) -> u32 {
        self.owner.uid
    }

    pub fn gid(&self) -> u32 {
        self.owner.gid
    }

    /// The child called `name` (a real name, not `.` or `..`). In a
    /// removed directory every lookup fails with ENOENT first, as in
    /// Linux; then names longer than NAME_MAX are ENAMETOOLONG.
    pub fn lookup(&self, name: &[u8]) -> Result<Arc<Dentry>, i32> {
        let state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        state.children.get(name).cloned().ok_or(ENOENT)
    }

    /// Creates the directory `name` in this one (Linux `vfs_mkdir` on
    /// ramfs): ENOENT in a removed directory, ENAMETOOLONG, EEXIST. In a
    /// set-group-id directory it takes the directory's group and bit
    /// (Linux `inode_init_owner`).
    pub fn mkdir(
        self: &Arc<Self>,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<Arc<Dentry>, i32> {
        self.mkdir_checked(name, mode, owner, |_| Ok(()))
    }

    /// [`mkdir`](Self::mkdir), with `may_create(self)` checked after the
    /// name (Linux `may_create`: permission to write here).
    pub fn mkdir_checked(
        self: &Arc<Self>,
        name: &[u8],
        mut mode: u32,
        mut owner: Owner,
        may_create: impl FnOnce(&Dentry) -> Result<(), i32>,
    ) -> Result<Arc<Dentry>, i32> {
        let mut state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        if state.children.contains_key(name) {
            return Err(EEXIST);
        }
        may_create(self)?;
        if self.mode & S_ISGID != 0 {
            owner.gid = self.owner.gid;
            mode |= S_ISGID;
        }
        let child = Dentry::new(name, Some(self.clone()), mode, owner);
        state.children.insert(name.into(), child.clone());
        Ok(child)
    }

    /// Removes the empty directory `name` from this one (Linux
    /// `vfs_rmdir` on ramfs): ENOENT, ENAMETOOLONG, ENOTEMPTY.
    #[cfg(test)]
    pub fn rmdir(&self, name: &[u8]) -> Result<(), i32> {
        self.rmdir_checked(name, |_, _| Ok(()))
    }

    /// Removes the empty directory `name`, with `may_delete(self, victim)`
    /// checked once it is found, before its emptiness (Linux `may_delete`:
    /// permission and the sticky bit).
    pub fn rmdir_checked(
        &self,
        name: &[u8],
        may_delete: impl FnOnce(&Dentry, &Dentry) -> Result<(), i32>,
    ) -> Result<(), i32> {
        let mut state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        let child = state.children.get(name).ok_or(ENOENT)?;
        may_delete(self, child)?;
        {
            let mut child_state = child.state.lock();
            if !child_state.children.is_empty() {
                return Err(ENOTEMPTY);
            }
            child_state.dead = true;
        }
        state.children.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_tree() {
        let root = Dentry::new_tree();
        assert!(root.parent().is_none());
        for name in [&b"tmp"[..], b"bin", b"dev", b"proc"] {
            let dir = root.lookup(name).unwrap();
            assert_eq!(dir.name(), name);
            assert!(Arc::ptr_eq(dir.parent().unwrap(), &root));
        }
        assert_eq!(root.lookup(b"tmp").unwrap().mode(), 0o1777);
        assert_eq!(root.lookup(b"etc").err(), Some(ENOENT));
    }

    #[test]
    fn mkdir_and_rmdir_errors() {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let a = tmp.mkdir(b"a", 0o700, ROOT_OWNER).unwrap();
        assert_eq!(a.mode(), 0o700);
        assert_eq!(tmp.mkdir(b"a", 0o700, ROOT_OWNER).err(), Some(EEXIST));
        let long = [b'x'; NAME_MAX + 1];
        assert_eq!(
            tmp.mkdir(&long, 0o700, ROOT_OWNER).err(),
            Some(ENAMETOOLONG)
        );
        assert_eq!(tmp.lookup(&long).err(), Some(ENAMETOOLONG));
        assert_eq!(tmp.rmdir(&long).err(), Some(ENAMETOOLONG));
        assert!(tmp.mkdir(&long[..NAME_MAX], 0o700, ROOT_OWNER).is_ok());
        assert_eq!(tmp.rmdir(&long[..NAME_MAX]), Ok(()));
        a.mkdir(b"b", 0o700, ROOT_OWNER).unwrap();
        assert_eq!(tmp.rmdir(b"a"), Err(ENOTEMPTY));
        assert_eq!(a.rmdir(b"b"), Ok(()));
        assert_eq!(a.rmdir(b"b"), Err(ENOENT));
        assert_eq!(tmp.rmdir(b"a"), Ok(()));
        assert_eq!(tmp.lookup(b"a").err(), Some(ENOENT));
    }

    #[test]
    fn a_removed_directory_is_dead_but_usable_as_a_place() {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let d = tmp.mkdir(b"d", 0o755, ROOT_OWNER).unwrap();
        tmp.rmdir(b"d").unwrap();
        assert!(d.is_dead());
        assert!(Arc::ptr_eq(d.parent().unwrap(), &tmp));
        assert_eq!(d.mkdir(b"x", 0o755, ROOT_OWNER).err(), Some(ENOENT));
        // ENOENT comes before ENAMETOOLONG in a dead directory.
        assert_eq!(d.lookup(&[b'x'; 300]).err(), Some(ENOENT));
        assert_eq!(d.rmdir(b"x"), Err(ENOENT));
        // The name is free again.
        let again = tmp.mkdir(b"d", 0o755, ROOT_OWNER).unwrap();
        assert!(!again.is_dead());
    }

    #[test]
    fn setgid_directories_pass_their_group_on() {
        let root = Dentry::new_tree();
        let user = Owner {
            uid: 1000,
            gid: 1000,
        };
        let shared = root
            .mkdir(b"shared", 0o2775, Owner { uid: 0, gid: 50 })
            .unwrap();
        let sub = shared.mkdir(b"sub", 0o755, user).unwrap();
        assert_eq!((sub.uid(), sub.gid(), sub.mode()), (1000, 50, 0o2755));
        let plain = root.mkdir(b"plain", 0o755, user).unwrap();
        assert_eq!((plain.gid(), plain.mode()), (1000, 0o755));
    }

    #[test]
    fn checks_run_after_the_name_and_before_emptiness() {
        use crate::errno::{EACCES, EPERM};
        let root = Dentry::new_tree();
        let deny = |_: &Dentry| Err(EACCES);
        assert_eq!(
            root.mkdir_checked(b"tmp", 0o755, ROOT_OWNER, deny).err(),
            Some(EEXIST)
        );
        assert_eq!(
            root.mkdir_checked(b"new", 0o755, ROOT_OWNER, deny).err(),
            Some(EACCES)
        );
        let full = root.mkdir(b"full", 0o755, ROOT_OWNER).unwrap();
        full.mkdir(b"x", 0o755, ROOT_OWNER).unwrap();
        let refuse = |_: &Dentry, _: &Dentry| Err(EPERM);
        assert_eq!(root.rmdir_checked(b"nope", refuse), Err(ENOENT));
        assert_eq!(root.rmdir_checked(b"full", refuse), Err(EPERM));
        assert_eq!(root.rmdir(b"full"), Err(ENOTEMPTY));
    }

    #[test]
    fn removed_directories_are_freed() {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let weak = Arc::downgrade(&tmp.mkdir(b"gone", 0o755, ROOT_OWNER).unwrap());
        assert!(weak.upgrade().is_some());
        tmp.rmdir(b"gone").unwrap();
        assert!(weak.upgrade().is_none(), "no cycle keeps it alive");
    }
}
