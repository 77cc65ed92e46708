//! Linux process semantics in the guest: the `proctest` program (its
//! scenarios pass on the host's Linux too, see guest/user/tests) run inside
//! a real guest, every scenario, with the kernel surviving all of them.

mod common;

use common::{code, run_script_with_timeout, stderr, stdout};

#[test]
fn every_proctest_scenario_passes_in_the_guest() {
    require_kvm!();
    let list = run_script_with_timeout("run proctest list", 60);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    let scenarios: Vec<String> = stdout(&list)
        .lines()
        .filter(|l| !l.starts_with('['))
        .map(str::to_owned)
        .collect();
    assert!(scenarios.len() >= 30, "{scenarios:?}");

    // Then the whole suite, and the shell afterwards to show the kernel lives on.
    let out = run_script_with_timeout("run proctest all; echo kernel alive; ps", 300);
    let text = stdout(&out);
    let failures = common::proctest_failures(&text);
    assert!(
        failures.is_empty(),
        "failing scenarios:\n{}\n\nfull output:\n{text}",
        failures.join("\n")
    );
    let deviations = common::emulator_deviations();
    for scenario in &scenarios {
        let excused = deviations
            .iter()
            .any(|d| d.starts_with(&format!("FAIL {scenario}:")));
        assert!(
            excused || text.contains(&format!("ok {scenario}\n")),
            "no result for {scenario}:\n{text}"
        );
    }
    // proctest exits 1 when any scenario failed, excused ones included.
    let excused_failures = deviations.iter().any(|d| text.contains(d));
    let status = if excused_failures { 1 } else { 0 };
    assert!(
        text.contains(&format!("exited with status {status}\nkernel alive\n")),
        "{text}\n{}",
        stderr(&out)
    );
    assert_eq!(code(&out), 0);
    let ps = text.split("  PID").nth(1).expect("ps output");
    assert_eq!(
        ps.lines().count(),
        3,
        "init and the shell, no process left behind: {ps}"
    );
}
