//! Configuration problems, all reported together.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key path, e.g. `api.server.port` or `node.agent.consumer.back_off[1]`;
    /// empty for problems with the document as a whole.
    pub key: String,
    /// The file the problem is in, when it came from one.
    pub file: Option<PathBuf>,
    /// The line in that file, when known.
    pub line: Option<u64>,
    /// The environment variable the value came from, when it came from one.
    pub env_var: Option<String>,
    pub message: String,
}

impl ConfigProblem {
    /// A problem not (yet) tied to a place.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            file: None,
            line: None,
            env_var: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    /// `osapi.yaml:12: api.server.prot: unknown key (did you mean port?)`, or
    /// `OSAPI_API_SERVER_PORT: api.server.port: …` for an environment value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(var) = &self.env_var {
            write!(f, "{var}: ")?;
        } else {
            match (&self.file, self.line) {
                (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
                (Some(file), None) => write!(f, "{}: ", file.display())?,
                (None, Some(line)) => write!(f, "line {line}: ")?,
                (None, None) => {}
            }
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration. `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl ConfigErrors {
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<Vec<ConfigProblem>> for ConfigErrors {
    fn from(v: Vec<ConfigProblem>) -> Self {
        ConfigErrors(v)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigProblem;
    type IntoIter = std::vec::IntoIter<ConfigProblem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
