//! Path walking over the directory tree (Linux `fs/namei.c`, `fs/d_path.c`):
//! absolute paths start at the task's root, relative ones at its cwd;
//! empty components (repeated or trailing slashes) are skipped, `.` stays
//! and `..` goes up, but never above the task's root (nor the tree's).
//! Every component needs search permission on the directory it is looked
//! up in (Linux `may_lookup`), the last one too. Symbolic links are
//! followed in the middle of a path always, at its end when asked (and
//! when a slash follows), at most 40 in one lookup (ELOOP).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::dentry::{Dentry, Node};
use super::permission::{Access, MAY_EXEC};
use crate::errno::{ELOOP, ENOENT};

/// Longest path, counting its NUL (Linux `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Where a walk starts and where `..` stops.
pub struct Walk<'a> {
    /// The task's root (`fs_struct.root`).
    pub root: &'a Arc<Dentry>,
    /// The task's working directory (`fs_struct.pwd`).
    pub pwd: &'a Arc<Dentry>,
    /// Who walks (for search permission).
    pub access: &'a Access,
}

/// The last component of a path, as `mkdir`/`rmdir` look at it (Linux's
/// `LAST_NORM`, `LAST_ROOT`, `LAST_DOT`, `LAST_DOTDOT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last<'p> {
    Norm(&'p [u8]),
    /// The path is only slashes.
    Root,
    Dot,
    DotDot,
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// Most symbolic links followed in one lookup (Linux `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

impl Walk<'_> {
    /// The absolute path of the file `path` names, symbolic links
    /// resolved (Linux's `d_path`, as `/proc/PID/exe` and `/proc/PID/fd/N`
    /// show it); None if it cannot be found again or lies outside the
    /// walk's root.
    pub fn canonical_path(&self, path: &[u8]) -> Option<Vec<u8>> {
        let mut path = path.to_vec();
        for _ in 0..40 {
            let (dir, last) = self.parent(&path).ok()?;
            let Last::Norm(name) = last else {
                return None;
            };
            let name = name.to_vec();
            let node = self.lookup_node(&path, false).ok()?;
            let (mut dir_path, reachable) = path_from(&dir, self.root);
            if !reachable {
                return None;
            }
            match node.symlink_target() {
                Some(target) if target.starts_with(b"/") => path = target.to_vec(),
                Some(target) => {
                    dir_path.push(b'/');
                    dir_path.extend_from_slice(target);
                    path = dir_path;
                }
                None => {
                    if dir_path != b"/" {
                        dir_path.push(b'/');
                    }
                    dir_path.extend_from_slice(&name);
                    return Some(dir_path);
                }
            }
        }
        None
    }

    fn start(&self, path: &[u8]) -> Arc<Dentry> {
        if path.first() == Some(&b'/') {
            self.root.clone()
        } else {
            self.pwd.clone()
        }
    }

    /// `..` from `dir` (Linux `follow_dotdot`): the task's root and the
    /// tree's root are their own parents.
    fn dotdot(&self, dir: Arc<Dentry>) -> Arc<Dentry> {
        if Arc::ptr_eq(&dir, self.root) {
            return dir;
        }
        dir.parent().unwrap_or(dir)
    }

    /// One component looked up in `dir` (search permission first); a
    /// symbolic link is followed if `follow`, relative to `dir` (Linux
    /// `walk_component`, `pick_link`): ELOOP past MAX_SYMLINKS.
    fn step(
        &self,
        dir: Arc<Dentry>,
        name: &[u8],
        follow: bool,
        links: &mut u32,
    ) -> Result<Node, i32> {
        self.access.permission(&dir, MAY_EXEC)?;
        let node = match name {
            b"." => return Ok(Node::Dir(dir)),
            b".." => return Ok(Node::Dir(self.dotdot(dir))),
            _ => dir.lookup_node(name)?,
        };
        match node.symlink_target() {
            Some(target) if follow => {
                *links += 1;
                if *links > MAX_SYMLINKS {
                    return Err(ELOOP);
                }
                let start = if target.first() == Some(&b'/') {
                    self.root.clone()
                } else {
                    dir
                };
                self.resolve(start, target, true, links)
            }
            _ => Ok(node),
        }
    }

    /// Walks `path` from `start`: every component but the last must be a
    /// directory (symbolic links followed); the last is followed if
    /// `follow_last` or the path ends in a slash, which also requires a
    /// directory (ENOTDIR).
    fn resolve(
        &self,
        start: Arc<Dentry>,
        path: &[u8],
        follow_last: bool,
        links: &mut u32,
    ) -> Result<Node, i32> {
        let mut names = components(path);
        let Some(last) = names.next_back() else {
            return Ok(Node::Dir(start));
        };
        let mut dir = start;
        for name in names {
            dir = self.step(dir, name, true, links)?.dir()?;
        }
        let trailing_slash = path.last() == Some(&b'/');
        let node = self.step(dir, last, follow_last || trailing_slash, links)?;
        if trailing_slash {
            return Ok(Node::Dir(node.dir()?));
        }
        Ok(node)
    }

    /// The directory `path` names (Linux `path_lookupat`): ENOTDIR if it
    /// names something else.
    pub fn lookup(&self, path: &[u8]) -> Result<Arc<Dentry>, i32> {
        self.lookup_node(path, true)?.dir()
    }

    /// Whatever `path` names; a final symbolic link is followed only if
    /// `follow` (Linux's LOOKUP_FOLLOW; `lstat`, O_NOFOLLOW do not).
    pub fn lookup_node(&self, path: &[u8], follow: bool) -> Result<Node, i32> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        self.resolve(self.start(path), path, follow, &mut 0)
    }

    /// The directory holding the last component of `path`, and that
    /// component (Linux `filename_parentat`).
    pub fn parent<'p>(&self, path: &'p [u8]) -> Result<(Arc<Dentry>, Last<'p>), i32> {
        if path.is_empty() {
            return Err(ENOENT);
        }
        let mut names = components(path);
        let start = self.start(path);
        let Some(last) = names.next_back() else {
            return Ok((start, Last::Root));
        };
        let mut links = 0;
        let mut dir = start;
        for name in names {
            dir = self.step(dir, name, true, &mut links)?.dir()?;
        }
        self.access.permission(&dir, MAY_EXEC)?;
        let last = match last {
            b"." => Last::Dot,
            b".." => Last::DotDot,
            name => Last::Norm(name),
        };
        Ok((dir, last))
    }
}

/// The path of `dir` as seen from `root` (Linux `prepend_path`), and
/// whether `root` was on the way up: if not, the path is the one from the
/// tree's root (getcwd then prefixes `(unreachable)`).
pub fn path_from(dir: &Arc<Dentry>, root: &Arc<Dentry>) -> (Vec<u8>, bool) {
    let mut names = Vec::new();
    let mut at = dir.clone();
    let reachable = loop {
        if Arc::ptr_eq(&at, root) {
            break true;
        }
        match at.parent() {
            Some(parent) => {
                names.push(at.name());
                at = parent;
            }
            None => break false,
        }
    };
    let mut path = Vec::new();
    for name in names.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    (path, reachable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno::{EACCES, ENAMETOOLONG, ENOENT};
    use crate::fs::dentry::Owner;

    const ROOT: Access = Access {
        fsuid: 0,
        fsgid: 0,
        caps: u64::MAX,
        owner_mapped: None,
        groups: None,
    };
    const USER: Access = Access {
        fsuid: 1000,
        fsgid: 1000,
        caps: 0,
        owner_mapped: None,
        groups: None,
    };

    struct Fixture {
        root: Arc<Dentry>,
        tmp: Arc<Dentry>,
        a: Arc<Dentry>,
        b: Arc<Dentry>,
    }

    /// `/tmp/a/b`.
    fn fixture() -> Fixture {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let a = tmp.mkdir(b"a", 0o755, Owner { uid: 0, gid: 0 }).unwrap();
        let b = a.mkdir(b"b", 0o755, Owner { uid: 0, gid: 0 }).unwrap();
        Fixture { root, tmp, a, b }
    }

    fn same(x: &Arc<Dentry>, y: &Arc<Dentry>) -> bool {
        Arc::ptr_eq(x, y)
    }

    #[test]
    fn absolute_relative_dots_and_slashes() {
        let f = fixture();
        let walk = Walk {
            root: &f.root,
            pwd: &f.a,
            access: &ROOT,
        };
        assert!(same(&walk.lookup(b"/tmp/a/b").unwrap(), &f.b));
        assert!(same(&walk.lookup(b"//tmp///a/b//").unwrap(), &f.b));
        assert!(same(&walk.lookup(b"b").unwrap(), &f.b));
        assert!(same(&walk.lookup(b"./b/.").unwrap(), &f.b));
        assert!(same(&walk.lookup(b"..").unwrap(), &f.tmp));
        assert!(same(&walk.lookup(b"b/../..").unwrap(), &f.tmp));
        assert!(same(&walk.lookup(b"/../..").unwrap(), &f.root));
        assert!(same(&walk.lookup(b"../../../..").unwrap(), &f.root));
        assert!(same(&walk.lookup(b"/").unwrap(), &f.root));
        assert_eq!(walk.lookup(b"").err(), Some(ENOENT));
        assert_eq!(walk.lookup(b"nope/..").err(), Some(ENOENT));
        assert_eq!(walk.lookup(&[b'n'; 256]).err(), Some(ENAMETOOLONG));
    }

    #[test]
    fn dotdot_stops_at_the_tasks_root() {
        let f = fixture();
        let walk = Walk {
            root: &f.a,
            pwd: &f.b,
            access: &ROOT,
        };
        assert!(same(&walk.lookup(b"..").unwrap(), &f.a));
        assert!(same(&walk.lookup(b"../../..").unwrap(), &f.a));
        assert!(same(&walk.lookup(b"/..").unwrap(), &f.a));
        assert!(same(&walk.lookup(b"/b").unwrap(), &f.b));
        assert_eq!(walk.lookup(b"/tmp").err(), Some(ENOENT));
        // A cwd outside the root walks up past it, to the tree's root.
        let outside = Walk {
            root: &f.b,
            pwd: &f.tmp,
            access: &ROOT,
        };
        assert!(same(&outside.lookup(b"..").unwrap(), &f.root));
        assert!(same(&outside.lookup(b"/").unwrap(), &f.b));
    }

    #[test]
    fn parent_and_last_component() {
        let f = fixture();
        let walk = Walk {
            root: &f.root,
            pwd: &f.tmp,
            access: &ROOT,
        };
        let (dir, last) = walk.parent(b"a/b/").unwrap();
        assert!(same(&dir, &f.a));
        assert_eq!(last, Last::Norm(b"b"));
        let (dir, last) = walk.parent(b"new").unwrap();
        assert!(same(&dir, &f.tmp));
        assert_eq!(last, Last::Norm(b"new"));
        assert_eq!(walk.parent(b"///").unwrap().1, Last::Root);
        assert_eq!(walk.parent(b"a/.").unwrap().1, Last::Dot);
        assert_eq!(walk.parent(b"a/..").unwrap().1, Last::DotDot);
        assert_eq!(walk.parent(b"nope/x").err(), Some(ENOENT));
        assert_eq!(walk.parent(b"").err(), Some(ENOENT));
    }

    #[test]
    fn every_component_needs_search_permission() {
        let f = fixture();
        let closed = f
            .tmp
            .mkdir(b"closed", 0o700, Owner { uid: 0, gid: 0 })
            .unwrap();
        closed
            .mkdir(b"in", 0o777, Owner { uid: 0, gid: 0 })
            .unwrap();
        let walk = Walk {
            root: &f.root,
            pwd: &f.tmp,
            access: &USER,
        };
        assert!(same(&walk.lookup(b"closed").unwrap(), &closed));
        assert_eq!(walk.lookup(b"closed/in").err(), Some(EACCES));
        assert_eq!(walk.lookup(b"closed/.").err(), Some(EACCES));
        assert_eq!(walk.lookup(b"closed/nope").err(), Some(EACCES));
        assert_eq!(walk.parent(b"closed/new").err(), Some(EACCES));
        assert_eq!(walk.parent(b"closed/").unwrap().1, Last::Norm(b"closed"));
        let inside = Walk {
            root: &f.root,
            pwd: &closed,
            access: &USER,
        };
        assert_eq!(inside.lookup(b"..").err(), Some(EACCES));
        assert!(same(&inside.lookup(b"/tmp").unwrap(), &f.tmp));
    }

    #[test]
    fn symbolic_links_and_files() {
        use crate::errno::{ELOOP, ENOTDIR};
        use crate::fs::inode::{Inode, InodeKind};
        let f = fixture();
        let root_owner = |_: &Dentry| Ok(());
        let link = |dir: &Arc<Dentry>, name: &[u8], target: &[u8]| {
            let inode = Arc::new(Inode::new(InodeKind::Symlink(target.into()), 0o777, 0, 0));
            dir.link_checked(name, &inode, root_owner).unwrap();
            inode
        };
        let file = Arc::new(Inode::new(
            InodeKind::Regular(Default::default()),
            0o644,
            0,
            0,
        ));
        f.b.link_checked(b"file", &file, root_owner).unwrap();
        link(&f.tmp, b"abs", b"/tmp/a/b");
        link(&f.tmp, b"rel", b"a/b/file");
        link(&f.a, b"up", b"../a");
        link(&f.tmp, b"loop", b"loop");
        link(&f.tmp, b"dangling", b"nowhere");
        let walk = Walk {
            root: &f.root,
            pwd: &f.tmp,
            access: &ROOT,
        };
        assert!(same(&walk.lookup(b"abs").unwrap(), &f.b));
        assert!(same(&walk.lookup(b"a/up/up/up/b").unwrap(), &f.b));
        let Node::Inode(found) = walk.lookup_node(b"rel", true).unwrap() else {
            panic!("a file")
        };
        assert!(Arc::ptr_eq(&found, &file));
        assert_eq!(
            walk.lookup_node(b"rel", false).unwrap().symlink_target(),
            Some(&b"a/b/file"[..])
        );
        assert_eq!(walk.lookup(b"rel").err(), Some(ENOTDIR));
        assert_eq!(walk.lookup_node(b"rel/", false).err(), Some(ENOTDIR));
        assert_eq!(walk.lookup_node(b"a/b/file/x", true).err(), Some(ENOTDIR));
        assert_eq!(walk.parent(b"a/b/file/x").err(), Some(ENOTDIR));
        assert_eq!(walk.lookup_node(b"loop", true).err(), Some(ELOOP));
        assert!(walk.lookup_node(b"loop", false).is_ok());
        assert_eq!(walk.lookup_node(b"dangling", true).err(), Some(ENOENT));
        let (dir, last) = walk.parent(b"abs/new").unwrap();
        assert!(same(&dir, &f.b));
        assert_eq!(last, Last::Norm(b"new"));
    }

    #[test]
    fn paths_from_a_root() {
        let f = fixture();
        assert_eq!(path_from(&f.b, &f.root), (b"/tmp/a/b".to_vec(), true));
        assert_eq!(path_from(&f.root, &f.root), (b"/".to_vec(), true));
        assert_eq!(path_from(&f.b, &f.a), (b"/b".to_vec(), true));
        assert_eq!(path_from(&f.a, &f.a), (b"/".to_vec(), true));
        // Outside the root: the path from the tree's root, unreachable.
        assert_eq!(path_from(&f.tmp, &f.b), (b"/tmp".to_vec(), false));
        assert_eq!(path_from(&f.root, &f.b), (b"/".to_vec(), false));
    }
}
