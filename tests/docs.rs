//! Keeps the documents from rotting: every line of a fenced block opened
//! with ```` ```sh runnable ```` in README.md and docs/*.md runs here and
//! must exit 0, every relative link between the documents resolves, and
//! the `Example:` of `forkvm --help` and of `forkbench`'s helps runs.
//!
//! A runnable line runs with `sh -c` in the repository root, with
//! `./target/release/forkvm` replaced by the `forkvm` cargo built for this
//! test and `./target/release/forkbench` by the `forkbench` of the same
//! profile next to it (bench's tests build it: `cargo test --workspace`
//! does, or `cargo build -p bench --bin forkbench` first), and every
//! `--iters N` capped at [`MAX_ITERS`] so the whole file runs in about a
//! minute. `cargo` itself cannot run inside `cargo test` (the build lock),
//! so a runnable line that starts with `cargo` is an error, as is a
//! runnable block that runs nothing.

#[macro_use]
mod common;

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

/// `line` with every `--iters N` above [`MAX_ITERS`] lowered to it.
fn cap_iterations(line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
    for i in 1..words.len() {
        if words[i - 1] == "--iters" {
            if let Ok(n) = words[i].parse::<u64>() {
                words[i] = n.min(MAX_ITERS).to_string();
            }
        }
    }
    words.join(" ")
}

/// The shell command a documented line becomes here.
fn localise(line: &str, forkvm: &Path, forkbench: &Path) -> String {
    cap_iterations(line)
        .replace("./target/release/forkvm", &forkvm.display().to_string())
        .replace(
            "./target/release/forkbench",
            &forkbench.display().to_string(),
        )
}

/// Runs `command` with `sh -c` in the repository root; its exit code and
/// output, or a timeout.
fn run_line(command: &str) -> Result<(i32, String), String> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(repo_root())
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
        if line.starts_with("cargo") {
            failures.push(format!(
                "{at}: `{line}`: cargo cannot run inside cargo test"
            ));
            continue;
        }
        let command = localise(line, &forkvm, &forkbench);
        match run_line(&command) {
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

#[test]
fn relative_links_between_the_documents_resolve() {
    let mut broken = Vec::new();
    let mut relative = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("the document is readable");
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            relative += 1;
            let path = target.split('#').next().unwrap_or_default();
            let resolved = doc.parent().unwrap().join(path);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", doc.display()));
            }
        }
    }
    assert!(
        relative > 0,
        "no relative link found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
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
    let scratch = std::env::temp_dir().join(format!("forkvm-help-examples-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
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
            scratch.display(),
            binary.display(),
            cap_iterations(rest)
        );
        match run_line(&command) {
            Ok((0, _)) => {}
            Ok((code, output)) => failures.push(format!("`{example}` exited {code}:\n{output}")),
            Err(why) => failures.push(format!("`{example}`: {why}")),
        }
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
