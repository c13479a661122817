//! NATS names under a namespace (SPEC §3): `jobs.query._any` → `osapi.jobs.query._any`,
//! stream `JOBS` → `osapi-JOBS`, bucket `job-queue` → `osapi-job-queue`.

/// The namespace of one deployment; every NATS name goes through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: String,
}

impl Names {
    pub fn new(namespace: impl Into<String>) -> Self {
        Names {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A subject: `ns.` + subject.
    pub fn subject(&self, subject: &str) -> String {
        if self.namespace.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.namespace)
        }
    }

    /// A stream, bucket or consumer name: `ns-` + name.
    pub fn resource(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}-{name}", self.namespace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_prefixes_every_name() {
        let n = Names::new("osapi");
        assert_eq!(n.subject("jobs.query._any"), "osapi.jobs.query._any");
        assert_eq!(n.resource("JOBS"), "osapi-JOBS");
        assert_eq!(n.resource("job-queue"), "osapi-job-queue");
    }

    #[test]
    fn empty_namespace_adds_nothing() {
        let n = Names::new("");
        assert_eq!(n.subject("jobs.query._any"), "jobs.query._any");
        assert_eq!(n.resource("JOBS"), "JOBS");
    }
}
