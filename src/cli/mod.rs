//! Command lines: `admin` for `osapi`; the `osapictl` client is being added.

pub mod admin;
