//! The guest on ordinary hardware virtualisation, tested on a PVM machine.
//!
//! Users run forkvm on VMX/SVM hosts, where the guest kernel runs in ring 0
//! with its own interrupts, `iretq` and user/kernel page bits: the "HVM"
//! paths. Our own machines' KVM is PVM, where every other VM test runs the
//! guest in PVM native mode instead, so on such a machine this test brings
//! up a real SVM KVM to run the HVM paths: a Linux VM under QEMU's TCG
//! (which emulates AMD SVM) loads Debian's `kvm-amd`, and inside it the real
//! `forkvm` boots the real guest kernel, auto-detecting HVM. It then runs
//! this workspace's VM test binaries (the same files `cargo test` just
//! built, at the same paths) inside that VM and fails if any of them fails.
//!
//! `tests/hvm_nested/provision.sh` provides QEMU, busybox and the Linux
//! kernel (installing with apt when missing). On a VMX/SVM host the test
//! has nothing to add (the other tests already ran in HVM mode) and says so.
//! Timings inside TCG mean nothing; only behaviour is checked.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use vmm::config::PlatformChoice;

/// The test binaries that boot guests, run inside the nested VM. Their
/// names are the `[[test]]` names of `vmm/Cargo.toml` and of `bench`.
const VM_TEST_BINARIES: &[&str] = &[
    "boot",
    "cli",
    "console",
    "processes",
    "proctest",
    "clone_semantics",
    "directories",
    "namespaces",
    "badptr",
    "smp",
    "sched",
    // `fuzz`, `stress` and `memory_exhaustion` are opt-in (below): natively
    // they take 90, 120 and 220 s, far more under TCG. Not `initramfs`: it
    // fetches Debian packages with apt, which the nested VM (no network, no
    // apt) cannot.
    "guest_harness",
    "guest_malformed_frames",
    "forkbench_cli",
    "forkbench_scale_boot",
    // Debian's kernel booted by forkvm under SVM, `forkbench compare
    // --reference linux-vm` on both guests: about 40 s under TCG.
    "linux_reference",
];

/// Test binaries that run nested only when `FORKVM_HVM_NESTED_ONLY` names
/// them: natively `fuzz`, `stress` and `memory_exhaustion` take one to
/// four minutes, far longer under TCG than a CI run should.
const OPT_IN_BINARIES: &[&str] = &["fuzz", "stress", "memory_exhaustion"];

/// The `vmm` test binaries that never run nested: `initramfs` fetches
/// Debian packages with apt (the nested VM has no network), `docs` runs the
/// documents' commands on the host, and this one.
const NOT_NESTED: &[&str] = &["initramfs", "docs", "hvm_nested"];

/// Every `[[test]]` of `vmm/Cargo.toml` is placed in one of the lists
/// above, so a new VM test cannot be left out of the nested run unseen.
#[test]
fn every_vm_test_binary_is_placed() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("vmm/Cargo.toml");
    let mut in_test = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_test = line == "[[test]]";
        } else if let Some(name) = line.strip_prefix("name = ").filter(|_| in_test) {
            names.push(name.trim_matches('"').to_owned());
        }
    }
    assert!(names.len() > 10, "{names:?}");
    for name in &names {
        let lists = [VM_TEST_BINARIES, OPT_IN_BINARIES, NOT_NESTED];
        let placed = lists.iter().filter(|l| l.contains(&name.as_str())).count();
        assert_eq!(
            placed, 1,
            "`{name}` must be in exactly one list of hvm_nested.rs"
        );
    }
}

/// The whole nested run (Linux boot, every test binary) must end by then.
const NESTED_RUN_LIMIT: Duration = Duration::from_secs(12 * 60);
/// The nested Linux prints a heartbeat every 30 s; this long without any
/// console line means it has stopped, not that a test is slow.
const STALL_LIMIT: Duration = Duration::from_secs(150);
/// How many times a stopped nested Linux is replaced by a fresh one.
const MAX_RESTARTS: usize = 3;
/// One test binary inside the nested VM must end by then (busybox
/// `timeout`), so a hang costs one binary, not the run.
const BINARY_LIMIT_SECS: u32 = 240;
/// `linux_reference` boots a distribution kernel under TCG as well.
const LINUX_REFERENCE_LIMIT_SECS: u32 = 660;
/// An opt-in binary runs minutes natively, so many more under TCG; the
/// whole run gets this much more time for each one selected.
const OPT_IN_LIMIT_SECS: u32 = 40 * 60;

/// How long binary `name` may run inside the nested VM.
fn binary_limit_secs(name: &str) -> u32 {
    if name == "linux_reference" {
        LINUX_REFERENCE_LIMIT_SECS
    } else if OPT_IN_BINARIES.contains(&name) {
        OPT_IN_LIMIT_SECS
    } else {
        BINARY_LIMIT_SECS
    }
}

/// How long the whole nested run may take: [`NESTED_RUN_LIMIT`], plus
/// each selected opt-in binary's own limit.
fn nested_run_limit() -> Duration {
    let opt_in = selected_binaries()
        .iter()
        .filter(|name| OPT_IN_BINARIES.contains(name))
        .count() as u64;
    NESTED_RUN_LIMIT + Duration::from_secs(opt_in * u64::from(OPT_IN_LIMIT_SECS))
}

/// Where the nested VM finds the host's `badptr` output.
const BADPTR_REFERENCE: &str = "/badptr-reference.txt";

/// Console lines the nested VM's init prints around each step.
const MARK: &str = "@@hvm-nested";
/// The nested Linux's heartbeat through its kernel log.
const KERNEL_BEAT: &str = "@@hvm-nested kernel-alive";

#[test]
fn vm_tests_pass_under_ordinary_svm_kvm() {
    require_kvm!();
    let forced = std::env::var_os("FORKVM_HVM_NESTED").is_some_and(|v| v == "1");
    if vmm::platform::resolve(PlatformChoice::Auto) == forkvm_abi::Platform::Hvm && !forced {
        say(
            "hvm_nested: this host's KVM is VMX/SVM, so every other VM test already ran the guest \
             in HVM mode; the nested run is for PVM hosts (FORKVM_HVM_NESTED=1 forces it)",
        );
        return;
    }

    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hvm-nested");
    fs::create_dir_all(&work).unwrap();
    let tools = provision(&work.join("cache"));

    let deps_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .expect("test binaries live in target/PROFILE/deps")
        .to_path_buf();
    let tests: Vec<(&str, PathBuf)> = selected_binaries()
        .into_iter()
        .map(|name| (name, find_test_binary(&deps_dir, name)))
        .collect();

    // The nested Linux itself has stopped now and then (its heartbeat
    // stopped, no soft-lockup report, QEMU still running): a guest cannot
    // stop its host on real hardware, so that is QEMU TCG (a lost timer
    // interrupt, see the tick in `run_nested_vm`), not the test. The binaries not finished yet then run again in a
    // fresh nested VM, up to MAX_RESTARTS times, also when the same binary
    // was running again (in one CI run a fresh nested Linux stopped twice
    // in `clone_semantics`, which passed alone 3 of 3 times); more stops
    // fail the test, and a test that failed before a stall stays failed
    // (check_console sees every attempt's output).
    let mut console = String::new();
    let mut pending: Vec<(&str, PathBuf)> = tests.clone();
    let mut stalled_in: Vec<&str> = Vec::new();
    // The console as it arrives, for watching a long run (`tail -f`).
    let live_path = work.join("console-live.log");
    let mut live = fs::File::create(&live_path).unwrap();
    say(&format!(
        "hvm_nested: the nested console goes to {}",
        live_path.display()
    ));
    loop {
        let initrd = work.join("initrd.cpio");
        build_initramfs(&initrd, &tools, &pending);
        let attempt = run_nested_vm(&tools, &initrd, &mut live);
        console.push_str(&attempt.console);
        if !attempt.stalled {
            break;
        }
        let finished = |name: &str| attempt.console.contains(&format!("{MARK} end {name} rc="));
        let Some(&(running, _)) = pending.iter().find(|(name, _)| !finished(name)) else {
            break;
        };
        if stalled_in.len() == MAX_RESTARTS {
            console.push_str(&format!(
                "\n[hvm_nested: the nested Linux stopped again, during `{running}`, after \
                 {MAX_RESTARTS} restarts (in {stalled_in:?}): not retried]\n"
            ));
            break;
        }
        say(&format!(
            "hvm_nested: the nested Linux stopped answering during `{running}` (no console line \
             for {} s); it and the binaries after it run again in a fresh nested VM",
            STALL_LIMIT.as_secs()
        ));
        console.push_str(&format!(
            "\n[hvm_nested: the nested Linux stopped during `{running}`; it and the rest run \
             again in a fresh nested VM]\n"
        ));
        stalled_in.push(running);
        pending.retain(|(name, _)| !finished(name));
    }

    let log_path = work.join("console.log");
    fs::write(&log_path, &console).unwrap();
    let report = check_console(&console, &tests);
    match report {
        Ok(summary) => say(&format!(
            "hvm_nested: {summary}{} (console log: {})",
            if stalled_in.is_empty() {
                String::new()
            } else {
                format!("; the nested Linux stopped during {stalled_in:?} and the reruns passed")
            },
            log_path.display()
        )),
        Err(failure) => panic!(
            "{failure}\n--- nested VM console ({}) ---\n{console}",
            log_path.display()
        ),
    }
}

/// The binaries to run: all of [`VM_TEST_BINARIES`], or the ones named in
/// `FORKVM_HVM_NESTED_ONLY` (comma-separated; for chasing one failure
/// without the whole run, or to run one of [`OPT_IN_BINARIES`]).
fn selected_binaries() -> Vec<&'static str> {
    let Ok(only) = std::env::var("FORKVM_HVM_NESTED_ONLY") else {
        return VM_TEST_BINARIES.to_vec();
    };
    let wanted: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    for name in &wanted {
        assert!(
            VM_TEST_BINARIES.contains(name) || OPT_IN_BINARIES.contains(name),
            "FORKVM_HVM_NESTED_ONLY names `{name}`, not one of {VM_TEST_BINARIES:?} \
             or {OPT_IN_BINARIES:?}"
        );
    }
    VM_TEST_BINARIES
        .iter()
        .chain(OPT_IN_BINARIES)
        .copied()
        .filter(|name| wanted.contains(name))
        .collect()
}

/// Writes past the test harness's output capture, so CI logs show it.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Paths the provisioning script hands back.
struct Tools {
    qemu: PathBuf,
    busybox: PathBuf,
    kernel: PathBuf,
    modules: PathBuf,
    /// The same kernel as forkvm's guest: the modules its /init loads.
    guest_modules: PathBuf,
    guest_config: PathBuf,
}

fn provision(cache: &Path) -> Tools {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/hvm_nested/provision.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(cache)
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{} failed: the nested HVM test cannot run on this PVM host without QEMU and a Linux \
         kernel (see its messages above)",
        script.display()
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let value = |key: &str| -> PathBuf {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("provision.sh printed no {key}: {text}"))
            .into()
    };
    Tools {
        qemu: std::env::var_os("FORKVM_HVM_NESTED_QEMU")
            .map_or_else(|| value("QEMU"), PathBuf::from),
        busybox: value("BUSYBOX"),
        kernel: value("KERNEL"),
        modules: value("MODULES"),
        guest_modules: value("GUEST_MODULES"),
        guest_config: value("GUEST_CONFIG"),
    }
}

/// The test binary cargo built for `[[test]] name`: `deps/NAME-HASH`. A user
/// program can share the name (`proctest`), and old builds leave stale
/// hashes, so it is the newest candidate that answers libtest's `--list`.
fn find_test_binary(deps_dir: &Path, name: &str) -> PathBuf {
    let mut candidates: Vec<(SystemTime, PathBuf)> = fs::read_dir(deps_dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            file_name
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
            executable.then_some((meta.modified().ok()?, entry.path()))
        })
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .map(|(_, path)| path)
        .find(|path| {
            Command::new(path)
                .args(["--list", "--format", "terse"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|out| {
                    out.status.success()
                        && String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .any(|line| line.ends_with(": test"))
                })
        })
        .unwrap_or_else(|| {
            panic!(
                "no built test binary `{name}` in {}: run `cargo test --workspace` (it builds \
                 every test before running any)",
                deps_dir.display()
            )
        })
}

/// A newc archive: the nested VM's whole root file system.
struct Initramfs {
    out: BufWriter<File>,
    dirs: BTreeSet<PathBuf>,
    inode: u32,
}

impl Initramfs {
    fn create(path: &Path) -> Self {
        Self {
            out: BufWriter::new(File::create(path).unwrap()),
            dirs: BTreeSet::new(),
            inode: 1,
        }
    }

    fn entry(&mut self, path: &Path, mode: u32, data: &[u8]) {
        let name = path.strip_prefix("/").unwrap_or(path).to_str().unwrap();
        self.inode += 1;
        let writer = cpio::NewcBuilder::new(name)
            .ino(self.inode)
            .mode(mode)
            .nlink(1)
            .write(
                &mut self.out,
                data.len().try_into().expect("file under 4 GiB"),
            );
        let mut writer = writer;
        writer.write_all(data).unwrap();
        writer.finish().unwrap();
    }

    /// The directory and its ancestors, each once (the kernel's unpacker
    /// needs a file's directory to exist before the file).
    fn dir(&mut self, path: &Path) {
        if path == Path::new("/") || self.dirs.contains(path) {
            return;
        }
        if let Some(parent) = path.parent() {
            self.dir(parent);
        }
        self.dirs.insert(path.to_path_buf());
        self.entry(path, 0o040_755, &[]);
    }

    fn file(&mut self, path: &Path, mode: u32, data: &[u8]) {
        self.dir(path.parent().unwrap());
        self.entry(path, 0o100_000 | mode, data);
    }

    /// A host file at the same absolute path (symlinks followed).
    fn copy(&mut self, host_path: &Path) {
        let data = fs::read(host_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", host_path.display()));
        let mode = fs::metadata(host_path).unwrap().permissions().mode() & 0o7777;
        self.file(host_path, mode, &data);
    }

    fn finish(self) {
        let out = cpio::newc::trailer(self.out).unwrap();
        out.into_inner().unwrap().sync_all().unwrap();
    }
}

/// The shared libraries `ldd` says `binary` loads (none if static).
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn build_initramfs(path: &Path, tools: &Tools, tests: &[(&str, PathBuf)]) {
    let mut root = Initramfs::create(path);
    for dir in ["/proc", "/sys", "/dev", "/tmp", "/bin", "/modules"] {
        root.dir(Path::new(dir));
    }
    root.file(
        Path::new("/bin/busybox"),
        0o755,
        &fs::read(&tools.busybox).unwrap(),
    );

    let order = fs::read_to_string(tools.modules.join("order")).unwrap();
    root.file(Path::new("/modules/order"), 0o644, order.as_bytes());
    for module in order.split_whitespace() {
        let file = format!("{module}.ko");
        root.file(
            &Path::new("/modules").join(&file),
            0o644,
            &fs::read(tools.modules.join(&file)).unwrap(),
        );
    }

    // Every program at the path the tests name it by, with its libraries.
    let mut programs: Vec<PathBuf> = vec![
        common::FORKVM.into(),
        // bench's tests run the CLI, which cargo puts beside forkvm.
        Path::new(common::FORKVM).with_file_name("forkbench"),
        vmm::BUILT_KERNEL.into(),
    ];
    // `badptr`'s test compares the guest with Linux: with this host's
    // (the nested VM's Debian kernel is older than the behaviour checked).
    if let Some(dir) = option_env!("FORKVM_USER_PROGRAMS_DIR") {
        let out = Command::new(Path::new(dir).join("badptr"))
            .stdin(Stdio::null())
            .output()
            .expect("badptr runs on the host");
        assert!(out.status.success(), "badptr on the host: {out:?}");
        root.file(Path::new(BADPTR_REFERENCE), 0o644, &out.stdout);
    }
    programs.extend(tests.iter().map(|(_, binary)| binary.clone()));
    // forkbench's Linux reference: the kernel where forkbench looks for it,
    // its modules and config, and the programs of its archive.
    if tests.iter().any(|(name, _)| *name == "linux_reference") {
        programs.extend([tools.kernel.clone(), tools.guest_config.clone()]);
        let order = fs::read_to_string(tools.guest_modules.join("order")).unwrap();
        programs.push(tools.guest_modules.join("order"));
        for module in order.split_whitespace() {
            programs.push(tools.guest_modules.join(format!("{module}.ko")));
        }
        let dir = Path::new(vmm::USER_PROGRAMS_DIR.expect("user programs built"));
        programs.extend([dir.join("harnessd"), dir.join("exit_with")]);
    }
    let mut libraries = BTreeSet::new();
    for program in programs.iter().chain([&tools.busybox]) {
        libraries.extend(shared_libraries(program));
    }
    for file in programs.iter().chain(&libraries) {
        root.copy(file);
    }

    root.file(Path::new("/init"), 0o755, init_script(tests).as_bytes());
    root.finish();
}

/// The nested VM's init: mounts, loads KVM, checks that forkvm picks HVM,
/// runs each test binary, powers off. Every step is bracketed by marks.
fn init_script(tests: &[(&str, PathBuf)]) -> String {
    let mut script = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin TMPDIR=/tmp HOME=/tmp {tcg_env}=1 {badptr_env}={BADPTR_REFERENCE}
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
# /tmp stays the initramfs's own (writable): a tmpfs over it would hide
# binaries that live under /tmp on the host (a checkout in /tmp).
# What is left running when a step was killed (busybox `timeout`: rc 124
# or 143): every thread of the processes still alive, with its state, user
# and system ticks and where it sleeps (a guest spinning, a VMM stuck).
threads() {{ for t in /proc/[0-9]*/task/*; do echo "$t $(cat $t/comm 2>/dev/null) $(cut -d' ' -f3,14,15 $t/stat 2>/dev/null) $(cat $t/wchan 2>/dev/null) syscall: $(cat $t/syscall 2>/dev/null)"; done | grep -v ' kworker\| ksoftirq\| migration\| rcu_\| cpuhp\| idle_inject\|rescuer_thread'; for t in /proc/[0-9]*/task/*; do case "$(cat $t/comm 2>/dev/null)" in forkvm|vcpu*) echo "$t stack:"; cat $t/stack 2>/dev/null;; esac; done; }}
step() {{ name=$1; shift; echo "{MARK} begin $name"; "$@"; rc=$?; case $rc in 124|143) threads;; esac; echo "{MARK} end $name rc=$rc"; }}
load() {{ for m in $(cat /modules/order); do insmod /modules/$m.ko || return 1; done; test -c /dev/kvm; }}
# A heartbeat: if the log stops, it tells whether the nested Linux itself
# stopped (no more beats) or only a test hung (beats go on).
(while sleep 30; do echo "{MARK} alive $(cut -d' ' -f1 /proc/uptime)s load $(cut -d' ' -f1-3 /proc/loadavg)"; done) &
# The same through the kernel log (printed by polling the UART, not through
# the tty's transmit interrupt): if only these go on, user space's console
# output is stuck, not the nested Linux.
(while sleep 30; do echo "<2>{KERNEL_BEAT} $(cut -d' ' -f1 /proc/uptime)s" > /dev/kmsg; done) &
step kvm load
step platform timeout 90 {forkvm} -v --timeout 60 -c 'echo nested-guest-ok'
"#,
        forkvm = common::FORKVM,
        tcg_env = common::UNDER_QEMU_TCG_ENV,
        badptr_env = common::BADPTR_REFERENCE_ENV,
    );
    // One test at a time: the nested Linux has one CPU. `--nocapture`: a
    // failing test's message reaches the log even if the nested Linux
    // stops before the binary's summary. Extra libtest
    // arguments (a name filter when chasing one failure) come from
    // FORKVM_HVM_NESTED_TEST_ARGS.
    let extra = std::env::var("FORKVM_HVM_NESTED_TEST_ARGS").unwrap_or_default();
    // The guests' vCPU count goes in with the tests (`FORKVM_TEST_CPUS`,
    // with FORKVM_HVM_NESTED_CPUS=2 for a nested Linux that has two).
    if let Ok(cpus) = std::env::var("FORKVM_TEST_CPUS") {
        let cpus: u32 = cpus
            .parse()
            .unwrap_or_else(|_| panic!("FORKVM_TEST_CPUS must be a number, not {cpus:?}"));
        script.push_str(&format!("export FORKVM_TEST_CPUS={cpus}\n"));
    }
    for (name, binary) in tests {
        let limit = binary_limit_secs(name);
        script.push_str(&format!(
            "step {name} timeout {limit} {} --test-threads=1 --nocapture {extra}\n",
            binary.display()
        ));
    }
    script.push_str(&format!("echo \"{MARK} done\"\npoweroff -f\n"));
    script
}

/// How many CPUs the nested Linux gets: 1 unless FORKVM_HVM_NESTED_CPUS says.
fn nested_cpus() -> String {
    match std::env::var("FORKVM_HVM_NESTED_CPUS") {
        Ok(n) => {
            assert!(
                matches!(n.parse::<u32>(), Ok(1..=8)),
                "FORKVM_HVM_NESTED_CPUS must be 1..=8, not {n:?}"
            );
            n
        }
        Err(_) => String::from("1"),
    }
}

/// What one boot of the nested VM printed, and whether it stopped
/// printing (no heartbeat) before it powered off.
struct Attempt {
    console: String,
    stalled: bool,
}

/// Boots the nested VM and collects its console until it powers off, goes
/// silent for [`STALL_LIMIT`] or exceeds [`nested_run_limit`].
fn run_nested_vm(tools: &Tools, initrd: &Path, live: &mut fs::File) -> Attempt {
    let monitor = initrd.with_file_name("monitor.sock");
    let _ = fs::remove_file(&monitor);
    let mut child = Command::new(&tools.qemu)
        .args(["-machine", "q35", "-accel", "tcg,thread=multi"])
        // TCG's `max` CPU has SVM with nested paging: kvm-amd loads on it.
        // One CPU: with two, the nested Linux has locked up now and then
        // (soft lockups, one CPU stuck running a nested guest while the
        // other waits for it), and one CPU is faster on a 2-core host anyway.
        // FORKVM_HVM_NESTED_CPUS=2 gives it two by hand, so that the `smp`
        // tests' two-vCPU guests run under SVM (they need two host CPUs).
        .args(["-cpu", "max", "-smp", &nested_cpus(), "-m", "4096"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-serial", "stdio"])
        // The monitor answers `info registers` when the nested Linux stops.
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .arg("-kernel")
        .arg(&tools.kernel)
        .arg("-initrd")
        .arg(initrd)
        // A periodic tick (`nohz=off highres=off`: the local APIC timer in
        // periodic mode). QEMU TCG now and then loses the interrupt request
        // of a timer interrupt it has already latched in the APIC (seen
        // with QEMU 7.2 and 10.0, most often while the nested guest makes
        // many exits): `info lapic` showed the timer vector pending in IRR,
        // nothing in service, interrupts enabled, and the nested Linux idle
        // for good, its one-shot timer spent. Any later interrupt re-raises
        // the request (a byte on the serial line revived it), so a periodic
        // timer recovers within a tick where a one-shot one waits forever.
        .args([
            "-append",
            "console=ttyS0 panic=-1 quiet rdinit=/init nohz=off highres=off",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu starts");

    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let run_limit = nested_run_limit();
    let started = Instant::now();
    let mut last_user_line = started;
    let mut console = String::new();
    let mut ending = None;
    loop {
        let left = run_limit.saturating_sub(started.elapsed());
        let quiet_left = STALL_LIMIT.saturating_sub(last_user_line.elapsed());
        match rx.recv_timeout(left.min(quiet_left)) {
            Ok(line) => {
                // The kernel's beat goes out even when user space's console
                // writes are stuck, so it does not count as progress.
                if !line.contains(KERNEL_BEAT) {
                    last_user_line = Instant::now();
                }
                let _ = writeln!(live, "{line}");
                console.push_str(&line);
                console.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                ending = Some(if left <= quiet_left {
                    "KILLED after the time limit"
                } else {
                    "KILLED: no console line (heartbeat) for the stall limit"
                });
                break;
            }
        }
    }
    if ending.is_some() {
        if ending.is_some_and(|why| why.contains("heartbeat")) {
            console.push_str(&cpu_state(&monitor));
        }
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let _ = reader.join();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    console.push_str(&format!(
        "\n[qemu: {status}, {:.0} s{}]\n{stderr}",
        started.elapsed().as_secs_f64(),
        ending.map_or(String::new(), |why| format!(", {why}"))
    ));
    Attempt {
        console,
        stalled: ending.is_some_and(|why| why.contains("heartbeat")),
    }
}

/// What the stopped nested VM's CPU is doing, twice a second apart (is it
/// looping in one place, and in the nested guest or in Linux?), and its
/// local APIC (a vector pending in IRR but never taken?), from QEMU's
/// monitor.
fn cpu_state(monitor: &Path) -> String {
    let ask = || -> std::io::Result<String> {
        let mut socket = std::os::unix::net::UnixStream::connect(monitor)?;
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        socket.write_all(b"info registers\ninfo lapic\ninfo pic\n")?;
        // Everything until the monitor has been quiet for a second.
        let mut answer = Vec::new();
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = socket.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let mut text = String::from("\n[qemu monitor: the stopped CPU]\n");
    for _ in 0..2 {
        match ask() {
            Ok(answer) => text.push_str(&answer),
            Err(e) => text.push_str(&format!("(monitor: {e})\n")),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    text
}

/// Checks every step's mark; a one-line summary, or what failed.
fn check_console(console: &str, tests: &[(&str, PathBuf)]) -> Result<String, String> {
    let step_rc = |name: &str| -> Option<i32> {
        let prefix = format!("{MARK} end {name} rc=");
        console
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix)?.parse().ok())
    };
    match step_rc("kvm") {
        Some(0) => {}
        other => {
            return Err(format!(
                "KVM did not come up in the nested VM (rc {other:?})"
            ))
        }
    }
    if step_rc("platform") != Some(0) || !console.contains("nested-guest-ok") {
        return Err("forkvm did not boot the guest in the nested VM".into());
    }
    if !console.contains("forkvm: info: platform hvm") {
        return Err("forkvm did not auto-detect HVM under SVM KVM".into());
    }
    let lockup = if console.contains("soft lockup") {
        " (the nested Linux reported soft lockups: QEMU TCG's SVM emulation, see the log)"
    } else {
        ""
    };
    // A test that failed before the nested Linux stalled stays failed,
    // whatever its rerun does. (A heartbeat line can split libtest's
    // `test NAME ... FAILED`, leaving `FAILED` alone on its line.)
    let failed_tests: Vec<&str> = console
        .lines()
        .map(str::trim_end)
        .filter(|line| line.ends_with("... FAILED") || *line == "FAILED")
        .collect();
    if !failed_tests.is_empty() {
        return Err(format!(
            "VM tests failed under SVM KVM: {}",
            failed_tests.join("; ")
        ));
    }
    let failed: Vec<String> = tests
        .iter()
        .filter_map(|(name, _)| match step_rc(name) {
            Some(0) => None,
            Some(124 | 143) => Some(format!(
                "{name} (killed after {} s)",
                binary_limit_secs(name)
            )),
            Some(rc) => Some(format!("{name} (exit {rc})")),
            None => Some(format!("{name} (did not finish)")),
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "VM tests failed under SVM KVM: {}{lockup}",
            failed.join(", ")
        ));
    }
    let passed: u32 = console
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("test result: ok. ")?;
            rest.split_whitespace().next()?.parse::<u32>().ok()
        })
        .sum();
    Ok(format!(
        "{} VM test binaries, {passed} tests, passed with the guest in HVM mode under SVM KVM \
         (nested in QEMU TCG)",
        tests.len()
    ))
}
