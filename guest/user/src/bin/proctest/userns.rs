//! User namespaces: CLONE_NEWUSER / unshare, uid and gid maps, capabilities in the new namespace.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[];
