//! The inputs of the `service.*` operations: systemd units, named and checked
//! before anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;

/// Unit types systemd knows; a unit name ends in one of them.
const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's limit on a unit name (`UNIT_NAME_MAX`).
const UNIT_NAME_MAX: usize = 255;

/// A unit name as systemd accepts it: `name.type`, of letters, digits and
/// `:-_.\@`; with `glob`, also the pattern characters `*?[]`.
fn check_unit(name: &str, glob: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > UNIT_NAME_MAX {
        return Err(format!("a unit name is 1-{UNIT_NAME_MAX} bytes"));
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || ":-_.\\@".contains(c) || (glob && "*?[]".contains(c))
    };
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!("{c:?} is not allowed in a unit name"));
    }
    if glob {
        return Ok(());
    }
    match name.rsplit_once('.') {
        Some((stem, kind)) if !stem.is_empty() && UNIT_TYPES.contains(&kind) => Ok(()),
        _ => Err(format!(
            "a unit name ends in its type: .{}",
            UNIT_TYPES.join(", .")
        )),
    }
}

/// A unit name as systemd accepts it (no pattern).
pub(super) fn check_unit_name(name: &str) -> Result<(), String> {
    check_unit(name, false)
}

/// `service.unit.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct ServiceList {
    /// Only units whose name matches this glob, e.g. `ssh*` or `*.timer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "GLOB")]
    pub pattern: Option<String>,
    /// Only units in this load, active or sub state, e.g. `active`, `failed`, `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
}

impl ServiceList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(p) = &self.pattern {
            check_unit(p, true).map_err(|why| InvalidInput::new("pattern", why))?;
        }
        if let Some(s) = &self.state
            && (s.is_empty()
                || s.len() > 32
                || !s.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        {
            return Err(InvalidInput::new(
                "state",
                "a state is a lowercase word such as active, failed or running",
            ));
        }
        Ok(())
    }
}

/// `service.unit.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServiceUnit {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
}

impl ServiceUnit {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_unit(&self.unit, false).map_err(|why| InvalidInput::new("unit", why))
    }
}

/// `service.unit.start`, `stop`, `restart`, `try-restart`, `reload`, `enable`, `disable`,
/// `mask` and `unmask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServiceChange {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// Also for units whose change cuts the host off from its management
    /// (stopping OSAPI's own units, the system bus, the journal) or is more
    /// than a service operation (starting `reboot.target`, `rescue.target`,
    /// `debug-shell.service`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(
        long,
        help = "Also for OSAPI's own units, the bus, the journal, reboot/rescue targets"
    )]
    pub force: bool,
    /// enable, disable and mask: also start (enable) or stop (disable, mask)
    /// the unit, as `systemctl --now` does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "enable/disable/mask: also start or stop the unit now")]
    pub now: bool,
    /// Report what would change (before → after) without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl ServiceChange {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_unit(&self.unit, false).map_err(|why| InvalidInput::new("unit", why))
    }

    /// One of OSAPI's own units (`osapi.target`, `osapi-agent.service`, …).
    pub fn is_osapi_unit(&self) -> bool {
        self.unit == "osapi.target" || self.unit.starts_with("osapi-")
    }

    /// Refuse a change that `stops` or `starts` a drastic unit (see
    /// [`Self::stop_is_drastic`], [`Self::start_is_drastic`]) unless the request
    /// says `force`; a dry run changes nothing and passes.
    pub fn guard(&self, stops: bool, starts: bool) -> Result<(), InvalidInput> {
        let why = None
            .or(stops.then(|| self.stop_is_drastic()).flatten())
            .or(starts.then(|| self.start_is_drastic()).flatten());
        match why {
            Some(why) if !self.force && !self.dry_run => Err(InvalidInput::new(
                "force",
                format!("{} {why}; set force to do it anyway", self.unit),
            )),
            _ => Ok(()),
        }
    }

    /// Why starting this unit is more than a service operation: it powers
    /// the host off, changes its run state, or opens a root shell.
    pub fn start_is_drastic(&self) -> Option<&'static str> {
        const DRASTIC: [(&str, &str); 13] = [
            ("reboot.target", "reboots the host"),
            ("poweroff.target", "powers the host off"),
            ("halt.target", "halts the host"),
            ("kexec.target", "reboots the host into another kernel"),
            ("ctrl-alt-del.target", "reboots the host"),
            ("systemd-reboot.service", "reboots the host"),
            ("systemd-poweroff.service", "powers the host off"),
            ("systemd-halt.service", "halts the host"),
            (
                "systemd-kexec.service",
                "reboots the host into another kernel",
            ),
            ("rescue.target", "stops everything but a rescue shell"),
            (
                "emergency.target",
                "stops everything but an emergency shell",
            ),
            ("rescue.service", "stops everything but a rescue shell"),
            (
                "debug-shell.service",
                "opens a root shell on tty9 without a password",
            ),
        ];
        DRASTIC
            .iter()
            .find(|(unit, _)| *unit == self.unit)
            .map(|(_, why)| *why)
    }

    /// Why stopping (restarting, disabling, masking) this unit cuts the host
    /// off from its management: OSAPI's own units, the system bus and the
    /// journal.
    pub fn stop_is_drastic(&self) -> Option<&'static str> {
        if self.is_osapi_unit() {
            return Some("is one of OSAPI's own units and this cuts the agent off");
        }
        match self.unit.as_str() {
            "dbus.service" | "dbus.socket" | "dbus-broker.service" => {
                Some("is the system bus every agent operation goes through")
            }
            "systemd-journald.service" | "systemd-journald.socket" => {
                Some("is the journal that holds the audit trail and the logs")
            }
            _ => None,
        }
    }
}

/// Longest drop-in accepted.
pub const DROPIN_MAX_BYTES: usize = 64 * 1024;

/// A drop-in's own name: 1-32 of `a-z`, `0-9` and `-`.
fn check_dropin_name(name: &str) -> Result<(), InvalidInput> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "name",
            "1-32 lowercase letters, digits or hyphens",
        ))
    }
}

/// Unit-file syntax, line by line: sections, `Key=value`, comments, blank
/// lines and continuations; the first line that is none of them is named.
fn check_unit_file(content: &str) -> Result<(), InvalidInput> {
    let field = |reason: String| InvalidInput::new("content", reason);
    if content.len() > DROPIN_MAX_BYTES {
        return Err(field(format!("at most {DROPIN_MAX_BYTES} bytes")));
    }
    if content.contains('\0') {
        return Err(field("must not contain NUL".into()));
    }
    let mut in_section = false;
    let mut continued = false;
    for (n, line) in content.lines().enumerate() {
        let text = line.trim();
        let was_continued = std::mem::replace(&mut continued, text.ends_with('\\'));
        if was_continued || text.is_empty() || text.starts_with(['#', ';']) {
            continue;
        }
        if text.starts_with('[') {
            let name = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
            if !name.is_some_and(|s| {
                !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }) {
                return Err(field(format!("line {}: not a [Section] header", n + 1)));
            }
            in_section = true;
            continue;
        }
        let key = text.split_once('=').map(|(k, _)| k.trim());
        if !key.is_some_and(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(field(format!("line {}: not Key=value", n + 1)));
        }
        if !in_section {
            return Err(field(format!(
                "line {}: a setting before any [Section]",
                n + 1
            )));
        }
    }
    Ok(())
}

/// `service.dropin.get`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DropInRef {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// The drop-in's name: the file is `/etc/systemd/system/<unit>.d/50-osapi-<name>.conf`.
    #[arg(value_name = "NAME")]
    pub name: String,
}

impl DropInRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_unit(&self.unit, false).map_err(|why| InvalidInput::new("unit", why))?;
        check_dropin_name(&self.name)
    }

    /// Where the drop-in lives.
    pub fn path(&self) -> std::path::PathBuf {
        format!(
            "/etc/systemd/system/{}.d/50-osapi-{}.conf",
            self.unit, self.name
        )
        .into()
    }
}

/// `service.dropin.put`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DropInPut {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// The drop-in's name: the file is `/etc/systemd/system/<unit>.d/50-osapi-<name>.conf`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The drop-in's text, unit-file syntax (`[Service]`, `Key=value`), at most 64 KiB.
    #[arg(long, value_name = "TEXT|@FILE", value_parser = text_or_file,
        help = "The drop-in's text, or @FILE to read it from a file")]
    pub content: String,
    /// Also for units whose change cuts the host off from its management
    /// (OSAPI's own units, the system bus, the journal).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Also for OSAPI's own units, the bus and the journal")]
    pub force: bool,
    /// Report the diff without writing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show the diff without writing it")]
    pub dry_run: bool,
}

impl DropInPut {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.file().validate()?;
        check_unit_file(&self.content)?;
        guard_dropin(&self.unit, self.force, self.dry_run)
    }

    pub fn file(&self) -> DropInRef {
        DropInRef {
            unit: self.unit.clone(),
            name: self.name.clone(),
        }
    }
}

/// `service.dropin.delete`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct DropInDelete {
    /// The unit, e.g. `ssh.service`.
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// The drop-in's name, as given when it was put.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Also for OSAPI's own units, the system bus and the journal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Also for OSAPI's own units, the bus and the journal")]
    pub force: bool,
    /// Report the diff without removing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show the diff without removing the file")]
    pub dry_run: bool,
}

impl DropInDelete {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.file().validate()?;
        guard_dropin(&self.unit, self.force, self.dry_run)
    }

    pub fn file(&self) -> DropInRef {
        DropInRef {
            unit: self.unit.clone(),
            name: self.name.clone(),
        }
    }
}

/// A drop-in can stop a unit as surely as a stop: the same guard.
fn guard_dropin(unit: &str, force: bool, dry_run: bool) -> Result<(), InvalidInput> {
    let change = ServiceChange {
        unit: unit.to_owned(),
        force,
        now: false,
        dry_run,
    };
    change.guard(true, false)
}

/// `TEXT`, or `@FILE` read whole.
fn text_or_file(s: &str) -> Result<String, String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}")),
        None => Ok(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for ok in [
            "ssh.service",
            "getty@tty1.service",
            "dev-sda1.device",
            "a.timer",
            "x\\x2d.mount",
        ] {
            assert!(check_unit(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ssh",
            ".service",
            "ssh.bogus",
            "a b.service",
            "a/b.service",
            "ssh*.service",
        ] {
            assert!(check_unit(bad, false).is_err(), "{bad}");
        }
        assert!(check_unit("ssh*", true).is_ok());
        assert!(check_unit(&"a".repeat(300), true).is_err());
    }

    #[test]
    fn drastic_changes_need_force_but_a_dry_run_does_not() {
        let change = |unit: &str, force: bool, dry_run: bool| ServiceChange {
            unit: unit.into(),
            force,
            now: false,
            dry_run,
        };
        let refused = |c: ServiceChange, stops, starts| c.guard(stops, starts).is_err();
        assert!(refused(
            change("osapi-agent.service", false, false),
            true,
            false
        ));
        assert!(refused(change("dbus.socket", false, false), true, false));
        assert!(refused(change("reboot.target", false, false), false, true));
        assert!(
            !refused(change("reboot.target", false, false), true, false),
            "stopping it is fine"
        );
        assert!(!refused(
            change("osapi-agent.service", true, false),
            true,
            false
        ));
        assert!(!refused(
            change("osapi-agent.service", false, true),
            true,
            false
        ));
        assert!(
            !refused(change("osapi-agent.service", false, false), false, true),
            "a start"
        );
        assert!(!refused(change("ssh.service", false, false), true, true));
    }

    #[test]
    fn drop_ins_are_checked_as_unit_files() {
        assert!(
            check_unit_file("[Service]\nNice=5\n# c\n\nExecStart=/bin/a \\\n  --flag\n").is_ok()
        );
        for (bad, line) in [
            ("Nice=5\n", "line 1"),
            ("[Service]\ngarbage\n", "line 2"),
            ("[Ser vice]\n", "line 1"),
        ] {
            let e = check_unit_file(bad).unwrap_err();
            assert!(
                e.field == "content" && e.reason.contains(line),
                "{bad:?}: {e}"
            );
        }
        assert!(check_dropin_name("limits").is_ok());
        assert!(check_dropin_name("../x").is_err() && check_dropin_name("").is_err());
        let r = DropInRef {
            unit: "ssh.service".into(),
            name: "limits".into(),
        };
        assert_eq!(
            r.path(),
            std::path::Path::new("/etc/systemd/system/ssh.service.d/50-osapi-limits.conf")
        );
    }

    #[test]
    fn states_are_words() {
        let list = |state: &str| ServiceList {
            pattern: None,
            state: Some(state.into()),
        };
        assert!(list("running").validate().is_ok());
        assert_eq!(list("Run ning").validate().unwrap_err().field, "state");
    }
}
