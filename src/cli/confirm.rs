//! The confirmation before a change that fans out (SPEC §9): a modify operation
//! sent to `_all` or a label group asks `[y/N]` on the terminal unless `--yes`.
//! Without a terminal to ask on, it refuses (exit 2) rather than guess.

use std::io::{BufRead, IsTerminal, Write};

use super::error::CliError;
use crate::job::Kind;

/// Whether an operation of `kind` sent to `target` needs confirming.
pub fn needs_confirmation(kind: Kind, target: &str) -> bool {
    kind == Kind::Modify && (target == "_all" || target.contains(':'))
}

/// Ask on the process's terminal when needed.
pub fn confirm(kind: Kind, operation: &str, target: &str, yes: bool) -> Result<(), CliError> {
    if yes || !needs_confirmation(kind, target) {
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    confirm_with(
        operation,
        target,
        interactive,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr(),
    )
}

/// A `[y/N]` question on the terminal (stderr, stdin); no without one.
pub async fn ask_on_terminal(question: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("\n{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(answer, Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes"))
}

/// The prompt itself, with its input and output given (for tests).
pub fn confirm_with(
    operation: &str,
    target: &str,
    interactive: bool,
    input: &mut dyn BufRead,
    prompt_to: &mut dyn Write,
) -> Result<(), CliError> {
    let refuse = || CliError::ConfirmationRequired {
        operation: operation.to_owned(),
        target: target.to_owned(),
    };
    if !interactive {
        return Err(refuse());
    }
    let io = |source| CliError::Io {
        doing: "ask for confirmation".into(),
        source,
    };
    write!(
        prompt_to,
        "About to run {operation} on {target}. Continue? [y/N] "
    )
    .map_err(io)?;
    prompt_to.flush().map_err(io)?;
    let mut answer = String::new();
    input.read_line(&mut answer).map_err(io)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Declined {
            operation: operation.to_owned(),
            target: target.to_owned(),
        }),
    }
}

/// A new password for `user`: asked twice on the terminal without echo, or
/// read as one line from standard input when that is not a terminal.
pub fn read_password(user: &str) -> Result<String, CliError> {
    let io = |source| CliError::Io {
        doing: "read the password".into(),
        source,
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(io)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let ask = |prompt: &str| -> std::io::Result<String> {
        let mut err = std::io::stderr();
        write!(err, "{prompt}")?;
        err.flush()?;
        let line = without_echo(|| {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })?;
        writeln!(err)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    let first = ask(&format!("New password for {user}: ")).map_err(io)?;
    let again = ask("Again: ").map_err(io)?;
    if first != again {
        return Err(CliError::BadArgument {
            arg: "password".into(),
            reason: "the two entries differ".into(),
        });
    }
    Ok(first)
}

/// Runs `read` with the terminal's echo off, and puts it back.
fn without_echo<T>(read: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0, a terminal.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: as above, with a copy of the terminal's own settings.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    let result = read();
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_modifies_to_all_or_labels_need_it() {
        assert!(needs_confirmation(Kind::Modify, "_all"));
        assert!(needs_confirmation(Kind::Modify, "group:web.dev"));
        assert!(!needs_confirmation(Kind::Modify, "_any"));
        assert!(!needs_confirmation(Kind::Modify, "web-01"));
        assert!(!needs_confirmation(Kind::Query, "_all"));
        assert!(!needs_confirmation(Kind::Query, "group:web"));
        // --yes and harmless targets never reach the prompt.
        assert!(confirm(Kind::Modify, "command.shell.execute", "_all", true).is_ok());
        assert!(confirm(Kind::Query, "node.status.get", "_all", false).is_ok());
    }

    #[test]
    fn answers_and_refusal() {
        let mut out = Vec::new();
        assert!(
            confirm_with(
                "node.hostname.set",
                "_all",
                true,
                &mut &b"y\n"[..],
                &mut out
            )
            .is_ok()
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "About to run node.hostname.set on _all. Continue? [y/N] "
        );
        assert!(confirm_with("x", "_all", true, &mut &b"YES\n"[..], &mut Vec::new()).is_ok());
        for no in [&b"\n"[..], b"n\n", b"", b"maybe\n"] {
            let e = confirm_with("x", "_all", true, &mut &no[..], &mut Vec::new()).unwrap_err();
            assert!(matches!(e, CliError::Declined { .. }));
        }
        let e = confirm_with("x", "g:v", false, &mut &b"y\n"[..], &mut Vec::new()).unwrap_err();
        assert!(matches!(e, CliError::ConfirmationRequired { .. }));
        assert_eq!(e.exit_code(), 2);
    }
}
