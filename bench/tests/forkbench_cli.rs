//! The `forkbench` command line: usage errors, the JSON report (checked
//! with `bench::report::check_json`) and every other output format, the
//! harness cost, guest sizing, and the regression gate against a baseline
//! (same machine only) and a history.

mod common;
mod schemas;

use common::{assert_success, forkbench, TempDir};
use schemas::{assert_valid, Dashboard};

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
        &["run", "fork", "--allow-foreign-baseline"],
        &["run", "fork", "--history-keep", "3"],
        &["sweep", "--format", "csv"],
        &["bogus"],
    ] {
        let out = forkbench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_bad_baseline_is_refused_before_running() {
    let dir = TempDir::new("bad");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let out = forkbench(&[
        "run",
        "fork",
        "--target",
        "host",
        "--baseline",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a forkbench report"), "{stderr}");
    assert!(!stderr.contains("on the host"), "nothing ran: {stderr}");
}

/// A baseline that shares no measured entry with the run would compare
/// nothing and pass: it is refused before running, exit status 2.
#[test]
fn a_baseline_without_matching_entries_is_refused() {
    let dir = TempDir::new("nomatch");
    let report = dir.join("einval.json");
    let out = run_clone_einval(&["--format", "json", "--output", report.to_str().unwrap()]);
    assert_success(&out);
    // The same report, but of another operation.
    let text = std::fs::read_to_string(&report)
        .unwrap()
        .replace("\"op\": \"clone_einval\"", "\"op\": \"vfork\"");
    let baseline = dir.join("vfork.json");
    std::fs::write(&baseline, text).unwrap();
    let out = run_clone_einval(&["--baseline", baseline.to_str().unwrap()]);
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
    // Far more work than 0.1 s holds on any host: 2000 forks of a 128 MiB
    // parent (5 forks of 64 MiB once fitted in 0.5 s under SVM, where
    // faults cost no exit).
    let out = forkbench(&[
        "run",
        "fork_mem",
        "--target",
        "guest",
        "--mem",
        "128",
        "--iters",
        "2000",
        "--warmup",
        "0",
        "--timeout",
        "0.1",
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
            "no reply to RunBench (fork_mem: 2000 iterations + 0 warm-up, 128 MiB touched) \
             after waiting 0.1 s (limit 0.1 s, fixed); the guest"
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
    let dir = TempDir::new("gate");
    let report = dir.join("now.json");
    let out = run_clone_einval(&["--format", "json", "--output", report.to_str().unwrap()]);
    assert_success(&out);
    let text = std::fs::read_to_string(&report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    bench::report::check_json(&value).unwrap();
    assert_eq!(value["schema_version"], 6);
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
    let ci = &entry["ns"]["median_ci"];
    assert!(ci["lower"].as_u64().unwrap() <= median, "{entry}");
    assert!(ci["upper"].as_u64().unwrap() >= median, "{entry}");
    assert_eq!(entry["ns"]["samples"], 20);

    // A baseline 1000x faster than anything real, its interval too: the
    // gate must fire and name the benchmark.
    let baseline = dir.join("fast.json");
    std::fs::write(&baseline, with_median(&value, 0, 1).to_string()).unwrap();
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
    assert_success(&out);

    // A v3 baseline (no intervals, no vCPU count) still serves.
    let mut v3 = with_median(&value, 0, 1);
    v3["schema_version"] = 3.into();
    let ns = v3["entries"][0]["ns"].as_object_mut().unwrap();
    for field in ["samples", "mean", "stddev", "p99", "p99_9", "median_ci"] {
        ns.remove(field);
    }
    let meta = v3["metadata"].as_object_mut().unwrap();
    meta.remove("guest_vcpus");
    meta.remove("trap_cost");
    std::fs::write(&baseline, v3.to_string()).unwrap();
    let out = run_clone_einval(&["--baseline", baseline.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("REGRESSION clone_einval/create/host"),
        "{stderr}"
    );
}

/// `report` with entry `index`'s median and its interval set to `ns`.
fn with_median(report: &serde_json::Value, index: usize, ns: u64) -> serde_json::Value {
    let mut report = report.clone();
    let stats = &mut report["entries"][index]["ns"];
    stats["median"] = ns.into();
    stats["median_ci"]["lower"] = ns.into();
    stats["median_ci"]["upper"] = ns.into();
    report
}

/// A host JSON report of `run_clone_einval`.
fn host_report(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("report.json");
    let out = run_clone_einval(&["--format", "json", "--output", path.to_str().unwrap()]);
    assert_success(&out);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A baseline from another machine fingerprint is refused before running,
/// exit status 2, naming what differs; `--allow-foreign-baseline` compares
/// anyway, with a warning.
#[test]
fn a_baseline_from_another_machine_is_refused() {
    let dir = TempDir::new("foreign");
    let mut value = host_report(&dir);
    value["metadata"]["cpu_model"] = "Imaginary CPU 9000".into();
    value["metadata"]["host_kernel"] = "1.0.0".into();
    let baseline = dir.join("foreign.json");
    std::fs::write(&baseline, value.to_string()).unwrap();
    let out = run_clone_einval(&["--baseline", baseline.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("from another machine"), "{stderr}");
    assert!(stderr.contains("vs Imaginary CPU 9000"), "{stderr}");
    assert!(stderr.contains("host kernel"), "{stderr}");
    assert!(stderr.contains("--allow-foreign-baseline"), "{stderr}");
    assert!(!stderr.contains("on the host"), "nothing ran: {stderr}");
    let out = run_clone_einval(&[
        "--baseline",
        baseline.to_str().unwrap(),
        "--allow-foreign-baseline",
        "--threshold",
        "100000",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
}

/// `--history DIR`: too few runs are only recorded; five runs whose
/// medians are all 1-2 ns make a real run a regression (z-score); the
/// directory keeps `--history-keep` runs; a foreign run in it is refused.
#[test]
fn history_mode_tests_against_past_runs_and_keeps_the_last() {
    let dir = TempDir::new("history");
    let history = dir.join("runs");
    let value = host_report(&dir);
    let hist = history.to_str().unwrap();
    // An empty history: recorded only.
    let out = run_clone_einval(&["--history", hist]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("recorded only"), "{stderr}");
    assert!(stderr.contains("recorded "), "{stderr}");
    std::fs::remove_dir_all(&history).unwrap();
    std::fs::create_dir_all(&history).unwrap();
    for (i, ns) in [1, 2, 1, 2, 1].into_iter().enumerate() {
        let path = history.join(format!("forkbench-0-{i:06}.json"));
        std::fs::write(path, with_median(&value, 0, ns).to_string()).unwrap();
    }
    let out = run_clone_einval(&["--history", hist, "--format", "markdown"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("REGRESSION clone_einval/create/host"),
        "{stderr}"
    );
    assert!(stderr.contains("z = "), "{stderr}");
    assert!(stdout.contains("#### Against the last 5 runs"), "{stdout}");
    assert!(stdout.contains("| clone_einval/create/host |"), "{stdout}");
    let count = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!(count(&history), 6);
    // Keeping 3: the oldest go.
    let out = run_clone_einval(&[
        "--history",
        hist,
        "--history-keep",
        "3",
        "--threshold",
        "1000000000",
    ]);
    assert_success(&out);
    assert_eq!(count(&history), 3);
    // A run from another machine in the history.
    let mut foreign = value.clone();
    foreign["metadata"]["platform_mode"] = "elsewhere".into();
    std::fs::write(history.join("zz.json"), foreign.to_string()).unwrap();
    let out = run_clone_einval(&["--history", hist]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("zz.json is from another machine"),
        "{stderr}"
    );
}

/// Every output format of a host run, each parsed and checked: BMF with
/// the interval's bounds and p99, github-action-benchmark items with
/// ranges and p99 items (both also validated against what the tools
/// accept, `tests/schemas/`), Markdown tables, the text table, and the
/// samples CSV.
#[test]
fn every_output_format_is_valid() {
    let dir = TempDir::new("formats");
    let samples = dir.join("samples.csv");
    let out = run_clone_einval(&["--format", "bmf", "--samples", samples.to_str().unwrap()]);
    assert_success(&out);
    let bmf = assert_valid(Dashboard::Bencher, &out.stdout);
    let latency = &bmf["clone_einval/create/host"]["latency"];
    let (lower, value, upper) = (
        latency["lower_value"].as_f64().unwrap(),
        latency["value"].as_f64().unwrap(),
        latency["upper_value"].as_f64().unwrap(),
    );
    assert!(0.0 < lower && lower <= value && value <= upper, "{bmf}");
    let p99 = bmf["clone_einval/create/host"]["latency_p99"]["value"]
        .as_f64()
        .unwrap();
    assert!(p99 >= value, "{bmf}");
    // The samples: a header and one row per iteration, in order.
    let mut reader = csv::Reader::from_path(&samples).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        bench::report::SAMPLES_CSV_HEADER.as_slice()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 20);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row[0], "clone_einval/create/host");
        assert_eq!(row[5].parse::<usize>().unwrap(), i);
        assert!(row[6].parse::<u64>().unwrap() > 0);
    }

    let out = run_clone_einval(&["--format", "github"]);
    assert_success(&out);
    let github = assert_valid(Dashboard::GithubAction, &out.stdout);
    let items = github.as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["name"], "clone_einval/create/host");
    let range = items[0]["range"].as_str().unwrap();
    let (lo, hi) = range.split_once("..").unwrap();
    assert!(
        lo.parse::<u64>().unwrap() <= hi.parse::<u64>().unwrap(),
        "{range}"
    );
    assert_eq!(items[1]["name"], "clone_einval/create/host/p99");
    assert!(items[1]["value"].as_u64().unwrap() > 0);

    let out = run_clone_einval(&["--format", "markdown"]);
    assert_success(&out);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("### forkbench "), "{md}");
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| benchmark"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(table.len(), 3, "{md}");
    assert!(table[1].starts_with("|--"), "{md}");
    assert!(table[2].starts_with("| clone_einval/create/host "), "{md}");
    assert_eq!(table[0].matches('|').count(), table[2].matches('|').count());

    let out = run_clone_einval(&[]);
    assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with("clone_einval/create/host "))
        .unwrap_or_else(|| panic!("{text}"));
    // name, median, CI, p90, p99, p99.9, mean, stddev, min, max.
    assert!(row.contains(".."), "{row}");
    assert!(text.contains("p99.9"), "{text}");
}

/// A point that cannot fit in the guest is a setup error before anything
/// boots: `--guest-memory` too small for `--mem`, and a sweep's largest
/// point.
#[test]
fn a_point_that_cannot_fit_is_refused_before_running() {
    for args in [
        &[
            "run",
            "fork_mem",
            "--mem",
            "1024",
            "--guest-memory",
            "256",
            "--target",
            "guest",
        ][..],
        &[
            "sweep",
            "--mem-list",
            "0,512",
            "--guest-memory",
            "512",
            "--target",
            "guest",
        ],
    ] {
        let out = forkbench(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("needs a guest of at least"), "{stderr}");
        assert!(stderr.contains("MiB touched"), "{stderr}");
        assert!(!stderr.contains("booting"), "{stderr}");
    }
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
    let dir = TempDir::new("create");
    let report = dir.join("now.json");
    let args = ["run", "clone_vm", "--target", "guest", "--iters", "20"];
    let out = forkbench(
        &[
            &args[..],
            &["--format", "json", "--output", report.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_success(&out);
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let entries = value["entries"].as_array().unwrap();
    let metrics: Vec<&str> = entries
        .iter()
        .map(|e| e["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["create", "create_exit_reap"]);
    // The create baseline is impossibly fast; create+exit+reap's is
    // impossibly slow, so machine noise cannot make it regress too.
    let value = with_median(&with_median(&value, 0, 1), 1, 1_000_000_000_000);
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
        ("yield_pingpong", "round_trip"),
        ("pipe_pingpong", "round_trip"),
        ("fork_threaded", "create"),
        ("fork_threaded", "create_exit_reap"),
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
    assert_eq!(ops, 12);
    assert_eq!(value["metadata"]["harness"]["run_bench_requests"], ops);
    // Trap accounting: on PVM with KVM's statistics, a calibrated price
    // per exit and every guest entry's estimate (the checker ties them).
    let meta = &value["metadata"];
    let pvm = meta["platform_mode"]
        .as_str()
        .is_some_and(|p| p.starts_with("pvm"));
    if pvm && !meta["harness"]["kvm_exits_per_hello"].is_null() {
        let trap = &meta["trap_cost"];
        assert_eq!(trap["probe"], "clone_einval", "{meta}");
        assert!(trap["exits_per_call"].as_f64().unwrap() >= 0.5, "{meta}");
        assert!(trap["ns_per_exit"].as_f64().unwrap() > 0.0, "{meta}");
        let fork = find("fork", "create_exit_reap", "guest");
        assert!(
            fork["vm_exits"]["trap_ns_per_iter"].as_f64().unwrap() > 0.0,
            "{fork}"
        );
    } else if !pvm {
        assert!(meta["trap_cost"].is_null(), "no traps to price: {meta}");
    }
    for op in ["fork", "fork_threaded"] {
        assert_eq!(find(op, "create_exit_reap", "host")["status"], "ok");
    }
    for op in ["yield_pingpong", "pipe_pingpong"] {
        assert_eq!(find(op, "round_trip", "host")["status"], "ok");
    }

    // The table's row for fork has guest, host and ratio for both metrics.
    let out = forkbench(&["run", "fork", "--iters", "10", "--warmup", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
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
    let dir = TempDir::new("sweep");
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
        &dir.arg("sweep.csv"),
        "--svg",
        &dir.arg("sweep.svg"),
        "--format",
        "json",
        "--output",
        &dir.arg("sweep.json"),
    ]);
    let (csv_text, svg_text, json_text) = (
        dir.read("sweep.csv"),
        dir.read("sweep.svg"),
        dir.read("sweep.json"),
    );
    assert_success(&out);
    // The sweep's report, for dashboards.
    let value: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    bench::report::check_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
    let names: Vec<String> = value["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}/{}MiB/{}", e["op"], e["mem_mib"], e["target"]))
        .collect();
    assert!(
        names.contains(&"\"fork_mem\"/1MiB/\"host\"".to_string()),
        "{names:?}"
    );

    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        bench::sweep::CSV_HEADER.as_slice()
    );
    let mut keys: Vec<String> = reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            // min, median, p90, max, mean, stddev, p99, p99.9, the interval.
            for n in row.iter().skip(3).take(10) {
                assert!(n.parse::<f64>().unwrap() >= 0.0, "{row:?}");
            }
            // KVM exits only for the guest's rows (where KVM counts them).
            if &row[0] == "host" {
                assert_eq!(&row[13], "", "{row:?}");
            }
            row.iter().take(3).collect::<Vec<_>>().join(",")
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
