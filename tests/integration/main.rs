//! One integration test binary: real nats-server, real `osapi` and `osapictl`
//! processes. See `harness` for how they are started and awaited.

mod dbus_harness;
mod harness;

mod accounts;
mod admin;
mod attack;
mod auth;
mod cli;
mod console;
mod dbus;
mod enrollment;
mod files;
mod fleet;
mod input;
mod jobs;
mod lifecycle;
mod logs;
mod observability;
mod output;
mod privileged;
mod providers;
mod routing;
mod services;
mod sysctl;
mod systemd;
mod tracing;
