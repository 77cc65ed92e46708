//! Process groups and sessions: setpgid, getpgid, setsid, getsid, kill and wait4 of a group.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[];
