//! The guest's directory tree and the shell's working directory: the
//! `cd`, `pwd`, `mkdir` and `rmdir` builtins over real system calls
//! (getcwd, chdir, mkdir, rmdir), with Linux's errnos and directory
//! permissions.

mod common;

use common::{code, run_script, stderr, stdout};

#[test]
fn directory_builtins_in_the_guest() {
    require_kvm!();
    let out = run_script(
        "pwd; cd /bin; pwd; cd /dev; pwd; cd /proc; pwd; cd /tmp; pwd; \
         mkdir a; cd a; mkdir b; cd b; pwd; cd ../..; pwd; \
         mkdir a; rmdir a; rmdir a/b/; rmdir a; rmdir a; cd a; \
         mkdir /; rmdir /; rmdir .; cd /nope/..; \
         su 1000 cd /; pwd; su 1000 mkdir /x; su 1000 rmdir /tmp; cd; pwd",
        &[],
    );
    assert_eq!(
        stdout(&out),
        "/\n/bin\n/dev\n/proc\n/tmp\n/tmp/a/b\n/tmp\n\
         mkdir: a: EEXIST 17\n\
         rmdir: a: ENOTEMPTY 39\n\
         rmdir: a: ENOENT 2\n\
         cd: a: ENOENT 2\n\
         mkdir: /: EEXIST 17\n\
         rmdir: /: EBUSY 16\n\
         rmdir: .: EINVAL 22\n\
         cd: /nope/..: ENOENT 2\n\
         /tmp\n\
         mkdir: /x: EACCES 13\n\
         rmdir: /tmp: EACCES 13\n\
         /\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&out), 0);
}
