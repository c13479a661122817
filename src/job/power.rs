//! The inputs of the `power.*` changes: when, and the message users see.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::operation::{InvalidInput, parse_duration};

/// The furthest a shutdown may be scheduled.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// `power.reboot` and `power.poweroff`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct PowerSchedule {
    /// When, from now: e.g. `1m`, `30s` (default: as soon as the agent has
    /// recorded the job, 3 s); at most 24 h.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    #[arg(long = "in", value_name = "SPAN")]
    #[schema(rename = "in")]
    pub delay: Option<String>,
    /// The message logged-in users see (wall), at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
    /// osapictl only: wait for the job (a reboot's ends when the host is
    /// back in a new boot) instead of printing its id.
    #[serde(skip)]
    #[schema(ignore)]
    #[arg(
        long,
        help = "Wait until it is done (a reboot: until the host is back)"
    )]
    pub wait: bool,
}

impl PowerSchedule {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.delay()?;
        if let Some(m) = &self.message
            && (m.chars().count() > 256 || m.chars().any(char::is_control))
        {
            return Err(InvalidInput::new(
                "message",
                "at most 256 characters, no control characters",
            ));
        }
        Ok(())
    }

    /// The delay asked for (zero when none).
    pub fn delay(&self) -> Result<Duration, InvalidInput> {
        let Some(text) = &self.delay else {
            return Ok(Duration::ZERO);
        };
        match parse_duration(text) {
            Ok(d) if d <= MAX_DELAY => Ok(d),
            Ok(_) => Err(InvalidInput::new("in", "at most 24h")),
            Err(why) => Err(InvalidInput::new("in", why)),
        }
    }
}

/// `power.cancel`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct PowerCancel {
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl PowerCancel {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_and_message_are_checked() {
        let at = |d: &str| PowerSchedule {
            delay: Some(d.into()),
            ..Default::default()
        };
        assert_eq!(at("1m").delay().unwrap(), Duration::from_secs(60));
        assert_eq!(at("25h").validate().unwrap_err().field, "in");
        assert_eq!(at("soon").validate().unwrap_err().field, "in");
        let said = PowerSchedule {
            message: Some("bye\u{7}".into()),
            ..Default::default()
        };
        assert_eq!(said.validate().unwrap_err().field, "message");
        assert_eq!(PowerSchedule::default().delay().unwrap(), Duration::ZERO);
    }
}
