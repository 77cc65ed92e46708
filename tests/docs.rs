//! Keeps the documents from rotting: every line of a fenced block opened
//! with ```` ```sh runnable ```` in README.md and docs/*.md runs here and
//! must exit 0, every relative link between the documents resolves (a
//! `#fragment` to a heading of the target, by GitHub's anchor rules), the
//! counts SHELL.md gives of `proctest`'s scenarios and `clonecheck`'s
//! cases hold, and the `Example:` of `forkvm --help` and of `forkbench`'s
//! helps runs.
//!
//! A runnable line runs with `sh -c` in the repository root, with
//! `./target/release/forkvm` replaced by the `forkvm` cargo built for this
//! test and `./target/release/forkbench` by the `forkbench` of the same
//! profile next to it (bench's tests build it: `cargo test --workspace`
//! does, or `cargo build -p bench --bin forkbench` first), every `--iters
//! N` (also inside a quoted guest command) capped at [`MAX_ITERS`] so the
//! whole file runs in about a minute, and `TMPDIR` a scratch directory
//! removed afterwards (so `mktemp -d` leaves nothing behind). `cargo`
//! itself cannot run inside `cargo test` (the build lock): a runnable
//! `cargo run --release -p bench --example NAME ARGS` runs the example
//! binary of the same profile instead (`cargo test --workspace` builds it,
//! or `cargo build -p bench --examples`), and any other runnable line that
//! starts with `cargo` is an error, as is a runnable block that runs
//! nothing.

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most iterations a documented command runs here.
const MAX_ITERS: u64 = 10;

/// How long one documented command may take before the test fails.
const LINE_TIMEOUT: Duration = Duration::from_secs(180);

/// The fence that marks a block as runnable.
const RUNNABLE_FENCE: &str = "```sh runnable";

/// The repository root (the parent of `vmm/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("vmm/ has a parent")
        .to_path_buf()
}

/// README.md and every docs/*.md, in a stable order.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// One command to run, and where it is documented.
struct Runnable {
    at: String,
    line: String,
}

/// The lines of `sh runnable` blocks in `text` (comments and blank lines
/// skipped; `#` comments at the end of a line are left to `sh`).
fn runnable_lines(name: &str, text: &str) -> Vec<Runnable> {
    let mut lines = Vec::new();
    let mut in_block = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if !in_block {
            in_block = trimmed == RUNNABLE_FENCE;
        } else if trimmed.starts_with("```") {
            in_block = false;
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            lines.push(Runnable {
                at: format!("{name}:{}", number + 1),
                line: trimmed.to_owned(),
            });
        }
    }
    assert!(!in_block, "{name}: a runnable block is not closed");
    lines
}

/// `line` with every `--iters N` above [`MAX_ITERS`] lowered to it,
/// wherever it is: `forkvm -c 'bench fork --iters 100; ...'` too.
fn cap_iterations(line: &str) -> String {
    const FLAG: &str = "--iters";
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(FLAG) {
        let (before, after) = rest.split_at(at + FLAG.len());
        out.push_str(before);
        let gap = after.len() - after.trim_start_matches([' ', '=']).len();
        let digits = after[gap..].bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&after[..gap]);
        rest = &after[gap..];
        if gap > 0 {
            if let Ok(n) = after[gap..gap + digits].parse::<u64>() {
                out.push_str(&n.min(MAX_ITERS).to_string());
                rest = &after[gap + digits..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The prefix of a runnable line that runs one of bench's examples.
const EXAMPLE_PREFIX: &str = "cargo run --release -p bench --example ";

/// The shell command a documented line becomes here, or why it cannot
/// run. `forkvm` is the binary cargo built for this test; `forkbench` and
/// the examples are of the same profile.
fn localise(line: &str, forkvm: &Path) -> Result<String, String> {
    let forkbench = forkvm.with_file_name("forkbench");
    let mut line = line.to_owned();
    if let Some(rest) = line.strip_prefix(EXAMPLE_PREFIX) {
        let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let example = forkvm.with_file_name("examples").join(name);
        if !example.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build -p bench --examples` \
                 (`cargo test --workspace` does)",
                example.display()
            ));
        }
        line = format!("{} {args}", example.display());
    } else if line.starts_with("cargo") {
        return Err("cargo cannot run inside cargo test".to_owned());
    }
    Ok(cap_iterations(&line)
        .replace("./target/release/forkvm", &forkvm.display().to_string())
        .replace(
            "./target/release/forkbench",
            &forkbench.display().to_string(),
        ))
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("forkvm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the scratch directory can be made");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `command` with `sh -c` in the repository root, `TMPDIR` set to
/// `tmpdir`; its exit code and output, or a timeout.
fn run_line(command: &str, tmpdir: &Path) -> Result<(i32, String), String> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(repo_root())
        .env("TMPDIR", tmpdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sh does not start: {e}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        if started.elapsed() > LINE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {LINE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code().unwrap_or(-1), text))
}

#[test]
fn runnable_lines_are_found_and_capped() {
    let text = "x\n```sh runnable\n# a comment\nforkbench run fork --iters 5000  # c\n\n```\n```sh\nnot this\n```\n";
    let lines = runnable_lines("T.md", text);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].at, "T.md:4");
    assert_eq!(
        cap_iterations(&lines[0].line),
        "forkbench run fork --iters 10  # c"
    );
    assert_eq!(
        cap_iterations("bench fork --iters 3"),
        "bench fork --iters 3"
    );
    assert_eq!(
        cap_iterations("forkvm -c 'bench fork --iters 100; bench vfork --iters=50'"),
        "forkvm -c 'bench fork --iters 10; bench vfork --iters=10'"
    );
    assert_eq!(
        cap_iterations("a --iters x --iters  200"),
        "a --iters x --iters  10"
    );
    let forkvm = Path::new("/t/forkvm");
    assert_eq!(
        localise(
            "cargo run --release -p bench --example host_linux 1000",
            forkvm
        )
        .unwrap_err()
        .split(' ')
        .next(),
        Some("/t/examples/host_linux")
    );
    assert!(localise("cargo bench", forkvm).is_err());
    assert_eq!(
        localise("./target/release/forkbench run fork --iters 500", forkvm).unwrap(),
        "/t/forkbench run fork --iters 10"
    );
}

#[test]
fn every_runnable_command_in_the_documents_runs() {
    require_kvm!();
    let forkvm = PathBuf::from(common::FORKVM);
    let forkbench = forkvm.with_file_name("forkbench");
    assert!(
        forkbench.exists(),
        "{} is missing: build it with `cargo build -p bench --bin forkbench` \
         (`cargo test --workspace` does)",
        forkbench.display()
    );
    let scratch = Scratch::new("doc-commands");
    let mut runnable = Vec::new();
    for doc in documents() {
        let name = doc.strip_prefix(repo_root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&doc).expect("the document is readable");
        runnable.extend(runnable_lines(&name, &text));
    }
    assert!(
        runnable.len() >= 10,
        "only {} runnable lines found: is the fence still `{RUNNABLE_FENCE}`?",
        runnable.len()
    );
    let mut failures = Vec::new();
    for Runnable { at, line } in &runnable {
        let command = match localise(line, &forkvm) {
            Ok(command) => command,
            Err(why) => {
                failures.push(format!("{at}: `{line}`: {why}"));
                continue;
            }
        };
        match run_line(&command, &scratch.0) {
            Ok((0, _)) => {}
            Ok((code, output)) => {
                failures.push(format!("{at}: `{line}` exited {code}:\n{output}"));
            }
            Err(why) => failures.push(format!("{at}: `{line}`: {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\n(forkbench is {}: if it is older than the guest kernel, rebuild it with \
         `cargo build -p bench --bin forkbench`)",
        failures.join("\n\n"),
        forkbench.display()
    );
}

/// The targets of Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading's text: lower case, every character but
/// letters, digits, spaces, `-` and `_` dropped, spaces as `-`.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors GitHub gives the headings of `text` (outside fenced
/// blocks): a repeated one gets `-1`, `-2`, ... .
fn heading_anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        if in_fence || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug = github_slug(&line[hashes..]);
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            slug
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    anchors
}

#[test]
fn headings_get_githubs_anchors() {
    assert_eq!(github_slug(" The life of a fork"), "the-life-of-a-fork");
    assert_eq!(
        github_slug("VMM <-> guest interface"),
        "vmm---guest-interface"
    );
    assert_eq!(github_slug("`cargo bench`"), "cargo-bench");
    assert_eq!(
        github_slug("SMP: fork_threaded, 2 CPUs"),
        "smp-fork_threaded-2-cpus"
    );
    let anchors = heading_anchors("# A\n## Notes\n```sh\n# not a heading\n```\n### Notes\n#x\n");
    let mut anchors: Vec<String> = anchors.into_iter().collect();
    anchors.sort();
    assert_eq!(anchors, ["a", "notes", "notes-1"]);
}

#[test]
fn relative_links_between_the_documents_resolve() {
    let mut broken = Vec::new();
    let (mut relative, mut fragments) = (0, 0);
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("the document is readable");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            relative += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target}", doc.display()));
                continue;
            }
            if fragment.is_empty() {
                continue;
            }
            fragments += 1;
            let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
            if !heading_anchors(&target_text).contains(fragment) {
                broken.push(format!(
                    "{}: {target}: {} has no heading with the anchor #{fragment}",
                    doc.display(),
                    resolved.display()
                ));
            }
        }
    }
    assert!(
        relative > 0 && fragments > 0,
        "{relative} relative links, {fragments} to a heading: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The number SHELL.md gives before `what` in "more than N WHAT".
fn documented_minimum(what: &str) -> usize {
    let text = std::fs::read_to_string(repo_root().join("docs/SHELL.md")).unwrap();
    let before = &text[..text
        .find(what)
        .unwrap_or_else(|| panic!("SHELL.md does not say `{what}`"))];
    let number = before
        .strip_suffix(' ')
        .and_then(|b| b.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before `{what}` in SHELL.md"));
    assert!(
        before.trim_end().ends_with(&format!("more than {number}")),
        "SHELL.md should say `more than {number} {what}`, a count that does not rot"
    );
    number
}

/// SHELL.md's "more than N" of `clonecheck`'s cases holds (one line each
/// in the host Linux's table, `guest/user/tests/clonecheck.expected`).
#[test]
fn the_documented_clonecheck_count_holds() {
    let expected =
        std::fs::read_to_string(repo_root().join("guest/user/tests/clonecheck.expected")).unwrap();
    let cases = expected.lines().filter(|l| !l.trim().is_empty()).count();
    let documented = documented_minimum("clone/clone3 cases");
    assert!(
        cases > documented,
        "{cases} cases, SHELL.md says more than {documented}"
    );
}

/// SHELL.md's "more than N" of `proctest`'s scenarios holds: `proctest
/// list` in the guest names them, one a line.
#[test]
fn the_documented_proctest_count_holds() {
    require_kvm!();
    let documented = documented_minimum("scenarios of Linux process semantics");
    let out = Command::new(common::FORKVM)
        .args([
            "--timeout",
            common::GUEST_TIMEOUT_SECS,
            "-c",
            "run proctest list",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let scenarios = text
        .lines()
        .filter(|l| !l.is_empty() && !l.contains(' ') && !l.starts_with('['))
        .count();
    assert!(
        scenarios > documented,
        "{scenarios} scenarios, SHELL.md says more than {documented}:\n{text}"
    );
}

/// The command of the `Example: CMD   (what it does)` line of a help text.
fn help_example(help: &str) -> Option<String> {
    let line = help
        .lines()
        .find_map(|line| line.strip_prefix("Example: "))?;
    let command = line.split("   (").next().unwrap_or(line);
    Some(command.trim().to_owned())
}

/// `forkvm --help` and `forkbench --help` and each of its subcommands'
/// show one example, and each example runs (iterations capped, in a
/// scratch directory for the files it writes).
#[test]
fn every_help_example_runs() {
    require_kvm!();
    let forkvm = PathBuf::from(common::FORKVM);
    let forkbench = forkvm.with_file_name("forkbench");
    assert!(forkbench.exists(), "{} is missing", forkbench.display());
    let scratch = Scratch::new("help-examples");
    let helps: [(&Path, &[&str]); 8] = [
        (&forkvm, &["--help"]),
        (&forkbench, &["--help"]),
        (&forkbench, &["run", "--help"]),
        (&forkbench, &["compare", "--help"]),
        (&forkbench, &["sweep", "--help"]),
        (&forkbench, &["scale", "--help"]),
        (&forkbench, &["boot", "--help"]),
        (&forkbench, &["probe", "--help"]),
    ];
    let mut failures = Vec::new();
    for (program, args) in helps {
        let out = Command::new(program).args(args).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let Some(example) = help_example(&help) else {
            failures.push(format!(
                "{} {args:?}: no `Example: ` line",
                program.display()
            ));
            continue;
        };
        let (name, rest) = example.split_once(' ').unwrap_or((&example, ""));
        let binary = if name == "forkvm" {
            &forkvm
        } else {
            &forkbench
        };
        let command = format!(
            "cd '{}' && '{}' {}",
            scratch.0.display(),
            binary.display(),
            cap_iterations(rest)
        );
        match run_line(&command, &scratch.0) {
            Ok((0, _)) => {}
            Ok((code, output)) => failures.push(format!("`{example}` exited {code}:\n{output}")),
            Err(why) => failures.push(format!("`{example}`: {why}")),
        }
    }
    drop(scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
