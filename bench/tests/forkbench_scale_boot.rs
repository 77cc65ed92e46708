//! `forkbench scale` and `forkbench boot` on the command line: every point
//! measured on both targets with its efficiency computed from the counts,
//! the report checked by its checker, CSV and SVG written; whole boots as
//! report entries. No timing is asserted.

mod common;
mod schemas;

use common::{assert_success, forkbench, TempDir};
use schemas::{assert_valid, Dashboard};

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
    let dir = TempDir::new("scale");
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
        &dir.arg("s.json"),
        "--csv",
        &dir.arg("s.csv"),
        "--svg",
        &dir.arg("s.svg"),
    ]);
    let (json_text, csv_text, svg_text) =
        (dir.read("s.json"), dir.read("s.csv"), dir.read("s.svg"));
    assert_success(&out);
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
    assert_success(&out);
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
    assert_success(&out);
    let bmf = assert_valid(Dashboard::Bencher, &out.stdout);
    for name in ["boot/256MiB/to_poweroff/guest", "boot/256MiB/total/guest"] {
        assert!(
            bmf[name]["latency"]["value"].as_f64().unwrap() > 0.0,
            "{bmf}"
        );
    }
    let out = forkbench(&[
        "boot", "--iters", "2", "--warmup", "0", "--format", "github",
    ]);
    assert_success(&out);
    let github = assert_valid(Dashboard::GithubAction, &out.stdout);
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
            // 500 ms: every worker must get a turn in it even on a loaded
            // host (50 ms starved one of three clone_vm workers there).
            let counts = guest.run_scale(op, mode, 3, 500, 1).unwrap();
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
