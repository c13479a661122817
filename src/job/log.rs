//! The input of `log.entries.get`: which journal entries, checked before
//! anything runs. Times are RFC 3339 or a span ago (`10m`), resolved on the
//! host that reads its journal.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::operation::{InvalidInput, parse_duration};

/// Entries one answer holds when the request does not say.
pub const DEFAULT_LOG_LIMIT: u32 = 100;
/// The most entries one answer may hold.
pub const MAX_LOG_LIMIT: u32 = 1000;
/// The longest a follow's poll may wait for new entries.
pub const MAX_LOG_WAIT_SECS: u32 = 30;

/// syslog's priorities, most urgent first: their index is the number.
pub const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `log.entries.get`
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
    clap::Args,
)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this unit's entries (its processes' and systemd's about it),
    /// e.g. `ssh.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(short = 'u', long, value_name = "UNIT")]
    pub unit: Option<String>,
    /// Only entries this urgent or more: 0-7 or emerg, alert, crit, err,
    /// warning, notice, info, debug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(short = 'p', long, value_name = "PRIORITY")]
    pub priority: Option<String>,
    /// Only entries at or after this time: RFC 3339, or a span ago (`1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only entries before this time: RFC 3339, or a span ago (`10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this boot: `current`, or a boot id (32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(short = 'b', long, value_name = "BOOT")]
    pub boot: Option<String>,
    /// Only entries of this syslog identifier, e.g. `sshd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(short = 't', long, value_name = "ID")]
    pub identifier: Option<String>,
    /// Only entries whose message contains this text (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(short = 'g', long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// The entries after this cursor (from an earlier answer), oldest first;
    /// without one, the newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// At most this many entries (1-1000, default 100).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number"
    )]
    #[arg(short = 'n', long, value_name = "N")]
    #[schema(minimum = 1, maximum = 1000)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// With a cursor: when nothing is newer, wait up to this many seconds
    /// (at most 30) for an entry. How a follow polls.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number"
    )]
    #[arg(skip)]
    #[schema(maximum = 30)]
    #[param(ignore)]
    pub wait: Option<u32>,
    /// osapictl only: follow (`GET /api/v1/log/follow`) instead of one answer.
    #[serde(skip)]
    #[schema(ignore)]
    #[param(ignore)]
    #[arg(
        short = 'f',
        long,
        help = "Print new entries as they come, until interrupted"
    )]
    pub follow: bool,
}

/// A whole number, also as text: path and query parameters come as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u32),
    Text(String),
}

impl NumberOrText {
    fn value<E: serde::de::Error>(self) -> Result<u32, E> {
        match self {
            NumberOrText::Number(n) => Ok(n),
            NumberOrText::Text(s) => s
                .parse()
                .map_err(|_| E::custom(format!("{s:?} is not a whole number"))),
        }
    }
}

/// An optional whole number, also as text.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<NumberOrText>::deserialize(d)?
        .map(NumberOrText::value)
        .transpose()
}

/// A whole number, also as text.
pub(super) fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    NumberOrText::deserialize(d)?.value()
}

/// A switch, also as text (`true`, `1`, `false`, `0`): query parameters
/// come as text.
pub(super) fn switch<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }
    match BoolOrText::deserialize(d)? {
        BoolOrText::Bool(b) => Ok(b),
        BoolOrText::Text(t) => match t.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is neither true nor false"
            ))),
        },
    }
}

/// A time as the request gives it: RFC 3339, or a span before `now`.
pub fn parse_time(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let ago = parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a span such as 10m"))?;
    Ok(now - ago)
}

/// The boot a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    Current,
    Id([u8; 16]),
}

impl LogQuery {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(unit) = &self.unit {
            super::service::check_unit_name(unit).map_err(|why| InvalidInput::new("unit", why))?;
        }
        self.max_priority()?;
        let now = OffsetDateTime::now_utc();
        for (field, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(text) = value {
                parse_time(text, now).map_err(|why| InvalidInput::new(field, why))?;
            }
        }
        self.boot()?;
        for (field, value, max) in [
            ("identifier", &self.identifier, 256),
            ("grep", &self.grep, 1024),
            ("cursor", &self.cursor, 1024),
        ] {
            if let Some(text) = value
                && (text.is_empty() || text.len() > max || text.chars().any(char::is_control))
            {
                return Err(InvalidInput::new(
                    field,
                    format!("1-{max} bytes, no control characters"),
                ));
            }
        }
        if let Some(n) = self.limit
            && !(1..=MAX_LOG_LIMIT).contains(&n)
        {
            return Err(InvalidInput::new(
                "limit",
                format!("between 1 and {MAX_LOG_LIMIT}"),
            ));
        }
        match self.wait {
            Some(w) if w > MAX_LOG_WAIT_SECS => Err(InvalidInput::new(
                "wait",
                format!("at most {MAX_LOG_WAIT_SECS} seconds"),
            )),
            Some(_) if self.cursor.is_none() => Err(InvalidInput::new(
                "wait",
                "only with a cursor: it waits for entries after it",
            )),
            _ => Ok(()),
        }
    }

    /// The least urgent priority asked for (0 emerg … 7 debug).
    pub fn max_priority(&self) -> Result<Option<u8>, InvalidInput> {
        let Some(p) = &self.priority else {
            return Ok(None);
        };
        let found = PRIORITIES
            .iter()
            .position(|name| name == p)
            .or_else(|| p.parse::<usize>().ok().filter(|n| *n < PRIORITIES.len()));
        match found.and_then(|n| u8::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(InvalidInput::new(
                "priority",
                format!("0-7 or one of {}", PRIORITIES.join(", ")),
            )),
        }
    }

    pub fn boot(&self) -> Result<Option<Boot>, InvalidInput> {
        let Some(b) = &self.boot else {
            return Ok(None);
        };
        if b == "current" {
            return Ok(Some(Boot::Current));
        }
        let hex = b.replace('-', "");
        let mut id = [0u8; 16];
        let ok = hex.len() == 32
            && id.iter_mut().enumerate().all(|(i, byte)| {
                hex.get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .map(|v| *byte = v)
                    .is_some()
            });
        if ok {
            Ok(Some(Boot::Id(id)))
        } else {
            Err(InvalidInput::new(
                "boot",
                "current, or a boot id of 32 hex digits",
            ))
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LOG_LIMIT) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        let bad = |q: LogQuery| q.validate().unwrap_err().field;
        let q = LogQuery::default;
        assert_eq!(
            bad(LogQuery {
                unit: Some("a b".into()),
                ..q()
            }),
            "unit"
        );
        assert_eq!(
            bad(LogQuery {
                priority: Some("loud".into()),
                ..q()
            }),
            "priority"
        );
        assert_eq!(
            bad(LogQuery {
                priority: Some("8".into()),
                ..q()
            }),
            "priority"
        );
        assert_eq!(
            bad(LogQuery {
                since: Some("yesterday".into()),
                ..q()
            }),
            "since"
        );
        assert_eq!(
            bad(LogQuery {
                boot: Some("-1".into()),
                ..q()
            }),
            "boot"
        );
        assert_eq!(
            bad(LogQuery {
                grep: Some(String::new()),
                ..q()
            }),
            "grep"
        );
        assert_eq!(
            bad(LogQuery {
                limit: Some(0),
                ..q()
            }),
            "limit"
        );
        assert_eq!(
            bad(LogQuery {
                limit: Some(1001),
                ..q()
            }),
            "limit"
        );
        assert_eq!(
            bad(LogQuery {
                wait: Some(5),
                ..q()
            }),
            "wait"
        );
        let cursor = Some("s=1".to_owned());
        assert_eq!(
            bad(LogQuery {
                wait: Some(31),
                cursor,
                ..q()
            }),
            "wait"
        );
        LogQuery {
            unit: Some("ssh.service".into()),
            priority: Some("warning".into()),
            since: Some("1h".into()),
            until: Some("2026-12-07T10:00:00Z".into()),
            boot: Some("current".into()),
            limit: Some(5),
            ..q()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn priorities_and_boots_parse() {
        let p = |s: &str| {
            LogQuery {
                priority: Some(s.into()),
                ..Default::default()
            }
            .max_priority()
        };
        assert_eq!(p("err").unwrap(), Some(3));
        assert_eq!(p("7").unwrap(), Some(7));
        let b = |s: &str| {
            LogQuery {
                boot: Some(s.into()),
                ..Default::default()
            }
            .boot()
        };
        assert_eq!(b("current").unwrap(), Some(Boot::Current));
        let id = b("0123456789abcdef0123456789ABCDEF").unwrap();
        assert!(matches!(id, Some(Boot::Id(bytes)) if bytes[0] == 0x01 && bytes[15] == 0xef));
    }

    #[test]
    fn numbers_come_as_numbers_or_text() {
        let q: LogQuery =
            serde_json::from_value(serde_json::json!({"limit": "5", "wait": 3})).unwrap();
        assert_eq!((q.limit, q.wait), (Some(5), Some(3)));
        assert!(serde_json::from_value::<LogQuery>(serde_json::json!({"limit": "many"})).is_err());
    }
}
