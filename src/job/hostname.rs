//! Host and domain names: one rule (RFC 1123 labels) for agent names,
//! targets, a hostname to set and DNS search domains; only the longest
//! length differs, and each is named.

/// Longest domain name (RFC 1035): agents' names, targets, search domains.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest hostname the kernel keeps (`HOST_NAME_MAX`), which hostnamed
/// enforces: a hostname to set.
pub const HOST_NAME_MAX: usize = 64;

/// Why a name is not a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostnameProblem {
    #[error("must not be empty")]
    Empty,
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("contains an empty label")]
    EmptyLabel,
    #[error("a label is longer than 63 bytes")]
    LongLabel,
    #[error("only ASCII letters, digits, '-' and '.' are allowed")]
    BadCharacter,
    #[error("a label must not start or end with '-'")]
    Hyphen,
}

/// Check `name` as a host name of at most `max_len` bytes: dot-separated
/// labels of 1–63 ASCII letters, digits and hyphens, none starting or ending
/// with a hyphen.
pub fn check_hostname(name: &str, max_len: usize) -> Result<(), HostnameProblem> {
    if name.is_empty() {
        return Err(HostnameProblem::Empty);
    }
    if name.len() > max_len {
        return Err(HostnameProblem::TooLong(max_len));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostnameProblem::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(HostnameProblem::LongLabel);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(HostnameProblem::BadCharacter);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostnameProblem::Hyphen);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_two_lengths() {
        for ok in ["web-01", "a", "web-01.example.com", "X9"] {
            assert_eq!(check_hostname(ok, HOST_NAME_MAX), Ok(()), "{ok}");
        }
        assert_eq!(check_hostname(&"a".repeat(63), HOST_NAME_MAX), Ok(()));
        assert_eq!(
            check_hostname(&"a".repeat(64), MAX_DOMAIN_LEN),
            Err(HostnameProblem::LongLabel)
        );
        let long = ["a".repeat(40), "b".repeat(40)].join(".");
        assert_eq!(check_hostname(&long, MAX_DOMAIN_LEN), Ok(()));
        assert_eq!(
            check_hostname(&long, HOST_NAME_MAX),
            Err(HostnameProblem::TooLong(64))
        );
        for (bad, why) in [
            ("", HostnameProblem::Empty),
            ("-web", HostnameProblem::Hyphen),
            ("web-", HostnameProblem::Hyphen),
            ("a..b", HostnameProblem::EmptyLabel),
            ("trailing.", HostnameProblem::EmptyLabel),
            (".", HostnameProblem::EmptyLabel),
            ("web_01", HostnameProblem::BadCharacter),
            ("wéb", HostnameProblem::BadCharacter),
            ("a b", HostnameProblem::BadCharacter),
        ] {
            assert_eq!(check_hostname(bad, MAX_DOMAIN_LEN), Err(why), "{bad:?}");
        }
    }
}
