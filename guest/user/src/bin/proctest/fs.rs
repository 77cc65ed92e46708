//! The fs_struct: cwd, root and umask, shared by CLONE_FS and copied otherwise.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[];
