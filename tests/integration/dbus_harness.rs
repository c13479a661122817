//! Test beds for the D-Bus providers, started on demand and removed on drop:
//!
//! * [`PrivateBus`]: a `dbus-daemon` of type `system` on a socket of its own, with
//!   the system policy directories included and a permissive policy for root. Ready
//!   once it printed its address and its socket accepts a connection.
//! * [`Hostnamed`]: the real `systemd-hostnamed` in its own UTS and mount namespace,
//!   with an overlay on `/etc` (hostnamed replaces `/etc/hostname` by rename, so a
//!   bind-mounted file would fail with EBUSY). Its hostname, `/etc/hostname` and
//!   `/etc/machine-info` changes stay inside; the mounts vanish with the namespace.
//! * [`Timedated`]: the real `systemd-timedated` the same way, in a mount
//!   namespace only, after the kernel's one-time clock warp is sealed.
//! * [`Resolved`]: the real `systemd-resolved` (unpacked from the Debian package by
//!   `scripts/install-deps.sh`), standalone in a mount namespace whose `/run/systemd`
//!   is a tmpfs: its runtime files and a drop-in turning the stub listener off stay
//!   there. It never writes `/etc/resolv.conf` (only the package's postinst does).
//! * [`Veth`]: a veth pair with unique names, for resolved to manage.
//!
//! Readiness is always a polled condition (the bus name has an owner, resolved knows
//! the link), never a fixed sleep. A missing prerequisite fails the test with a
//! message naming what to install; nothing is skipped.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::{Proc, spawn, wait_for};

const READY: Duration = Duration::from_secs(20);
const INSTALL: &str = "run scripts/install-deps.sh as root";

/// Fails the test unless it runs as root: namespaces, mounts and links need it.
pub fn require_root() {
    // /proc/self belongs to the effective user.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    assert!(
        euid == Some(0),
        "the D-Bus provider tests need root (namespaces, overlay mounts, veth links)"
    );
}

/// The path of `program` on PATH (plus the sbin directories), or a failure naming
/// the Debian package that has it.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} not found: install the Debian package {package} ({INSTALL})")
        })
}

/// The first of `candidates` that exists, or a failure naming `what` to install.
fn require_file(candidates: &[PathBuf], what: &str) -> PathBuf {
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("{what} not found (looked at {candidates:?}): {INSTALL}"))
}

/// Where install-deps.sh unpacks systemd-resolved.
fn resolved_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/systemd-resolved")
}

fn is_running(proc: &mut Proc) -> bool {
    matches!(proc.child.try_wait(), Ok(None))
}

// ---------------------------------------------------------------------------
// The private bus
// ---------------------------------------------------------------------------

/// A private system bus.
pub struct PrivateBus {
    /// `unix:path=…`, for `DBUS_SYSTEM_BUS_ADDRESS` and `busctl --address`.
    pub address: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    pub async fn start() -> PrivateBus {
        require_root();
        let daemon = require_program("dbus-daemon", "dbus");
        require_program("busctl", "systemd");
        let dir = tempfile::Builder::new()
            .prefix("osapi-bus")
            .tempdir()
            .expect("tempdir");
        // resolved drops to its own user before it connects: it must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod bus dir");
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&socket)).expect("write bus config");
        let mut cmd = Command::new(daemon);
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped());
        let mut proc = spawn("dbus-daemon", &mut cmd);
        // The daemon prints its address once it listens.
        let stdout = proc.child.stdout.take().expect("dbus-daemon stdout");
        let printed = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(READY, printed)
            .await
            .expect("dbus-daemon prints its address")
            .expect("join")
            .expect("read dbus-daemon address");
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon did not start (printed {address:?})"
        );
        wait_for("the private bus socket", READY, || {
            let ok = UnixStream::connect(&socket).is_ok();
            async move { ok.then_some(()) }
        })
        .await;
        PrivateBus {
            // Without the guid: what a client would be configured with.
            address: format!("unix:path={}", socket.display()),
            _proc: proc,
            _dir: dir,
        }
    }

    /// `busctl --address=<this bus> args…`.
    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run busctl")
    }

    /// A property through busctl, as busctl prints it (e.g. `s "web-01"`).
    pub fn get_property(&self, service: &str, path: &str, iface: &str, prop: &str) -> String {
        let out = self.busctl(&["get-property", service, path, iface, prop]);
        assert!(out.status.success(), "busctl get-property {prop}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits until `name` has an owner on this bus, failing early if `daemon` died.
    pub async fn wait_name(&self, name: &str, daemon: &mut Proc) {
        let deadline = tokio::time::Instant::now() + READY;
        loop {
            let out = self.busctl(&[
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                name,
            ]);
            if String::from_utf8_lossy(&out.stdout).trim() == "b true" {
                return;
            }
            assert!(
                is_running(daemon),
                "the service for {name} exited before taking its name: {:?}",
                daemon.child.try_wait()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {name} on the private bus"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- The services' own policies (e.g. systemd-resolve may own org.freedesktop.resolve1). -->
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
  <!-- After the includes, so these win: anyone may talk to anyone, root may own any
       name. No service directories: nothing is bus-activated. -->
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
  <policy user="root">
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        socket = socket.display()
    )
}

// ---------------------------------------------------------------------------
// systemd-hostnamed
// ---------------------------------------------------------------------------

/// systemd-hostnamed in its own UTS and mount namespace, on a private bus.
pub struct Hostnamed {
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Hostnamed {
    pub async fn start(bus: &PrivateBus) -> Hostnamed {
        let (proc, dir) = start_overlaid(bus, "hostnamed", "hostname1", &["--uts"], "").await;
        Hostnamed { proc, _dir: dir }
    }

    /// The pid whose namespaces hostnamed runs in.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// `/etc/hostname` as hostnamed's mount namespace sees it.
    pub fn etc_hostname(&self) -> String {
        in_mounts_of(self.pid(), &["cat", "/etc/hostname"])
    }
}

/// `systemd-DAEMON` from the systemd package, owning `org.freedesktop.NAME`
/// on `bus`, in a mount namespace of its own (plus `namespaces`) whose `/etc`
/// is an overlay: what it writes there stays inside and vanishes with it.
/// `setup` is shell run in the namespace before the daemon starts.
async fn start_overlaid(
    bus: &PrivateBus,
    daemon: &str,
    name: &str,
    namespaces: &[&str],
    setup: &str,
) -> (Proc, tempfile::TempDir) {
    require_root();
    let binary = require_file(
        &[
            format!("/usr/lib/systemd/systemd-{daemon}").into(),
            format!("/lib/systemd/systemd-{daemon}").into(),
        ],
        &format!("systemd-{daemon} (Debian package systemd)"),
    );
    let unshare = require_program("unshare", "util-linux");
    require_program("nsenter", "util-linux");
    let dir = tempfile::Builder::new()
        .prefix(&format!("osapi-{daemon}"))
        .tempdir()
        .expect("tempdir");
    // Inside the new namespaces: a tmpfs for the overlay's upper layer, the
    // overlay on /etc (the services replace files by rename, so a bind-mounted
    // file would fail with EBUSY), then the service itself (same pid: unshare
    // and sh exec).
    let script = r#"set -e
mount -t tmpfs osapi-test "$1"
mkdir "$1/upper" "$1/work"
mount -t overlay osapi-test -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc
eval "$3"
exec "$2""#;
    let mut cmd = Command::new(unshare);
    cmd.args(namespaces)
        .args(["--mount", "--propagation", "private"])
        .args(["sh", "-c", script, "sh"])
        .arg(dir.path())
        .arg(&binary)
        .arg(setup)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    let mut proc = spawn(&format!("systemd-{daemon}"), &mut cmd);
    bus.wait_name(&format!("org.freedesktop.{name}"), &mut proc)
        .await;
    (proc, dir)
}

/// Runs `args` in the mount namespace of `pid`; its stdout, trimmed.
fn in_mounts_of(pid: u32, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m"])
        .args(args)
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "nsenter {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------
// systemd-timedated
// ---------------------------------------------------------------------------

/// systemd-timedated in a mount namespace with `/etc` overlaid, on a private
/// bus. Its zone changes stay in the namespace's `/etc/localtime`. It knows
/// no NTP service: those need systemd as PID 1 (the appliance test has it).
///
/// Before it starts, the kernel's one-time clock warp is sealed (SPEC §11):
/// PID 1 here is not systemd, so the first `settimeofday()` carrying a zone
/// would otherwise shift the whole machine's clock by that zone's offset.
/// The seal is what systemd does at boot: a zone of offset 0, no time. Tests
/// then only set zones of offset 0, so the kernel's zone stays 0 as well.
pub struct Timedated {
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Timedated {
    pub async fn start(bus: &PrivateBus) -> Timedated {
        require_root();
        seal_clock_warp();
        // No NTP units: timedated would ask systemd (PID 1 here is not) about
        // them for every read of NTP. Without, it reports NTP off and
        // impossible, as on a host without timesyncd.
        let hide_ntp_units = "for d in /usr/lib/systemd/ntp-units.d /lib/systemd/ntp-units.d; do \
            [ -d $d ] && mount -t tmpfs osapi-test $d; done; true";
        let (proc, dir) = start_overlaid(bus, "timedated", "timedate1", &[], hide_ntp_units).await;
        Timedated { proc, _dir: dir }
    }

    /// Where the namespace's `/etc/localtime` points.
    pub fn localtime(&self) -> String {
        in_mounts_of(self.proc.child.id(), &["readlink", "/etc/localtime"])
    }
}

/// `settimeofday(NULL, {0, 0})`: ends the kernel's one-time warp without
/// moving the clock, and leaves the kernel's zone at offset 0.
pub fn seal_clock_warp() {
    // struct timezone { int tz_minuteswest; int tz_dsttime; }
    let zone: [libc::c_int; 2] = [0, 0];
    // SAFETY: a null timeval (the time is left alone) and a valid timezone.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_settimeofday,
            std::ptr::null::<libc::timeval>(),
            zone.as_ptr(),
        )
    };
    assert_eq!(
        rc,
        0,
        "settimeofday(NULL, tz): {}",
        std::io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------------------
// systemd-resolved
// ---------------------------------------------------------------------------

/// systemd-resolved, standalone on a private bus.
pub struct Resolved {
    proc: Proc,
    resolvectl: PathBuf,
    address: String,
}

impl Resolved {
    pub async fn start(bus: &PrivateBus) -> Resolved {
        require_root();
        let root = resolved_root();
        let binary = require_file(
            &[
                root.join("lib/systemd/systemd-resolved"),
                "/usr/lib/systemd/systemd-resolved".into(),
                "/lib/systemd/systemd-resolved".into(),
            ],
            "systemd-resolved (Debian package systemd-resolved, unpacked under .cache/)",
        );
        let resolvectl = require_file(
            &[
                root.join("usr/bin/resolvectl"),
                "/usr/bin/resolvectl".into(),
            ],
            "resolvectl (Debian package systemd-resolved)",
        );
        let unshare = require_program("unshare", "util-linux");
        let user = Command::new("getent")
            .args(["passwd", "systemd-resolve"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            user,
            "user systemd-resolve is missing (systemd-resolved drops to it): {INSTALL}"
        );
        let policy = Path::new("/usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf");
        assert!(
            policy.exists()
                || Path::new("/etc/dbus-1/system.d/org.freedesktop.resolve1.conf").exists(),
            "{} is missing (systemd-resolved may not own its name without it): {INSTALL}",
            policy.display()
        );
        // /run/systemd becomes a tmpfs of this namespace: resolved's runtime files and
        // the drop-in below stay there. No stub listener on 127.0.0.53, no LLMNR or
        // mDNS traffic on the test link.
        let script = r#"set -e
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 osapi-test /run/systemd
mkdir -p /run/systemd/resolved.conf.d
printf '[Resolve]\nDNSStubListener=no\nLLMNR=no\nMulticastDNS=no\n' \
  > /run/systemd/resolved.conf.d/osapi-test.conf
exec "$1""#;
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private"])
            .args(["sh", "-c", script, "sh"])
            .arg(&binary)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env("SYSTEMD_LOG_LEVEL", "notice");
        let mut proc = spawn("systemd-resolved", &mut cmd);
        bus.wait_name("org.freedesktop.resolve1", &mut proc).await;
        Resolved {
            proc,
            resolvectl,
            address: bus.address.clone(),
        }
    }

    /// Waits until resolved has a link object for `ifindex` (it learns links from
    /// rtnetlink).
    pub async fn wait_link(&mut self, bus: &PrivateBus, ifindex: u32) {
        let index = ifindex.to_string();
        wait_for(&format!("resolved to know link {ifindex}"), READY, || {
            let out = bus.busctl(&[
                "call",
                "org.freedesktop.resolve1",
                "/org/freedesktop/resolve1",
                "org.freedesktop.resolve1.Manager",
                "GetLink",
                "i",
                &index,
            ]);
            async move { out.status.success().then_some(()) }
        })
        .await;
        assert!(is_running(&mut self.proc), "systemd-resolved exited");
    }

    /// `resolvectl args…` against this resolved (resolvectl talks to the system bus,
    /// so it gets the private bus's address).
    pub fn resolvectl(&self, args: &[&str]) -> String {
        let out = Command::new(&self.resolvectl)
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .env("SYSTEMD_COLORS", "0")
            .stdin(Stdio::null())
            .output()
            .expect("run resolvectl");
        assert!(out.status.success(), "resolvectl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

// ---------------------------------------------------------------------------
// Test links
// ---------------------------------------------------------------------------

/// A veth pair, up, deleted on drop (deleting one end deletes both).
pub struct Veth {
    pub name: String,
}

impl Veth {
    pub fn create() -> Veth {
        require_root();
        let ip = require_program("ip", "iproute2");
        // Unique per run: interface names are global to the network namespace.
        let tag = &uuid::Uuid::now_v7().simple().to_string()[26..];
        let name = format!("osapi-t{tag}");
        let peer = format!("osapi-p{tag}");
        let run = |args: &[&str]| {
            let out = Command::new(&ip).args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        run(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        let veth = Veth { name };
        run(&["link", "set", &veth.name, "up"]);
        run(&["link", "set", &peer, "up"]);
        veth
    }

    pub fn ifindex(&self) -> u32 {
        let path = format!("/sys/class/net/{}/ifindex", self.name);
        std::fs::read_to_string(&path)
            .expect("read ifindex")
            .trim()
            .parse()
            .expect("ifindex")
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
