//! Namespaces from the guest's shell: `unshare` and `clone` with
//! CLONE_NEWUSER by root and by an unprivileged user, what the new
//! namespace's root may and may not do, and that nothing is left behind.

mod common;

use common::{code, run_script, stderr, stdout};

#[test]
fn unshare_and_user_namespaces_in_the_guest() {
    require_kvm!();
    let out = run_script(
        "unshare 0x10000000 id; \
         su 61234 unshare 0x4000000 id; \
         su 61234 unshare 0x14000000 id; \
         su 61234 clone 0x4000000; \
         unshare 0x8000; \
         sysctl user.max_user_namespaces=0; clone 0x10000000; \
         sysctl user.max_user_namespaces=2147483647; clone 0x10000000; \
         stat",
        &[],
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "uid=65534 euid=65534 gid=65534 egid=65534 caps=0x1ffffffffff",
            "unshare: unshare: EPERM 1",
            "uid=65534 euid=65534 gid=65534 egid=65534 caps=0x1ffffffffff",
            "err EPERM 1",
            "unshare: unshare: EINVAL 22",
        ],
        "{text}\n{}",
        stderr(&out)
    );
    // `user.max_user_namespaces` 0: ENOSPC, as on Linux.
    assert_eq!(lines[6], "err ENOSPC 28", "{text}");
    assert!(lines[8].starts_with("ok pid="), "{text}");
    // Only the initial namespaces are left, referenced by one proxy.
    let stat = lines[9];
    for field in [
        "user_namespaces=1 ",
        "uts_namespaces=1 ",
        "ns.uts.refs=1 ",
        "ns.user_level=0 ",
    ] {
        assert!(stat.contains(field), "{field} in {stat}");
    }
    assert_eq!(code(&out), 0);
}
