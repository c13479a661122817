//! The inputs of the `cert.ca.*` operations: which CAs to list, and the CA
//! certificate to trust or stop trusting, checked before anything runs.

use serde::{Deserialize, Serialize};

use super::operation::InvalidInput;
use crate::provider::trust;

/// The longest PEM text an add takes: one certificate, with room for a long
/// chain of comments before it.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// `cert.ca.list`
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args,
)]
#[serde(deny_unknown_fields)]
pub struct CaList {
    /// Only the CAs added through OSAPI.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "super::log::switch"
    )]
    #[arg(long, help = "Only the CAs added through OSAPI")]
    pub local: bool,
}

impl CaList {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        Ok(())
    }
}

/// `cert.ca.add`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CaAdd {
    /// One CA certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    #[arg(value_name = "FILE", value_parser = read_pem_file,
        help = "The CA certificate's PEM file (- for standard input)")]
    pub pem: String,
    /// The name it is kept under, e.g. `corp-root`; by default made from
    /// the certificate's common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[arg(
        long,
        value_name = "NAME",
        help = "Keep it under this name (default: from its common name)"
    )]
    pub name: Option<String>,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl CaAdd {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if self.pem.len() > MAX_PEM_BYTES {
            return Err(InvalidInput::new(
                "pem",
                format!("at most {MAX_PEM_BYTES} bytes"),
            ));
        }
        let ca = trust::parse_one(&self.pem).map_err(|why| InvalidInput::new("pem", why))?;
        trust::check_ca(&ca, time::OffsetDateTime::now_utc())
            .map_err(|why| InvalidInput::new("pem", why))
    }
}

/// `cert.ca.remove`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CaRef {
    /// The name the CA was added under (`cert list --local` shows them).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Report what would change without changing anything.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[arg(long, help = "Show what would change without changing it")]
    pub dry_run: bool,
}

impl CaRef {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_name(&self.name)
    }
}

/// A name is a file name in the trust store's source directory.
pub fn check_name(name: &str) -> Result<(), InvalidInput> {
    super::operation::check_plain_name("name", name, 64)
}

/// The CLI reads the certificate from a file, or standard input for `-`.
fn read_pem_file(path: &str) -> Result<String, String> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| format!("cannot read {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_names() {
        for ok in ["corp-root", "a", "Corp_Root.2026"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "../etc", "a/b", "a b", &"x".repeat(65)] {
            assert_eq!(check_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }

    #[test]
    fn only_a_ca_certificate_is_taken() {
        let add = |pem: &str| CaAdd {
            pem: pem.into(),
            name: None,
            dry_run: false,
        };
        add(trust::tests::TEST_CA).validate().unwrap();
        for (bad, says) in [
            ("", "no PEM certificate"),
            ("hello", "no PEM certificate"),
            (trust::tests::TEST_LEAF, "not a CA"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not an X.509 certificate",
            ),
        ] {
            let e = add(bad).validate().unwrap_err();
            assert_eq!(e.field, "pem");
            assert!(e.reason.contains(says), "{bad:?}: {}", e.reason);
        }
        let two = format!("{}{}", trust::tests::TEST_CA, trust::tests::TEST_CA);
        assert!(
            add(&two)
                .validate()
                .unwrap_err()
                .reason
                .contains("one certificate")
        );
    }
}
