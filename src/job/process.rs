//! The inputs of the `process.*` operations (issue 14's processes): which
//! processes, and which signal to send.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// The signals a request may send, by name.
pub const SIGNALS: [&str; 9] = [
    "TERM", "KILL", "HUP", "INT", "QUIT", "USR1", "USR2", "STOP", "CONT",
];

/// `process.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct ProcessList {
    /// Only processes of this user (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only processes whose command name contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
}

impl ProcessList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        for (field, value) in [("user", &self.user), ("name", &self.name)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > 64 || v.chars().any(char::is_control))
            {
                return Err(InvalidInput::new(
                    field,
                    "1-64 bytes, no control characters",
                ));
            }
        }
        Ok(())
    }
}

/// `process.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ProcessRef {
    /// The process id.
    #[arg(value_name = "PID")]
    #[serde(deserialize_with = "super::log::whole")]
    pub pid: u32,
}

impl ProcessRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_pid(self.pid)
    }
}

fn check_pid(pid: u32) -> Result<(), InvalidInput> {
    // The kernel's pid_max is at most 2^22.
    if pid == 0 || pid > 4_194_304 {
        return Err(InvalidInput::new("pid", "a process id, 1 to 4194304"));
    }
    Ok(())
}

/// `process.signal`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ProcessSignal {
    /// The process id.
    #[arg(value_name = "PID")]
    #[serde(deserialize_with = "super::log::whole")]
    pub pid: u32,
    /// TERM (default), KILL, HUP, INT, QUIT, USR1, USR2, STOP or CONT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, short = 's', value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// Also PID 1 and the agent itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Also PID 1 and the agent itself")]
    pub force: bool,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl ProcessSignal {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_pid(self.pid)?;
        self.signal_name()?;
        if self.pid == 1 && !self.force && !self.dry_run {
            return Err(InvalidInput::new(
                "force",
                "PID 1 is the init of the host: set force to signal it anyway",
            ));
        }
        Ok(())
    }

    /// The signal's name, checked (`SIGTERM` and `term` are `TERM`).
    pub fn signal_name(&self) -> Result<&'static str, InvalidInput> {
        let asked = self
            .signal
            .as_deref()
            .unwrap_or("TERM")
            .to_ascii_uppercase();
        let asked = asked.strip_prefix("SIG").unwrap_or(&asked).to_owned();
        SIGNALS
            .iter()
            .copied()
            .find(|s| *s == asked)
            .ok_or_else(|| InvalidInput::new("signal", format!("one of {}", SIGNALS.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_pids_are_checked() {
        let sig = |pid, s: Option<&str>, force| ProcessSignal {
            pid,
            signal: s.map(str::to_owned),
            force,
            dry_run: false,
        };
        assert_eq!(sig(42, None, false).signal_name().unwrap(), "TERM");
        assert_eq!(
            sig(42, Some("sigkill"), false).signal_name().unwrap(),
            "KILL"
        );
        assert_eq!(
            sig(42, Some("SEGV"), false).validate().unwrap_err().field,
            "signal"
        );
        assert_eq!(sig(0, None, false).validate().unwrap_err().field, "pid");
        assert_eq!(sig(1, None, false).validate().unwrap_err().field, "force");
        sig(1, None, true).validate().unwrap();
    }
}
