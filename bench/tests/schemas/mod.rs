//! The dashboards' input formats as JSON Schemas (the `*.schema.json`
//! files next to this one): what Bencher's `json` adapter and
//! github-action-benchmark's `customSmallerIsBetter`/`customBiggerIsBetter`
//! accept, written from those tools' parsers (each file's `description`
//! names the sources and where the schema is stricter than the tool), and
//! forkbench's output checked against them with `boon`.

/// A dashboard forkbench writes for.
#[derive(Clone, Copy, Debug)]
pub enum Dashboard {
    /// Bencher (`--format bmf`).
    Bencher,
    /// github-action-benchmark (`--format github`).
    GithubAction,
}

impl Dashboard {
    /// The schema's name and text, compiled into the test (the nested
    /// HVM run copies test binaries into a VM without the source tree).
    fn schema(self) -> (&'static str, &'static str) {
        match self {
            Dashboard::Bencher => ("bmf.schema.json", include_str!("bmf.schema.json")),
            Dashboard::GithubAction => (
                "github-action-benchmark-custom.schema.json",
                include_str!("github-action-benchmark-custom.schema.json"),
            ),
        }
    }
}

/// `Ok` if `document` is input `dashboard` accepts, else every violation
/// with its place in the document.
pub fn validate(dashboard: Dashboard, document: &serde_json::Value) -> Result<(), String> {
    let (name, text) = dashboard.schema();
    let url = format!("file:///forkbench/tests/schemas/{name}");
    let json: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource(&url, json)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let index = compiler
        .compile(&url, &mut schemas)
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
    schemas
        .validate(document, index)
        .map_err(|e| format!("not valid {dashboard:?} input: {e:#}"))
}

/// Parses forkbench's `stdout` in `dashboard`'s format and asserts that the
/// dashboard accepts it, and what forkbench promises beyond the schema:
/// at least one benchmark, and in the github array no name twice (the
/// action would mix two series under one name). Returns the document.
#[track_caller]
pub fn assert_valid(dashboard: Dashboard, stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let document: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    if let Err(why) = validate(dashboard, &document) {
        panic!("{why}\n{text}");
    }
    match dashboard {
        Dashboard::Bencher => {
            let benchmarks = document.as_object().expect("the schema wants an object");
            assert!(!benchmarks.is_empty(), "no benchmark:\n{text}");
        }
        Dashboard::GithubAction => {
            let items = document.as_array().expect("the schema wants an array");
            let mut names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
            names.sort_unstable();
            let count = names.len();
            names.dedup();
            assert_eq!(names.len(), count, "a name twice:\n{text}");
        }
    }
    document
}
