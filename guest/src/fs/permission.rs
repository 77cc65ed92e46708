//! Permission checks on directories (Linux `generic_permission`,
//! `check_sticky`): the owner's, the group's or the others' bits, then the
//! capabilities that override them. There are no supplementary groups and
//! no ACLs; the file-system ids are the effective ones.

use super::dentry::Dentry;
use crate::errno::EACCES;

/// Search (walk through) a directory.
pub const MAY_EXEC: u32 = 1;
/// Add or remove entries.
pub const MAY_WRITE: u32 = 2;

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;

/// The sticky bit: only an entry's owner (or the directory's) removes it.
pub const S_ISVTX: u32 = 0o1000;
/// Set-group-id on a directory: new entries take its group.
pub const S_ISGID: u32 = 0o2000;

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

    /// `cap` over `dir` (Linux `capable_wrt_inode_uidgid`).
    fn capable_over(&self, dir: &Dentry, cap: u32) -> bool {
        self.caps & (1 << cap) != 0
            && self
                .owner_mapped
                .as_ref()
                .is_none_or(|mapped| mapped(dir.uid(), dir.gid()))
    }

    /// Linux `generic_permission` for a directory: EACCES unless the
    /// class's bits allow every access in `mask`, CAP_DAC_READ_SEARCH
    /// covers it (no write) or CAP_DAC_OVERRIDE does.
    pub fn permission(&self, dir: &Dentry, mask: u32) -> Result<(), i32> {
        let mode = dir.mode();
        let bits = if self.fsuid == dir.uid() {
            mode >> 6
        } else if self.in_group(dir.gid()) {
            mode >> 3
        } else {
            mode
        };
        if mask & !bits & 0o7 == 0 {
            return Ok(());
        }
        if mask & MAY_WRITE == 0 && self.capable_over(dir, CAP_DAC_READ_SEARCH) {
            return Ok(());
        }
        if self.capable_over(dir, CAP_DAC_OVERRIDE) {
            return Ok(());
        }
        Err(EACCES)
    }

    /// Linux `check_sticky`: whether removing `victim` from the sticky
    /// directory `dir` is refused (neither owner, no CAP_FOWNER).
    pub fn sticky_refuses(&self, dir: &Dentry, victim: &Dentry) -> bool {
        dir.mode() & S_ISVTX != 0
            && self.fsuid != victim.uid()
            && self.fsuid != dir.uid()
            && !self.capable_over(victim, CAP_FOWNER)
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
        let theirs = dir(&tmp, b"theirs", 0o755, 1001, 1001);
        let mine = dir(&tmp, b"mine", 0o755, 1000, 1000);
        assert!(USER.sticky_refuses(&tmp, &theirs));
        assert!(!USER.sticky_refuses(&tmp, &mine));
        let fowner = Access {
            caps: 1 << CAP_FOWNER,
            ..USER
        };
        assert!(!fowner.sticky_refuses(&tmp, &theirs));
        let plain = dir(&root, b"plain", 0o777, 0, 0);
        let inside = dir(&plain, b"x", 0o755, 1001, 1001);
        assert!(!USER.sticky_refuses(&plain, &inside));
    }
}
