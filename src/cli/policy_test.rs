//! `wavelift policy test`.

use super::PolicyTestArgs;
use std::process::ExitCode;

pub fn run(_args: PolicyTestArgs) -> ExitCode {
    eprintln!("error: `policy test` is not built yet (issue 17)");
    ExitCode::from(super::EXIT_INVALID)
}
