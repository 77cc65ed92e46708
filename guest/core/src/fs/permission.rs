//! Permission checks on directories and files (Linux `generic_permission`,
//! `check_sticky`): the owner's, the group's or the others' bits, then the
//! capabilities that override them. There are no supplementary groups and
//! no ACLs; the file-system ids are the effective ones.

use super::dentry::{Dentry, Node};
use super::inode::S_IFMT;
use crate::errno::EACCES;

/// Search (walk through) a directory.
pub const MAY_EXEC: u32 = 1;
/// Add or remove entries; write a file.
pub const MAY_WRITE: u32 = 2;
/// List a directory; read a file.
pub const MAY_READ: u32 = 4;

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;
const CAP_FSETID: u32 = 4;
const CAP_CHOWN: u32 = 0;

/// The sticky bit: only an entry's owner (or the directory's) removes it.
pub const S_ISVTX: u32 = 0o1000;
/// Set-group-id on a directory: new entries take its group.
pub const S_ISGID: u32 = 0o2000;
/// Set-user-id on a program.
pub const S_ISUID: u32 = 0o4000;
/// Group execute permission.
const S_IXGRP: u32 = 0o010;

/// Whether the caller's user namespace maps a directory owner's (uid,
/// gid); `None`: the initial namespace, which maps everyone.
pub type OwnerMapped = Option<alloc::sync::Arc<dyn Fn(u32, u32) -> bool + Send + Sync>>;

/// Who asks: the parts of the caller's credentials a check looks at.
#[derive(Clone)]
pub struct Access {
    pub fsuid: u32,
    pub fsgid: u32,
    /// Supplementary groups, sorted (`None`: none).
    pub groups: Option<alloc::sync::Arc<[u32]>>,
    /// The effective capability set (valid in the caller's user namespace).
    pub caps: u64,
    /// Capabilities override the bits only for directories whose owner the
    /// caller's namespace maps (Linux `capable_wrt_inode_uidgid`).
    pub owner_mapped: OwnerMapped,
}

impl Access {
    /// The file-system or a supplementary group (Linux `in_group_p`).
    fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid
            || self
                .groups
                .as_ref()
                .is_some_and(|groups| groups.binary_search(&gid).is_ok())
    }

    /// `cap` over an inode owned by (uid, gid) (Linux
    /// `capable_wrt_inode_uidgid`).
    fn capable_over_ids(&self, uid: u32, gid: u32, cap: u32) -> bool {
        self.caps & (1 << cap) != 0
            && self
                .owner_mapped
                .as_ref()
                .is_none_or(|mapped| mapped(uid, gid))
    }

    /// Linux `generic_permission` for a directory: EACCES unless the
    /// class's bits allow every access in `mask`, CAP_DAC_READ_SEARCH
    /// covers it (no write) or CAP_DAC_OVERRIDE does.
    pub fn permission(&self, dir: &Dentry, mask: u32) -> Result<(), i32> {
        self.check(dir.mode(), dir.uid(), dir.gid(), true, mask)
    }

    /// Linux `generic_permission` for anything: for a non-directory,
    /// CAP_DAC_READ_SEARCH covers only reading, and CAP_DAC_OVERRIDE
    /// execution only if some execute bit is set.
    pub fn permission_node(&self, node: &Node, mask: u32) -> Result<(), i32> {
        let mode = node.mode();
        let is_dir = mode & S_IFMT == super::inode::S_IFDIR;
        self.check(mode & 0o7777, node.uid(), node.gid(), is_dir, mask)
    }

    fn check(&self, mode: u32, uid: u32, gid: u32, is_dir: bool, mask: u32) -> Result<(), i32> {
        let bits = if self.fsuid == uid {
            mode >> 6
        } else if self.in_group(gid) {
            mode >> 3
        } else {
            mode
        };
        if mask & !bits & 0o7 == 0 {
            return Ok(());
        }
        let read_search = if is_dir {
            mask & MAY_WRITE == 0
        } else {
            mask & !MAY_READ & 0o7 == 0
        };
        if read_search && self.capable_over_ids(uid, gid, CAP_DAC_READ_SEARCH) {
            return Ok(());
        }
        let exec_allowed = is_dir || mask & MAY_EXEC == 0 || mode & 0o111 != 0;
        if exec_allowed && self.capable_over_ids(uid, gid, CAP_DAC_OVERRIDE) {
            return Ok(());
        }
        Err(EACCES)
    }

    /// Linux `check_sticky`: whether removing `victim` from the sticky
    /// directory `dir` is refused (neither owner, no CAP_FOWNER).
    pub fn sticky_refuses(&self, dir: &Dentry, victim: &Node) -> bool {
        dir.mode() & S_ISVTX != 0
            && self.fsuid != victim.uid()
            && self.fsuid != dir.uid()
            && !self.capable_over_ids(victim.uid(), victim.gid(), CAP_FOWNER)
    }

    /// Whether the caller owns `node` or has CAP_FOWNER over it (Linux
    /// `inode_owner_or_capable`: who may chmod it or set its times).
    pub fn owner_or_capable(&self, node: &Node) -> bool {
        self.fsuid == node.uid() || self.capable_over_ids(node.uid(), node.gid(), CAP_FOWNER)
    }

    /// Whether the caller may make `uid` the owner of `node` (Linux
    /// `chown_ok`): "changing" it to the owner it has is the owner's
    /// right; anything else needs CAP_CHOWN over the inode.
    pub fn may_chown(&self, node: &Node, uid: u32) -> bool {
        let owner = node.uid();
        (self.fsuid == owner && uid == owner) || self.capable_over_ids(owner, node.gid(), CAP_CHOWN)
    }

    /// Whether the caller may give `node` the group `gid` (Linux
    /// `chgrp_ok`): its owner may pick its current group or any group the
    /// owner is in; anything else needs CAP_CHOWN over the inode.
    pub fn may_chgrp(&self, node: &Node, gid: u32) -> bool {
        let (owner, group) = (node.uid(), node.gid());
        (self.fsuid == owner && (gid == group || self.in_group(gid)))
            || self.capable_over_ids(owner, group, CAP_CHOWN)
    }

    /// The set-id bits a chown of a non-directory clears (Linux
    /// `chown_common`: ATTR_KILL_SUID always, plus
    /// `setattr_should_drop_sgid`): S_ISUID, and S_ISGID when group
    /// execution is on (a real set-group-id program) or the caller may not
    /// keep it (neither in the file's group nor CAP_FSETID). A mode
    /// S_ISGID without group execution is mandatory locking's mark, which
    /// stays for those who may keep it.
    pub fn chown_kill_bits(&self, node: &Node) -> u32 {
        let mode = node.mode();
        if mode & S_IFMT == super::inode::S_IFDIR {
            return 0;
        }
        let drop_sgid = mode & S_ISGID != 0 && (mode & S_IXGRP != 0 || !self.may_keep_setgid(node));
        S_ISUID | if drop_sgid { S_ISGID } else { 0 }
    }

    /// Whether a chmod by the caller may keep S_ISGID on `node` (Linux
    /// `setattr_should_drop_sgid`: in its group, or CAP_FSETID).
    pub fn may_keep_setgid(&self, node: &Node) -> bool {
        self.in_group(node.gid()) || self.capable_over_ids(node.uid(), node.gid(), CAP_FSETID)
    }
}

#[cfg(test)]
mod tests {
    use alloc::sync::Arc;

    use super::*;
    use crate::fs::dentry::Owner;

    const USER: Access = Access {
        fsuid: 1000,
        fsgid: 1000,
        caps: 0,
        owner_mapped: None,
        groups: None,
    };

    fn dir(root: &Arc<Dentry>, name: &[u8], mode: u32, uid: u32, gid: u32) -> Arc<Dentry> {
        root.mkdir(name, mode, Owner { uid, gid }).unwrap()
    }

    #[test]
    fn owner_group_other_bits() {
        let root = Dentry::new_tree();
        let mine = dir(&root, b"mine", 0o300, 1000, 0);
        let group = dir(&root, b"group", 0o070, 0, 1000);
        let other = dir(&root, b"other", 0o001, 0, 0);
        assert_eq!(USER.permission(&mine, MAY_WRITE | MAY_EXEC), Ok(()));
        assert_eq!(USER.permission(&group, MAY_WRITE | MAY_EXEC), Ok(()));
        assert_eq!(USER.permission(&other, MAY_EXEC), Ok(()));
        assert_eq!(USER.permission(&other, MAY_WRITE), Err(EACCES));
        // The owner's bits alone count for the owner, even if others have more.
        let owner_none = dir(&root, b"owner-none", 0o077, 1000, 1000);
        assert_eq!(USER.permission(&owner_none, MAY_EXEC), Err(EACCES));
        // A supplementary group counts like the file-system group.
        let staff = dir(&root, b"staff", 0o070, 0, 50);
        assert_eq!(USER.permission(&staff, MAY_EXEC), Err(EACCES));
        let member = Access {
            groups: Some(Arc::from([20, 50])),
            ..USER
        };
        assert_eq!(member.permission(&staff, MAY_WRITE | MAY_EXEC), Ok(()));
    }

    #[test]
    fn capabilities_override() {
        let root = Dentry::new_tree();
        let closed = dir(&root, b"closed", 0o000, 0, 0);
        let search = Access {
            caps: 1 << CAP_DAC_READ_SEARCH,
            ..USER
        };
        assert_eq!(search.permission(&closed, MAY_EXEC), Ok(()));
        assert_eq!(
            search.permission(&closed, MAY_WRITE | MAY_EXEC),
            Err(EACCES)
        );
        let dac = Access {
            caps: 1 << CAP_DAC_OVERRIDE,
            ..USER
        };
        assert_eq!(dac.permission(&closed, MAY_WRITE | MAY_EXEC), Ok(()));
        assert_eq!(USER.permission(&closed, MAY_EXEC), Err(EACCES));
    }

    #[test]
    fn capabilities_of_a_user_namespace_stop_at_unmapped_owners() {
        let root = Dentry::new_tree();
        let roots = dir(&root, b"roots", 0o000, 0, 0);
        let users = dir(&root, b"users", 0o000, 1000, 1000);
        // Root of a namespace that maps only uid and gid 1000.
        let ns_root = Access {
            caps: 1 << CAP_DAC_OVERRIDE,
            owner_mapped: Some(Arc::new(|uid, gid| uid == 1000 && gid == 1000)),
            ..USER
        };
        assert_eq!(ns_root.permission(&roots, MAY_EXEC), Err(EACCES));
        let ns_root_other = Access {
            fsuid: 0,
            fsgid: 0,
            ..ns_root
        };
        assert_eq!(
            ns_root_other.permission(&users, MAY_WRITE | MAY_EXEC),
            Ok(())
        );
    }

    #[test]
    fn sticky_directories() {
        let root = Dentry::new_tree();
        let tmp = root.lookup(b"tmp").unwrap();
        let theirs = Node::Dir(dir(&tmp, b"theirs", 0o755, 1001, 1001));
        let mine = Node::Dir(dir(&tmp, b"mine", 0o755, 1000, 1000));
        assert!(USER.sticky_refuses(&tmp, &theirs));
        assert!(!USER.sticky_refuses(&tmp, &mine));
        let fowner = Access {
            caps: 1 << CAP_FOWNER,
            ..USER
        };
        assert!(!fowner.sticky_refuses(&tmp, &theirs));
        let plain = dir(&root, b"plain", 0o777, 0, 0);
        let inside = Node::Dir(dir(&plain, b"x", 0o755, 1001, 1001));
        assert!(!USER.sticky_refuses(&plain, &inside));
    }

    #[test]
    fn files_and_capabilities() {
        use crate::fs::inode::{Inode, InodeKind};
        let file = |mode| {
            Node::Inode(Arc::new(Inode::new(
                InodeKind::Regular(Default::default()),
                mode,
                0,
                0,
            )))
        };
        let read_search = Access {
            caps: 1 << CAP_DAC_READ_SEARCH,
            ..USER
        };
        let overrider = Access {
            caps: 1 << CAP_DAC_OVERRIDE,
            ..USER
        };
        let private = file(0o600);
        assert_eq!(USER.permission_node(&private, MAY_READ), Err(EACCES));
        assert_eq!(read_search.permission_node(&private, MAY_READ), Ok(()));
        assert_eq!(read_search.permission_node(&private, MAY_EXEC), Err(EACCES));
        assert_eq!(overrider.permission_node(&private, MAY_WRITE), Ok(()));
        // Execution needs an execute bit even for CAP_DAC_OVERRIDE.
        assert_eq!(overrider.permission_node(&private, MAY_EXEC), Err(EACCES));
        assert_eq!(overrider.permission_node(&file(0o700), MAY_EXEC), Ok(()));
        assert_eq!(
            USER.permission_node(&file(0o755), MAY_EXEC | MAY_READ),
            Ok(())
        );
    }

    #[test]
    fn chmod_rights() {
        use crate::fs::inode::{Inode, InodeKind};
        let owned_by = |uid, gid| {
            Node::Inode(Arc::new(Inode::new(
                InodeKind::Regular(Default::default()),
                0o2755,
                uid,
                gid,
            )))
        };
        let mine = owned_by(1000, 50);
        assert!(USER.owner_or_capable(&mine));
        assert!(!USER.owner_or_capable(&owned_by(0, 0)));
        let fowner = Access {
            caps: 1 << CAP_FOWNER,
            ..USER
        };
        assert!(fowner.owner_or_capable(&owned_by(0, 0)));
        // Not in group 50: chmod drops S_ISGID unless CAP_FSETID.
        assert!(!USER.may_keep_setgid(&mine));
        assert!(USER.may_keep_setgid(&owned_by(1000, 1000)));
        let fsetid = Access {
            caps: 1 << CAP_FSETID,
            ..USER
        };
        assert!(fsetid.may_keep_setgid(&mine));
    }

    #[test]
    fn chown_and_chgrp_rights() {
        use crate::fs::inode::{Inode, InodeKind};
        let file = |mode, uid, gid| {
            Node::Inode(Arc::new(Inode::new(
                InodeKind::Regular(Default::default()),
                mode,
                uid,
                gid,
            )))
        };
        let mine = file(0o644, 1000, 1000);
        // The owner keeps its uid but cannot give the file away.
        assert!(USER.may_chown(&mine, 1000));
        assert!(!USER.may_chown(&mine, 1001));
        // It may pick one of its groups, not another.
        let member = Access {
            groups: Some(Arc::from([20, 50])),
            ..USER
        };
        assert!(member.may_chgrp(&mine, 50));
        assert!(!member.may_chgrp(&mine, 51));
        assert!(!USER.may_chgrp(&file(0o644, 0, 1000), 1000));
        let chown = Access {
            caps: 1 << CAP_CHOWN,
            ..USER
        };
        assert!(chown.may_chown(&mine, 7) && chown.may_chgrp(&mine, 7));
        // S_ISUID always goes; S_ISGID with group execution, or for who may not keep it.
        assert_eq!(USER.chown_kill_bits(&mine), S_ISUID);
        assert_eq!(
            USER.chown_kill_bits(&file(0o2755, 1000, 1000)),
            S_ISUID | S_ISGID
        );
        assert_eq!(USER.chown_kill_bits(&file(0o2745, 1000, 1000)), S_ISUID);
        assert_eq!(
            USER.chown_kill_bits(&file(0o2745, 1000, 5)),
            S_ISUID | S_ISGID
        );
    }
}
