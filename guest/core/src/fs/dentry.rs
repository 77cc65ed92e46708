//! The directory tree: a ramfs (Linux's dentries of a `ramfs` mount). A
//! directory is a `Dentry` with its inode folded in (directories cannot be
//! hard-linked); its entries are other directories or the inodes of
//! regular files, symbolic links and devices (`fs::inode`), which may sit
//! under several names. There are no mounts.
//!
//! A directory owns its children (`Arc`s in its map) and each child holds
//! its parent (`Arc`), so the tree lives as long as it is reachable from
//! the root. `rmdir` takes an empty directory out of its parent's map and
//! marks it dead (Linux `S_DEAD`): a task whose cwd or root it still is
//! keeps it alive, `..` from it still reaches the old parent, and nothing
//! can be created in it. Since only empty directories are removed, taking
//! the child out of the map breaks the only cycle.
//!
//! A directory's name and parent change only by `rename`, which the
//! global [`RENAME_LOCK`] serialises (Linux `s_vfs_rename_mutex`); they
//! sit under their own small lock (`link`), the entries and the dead flag
//! under `state`. Lock order: `RENAME_LOCK`, then a parent's `state`
//! before its child's; two directories that are not parent and child are
//! never locked together, and `link` is never held while taking another
//! lock.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use super::inode::{Inode, Times};
use super::permission::S_ISGID;
use crate::errno::{EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOTDIR, ENOTEMPTY};

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

/// What a name refers to.
#[derive(Clone)]
pub enum Node {
    Dir(Arc<Dentry>),
    Inode(Arc<Inode>),
}

impl Node {
    /// The directory, or ENOTDIR.
    pub fn dir(self) -> Result<Arc<Dentry>, i32> {
        match self {
            Node::Dir(dir) => Ok(dir),
            Node::Inode(_) => Err(ENOTDIR),
        }
    }

    /// The symbolic link's target, if it is one.
    pub fn symlink_target(&self) -> Option<&[u8]> {
        match self {
            Node::Inode(inode) => match &inode.kind {
                super::inode::InodeKind::Symlink(target) => Some(target),
                _ => None,
            },
            Node::Dir(_) => None,
        }
    }

    /// `st_ino`.
    pub fn ino(&self) -> u64 {
        match self {
            Node::Dir(dir) => dir.ino,
            Node::Inode(inode) => inode.ino,
        }
    }

    /// Type and permission bits.
    pub fn mode(&self) -> u32 {
        match self {
            Node::Dir(dir) => super::inode::S_IFDIR | dir.mode(),
            Node::Inode(inode) => inode.meta().mode,
        }
    }

    /// Sets the permission bits (`chmod`); the type stays.
    pub fn set_mode(&self, mode: u32) {
        match self {
            Node::Dir(dir) => dir.set_mode(mode),
            Node::Inode(inode) => {
                let mut meta = inode.meta.lock();
                meta.mode = (meta.mode & super::inode::S_IFMT) | (mode & 0o7777);
            }
        }
    }

    pub fn uid(&self) -> u32 {
        match self {
            Node::Dir(dir) => dir.uid(),
            Node::Inode(inode) => inode.meta().uid,
        }
    }

    pub fn gid(&self) -> u32 {
        match self {
            Node::Dir(dir) => dir.gid(),
            Node::Inode(inode) => inode.meta().gid,
        }
    }

    /// Its access, modification and change times.
    pub fn times(&self) -> Times {
        match self {
            Node::Dir(dir) => *dir.times.lock(),
            Node::Inode(inode) => inode.meta().times,
        }
    }

    /// Changes its times with `f`.
    pub fn update_times(&self, f: impl FnOnce(&mut Times)) {
        match self {
            Node::Dir(dir) => dir.update_times(f),
            Node::Inode(inode) => inode.update_times(f),
        }
    }

    /// Changes the owner (`chown`; `None` keeps that id). On anything but
    /// a directory, `kill_bits` (S_ISUID and/or S_ISGID) are cleared from
    /// the mode at the same time, as Linux's `notify_change` does for
    /// ATTR_KILL_SUID/ATTR_KILL_SGID.
    pub fn set_owner(&self, uid: Option<u32>, gid: Option<u32>, kill_bits: u32) {
        match self {
            Node::Dir(dir) => {
                let mut owner = dir.owner.lock();
                owner.uid = uid.unwrap_or(owner.uid);
                owner.gid = gid.unwrap_or(owner.gid);
            }
            Node::Inode(inode) => {
                let mut meta = inode.meta.lock();
                meta.uid = uid.unwrap_or(meta.uid);
                meta.gid = gid.unwrap_or(meta.gid);
                meta.mode &= !kill_bits;
            }
        }
    }
}

/// One directory.
pub struct Dentry {
    /// Its inode number.
    pub ino: u64,
    /// Its name and the directory holding it (see [`Link`]).
    link: Mutex<Link>,
    /// Permission bits (`0o7777`): from `mkdir`, less the umask.
    /// Changed by `chmod`.
    mode: AtomicU32,
    /// Changed by `chown`.
    owner: Mutex<Owner>,
    /// Access, modification (of the entries) and change times; 0 until
    /// the creator sets them (this crate has no clock).
    times: Mutex<Times>,
    state: Mutex<DirState>,
}

/// Where a directory sits: its name in its parent (empty for the root)
/// and the parent (`None` for the root of the tree). Changed by rename.
struct Link {
    name: Box<[u8]>,
    parent: Option<Arc<Dentry>>,
}

/// Serialises renames (Linux `s_vfs_rename_mutex`): a directory's
/// ancestry cannot change while a rename checks that its target is not
/// inside the directory it moves.
static RENAME_LOCK: Mutex<()> = Mutex::new(());

/// The mutable part of a directory.
struct DirState {
    children: BTreeMap<Box<[u8]>, Node>,
    /// Removed by `rmdir` (Linux `IS_DEADDIR`).
    dead: bool,
}

impl Dentry {
    fn new(name: &[u8], parent: Option<Arc<Dentry>>, mode: u32, owner: Owner) -> Arc<Dentry> {
        Arc::new(Dentry {
            ino: super::inode::next_ino(),
            link: Mutex::new(Link {
                name: name.into(),
                parent,
            }),
            mode: AtomicU32::new(mode),
            owner: Mutex::new(owner),
            times: Mutex::new(Times::default()),
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

    /// Its name in its parent (empty for the root).
    pub fn name(&self) -> Box<[u8]> {
        self.link.lock().name.clone()
    }

    /// The parent; `None` at the root of the tree.
    pub fn parent(&self) -> Option<Arc<Dentry>> {
        self.link.lock().parent.clone()
    }

    /// Whether `rmdir` removed it.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    pub fn mode(&self) -> u32 {
        self.mode.load(Ordering::Relaxed)
    }

    /// Sets the permission bits (`chmod`).
    pub fn set_mode(&self, mode: u32) {
        self.mode.store(mode & 0o7777, Ordering::Relaxed);
    }

    pub fn uid(&self) -> u32 {
        self.owner.lock().uid
    }

    pub fn gid(&self) -> u32 {
        self.owner.lock().gid
    }

    pub fn times(&self) -> Times {
        *self.times.lock()
    }

    /// Changes the times with `f`.
    pub fn update_times(&self, f: impl FnOnce(&mut Times)) {
        f(&mut self.times.lock());
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
        state.children.get(name).cloned().ok_or(ENOENT)?.dir()
    }

    /// The entry called `name`, whatever it is (a real name, not `.` or
    /// `..`): ENOENT in a removed directory, ENAMETOOLONG, ENOENT.
    pub fn lookup_node(&self, name: &[u8]) -> Result<Node, i32> {
        let state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        state.children.get(name).cloned().ok_or(ENOENT)
    }

    /// Directories below this one (for `st_nlink`: 2 + subdirectories).
    pub fn subdirectories(&self) -> usize {
        let state = self.state.lock();
        state
            .children
            .values()
            .filter(|n| matches!(n, Node::Dir(_)))
            .count()
    }

    /// The entries, in name order, as `getdents64` lists them after `.`
    /// and `..`: (name, inode number, `S_IFMT` bits).
    pub fn entries(&self) -> alloc::vec::Vec<(Box<[u8]>, u64, u32)> {
        let state = self.state.lock();
        state
            .children
            .iter()
            .map(|(name, node)| (name.clone(), node.ino(), node.mode() & super::inode::S_IFMT))
            .collect()
    }

    /// Enters `inode` under `name` (a new file, symlink, device or hard
    /// link; Linux `vfs_create`/`vfs_link` on ramfs): ENOENT in a removed
    /// directory, ENAMETOOLONG, EEXIST, then `may_create`'s error. Counts
    /// the link.
    pub fn link_checked(
        &self,
        name: &[u8],
        inode: &Arc<Inode>,
        may_create: impl FnOnce(&Dentry) -> Result<(), i32>,
    ) -> Result<(), i32> {
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
        inode.meta.lock().nlink += 1;
        state
            .children
            .insert(name.into(), Node::Inode(inode.clone()));
        Ok(())
    }

    /// Removes the non-directory `name` (Linux `vfs_unlink`): ENOENT,
    /// ENAMETOOLONG, `may_delete`'s error, EISDIR for a directory. The
    /// inode lives on while open.
    pub fn unlink_checked(
        &self,
        name: &[u8],
        may_delete: impl FnOnce(&Dentry, &Node) -> Result<(), i32>,
    ) -> Result<Arc<Inode>, i32> {
        let mut state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(ENAMETOOLONG);
        }
        let node = state.children.get(name).ok_or(ENOENT)?;
        may_delete(self, node)?;
        let Node::Inode(inode) = node.clone() else {
            return Err(EISDIR);
        };
        state.children.remove(name);
        let mut meta = inode.meta.lock();
        meta.nlink = meta.nlink.saturating_sub(1);
        drop(meta);
        Ok(inode)
    }

    /// Moves the directory `name` of this one to `new_name` in `new_dir`
    /// (Linux `vfs_rename` of a directory on ramfs): EINVAL if `new_dir`
    /// is the directory itself or inside it; over an existing name only an
    /// empty directory (ENOTEMPTY; ENOTDIR over a non-directory), which is
    /// removed as by `rmdir`. `may_replace` checks the target once found.
    pub fn rename_dir(
        self: &Arc<Self>,
        name: &[u8],
        new_dir: &Arc<Dentry>,
        new_name: &[u8],
        may_replace: impl FnOnce(&Node) -> Result<(), i32>,
    ) -> Result<(), i32> {
        let _serialised = RENAME_LOCK.lock();
        let moving = self.lookup(name)?;
        // The target directory must not be inside the one moving.
        let mut at = Some(new_dir.clone());
        while let Some(dir) = at {
            if Arc::ptr_eq(&dir, &moving) {
                return Err(EINVAL);
            }
            at = dir.parent();
        }
        if new_dir.is_dead() {
            return Err(ENOENT);
        }
        match new_dir.lookup_node(new_name) {
            Ok(Node::Dir(target)) if Arc::ptr_eq(&target, &moving) => return Ok(()),
            Ok(target) => {
                may_replace(&target)?;
                let Node::Dir(target) = target else {
                    return Err(ENOTDIR);
                };
                let mut target_state = target.state.lock();
                if !target_state.children.is_empty() {
                    return Err(ENOTEMPTY);
                }
                target_state.dead = true;
            }
            Err(ENOENT) => {}
            Err(e) => return Err(e),
        }
        self.state.lock().children.remove(name);
        new_dir
            .state
            .lock()
            .children
            .insert(new_name.into(), Node::Dir(moving.clone()));
        *moving.link.lock() = Link {
            name: new_name.into(),
            parent: Some(new_dir.clone()),
        };
        Ok(())
    }

    /// Puts `inode` under `name` in place of what is there (the second
    /// half of a rename of a non-directory): EISDIR over a directory.
    /// Returns the inode replaced, if any, its link uncounted.
    pub fn replace_entry(
        &self,
        name: &[u8],
        inode: &Arc<Inode>,
    ) -> Result<Option<Arc<Inode>>, i32> {
        let mut state = self.state.lock();
        if state.dead {
            return Err(ENOENT);
        }
        let old = match state.children.get(name) {
            Some(Node::Dir(_)) => return Err(EISDIR),
            Some(Node::Inode(old)) if Arc::ptr_eq(old, inode) => return Ok(None),
            Some(Node::Inode(old)) => Some(old.clone()),
            None => None,
        };
        if let Some(old) = &old {
            let mut meta = old.meta.lock();
            meta.nlink = meta.nlink.saturating_sub(1);
        }
        inode.meta.lock().nlink += 1;
        state
            .children
            .insert(name.into(), Node::Inode(inode.clone()));
        Ok(old)
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
        if self.mode() & S_ISGID != 0 {
            owner.gid = self.gid();
            mode |= S_ISGID;
        }
        let child = Dentry::new(name, Some(self.clone()), mode, owner);
        state.children.insert(name.into(), Node::Dir(child.clone()));
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
        may_delete: impl FnOnce(&Dentry, &Node) -> Result<(), i32>,
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
        let Node::Dir(child) = child else {
            return Err(ENOTDIR);
        };
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
            assert_eq!(&*dir.name(), name);
            assert!(Arc::ptr_eq(&dir.parent().unwrap(), &root));
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
        assert!(Arc::ptr_eq(&d.parent().unwrap(), &tmp));
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
        let refuse = |_: &Dentry, _: &Node| Err(EPERM);
        assert_eq!(root.rmdir_checked(b"nope", refuse), Err(ENOENT));
        assert_eq!(root.rmdir_checked(b"full", refuse), Err(EPERM));
        assert_eq!(root.rmdir(b"full"), Err(ENOTEMPTY));
    }

    #[test]
    fn directories_move() {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let a = tmp.mkdir(b"a", 0o755, ROOT_OWNER).unwrap();
        let b = a.mkdir(b"b", 0o755, ROOT_OWNER).unwrap();
        let ok = |_: &Node| Ok(());
        // Not into itself or below itself.
        assert_eq!(tmp.rename_dir(b"a", &b, b"x", ok), Err(EINVAL));
        assert_eq!(tmp.rename_dir(b"a", &a, b"x", ok), Err(EINVAL));
        // Over a non-empty directory, a file, then an empty directory.
        let full = root.mkdir(b"full", 0o755, ROOT_OWNER).unwrap();
        full.mkdir(b"x", 0o755, ROOT_OWNER).unwrap();
        assert_eq!(a.rename_dir(b"b", &root, b"full", ok), Err(ENOTEMPTY));
        let empty = root.mkdir(b"empty", 0o755, ROOT_OWNER).unwrap();
        a.rename_dir(b"b", &root, b"empty", ok).unwrap();
        assert!(empty.is_dead());
        assert!(Arc::ptr_eq(&root.lookup(b"empty").unwrap(), &b));
        assert_eq!(a.lookup(b"b").err(), Some(ENOENT));
        assert_eq!(&*b.name(), b"empty");
        assert!(Arc::ptr_eq(&b.parent().unwrap(), &root));
        assert_eq!(
            crate::fs::namei::path_from(&b, &root),
            (b"/empty".to_vec(), true)
        );
        // Renaming onto itself does nothing.
        root.rename_dir(b"empty", &root, b"empty", ok).unwrap();
        assert_eq!(root.rename_dir(b"nope", &tmp, b"y", ok), Err(ENOENT));
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
