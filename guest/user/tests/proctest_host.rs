//! Runs `proctest` on the host's Linux, the oracle for what the forkvm guest
//! kernel must do: every scenario must pass here, together and alone.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROCTEST: &str = env!("CARGO_BIN_EXE_proctest");

/// Far more than a run needs (`all` takes well under a second).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The scenario names the program must offer, in `list` order.
const SCENARIOS: &[&str] = &[
    "cow-parent-write",
    "cow-child-write",
    "cow-many-pages",
    "clone-vm-shares",
    "thread-shares-mm",
    "thread-getpid",
    "thread-tls",
    "arch-prctl-gs-base",
    "child-cleartid-wakes",
    "robust-list-syscalls",
    "robust-list-owner-died",
    "vfork-order",
    "vfork-exec",
    "wait-status-exit",
    "wait-status-sigkill",
    "wait-status-sigsegv",
    "wait-any-and-wnohang",
    "wait-any-oldest-first",
    "wait-echild",
    "orphan-reparented",
    "zombie-reaped",
    "efault-write",
    "efault-wait4",
    "efault-clone-settid",
    "pipe-basic",
    "dup2-basic",
    "files-shared-by-thread",
    "exit-group-kills-threads",
    "mmap-munmap",
    "mmap-hint-honoured",
    "nx-data-page",
    "mprotect-readonly",
    "brk-grow",
    "fork-many",
    "sched-yield",
    "nanosleep",
    "uname",
    "prctl-name",
    "sighand-shared",
    "nproc-cap-sys-resource",
    "uts-namespace",
    "pid-namespace",
    "clone-fs-umask",
    "clone-io-ioprio",
    "sysvsem-undo",
    "pgrp-basics",
    "setpgid-errors",
    "setsid-getsid",
    "kill-pgrp",
    "wait-pgrp",
    "ioprio-pgrp",
    "pgrp-thread",
    "pgrp-pid-namespace",
    "semtimedop-timeout",
    "semtimedop-woken",
    "semtimedop-errors",
    "semctl-ipc-stat",
    "semctl-ipc-set",
    "semctl-ipc-set-eperm",
    "semctl-ctime",
    "semctl-info-stat",
    "semctl-errors",
    "fs-clone-fs-chdir",
    "fs-chroot-needs-cap",
    "fs-chroot-jail",
    "fs-mkdir-rmdir-errors",
    "fs-getcwd-errors",
    "fs-dir-permissions",
    "fs-mkdirat-unlinkat",
    "files-create-read-write",
    "files-sparse-lseek",
    "files-append-two-processes",
    "files-unlink-open",
    "files-rename-over-open",
    "files-links",
    "files-open-errors",
    "files-truncate",
    "files-getdents",
    "files-dev-null-zero",
    "files-chmod-utimes-iov",
    "files-statx",
    "files-rename-directories",
    "files-at-dirfd",
    "files-permissions",
    "files-chown-root",
    "files-chown-unprivileged",
    "files-mmap-shared",
    "files-mmap-private",
    "files-mmap-errors",
    "files-mmap-lazy-sparse",
    "files-mmap-past-eof-sigbus",
    "files-truncate-unmaps",
    "files-exec-interpreter",
    "files-proc-stat-status-meminfo",
    "files-proc-fd",
    "files-proc-cpuinfo-sysctl",
    "files-proc-dirs",
    "files-proc-sys-dirs",
    "files-creat-through-symlink",
    "execveat-dirfd-paths",
    "execveat-empty-path",
    "execveat-errors",
    "execveat-symlink-nofollow",
    "execveat-script-dev-fd",
    "ioctl-files-and-pipes",
    "ioctl-console",
    "dev-tty-no-ctty",
    "userns-id-maps",
    "userns-owns-namespaces",
    "userns-nproc-counts-creator",
    "unshare-user-and-uts",
    "unshare-fs-and-files",
    "unshare-pid",
    "kill-needs-permission",
    "setgroups-rules",
    "signal-handler-siginfo",
    "signal-interrupts-spinner",
    "signal-mask-in-handler",
    "signal-nodefer",
    "signal-resethand",
    "signal-sigreturn-registers",
    "signal-segv-handler-fixes",
    "signal-segv-maperr",
    "signal-blocked-segv-kills",
    "signal-ignored-segv-kills",
    "signal-nanosleep-eintr",
    "signal-pipe-read-eintr",
    "signal-pipe-read-restart",
    "signal-wait4-eintr",
    "signal-wait4-restart",
    "signal-sigchld-handler",
    "signal-pause-eintr",
    "signal-futex-wait-eintr",
    "signal-sigsuspend-mask",
    "signal-sigreturn-bad-frame",
    "signal-bad-stack-segv",
    "signal-no-restorer-segv",
    "jump-to-kernel-address-segv",
    "futex-wait-timeout",
    "kill-zombie",
    "exec-kills-other-threads",
    "exec-unshares-files",
    "exec-closes-cloexec",
    "sigaltstack-checks",
    "sigaltstack-handler-on-it",
    "sigaltstack-autodisarm",
    "sigaltstack-overflow-segv",
    "sigaltstack-fork-vfork-clone-vm",
    "sigaltstack-exec-clears",
    "waitid-checks",
    "waitid-exited-siginfo",
    "waitid-killed-siginfo",
    "waitid-wnohang-zeroes",
    "waitid-wnowait",
    "waitid-pgid",
    "waitid-efault",
    "waitid-wait4-options",
    "pidfd-open-checks",
    "pidfd-open-waitid",
    "pidfd-open-like-clone-pidfd",
    "wait-sibling-thread-child",
    "tgkill-checks",
    "tgkill-siginfo",
    "tgkill-right-thread",
    "sigpending-checks",
    "sigpending-per-thread",
    "sigpending-shared",
    "sigtimedwait-checks",
    "sigtimedwait-order",
    "sigtimedwait-waits",
    "sigtimedwait-eintr",
    "sigqueueinfo-checks",
    "sigqueueinfo-handler",
    "sigqueueinfo-waiter",
    "sigqueueinfo-thread",
    "sigqueueinfo-standard-once",
    "sigqueueinfo-rt-queued",
    "sigqueueinfo-rt-limit",
    "pidfd-send-signal-info",
    "clone-noncanonical-stack-runs",
    "vfork-noncanonical-stack-runs",
    "clone-noncanonical-stack-push-segv",
    "clone-noncanonical-stack-read-sigbus",
    "sigreturn-noncanonical-rsp-runs",
    "sigreturn-kernel-side-rsp-runs",
    "jump-to-kernel-address-with-kernel-stack-segv",
    "alignment-check-flag-survives-traps",
    "nested-task-flag-survives-traps",
    "sched-setscheduler-errors",
    "sched-priority-range",
    "sched-policies-as-root",
    "sched-attr-sizes",
    "sched-attr-flags",
    "sched-unprivileged",
    "sched-rlimit-rtprio",
    "sched-rlimit-nice",
    "sched-other-user",
    "sched-user-namespace",
    "sched-fair-slice",
    "sched-proc-stat",
    "sched-inherit",
    "sched-reset-on-fork",
    "getpriority-encoding",
    "priority-pgrp-user",
    "getrusage-bad-who",
    "getrusage-bad-pointer",
    "wait4-rusage-spinning-child",
    "rusage-children-after-reap",
    "rusage-self-includes-threads",
    "times-sanity",
    "rusage-nvcsw-after-sleep",
    "affinity-errors",
    "affinity-set-and-get",
    "affinity-inherit",
    "affinity-other-user",
    "clock-nanosleep-clocks",
    "clock-nanosleep-absolute",
    "clock-nanosleep-errors",
    "creat-truncates-write-only",
    "pipe-nonblock-empty-and-full",
    "pipe-setfl-nonblock",
    "pipe-nonblock-eof",
    "pipe2-bad-flags",
    "pipe-fionbio",
    "setresuid-transitions",
    "setreuid-saved-id",
    "setresgid-setregid",
    "setresuid-capabilities",
    "setfsuid-file-access",
    "exec-resets-saved-ids",
    "madvise-dontneed-anon",
    "madvise-dontneed-file",
    "madvise-errors",
    "madvise-dontfork",
    "mremap-shrink-grow-move",
    "mremap-fixed-and-cow",
    "mremap-errors",
    "mincore-residency",
    "msync-checks",
    "mlock-limits",
    "socket-create-errors",
    "socket-calls-on-non-sockets",
    "alarm-returns-remaining",
    "alarm-interrupts-pause",
    "alarm-interrupts-nanosleep",
    "setitimer-interval-rearms",
    "itimer-not-inherited-by-fork",
    "itimer-virtual-and-prof-fire",
    "itimer-errors",
    "gettimeofday-time-sysinfo",
    "poll-pipe-states",
    "poll-always-ready-files",
    "poll-bad-fds-and-errors",
    "poll-wait-woken-by-writer",
    "poll-ping-pong",
    "select-pipe-states",
    "select-errors",
    "poll-select-eintr",
    "ppoll-pselect-sigmask",
];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `proctest ARGS`, killing it if it outlives [`TIMEOUT`]. (Its output
/// is small enough to sit in the pipes until it has exited.)
fn proctest(args: &[&str]) -> Run {
    let mut child = Command::new(PROCTEST)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proctest");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if start.elapsed() > TIMEOUT {
            child.kill().expect("kill proctest");
            child.wait().expect("wait proctest");
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    };
    assert!(
        status.is_some(),
        "proctest {args:?} still running after {TIMEOUT:?} (killed)\n{run}"
    );
    run
}

fn listed() -> Vec<String> {
    let run = proctest(&["list"]);
    assert_eq!(run.code, Some(0), "proctest list\n{run}");
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn list_names_every_scenario() {
    assert_eq!(listed(), SCENARIOS);
}

/// The result lines of a run: its `skip NAME: WHY` notes (a part a
/// scenario could not run on this host, e.g. without CAP_SYS_NICE) are
/// shown on stderr and left out, after checking each names a scenario
/// that then passed or failed.
fn results(stdout: &str) -> Vec<&str> {
    let lines: Vec<&str> = stdout.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        let Some(note) = line.strip_prefix("skip ") else {
            continue;
        };
        eprintln!("{line}");
        let name = note.split(": ").next().unwrap_or_default();
        assert!(
            lines[at..]
                .iter()
                .any(|l| *l == format!("ok {name}") || l.starts_with(&format!("FAIL {name}:"))),
            "a skip note without its scenario's result: {line}\n{stdout}"
        );
    }
    lines
        .into_iter()
        .filter(|l| !l.starts_with("skip "))
        .collect()
}

#[test]
fn all_scenarios_pass_on_the_host() {
    let names = listed();
    let run = proctest(&["all"]);
    let expected: Vec<String> = names.iter().map(|n| format!("ok {n}")).collect();
    let lines = results(&run.stdout);
    assert_eq!(lines, expected, "proctest all\n{run}");
    assert_eq!(run.code, Some(0), "proctest all\n{run}");
    assert!(run.stderr.is_empty(), "proctest all\n{run}");
}

/// No scenario depends on another having run first.
#[test]
fn each_scenario_passes_alone() {
    for name in listed() {
        let run = proctest(&[&name]);
        assert_eq!(
            results(&run.stdout),
            [format!("ok {name}")],
            "proctest {name}\n{run}"
        );
        assert_eq!(run.code, Some(0), "proctest {name}\n{run}");
    }
}

#[test]
fn several_scenarios_run_in_order() {
    let run = proctest(&["uname", "pipe-basic", "uname"]);
    assert_eq!(run.stdout, "ok uname\nok pipe-basic\nok uname\n", "{run}");
    assert_eq!(run.code, Some(0), "{run}");
}

#[test]
fn exit_42_helper_exits_42_silently() {
    let run = proctest(&["exit-42"]);
    assert_eq!(run.code, Some(42), "{run}");
    assert!(run.stdout.is_empty() && run.stderr.is_empty(), "{run}");
}

#[test]
fn bad_usage_exits_2_before_running_anything() {
    for args in [&[][..], &["no-such-scenario"], &["uname", "bogus"]] {
        let run = proctest(args);
        assert_eq!(run.code, Some(2), "proctest {args:?}\n{run}");
        assert!(run.stdout.is_empty(), "proctest {args:?}\n{run}");
        assert!(
            run.stderr.contains("usage: proctest"),
            "proctest {args:?}\n{run}"
        );
    }
}
