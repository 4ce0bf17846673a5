//! `wavelift policy draft`.

use super::PolicyDraftArgs;
use std::process::ExitCode;

pub fn run(_args: PolicyDraftArgs) -> ExitCode {
    eprintln!("error: `policy draft` is not built yet (issue 17)");
    ExitCode::from(super::EXIT_INVALID)
}
