//! User namespaces (Linux `kernel/user_namespace.c`, `kernel/ucount.c`).
//!
//! Credentials hold *kernel* ids (Linux `kuid_t`): one global number per
//! user. A user namespace translates between the ids its tasks see and
//! kernel ids through its uid and gid maps, written once through
//! `/proc/PID/uid_map` and `gid_map` (see `fs::proc`). Until a map is
//! written nothing is mapped: the task sees itself as the overflow id 65534.
//!
//! A namespace is owned by the kernel uid that created it; that uid holds
//! every capability over it and its descendants (`Cred::ns_capable`), and a
//! task entering a new namespace gets the full capability set *in it*.
//! Tasks are counted per (namespace, user) at every level up to the initial
//! namespace (Linux ucounts), so RLIMIT_NPROC inside a namespace also charges
//! the creator outside it.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::{Mutex, Once};

use super::cred::Uid;
use crate::errno::{EINVAL, ENOSPC, EPERM};

/// What an unmapped id looks like from inside (Linux `overflowuid`).
pub const OVERFLOW_ID: Uid = 65534;
/// An id no map yields (Linux `(u32)-1`, `INVALID_UID`).
pub const INVALID_ID: Uid = u32::MAX;
/// Most extents a map may have (`UID_GID_MAP_MAX_EXTENTS`).
pub const MAX_EXTENTS: usize = 340;
/// A parent namespace deeper than this cannot get children (Linux: `level > 32`).
const MAX_LEVEL: u32 = 32;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: AtomicU64 = AtomicU64::new(0);

/// One line of an id map: ids `first..first + count` inside are kernel
/// ids `lower_first..lower_first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub first: u32,
    pub lower_first: u32,
    pub count: u32,
}

impl Extent {
    fn last(&self) -> u32 {
        self.first + (self.count - 1)
    }

    fn lower_last(&self) -> u32 {
        self.lower_first + (self.count - 1)
    }
}

/// A uid or gid map (Linux `struct uid_gid_map`).
#[derive(Clone, Debug, Default)]
pub struct IdMap {
    pub extents: Vec<Extent>,
}

impl IdMap {
    /// The initial namespace's map: every id is itself.
    fn identity() -> IdMap {
        IdMap {
            extents: alloc::vec![Extent {
                first: 0,
                lower_first: 0,
                count: u32::MAX,
            }],
        }
    }

    /// Inside id range -> kernel id (Linux `map_id_range_down`).
    fn down_range(&self, id: u32, count: u32) -> Option<u32> {
        let last = id.checked_add(count - 1)?;
        self.extents
            .iter()
            .find(|e| id >= e.first && last <= e.last())
            .map(|e| id - e.first + e.lower_first)
    }

    /// Kernel id -> inside id (Linux `map_id_up`).
    fn up(&self, kid: u32) -> Option<u32> {
        self.extents
            .iter()
            .find(|e| kid >= e.lower_first && kid <= e.lower_last())
            .map(|e| kid - e.lower_first + e.first)
    }
}

/// Which id map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Uid,
    Gid,
}

/// A user namespace.
pub struct UserNamespace {
    pub parent: Option<Arc<UserNamespace>>,
    /// 0 for the initial namespace.
    pub level: u32,
    /// The kernel uid of the creator (its effective uid).
    pub owner: Uid,
    /// Identity (what `/proc/self/ns/user` would show).
    pub id: u64,
    uid_map: Mutex<IdMap>,
    gid_map: Mutex<IdMap>,
    /// `/proc/PID/setgroups`: "allow" (inherited) until "deny" is written.
    setgroups_allowed: AtomicBool,
    /// Whether the creator held CAP_SETFCAP: needed to map uid 0 of the
    /// parent from inside (Linux `parent_could_setfcap`).
    parent_could_setfcap: bool,
    /// RLIMIT_NPROC of the creator, enforced on the creator's count in the
    /// parent namespace (Linux `rlimit_max[UCOUNT_RLIMIT_NPROC]`).
    pub nproc_max: u64,
    /// `user.max_user_namespaces` in this namespace (Linux `ucount_max`).
    pub max_user_namespaces: AtomicU64,
    /// This namespace counted against its creator in the parent.
    _counted: Option<NamespaceCount>,
}

impl Drop for UserNamespace {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

static INIT_USER_NS: Once<Arc<UserNamespace>> = Once::new();

/// The initial user namespace (Linux `init_user_ns`).
pub fn init_user_ns() -> &'static Arc<UserNamespace> {
    INIT_USER_NS.call_once(|| {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(UserNamespace {
            parent: None,
            level: 0,
            owner: 0,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            uid_map: Mutex::new(IdMap::identity()),
            gid_map: Mutex::new(IdMap::identity()),
            setgroups_allowed: AtomicBool::new(true),
            parent_could_setfcap: true,
            nproc_max: u64::MAX,
            // Linux: max_threads / 2 (fork_init).
            max_user_namespaces: AtomicU64::new(super::rlimit::max_threads() / 2),
            _counted: None,
        })
    })
}

/// Live user namespaces, the initial one included.
pub fn live() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

impl UserNamespace {
    fn map(&self, kind: IdKind) -> &Mutex<IdMap> {
        match kind {
            IdKind::Uid => &self.uid_map,
            IdKind::Gid => &self.gid_map,
        }
    }

    /// Id seen here -> kernel id, or None if unmapped (Linux `make_kuid`).
    pub fn make_kid(&self, kind: IdKind, id: u32) -> Option<Uid> {
        if self.level == 0 {
            return (id != INVALID_ID).then_some(id);
        }
        self.map(kind).lock().down_range(id, 1)
    }

    /// Kernel id -> id seen here, or None (Linux `from_kuid`).
    pub fn id_of(&self, kind: IdKind, kid: Uid) -> Option<u32> {
        if self.level == 0 {
            return (kid != INVALID_ID).then_some(kid);
        }
        self.map(kind).lock().up(kid)
    }

    /// Kernel id -> id seen here, the overflow id if unmapped (Linux
    /// `from_kuid_munged`, what getuid and friends report).
    pub fn id_of_munged(&self, kind: IdKind, kid: Uid) -> u32 {
        self.id_of(kind, kid).unwrap_or(OVERFLOW_ID)
    }

    /// Whether `self` is `ancestor` or below it (Linux `in_userns`).
    pub fn is_within(self: &Arc<Self>, ancestor: &Arc<UserNamespace>) -> bool {
        let mut ns = self;
        while ns.level > ancestor.level {
            ns = ns.parent.as_ref().expect("level > 0 has a parent");
        }
        Arc::ptr_eq(ns, ancestor)
    }

    pub fn setgroups_allowed(&self) -> bool {
        self.setgroups_allowed.load(Ordering::Relaxed)
    }

    /// `setgroups` is possible once the gid map is written, unless
    /// `/proc/PID/setgroups` says deny (Linux `userns_may_setgroups`).
    pub fn may_setgroups(&self) -> bool {
        let gid_map = self.gid_map.lock();
        (self.level == 0 || !gid_map.extents.is_empty()) && self.setgroups_allowed()
    }

    /// The map as `/proc/PID/uid_map` shows it to a reader in `reader_ns`:
    /// lower ids in the parent's terms, or in the reader's own when the
    /// reader is outside (Linux `uid_m_show`).
    pub fn map_text(&self, kind: IdKind, reader_ns: &Arc<UserNamespace>) -> alloc::string::String {
        let lower_ns = if core::ptr::eq(&**reader_ns, self) {
            self.parent.clone().unwrap_or_else(|| reader_ns.clone())
        } else {
            reader_ns.clone()
        };
        let map = self.map(kind).lock().clone();
        let mut text = alloc::string::String::new();
        for extent in &map.extents {
            let lower = lower_ns
                .id_of(kind, extent.lower_first)
                .unwrap_or(INVALID_ID);
            text.push_str(&alloc::format!(
                "{:>10} {:>10} {:>10}\n",
                extent.first,
                lower,
                extent.count
            ));
        }
        text
    }

    /// `/proc/PID/setgroups` as shown.
    pub fn setgroups_text(&self) -> &'static str {
        if self.setgroups_allowed() {
            "allow\n"
        } else {
            "deny\n"
        }
    }
}

/// Writes the uid or gid map of `ns` (Linux `proc_uid_map_write` +
/// `map_write`) on behalf of a file opened with credentials `opener`.
pub fn map_write(
    ns: &Arc<UserNamespace>,
    kind: IdKind,
    opener: &super::cred::Cred,
    text: &[u8],
) -> Result<(), i32> {
    use super::cred::{CAP_SETFCAP, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN};
    let parent = ns.parent.as_ref().ok_or(EPERM)?;
    // Only from inside the namespace or its parent.
    if !Arc::ptr_eq(&opener.user_ns, ns) && !Arc::ptr_eq(&opener.user_ns, parent) {
        return Err(EPERM);
    }
    let mut map = ns.map(kind).lock();
    // A map is written once.
    if !map.extents.is_empty() {
        return Err(EPERM);
    }
    if !opener.ns_capable(ns, CAP_SYS_ADMIN) {
        return Err(EPERM);
    }
    let mut new = parse_map(text)?;

    // new_idmap_permitted.
    let cap_setid = match kind {
        IdKind::Uid => CAP_SETUID,
        IdKind::Gid => CAP_SETGID,
    };
    if kind == IdKind::Uid && new.extents.iter().any(|e| e.lower_first == 0) {
        // Mapping the parent's uid 0 lets the namespace write file
        // capabilities valid outside it (Linux `verify_root_map`).
        let allowed = if Arc::ptr_eq(&opener.user_ns, ns) {
            ns.parent_could_setfcap
        } else {
            opener.ns_capable(parent, CAP_SETFCAP)
        };
        if !allowed {
            return Err(EPERM);
        }
    }
    let own_id_only =
        new.extents.len() == 1 && new.extents[0].count == 1 && ns.owner == opener.euid;
    let maps_own_id = own_id_only && {
        let lower = parent.make_kid(kind, new.extents[0].lower_first);
        match kind {
            IdKind::Uid => lower == Some(opener.euid),
            IdKind::Gid => !ns.setgroups_allowed() && lower == Some(opener.egid),
        }
    };
    if !maps_own_id && !opener.ns_capable(parent, cap_setid) {
        return Err(EPERM);
    }

    // The lower ids are the parent's: translate them to kernel ids.
    let parent_map = if parent.level == 0 {
        IdMap::identity()
    } else {
        parent.map(kind).lock().clone()
    };
    for extent in &mut new.extents {
        extent.lower_first = parent_map
            .down_range(extent.lower_first, extent.count)
            .ok_or(EPERM)?;
    }
    *map = new;
    Ok(())
}

/// Parses "first lower count" lines (Linux's `map_write` parser: decimal
/// numbers separated by spaces, no trailing junk, one optional final
/// newline, no empty map, no zero count or wrap, no overlap with an earlier
/// line, at most 340 lines).
fn parse_map(text: &[u8]) -> Result<IdMap, i32> {
    let text = core::str::from_utf8(text).map_err(|_| EINVAL)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut map = IdMap::default();
    for line in text.split('\n') {
        if map.extents.len() == MAX_EXTENTS {
            return Err(EINVAL);
        }
        let mut fields = line.split_ascii_whitespace();
        let mut number = || -> Result<u32, i32> {
            let field = fields.next().ok_or(EINVAL)?;
            if !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EINVAL);
            }
            // Linux's simple_strtoul wraps a huge number into a u32.
            field.parse::<u64>().map(|v| v as u32).map_err(|_| EINVAL)
        };
        let extent = Extent {
            first: number()?,
            lower_first: number()?,
            count: number()?,
        };
        if fields.next().is_some() || extent.first == INVALID_ID || extent.lower_first == INVALID_ID
        {
            return Err(EINVAL);
        }
        let wraps = |start: u32| {
            start
                .checked_add(extent.count)
                .is_none_or(|end| end <= start)
        };
        if wraps(extent.first) || wraps(extent.lower_first) {
            return Err(EINVAL);
        }
        let overlaps = map.extents.iter().any(|prev| {
            (prev.first <= extent.last() && prev.last() >= extent.first)
                || (prev.lower_first <= extent.lower_last()
                    && prev.lower_last() >= extent.lower_first)
        });
        if overlaps {
            return Err(EINVAL);
        }
        map.extents.push(extent);
    }
    Ok(map)
}

/// `/proc/PID/setgroups` write (Linux `proc_setgroups_write`): "allow" or
/// "deny"; denying is permanent and only possible before the gid map.
pub fn setgroups_write(ns: &UserNamespace, text: &[u8]) -> Result<(), i32> {
    if text.len() >= 8 {
        return Err(EINVAL);
    }
    let (allow, rest) = if let Some(rest) = text.strip_prefix(b"allow") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix(b"deny") {
        (false, rest)
    } else {
        return Err(EINVAL);
    };
    if !rest.iter().all(u8::is_ascii_whitespace) {
        return Err(EINVAL);
    }
    let gid_map = ns.gid_map.lock();
    if allow {
        if !ns.setgroups_allowed() {
            return Err(EPERM);
        }
    } else {
        if !gid_map.extents.is_empty() {
            return Err(EPERM);
        }
        ns.setgroups_allowed.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// A new user namespace below `cred`'s, owned by its effective ids (Linux
/// `create_user_ns`); `chrooted` says whether the creator's root is not
/// the file-system root; `allocate` is the allocation's fault-injection
/// point. Returns the credentials of a task in it: the same kernel ids with
/// every capability in the new namespace.
pub fn create_user_ns(
    cred: &super::cred::Cred,
    nproc_rlimit: u64,
    chrooted: bool,
    allocate: impl FnOnce() -> Result<(), i32>,
) -> Result<super::cred::Cred, i32> {
    let parent = &cred.user_ns;
    if parent.level > MAX_LEVEL {
        return Err(ENOSPC);
    }
    let counted = NamespaceCount::charge(parent, cred.euid).ok_or(ENOSPC)?;
    if chrooted {
        return Err(EPERM);
    }
    // The creator must be nameable in the parent.
    if parent.id_of(IdKind::Uid, cred.euid).is_none()
        || parent.id_of(IdKind::Gid, cred.egid).is_none()
    {
        return Err(EPERM);
    }
    // Linux `enforced_nproc_rlimit`: root of the initial namespace is
    // not limited.
    let nproc_max = if cred.uid == 0 && parent.level == 0 {
        u64::MAX
    } else {
        nproc_rlimit
    };
    allocate()?;
    LIVE.fetch_add(1, Ordering::Relaxed);
    let ns = Arc::new(UserNamespace {
        parent: Some(parent.clone()),
        level: parent.level + 1,
        owner: cred.euid,
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        uid_map: Mutex::new(IdMap::default()),
        gid_map: Mutex::new(IdMap::default()),
        setgroups_allowed: AtomicBool::new(parent.setgroups_allowed()),
        parent_could_setfcap: cred.cap_effective & (1 << super::cred::CAP_SETFCAP) != 0,
        nproc_max,
        max_user_namespaces: AtomicU64::new(i32::MAX as u64),
        _counted: Some(counted),
    });
    Ok(cred.enter_user_ns(ns))
}

/// Counts per (user namespace id, kernel uid): tasks (RLIMIT_NPROC) and
/// user namespaces created (`user.max_user_namespaces`).
static TASK_COUNTS: Mutex<BTreeMap<(u64, Uid), u64>> = Mutex::new(BTreeMap::new());
static NAMESPACE_COUNTS: Mutex<BTreeMap<(u64, Uid), u64>> = Mutex::new(BTreeMap::new());

/// The (namespace, uid) pairs a task of `uid` in `ns` is counted under:
/// itself, then its namespace's creator in the parent, and so on up
/// (Linux walks `ucounts->ns->ucounts`).
fn count_chain(ns: &Arc<UserNamespace>, uid: Uid, mut visit: impl FnMut(&UserNamespace, Uid)) {
    let (mut ns, mut uid) = (&**ns, uid);
    loop {
        visit(ns, uid);
        match &ns.parent {
            Some(parent) => {
                uid = ns.owner;
                ns = parent;
            }
            None => break,
        }
    }
}

fn add(counts: &mut BTreeMap<(u64, Uid), u64>, key: (u64, Uid), delta: i64) {
    let count = counts.entry(key).or_insert(0);
    *count = count.wrapping_add_signed(delta);
    if *count == 0 {
        counts.remove(&key);
    }
}

/// One task counted for its real user at every namespace level (Linux
/// `inc_rlimit_ucounts(.., UCOUNT_RLIMIT_NPROC, 1)`); dropping uncounts.
pub struct UserTaskCount {
    ns: Arc<UserNamespace>,
    uid: Uid,
}

impl UserTaskCount {
    pub fn charge(ns: &Arc<UserNamespace>, uid: Uid) -> UserTaskCount {
        let mut counts = TASK_COUNTS.lock();
        count_chain(ns, uid, |ns, uid| add(&mut counts, (ns.id, uid), 1));
        UserTaskCount {
            ns: ns.clone(),
            uid,
        }
    }
}

impl Drop for UserTaskCount {
    fn drop(&mut self) {
        let mut counts = TASK_COUNTS.lock();
        count_chain(&self.ns, self.uid, |ns, uid| {
            add(&mut counts, (ns.id, uid), -1)
        });
    }
}

/// Whether one more task of `uid` in `ns` would exceed RLIMIT_NPROC
/// `rlimit` at its own level or a creator's limit above (Linux
/// `is_rlimit_overlimit`, counting the new task).
pub fn nproc_over_limit(ns: &Arc<UserNamespace>, uid: Uid, rlimit: u64) -> bool {
    let counts = TASK_COUNTS.lock();
    let mut max = rlimit;
    let mut over = false;
    count_chain(ns, uid, |ns, uid| {
        let count = counts.get(&(ns.id, uid)).copied().unwrap_or(0);
        over |= count + 1 > max;
        max = ns.nproc_max;
    });
    over
}

/// Every (user namespace id, kernel uid, task count) with tasks.
pub fn all_task_counts() -> Vec<(u64, Uid, u64)> {
    TASK_COUNTS
        .lock()
        .iter()
        .map(|(&(ns, uid), &count)| (ns, uid, count))
        .collect()
}

/// One user namespace counted against its creator at every level; the
/// count may not pass each level's `user.max_user_namespaces` (Linux
/// `inc_ucount(.., UCOUNT_USER_NAMESPACES)`).
struct NamespaceCount {
    ns: Arc<UserNamespace>,
    uid: Uid,
}

impl NamespaceCount {
    fn charge(ns: &Arc<UserNamespace>, uid: Uid) -> Option<NamespaceCount> {
        let mut counts = NAMESPACE_COUNTS.lock();
        let mut fits = true;
        count_chain(ns, uid, |ns, uid| {
            let count = counts.get(&(ns.id, uid)).copied().unwrap_or(0);
            fits &= count < ns.max_user_namespaces.load(Ordering::Relaxed);
        });
        if !fits {
            return None;
        }
        count_chain(ns, uid, |ns, uid| add(&mut counts, (ns.id, uid), 1));
        Some(NamespaceCount {
            ns: ns.clone(),
            uid,
        })
    }
}

impl Drop for NamespaceCount {
    fn drop(&mut self) {
        let mut counts = NAMESPACE_COUNTS.lock();
        count_chain(&self.ns, self.uid, |ns, uid| {
            add(&mut counts, (ns.id, uid), -1)
        });
    }
}
