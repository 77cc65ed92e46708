//! `forkbench run OP --initrd FILE`: `exec_static` (fork + exec of the
//! archive's static `/bin/true`) and `shell` (fork + exec of its
//! `/bin/sh -c exit`, lmbench `lat_proc shell`) in the guest booted with
//! Debian's busybox-static archive and, the same binary, on the host;
//! the other operations still run in a guest booted with an archive.

#[path = "../../tests/common/busybox.rs"]
mod busybox;

use std::process::Command;

const ITERS: u64 = 5;

fn forkbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("forkbench runs")
}

#[test]
fn exec_operations_need_an_archive() {
    for op in ["exec_static", "shell"] {
        let out = forkbench(&["run", op, "--target", "host", "--iters", "2"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{op}: {stderr}");
        assert!(stderr.contains("--initrd"), "{op}: {stderr}");
    }
}

#[test]
fn exec_static_and_shell_run_in_the_guest_and_on_the_host() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm(module_path!());
        return;
    }
    let archive = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("forkbench-busybox-{}.cpio", std::process::id()));
    std::fs::write(&archive, busybox::busybox_archive(&busybox::busybox())).unwrap();
    // `fork_exec` too: its built-in `exit_with` must still be found when
    // the guest looks names up as Linux does (booted with an archive).
    for op in ["exec_static", "shell", "fork_exec"] {
        let iters = ITERS.to_string();
        let out = forkbench(&[
            "run",
            op,
            "--initrd",
            archive.to_str().unwrap(),
            "--iters",
            &iters,
            "--warmup",
            "1",
            "--format",
            "json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{op}: {stderr}");
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        bench::report::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
        for target in ["guest", "host"] {
            for metric in ["create", "create_exit_reap"] {
                let entry = value["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["op"] == op && e["metric"] == metric && e["target"] == target)
                    .unwrap_or_else(|| panic!("no {op}/{metric}/{target} in {value}"));
                assert_eq!(entry["status"], "ok", "{entry}");
                assert_eq!(entry["iters"], ITERS, "{entry}");
                assert!(entry["ns"]["median"].as_u64().unwrap() > 0, "{entry}");
            }
        }
    }
    std::fs::remove_file(&archive).ok();
}
