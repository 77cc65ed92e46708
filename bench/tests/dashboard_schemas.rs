//! forkbench's dashboard formats against what the dashboards accept: every
//! subcommand's `--format bmf` and `--format github` output validated
//! against the JSON Schemas of Bencher's `json` adapter and
//! github-action-benchmark's custom tools (`tests/schemas/`), and the
//! schemas themselves shown to refuse broken documents, so a pass means
//! something. `forkbench_cli` and `forkbench_scale_boot` validate their
//! `run` and `boot` output the same way.

mod common;
mod schemas;

use common::{assert_success, forkbench, TempDir};
use schemas::{assert_valid, validate, Dashboard};
use serde_json::json;

/// Runs `forkbench ARGS --format F --output FILE` for both dashboard
/// formats (the files a dashboard step reads) and validates each file;
/// returns the BMF document and the github one.
fn both_formats(args: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let dir = TempDir::new(&format!("dashboard-{}", args[0]));
    let run = |format: &str| {
        let file = format!("{format}.json");
        let path = dir.arg(&file);
        let mut all = args.to_vec();
        all.extend_from_slice(&["--format", format, "--output", &path]);
        let out = forkbench(&all);
        assert_success(&out);
        dir.read(&file)
    };
    (
        assert_valid(Dashboard::Bencher, run("bmf").as_bytes()),
        assert_valid(Dashboard::GithubAction, run("github").as_bytes()),
    )
}

/// `document` with `change` applied must be refused.
#[track_caller]
fn refused(
    dashboard: Dashboard,
    document: &serde_json::Value,
    change: impl FnOnce(&mut serde_json::Value),
) {
    let mut broken = document.clone();
    change(&mut broken);
    assert_ne!(&broken, document, "the change changed nothing");
    assert!(
        validate(dashboard, &broken).is_err(),
        "{dashboard:?} accepted a broken document: {broken}"
    );
}

#[test]
fn the_bencher_schema_refuses_what_bencher_refuses() {
    let good = json!({
        "fork/create/host": {
            "latency": { "value": 61000.0, "lower_value": 60000, "upper_value": 62000.5 },
            "latency_p99": { "value": 90000.0, "lower_value": null, "note": "ignored" }
        },
        "b": { "m": { "value": 1 } },
        "empty": {}
    });
    validate(Dashboard::Bencher, &good).unwrap();
    validate(Dashboard::Bencher, &json!({})).unwrap();
    fn latency(d: &mut serde_json::Value) -> &mut serde_json::Value {
        &mut d["fork/create/host"]["latency"]
    }
    refused(Dashboard::Bencher, &good, |d| *d = json!([d.clone()]));
    refused(Dashboard::Bencher, &good, |d| {
        latency(d)["value"] = json!("61000")
    });
    // A NaN or infinite median serialises as null.
    refused(Dashboard::Bencher, &good, |d| {
        latency(d)["value"] = json!(null)
    });
    refused(Dashboard::Bencher, &good, |d| {
        latency(d).as_object_mut().unwrap().remove("value");
    });
    refused(Dashboard::Bencher, &good, |d| {
        latency(d)["lower_value"] = json!("60000")
    });
    refused(Dashboard::Bencher, &good, |d| {
        latency(d)["upper_value"] = json!([62000])
    });
    refused(Dashboard::Bencher, &good, |d| *latency(d) = json!(61000));
    refused(Dashboard::Bencher, &good, |d| {
        d["fork/create/host"] = json!([])
    });
    refused(Dashboard::Bencher, &good, |d| d[""] = json!({}));
    refused(Dashboard::Bencher, &good, |d| {
        d["x".repeat(1025)] = json!({})
    });
    validate(Dashboard::Bencher, &json!({ "x".repeat(1024): {} })).unwrap();
    // Measure names: 1 to 64 bytes, no white space around them.
    for bad in ["", " latency", "latency ", "\tlatency", &"m".repeat(65)] {
        let mut broken = good.clone();
        broken["b"][bad] = json!({ "value": 1 });
        assert!(validate(Dashboard::Bencher, &broken).is_err(), "{bad:?}");
    }
    for fine in ["l", "kvm exits", &"m".repeat(64)] {
        let mut ok = good.clone();
        ok["b"][fine] = json!({ "value": 1 });
        validate(Dashboard::Bencher, &ok).unwrap_or_else(|e| panic!("{fine:?}: {e}"));
    }
}

#[test]
fn the_github_action_schema_refuses_what_the_action_refuses() {
    let good = json!([
        { "name": "fork/create/host", "unit": "ns", "value": 61000, "range": "60000..62000",
          "extra": "median of 20 iterations", "ignored": true },
        { "name": "fork/create/host/p99", "unit": "ns", "value": 90000.5 }
    ]);
    validate(Dashboard::GithubAction, &good).unwrap();
    // The action finds no benchmark in an empty array.
    refused(Dashboard::GithubAction, &good, |d| *d = json!([]));
    refused(Dashboard::GithubAction, &good, |d| *d = d[0].clone());
    refused(Dashboard::GithubAction, &good, |d| {
        d[1] = json!(["x", "ns", 1])
    });
    refused(Dashboard::GithubAction, &good, |d| d[1] = json!(null));
    refused(Dashboard::GithubAction, &good, |d| {
        d[0]["value"] = json!(null)
    });
    refused(Dashboard::GithubAction, &good, |d| {
        d[0].as_object_mut().unwrap().remove("value");
    });
    // Stricter than the action, which would coerce these.
    refused(Dashboard::GithubAction, &good, |d| {
        d[0]["value"] = json!("61000")
    });
    refused(Dashboard::GithubAction, &good, |d| {
        d[0].as_object_mut().unwrap().remove("name");
    });
    refused(Dashboard::GithubAction, &good, |d| {
        d[1].as_object_mut().unwrap().remove("unit");
    });
    refused(Dashboard::GithubAction, &good, |d| {
        d[0]["range"] = json!(2000)
    });
    refused(Dashboard::GithubAction, &good, |d| {
        d[0]["extra"] = json!(["a"])
    });
}

/// The BMF and github examples of docs/BENCHMARKING.md's "Output formats"
/// are valid input too.
#[test]
fn the_documented_examples_are_valid() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKING.md"),
    )
    .unwrap();
    let example = |heading: &str| -> serde_json::Value {
        let after = &doc[doc.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
        let start = after.find("```json\n").expect("a json block") + "```json\n".len();
        let end = after[start..].find("```").unwrap();
        serde_json::from_str(&after[start..start + end])
            .unwrap_or_else(|e| panic!("{heading}'s example is not JSON: {e}"))
    };
    let bmf = example("**`bmf`**");
    validate(Dashboard::Bencher, &bmf).unwrap();
    assert!(!bmf.as_object().unwrap().is_empty());
    validate(Dashboard::GithubAction, &example("**`github`**")).unwrap();
}

/// `run` on the host, every operation that runs there; and the same
/// output broken as a NaN median or a lost field would break it, refused.
#[test]
fn run_output_is_valid_input() {
    let (bmf, github) = both_formats(&[
        "run", "all", "--target", "host", "--iters", "5", "--warmup", "1",
    ]);
    assert!(
        bmf["fork/create/host"]["latency"]["value"].is_number(),
        "{bmf}"
    );
    refused(Dashboard::Bencher, &bmf, |d| {
        d["fork/create/host"]["latency"]["value"] = json!(null);
    });
    refused(Dashboard::GithubAction, &github, |d| {
        d[0].as_object_mut().unwrap().remove("value");
    });
}

/// `compare`: guest and host entries, the guest's with KVM exits.
#[test]
fn compare_output_is_valid_input() {
    if !bench::boot::kvm_available() {
        bench::boot::announce_missing_kvm("compare_output_is_valid_input");
        return;
    }
    let (bmf, github) = both_formats(&["compare", "--iters", "3", "--warmup", "1"]);
    assert!(
        bmf["fork/create/guest"]["latency"]["value"].is_number(),
        "{bmf}"
    );
    assert!(
        bmf["fork/create/host"]["latency"]["value"].is_number(),
        "{bmf}"
    );
    assert!(
        github
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "fork/create_exit_reap/guest"),
        "{github}"
    );
}

/// `sweep` on the host: `fork_mem` per size.
#[test]
fn sweep_output_is_valid_input() {
    let (bmf, _) = both_formats(&[
        "sweep",
        "--mem-list",
        "0,1",
        "--target",
        "host",
        "--iters",
        "3",
        "--warmup",
        "1",
    ]);
    assert!(bmf.as_object().unwrap().len() >= 2, "{bmf}");
}

/// `scale`: throughput and efficiency (customBiggerIsBetter), in the guest
/// too where KVM is.
#[test]
fn scale_output_is_valid_input() {
    let target = if bench::boot::kvm_available() {
        "both"
    } else {
        bench::boot::announce_missing_kvm("scale_output_is_valid_input (guest half)");
        "host"
    };
    let (bmf, github) = both_formats(&[
        "scale",
        "--op",
        "fork",
        "--mode",
        "processes",
        "--workers-max",
        "2",
        "--duration-ms",
        "50",
        "--target",
        target,
    ]);
    assert!(
        bmf.as_object()
            .unwrap()
            .values()
            .any(|m| m["efficiency"]["value"].is_number()),
        "{bmf}"
    );
    assert!(
        github
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["unit"] == "ops/s"),
        "{github}"
    );
}
