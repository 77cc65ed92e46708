//! System V semaphores: semop with SEM_UNDO, semtimedop, the semctl commands.

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[];
