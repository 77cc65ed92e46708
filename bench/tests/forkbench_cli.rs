//! The `forkbench` command line: usage errors, the JSON report (checked
//! with `bench::report::check_json`), the harness cost, and the regression
//! gate against a baseline.

use std::process::Command;

fn forkbench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("forkbench runs")
}

/// `forkbench run clone_einval --target host` (the cheapest operation), 20 iterations,
/// with `extra` arguments.
fn run_clone_einval(extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "clone_einval",
        "--target",
        "host",
        "--iters",
        "20",
        "--warmup",
        "2",
    ];
    args.extend_from_slice(extra);
    forkbench(&args)
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["run", "spawn"][..],
        &["run"],
        &["run", "fork", "--iters", "0"],
        &["run", "fork", "--format", "xml"],
        &["run", "fork", "--threshold", "5"],
        &["bogus"],
    ] {
        let out = forkbench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_bad_baseline_is_refused_before_running() {
    let dir = std::env::temp_dir().join(format!("forkbench-bad-{}", std::process::id()));
    std::fs::write(&dir, "not json").unwrap();
    let out = forkbench(&[
        "run",
        "fork",
        "--target",
        "host",
        "--baseline",
        dir.to_str().unwrap(),
    ]);
    std::fs::remove_file(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a forkbench report"), "{stderr}");
    assert!(!stderr.contains("on the host"), "nothing ran: {stderr}");
}

/// A baseline that shares no measured entry with the run would compare
/// nothing and pass: it is refused before running, exit status 2.
#[test]
fn a_baseline_without_matching_entries_is_refused() {
    let dir = std::env::temp_dir().join(format!("forkbench-nomatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("einval.json");
    let out = run_clone_einval(&["--format", "json", "--output", report.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same report, but of another operation.
    let text = std::fs::read_to_string(&report)
        .unwrap()
        .replace("\"op\": \"clone_einval\"", "\"op\": \"vfork\"");
    let baseline = dir.join("vfork.json");
    std::fs::write(&baseline, text).unwrap();
    let out = run_clone_einval(&["--baseline", baseline.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing would be compared"), "{stderr}");
    assert!(stderr.contains("vfork/create/host"), "{stderr}");
    assert!(!stderr.contains("on the host"), "nothing ran: {stderr}");
}

/// An `--output` that cannot be written is an error before anything runs
/// (no guest is booted), exit status 2; so are `sweep`'s `--csv`/`--svg`.
#[test]
fn an_unwritable_output_is_refused_before_running() {
    let missing = std::env::temp_dir()
        .join(format!("forkbench-no-such-dir-{}", std::process::id()))
        .join("report.json");
    let path = missing.to_str().unwrap();
    for args in [
        &["run", "fork", "--iters", "5", "--output", path][..],
        &[
            "compare", "--iters", "5", "--format", "json", "--output", path,
        ],
        &["sweep", "--mem-list", "0", "--iters", "5", "--csv", path],
    ] {
        let out = forkbench(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(path), "{args:?}: {stderr}");
        assert!(!stderr.contains("booting"), "{args:?}: {stderr}");
        assert!(!stderr.contains("on the host"), "{args:?}: {stderr}");
    }
}

/// A request that outlives `--timeout` fails naming the operation, its
/// parameters, the wait and the guest's serial output (touching 64 MiB
/// takes seconds in the guest); the run still reports and exits 1.
#[test]
fn a_timeout_says_what_was_running() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("a_timeout_says_what_was_running");
        return;
    }
    let out = forkbench(&[
        "run",
        "fork_mem",
        "--target",
        "guest",
        "--mem",
        "64",
        "--iters",
        "5",
        "--warmup",
        "0",
        "--timeout",
        "0.5",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let error = value["entries"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(
            "no reply to RunBench (fork_mem: 5 iterations + 0 warm-up, 64 MiB touched) \
             after waiting 0.5 s (limit 0.5 s, fixed); the guest"
        ),
        "{error}"
    );
    assert!(error.contains("serial"), "{error}");
    // A usage error for a limit that is no limit.
    let out = forkbench(&["run", "fork", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_report_then_regression_gate() {
    let dir = std::env::temp_dir().join(format!("forkbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("now.json");
    let out = run_clone_einval(&["--format", "json", "--output", report.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    bench::report::check_json(&value).unwrap();
    assert_eq!(value["schema_version"], 3);
    assert_eq!(value["metadata"]["iterations"], 20);
    // The TSC where it is invariant (then its rate is given), else
    // CLOCK_MONOTONIC: never no host number.
    let meta = &value["metadata"];
    match meta["host_clock"].as_str() {
        Some("tsc") => assert!(meta["host_tsc_khz"].as_u64().unwrap() > 0, "{meta}"),
        Some("clock_monotonic") => assert!(meta["host_tsc_khz"].is_null(), "{meta}"),
        other => panic!("host_clock {other:?}"),
    }
    let entry = &value["entries"][0];
    assert_eq!(entry["op"], "clone_einval");
    assert_eq!(entry["target"], "host");
    let median = entry["ns"]["median"].as_u64().expect("a measured median");
    assert!(median > 0);

    // A baseline 1000x faster than anything real: the gate must fire and
    // name the benchmark.
    let fast = text.replace(&format!("\"median\": {median}"), "\"median\": 1");
    let baseline = dir.join("fast.json");
    std::fs::write(&baseline, fast).unwrap();
    let out = run_clone_einval(&[
        "--baseline",
        baseline.to_str().unwrap(),
        "--threshold",
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("REGRESSION clone_einval/create/host"),
        "{stderr}"
    );

    // The run compared with itself passes at a generous threshold.
    let out = run_clone_einval(&[
        "--baseline",
        report.to_str().unwrap(),
        "--threshold",
        "100000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The gate over the guest's `create` metric: a baseline whose
/// `clone_vm/create/guest` median is 1 ns makes the run fail naming exactly
/// that entry, not the whole cycle's.
#[test]
fn regression_gate_over_the_guest_create_metric() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("regression_gate_over_the_guest_create_metric");
        return;
    }
    let dir = std::env::temp_dir().join(format!("forkbench-create-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("now.json");
    let args = ["run", "clone_vm", "--target", "guest", "--iters", "20"];
    let out = forkbench(
        &[
            &args[..],
            &["--format", "json", "--output", report.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let entries = value["entries"].as_array_mut().unwrap();
    let metrics: Vec<&str> = entries
        .iter()
        .map(|e| e["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["create", "create_exit_reap"]);
    // The create baseline is impossibly fast; create+exit+reap's is
    // impossibly slow, so machine noise cannot make it regress too.
    entries[0]["ns"]["median"] = 1.into();
    entries[1]["ns"]["median"] = 1_000_000_000_000u64.into();
    let baseline = dir.join("fast_create.json");
    std::fs::write(&baseline, value.to_string()).unwrap();
    let out = forkbench(
        &[
            &args[..],
            &[
                "--baseline",
                baseline.to_str().unwrap(),
                "--threshold",
                "10",
            ],
        ]
        .concat(),
    );
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("REGRESSION clone_vm/create/guest"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("clone_vm/create_exit_reap/guest"),
        "{stderr}"
    );
}

#[test]
fn compare_runs_the_guest_and_the_host() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("compare_runs_the_guest_and_the_host");
        return;
    }
    let out = forkbench(&[
        "compare", "--iters", "20", "--warmup", "2", "--format", "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    bench::report::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
    assert_eq!(value["metadata"]["guest_memory_mib"], 256);
    assert!(value["metadata"]["guest_tsc_khz"].as_u64().unwrap() > 0);
    let entries = value["entries"].as_array().unwrap();
    let find = |op: &str, metric: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["op"] == op && e["metric"] == metric && e["target"] == target)
            .unwrap_or_else(|| panic!("no {op}/{metric}/{target} in {value}"))
    };
    // Every operation ran in the guest and produced numbers (failure
    // operations only count when every call failed with the right errno).
    for (op, metric) in [
        ("fork", "create"),
        ("fork", "create_exit_reap"),
        ("vfork", "create"),
        ("vfork", "create_exit_reap"),
        ("clone_thread", "create"),
        ("clone_thread", "create_exit_reap"),
        ("clone_vm", "create"),
        ("clone_vm", "create_exit_reap"),
        ("fork_exec", "create"),
        ("fork_exec", "create_exit_reap"),
        ("fork_mem", "create"),
        ("fork_mem", "create_exit_reap"),
        ("rlimit_eagain", "create"),
        ("max_threads_eagain", "create"),
        ("clone_einval", "create"),
    ] {
        let guest = find(op, metric, "guest");
        assert_eq!(guest["status"], "ok", "{guest}");
        assert!(guest["ns"]["median"].as_u64().unwrap() > 0, "{guest}");
        // Streaming 20 samples per metric is at least a notify and an
        // interrupt: exits KVM counts (none needs the VMM when the
        // interrupt brings used buffers).
        if let Some(kvm) = guest["vm_exits"]["kvm_total"].as_u64() {
            assert!(kvm > 0, "{guest}");
        }
    }
    // One measured RunBench per operation.
    let ops = entries
        .iter()
        .filter(|e| e["target"] == "guest")
        .map(|e| e["op"].as_str().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(ops, 9);
    assert_eq!(value["metadata"]["harness"]["run_bench_requests"], ops);
    assert_eq!(find("fork", "create_exit_reap", "host")["status"], "ok");

    // The table's row for fork has guest, host and ratio for both metrics.
    let out = forkbench(&["run", "fork", "--iters", "10", "--warmup", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("fork "))
        .unwrap_or_else(|| panic!("{text}"));
    // `fork  G unit  H unit  R  G unit  H unit  R`.
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words.len(), 11, "{row}");
    for ratio in [words[5], words[10]] {
        let ratio: f64 = ratio.parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(ratio > 0.0, "{row}");
    }
    for name in ["fork/create/guest", "fork/create_exit_reap/guest"] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    let harness = text
        .lines()
        .find(|l| l.starts_with("harness: Hello round trip "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        harness.contains(" exits") && harness.contains("RunBench ~"),
        "{harness}"
    );
}

/// The harness's own cost in a guest run's report: Hello round trips take
/// time and a few VM exits each, and a RunBench's exits (streaming the
/// samples) are far fewer than its iterations.
#[test]
fn json_report_has_the_harness_cost() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("json_report_has_the_harness_cost");
        return;
    }
    let iters = 3000;
    let out = forkbench(&[
        "run",
        "clone_vm",
        "--target",
        "guest",
        "--iters",
        &iters.to_string(),
        "--warmup",
        "10",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    bench::report::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));

    let harness = &value["metadata"]["harness"];
    assert_eq!(harness["hellos"], 50, "{harness}");
    let round_trip = &harness["hello_round_trip_ns"];
    assert!(round_trip["median"].as_u64().unwrap() > 0, "{harness}");
    // A Hello's request and reply normally reach the VMM not once (the
    // guest driver touches no register for an interrupt that brought used
    // buffers; the same bound as bench/tests/guest_harness.rs's
    // vm_exits_per_request), while KVM counts the system calls.
    let per_hello = harness["exits_per_hello"].as_f64().unwrap();
    assert!((0.0..=0.5).contains(&per_hello), "{harness}");
    if let Some(kvm) = harness["kvm_exits_per_hello"].as_f64() {
        assert!(
            kvm > 0.0 && kvm >= per_hello,
            "KVM counts every exit: {harness}"
        );
    }
    assert_eq!(harness["run_bench_requests"], 1, "{harness}");

    let entries = value["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{value}");
    for entry in entries {
        let exits = &entry["vm_exits"];
        let total = exits["total"].as_u64().unwrap();
        // 2 x 3000 samples of 8 bytes: several 4 KiB transmit chains, whose
        // interrupts bring used buffers and so need no register access:
        // nowhere near one exit per iteration (normally none at all).
        assert!(exits["per_iter"].as_f64().unwrap() < 0.01, "{entry}");
        assert!(
            exits["by_reason"].get("io_out").is_none(),
            "the UART was used: {entry}"
        );
        if let Some(kvm) = exits["kvm_total"].as_u64() {
            assert!(kvm >= total, "{entry}");
        }
        // Both metrics come from the one request.
        assert_eq!(exits, &entries[0]["vm_exits"]);
    }
    let per_1000 = harness["run_bench_exits_per_1000_iters"].as_f64().unwrap();
    let total = entries[0]["vm_exits"]["total"].as_f64().unwrap();
    assert!(
        (per_1000 - total * 1000.0 / f64::from(iters)).abs() < 1e-9,
        "{harness}"
    );
}

/// `forkbench sweep --mem-list 0,1 --iters 10 --target both` with CSV and
/// SVG output: a row and a line per target/metric (and mem).
#[test]
fn sweep_writes_csv_and_svg() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("sweep_writes_csv_and_svg");
        return;
    }
    let dir = std::env::temp_dir().join(format!("forkbench-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sweep.csv");
    let svg = dir.join("sweep.svg");
    let out = forkbench(&[
        "sweep",
        "--mem-list",
        "0,1",
        "--iters",
        "10",
        "--warmup",
        "1",
        "--target",
        "both",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let csv_text = std::fs::read_to_string(&csv).unwrap_or_default();
    let svg_text = std::fs::read_to_string(&svg).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fork_mem/1MiB/create/host"), "{stdout}");

    let mut lines = csv_text.lines();
    assert_eq!(
        lines.next(),
        Some("target,metric,mem_mib,min_ns,median_ns,p90_ns,max_ns")
    );
    let mut keys: Vec<String> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 7, "{line}");
            for n in &fields[3..] {
                assert!(n.parse::<u64>().unwrap() > 0, "{line}");
            }
            fields[..3].join(",")
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "guest,create,0",
            "guest,create,1",
            "guest,create_exit_reap,0",
            "guest,create_exit_reap,1",
            "host,create,0",
            "host,create,1",
            "host,create_exit_reap,0",
            "host,create_exit_reap,1",
        ]
    );

    assert!(svg_text.starts_with("<svg"), "{svg_text}");
    // The series are the 2-pixel polylines (axes and ticks are 1 pixel).
    let series = svg_text
        .lines()
        .filter(|l| {
            (l.contains("<polyline") || l.contains("<path")) && l.contains("stroke-width=\"2\"")
        })
        .count();
    assert_eq!(series, 4, "{svg_text}");
    for name in [
        "guest/create",
        "guest/create_exit_reap",
        "host/create",
        "host/create_exit_reap",
    ] {
        assert!(svg_text.contains(name), "legend {name}: {svg_text}");
    }
}

/// `forkbench probe ARGS`: exit 0 and the standard output.
fn probe(args: &[&str]) -> String {
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    let out = forkbench(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn probe_reports_pid_or_errno_on_both_targets() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("probe_reports_pid_or_errno_on_both_targets");
        return;
    }
    // CLONE_SIGHAND without CLONE_VM.
    let out = probe(&["--flags", "0x800"]);
    assert!(out.contains("guest: err EINVAL 22"), "{out}");
    assert!(out.contains("host: err EINVAL 22"), "{out}");

    // A plain fork with SIGCHLD.
    let out = probe(&["--flags", "0", "--exit-signal", "17"]);
    for target in ["guest", "host"] {
        assert!(out.contains(&format!("{target}: ok pid=")), "{out}");
    }

    // The same as JSON, with clone3.
    let out = probe(&["--flags", "0", "--clone3", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    for target in ["guest", "host"] {
        assert_eq!(json[target]["result"], "ok", "{out}");
        assert!(json[target]["pid"].as_i64().unwrap() > 0, "{out}");
    }
}

#[test]
fn probe_with_nproc_1_as_a_user_gets_eagain_in_the_guest() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("probe_with_nproc_1_as_a_user_gets_eagain_in_the_guest");
        return;
    }
    let out = probe(&[
        "--flags", "0", "--uid", "1000", "--nproc", "1", "--target", "guest",
    ]);
    assert_eq!(out.trim(), "guest: err EAGAIN 11");
}

#[test]
fn probe_on_the_host_only_and_threads_max_is_not_applicable_there() {
    let out = probe(&["--flags", "0x800", "--target", "host"]);
    assert_eq!(out.trim(), "host: err EINVAL 22");
    let out = probe(&["--flags", "0", "--threads-max", "5", "--target", "host"]);
    assert!(out.starts_with("host: N/A ("), "{out}");
    let out = forkbench(&["probe", "--flags", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
}
