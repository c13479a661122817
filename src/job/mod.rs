//! The job domain, pure and transport-free.
//!
//! * [`Operation`] — every read or change of a host, with its input, validation,
//!   kind (query/modify) and the permission it needs;
//! * [`Target`] — which agents a job is for (the NATS subjects that reach them
//!   are the bus's: `crate::bus::Names`);
//! * [`Job`], [`JobEvent`], [`HostResult`] — the immutable job, its append-only
//!   events and per-host results, and [`compute_status`] that derives the status.

mod cert;
mod clock;
mod file;
pub mod hostname;
mod interface;
mod log;
mod operation;
mod output;
mod package;
mod power;
mod process;
mod record;
mod service;
pub mod signature;
mod status;
mod sysctl;
mod target;
mod user;

pub use cert::{CaAdd, CaList, CaRef};
pub use clock::{ClockSet, NtpServersSet, NtpSet, TimezoneSet};
pub use file::{FileDeploy, FileName, FileUndeploy, MAX_FILE_BYTES, check_file_name};
pub use interface::{InterfaceSet, NETWORK_FILE_SOURCE, RouteSpec, owned_network_file_name};
pub use log::{Boot, LogQuery, PRIORITIES, parse_time};
#[cfg(test)]
pub(crate) use operation::examples;
pub use operation::{
    CommandExec, CommandShell, DEFAULT_COMMAND_TIMEOUT, DEFAULT_PING_TIMEOUT, DnsGet, DnsSet,
    DropInDelete, DropInPut, DropInRef, EnvVar, HostnameSet, HttpMethod, InterfaceRef,
    InvalidInput, Kind, MAX_REQUESTED_COMMAND_TIMEOUT, OPERATION_TYPES, OPERATIONS, Operation,
    OperationRequest, OperationSpec, Ping, Schemas, ServiceChange, ServiceList, ServiceUnit,
    parse_duration, schema_ref,
};
pub use output::{
    CancelRequest, OutputChunk, OutputCut, OutputEnd, OutputExit, OutputOffsets, OutputRecord,
    OutputStream,
};
pub use package::{
    MAX_PACKAGES, PROTECTED_PACKAGES, PackageName, PackageNames, PackageRefresh, PackageSearch,
    PackageUpdate,
};
pub use power::{PowerCancel, PowerSchedule};
pub use process::{ProcessList, ProcessRef, ProcessSignal};
pub use record::{Expected, HostResult, HostStatus, Job, JobError, JobEvent, REJECTED, Stage};
pub use status::{HostProgress, JobStatus, JobView, compute_status};
pub use sysctl::{SysctlKey, SysctlList, SysctlSet};
pub use target::{InvalidTarget, Target, is_label};
pub use user::{
    GroupAdd, GroupName, GroupRef, MAX_KEY_BYTES, UserAccount, UserDelete, UserKey, UserList,
    UserName, UserPassword, UserRef,
};
