//! `forkbench scale` and `forkbench boot` on the command line: every point
//! measured on both targets with its efficiency computed from the counts,
//! the report checked by its checker, CSV and SVG written; whole boots as
//! report entries. No timing is asserted.

use std::process::Command;

fn forkbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("forkbench runs")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("forkbench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn scale_usage_errors_exit_2() {
    let out = forkbench(&["scale", "--op", "clone_einval", "--target", "host"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fork, vfork"));
    let out = forkbench(&["scale", "--workers-max", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn scale_measures_every_k_on_both_targets() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("scale_measures_every_k_on_both_targets");
        return;
    }
    let dir = temp_dir("scale");
    let (json, csv, svg) = (dir.join("s.json"), dir.join("s.csv"), dir.join("s.svg"));
    let out = forkbench(&[
        "scale",
        "--op",
        "fork",
        "--workers-max",
        "2",
        "--duration-ms",
        "200",
        "--format",
        "json",
        "--output",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let json_text = std::fs::read_to_string(&json).unwrap_or_default();
    let csv_text = std::fs::read_to_string(&csv).unwrap_or_default();
    let svg_text = std::fs::read_to_string(&svg).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    bench::scale::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
    let points = value["points"].as_array().unwrap();
    // fork x {processes, threads} x K = 1, 2 x {guest, host}.
    assert_eq!(points.len(), 8, "{value}");
    let rate = |p: &serde_json::Value| {
        p["counts"]["ops"].as_f64().unwrap() * 1e9 / p["counts"]["elapsed_ns"].as_f64().unwrap()
    };
    for p in points {
        assert!(p["counts"]["ops"].as_u64().unwrap() > 0, "{p}");
        assert!(p["counts"]["min_worker_ops"].as_u64().unwrap() > 0, "{p}");
        let one = points
            .iter()
            .find(|q| q["workers"] == 1 && q["mode"] == p["mode"] && q["target"] == p["target"])
            .unwrap();
        let k = p["workers"].as_f64().unwrap();
        let expected = rate(p) / (k * rate(one));
        let got = p["efficiency"].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected,
            "{p}: {got} vs {expected}"
        );
        assert_eq!(p["vm_exits"].is_null(), p["target"] == "host", "{p}");
    }
    assert_eq!(value["metadata"]["guest_vcpus"], 1);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.records().count(), 8, "{csv_text}");
    let lines = svg_text
        .lines()
        .filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
        .count();
    assert_eq!(lines, 4, "{svg_text}");
}

#[test]
fn boot_reports_every_boot_in_the_dashboard_formats() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("boot_reports_every_boot_in_the_dashboard_formats");
        return;
    }
    let out = forkbench(&["boot", "--iters", "3", "--warmup", "0", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    bench::report::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
    let entries = value["entries"].as_array().unwrap();
    let names: Vec<String> = entries
        .iter()
        .map(|e| format!("{}/{}MiB/{}", e["op"], e["mem_mib"], e["metric"]))
        .collect();
    assert_eq!(
        names,
        [
            "\"boot\"/256MiB/\"to_poweroff\"",
            "\"boot\"/256MiB/\"total\""
        ]
    );
    for e in entries {
        assert_eq!(e["ns"]["samples"], 3, "{e}");
    }
    let out = forkbench(&["boot", "--iters", "2", "--warmup", "0", "--format", "bmf"]);
    assert!(out.status.success());
    let bmf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["boot/256MiB/to_poweroff/guest", "boot/256MiB/total/guest"] {
        assert!(
            bmf[name]["latency"]["value"].as_f64().unwrap() > 0.0,
            "{bmf}"
        );
    }
    let out = forkbench(&[
        "boot", "--iters", "2", "--warmup", "0", "--format", "github",
    ]);
    assert!(out.status.success());
    let github: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(github
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "boot/256MiB/to_poweroff/guest" && i["unit"] == "ns"));
}

/// After `RunScale`s of every operation and mode, every worker (and every
/// child of theirs) is gone: the guest's task and thread counts are back
/// where they were.
#[test]
fn scale_workers_leave_no_task_behind() {
    use bench::guest_harness::{GuestHarness, HarnessOptions};
    use forkvm_protocol::ScaleMode;
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("scale_workers_leave_no_task_behind");
        return;
    }
    let mut guest = GuestHarness::start(HarnessOptions::default()).unwrap();
    let before = guest.stats().unwrap();
    for op in bench::scale::OPS {
        for mode in ScaleMode::ALL {
            let counts = guest.run_scale(op, mode, 3, 50, 1).unwrap();
            assert!(counts.min_worker_ops > 0, "{op:?} {mode:?}: {counts:?}");
        }
    }
    let after = guest.stats().unwrap();
    assert_eq!(
        (after.tasks, after.nr_threads, after.user_tasks.clone()),
        (before.tasks, before.nr_threads, before.user_tasks.clone()),
        "{before:?} -> {after:?}"
    );
    guest.shutdown().unwrap();
}
