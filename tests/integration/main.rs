//! One integration test binary: real nats-server, real `osapi` and `osapictl`
//! processes. See `harness` for how they are started and awaited.

mod harness;

mod admin;
mod auth;
mod input;
mod jobs;
mod routing;
