//! Which keys become jobs: the configured source prefix and suffixes, and never the
//! daemon's own outputs.
//!
//! The derived-key rule is checked first and does not depend on the bucket: even if a
//! notification is misconfigured to watch the output bucket, or the source prefix is empty,
//! a variant can never trigger a job (trigger loops are ours to prevent, Lambda's recursion
//! detection does not see writes made from EC2).

use std::fmt;

/// Why a record was not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The key is one of the daemon's outputs (see [`pipeline_contract::is_derived_key`]).
    DerivedKey,
    /// The key does not start with the source prefix.
    OutsidePrefix,
    /// The key ends with none of the accepted suffixes.
    SuffixNotAccepted,
    /// The event is neither `ObjectCreated:*` nor a removal.
    UnsupportedEvent(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DerivedKey => f.write_str("derived-key"),
            Self::OutsidePrefix => f.write_str("outside-prefix"),
            Self::SuffixNotAccepted => f.write_str("suffix-not-accepted"),
            Self::UnsupportedEvent(name) => write!(f, "unsupported-event {name}"),
        }
    }
}

/// The key filter (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    source_prefix: String,
    suffixes: Vec<String>,
    derived_prefix: String,
}

impl Filter {
    /// A filter forwarding keys under `source_prefix` (empty: all) that end with one of
    /// `suffixes` (empty: any; ASCII case ignored), and never keys matching `derived_prefix`.
    pub fn new(
        source_prefix: impl Into<String>,
        suffixes: Vec<String>,
        derived_prefix: impl Into<String>,
    ) -> Self {
        Self {
            source_prefix: source_prefix.into(),
            suffixes,
            derived_prefix: derived_prefix.into(),
        }
    }

    /// Checks a decoded key.
    pub fn check(&self, key: &str) -> Result<(), Skip> {
        if pipeline_contract::is_derived_key(key, &self.derived_prefix) {
            return Err(Skip::DerivedKey);
        }
        if !key.starts_with(&self.source_prefix) {
            return Err(Skip::OutsidePrefix);
        }
        let suffix_ok = self.suffixes.is_empty()
            || self.suffixes.iter().any(|suffix| {
                key.len() >= suffix.len()
                    && key.is_char_boundary(key.len() - suffix.len())
                    && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            });
        if !suffix_ok {
            return Err(Skip::SuffixNotAccepted);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Filter {
        Filter::new(
            "uploads/",
            vec![".jpg".into(), ".jpeg".into(), ".PNG".into()],
            "variants/",
        )
    }

    #[test]
    fn accepts_keys_under_the_prefix_with_an_accepted_suffix() {
        let f = filter();
        assert_eq!(f.check("uploads/a.jpg"), Ok(()));
        assert_eq!(f.check("uploads/deep/er/red flower.JPG"), Ok(()));
        assert_eq!(f.check("uploads/x.png"), Ok(()));
        assert_eq!(f.check("uploads/café.jpeg"), Ok(()));
    }

    #[test]
    fn refuses_the_rest_with_a_reason() {
        let f = filter();
        assert_eq!(f.check("other/a.jpg"), Err(Skip::OutsidePrefix));
        assert_eq!(f.check("Uploads/a.jpg"), Err(Skip::OutsidePrefix));
        assert_eq!(f.check("uploads/a.gif"), Err(Skip::SuffixNotAccepted));
        assert_eq!(f.check("uploads/jpg"), Err(Skip::SuffixNotAccepted));
        assert_eq!(f.check("uploads/é"), Err(Skip::SuffixNotAccepted));
    }

    #[test]
    fn derived_keys_are_refused_whatever_the_other_settings() {
        let open = Filter::new("", Vec::new(), "variants/");
        assert_eq!(open.check("anything.bin"), Ok(()));
        assert_eq!(
            open.check("variants/uploads/a.jpg/thumb.webp"),
            Err(Skip::DerivedKey)
        );
        assert_eq!(
            filter().check("uploads/variants/a.jpg"),
            Err(Skip::DerivedKey)
        );
        let under = Filter::new("uploads/", Vec::new(), "out/");
        assert_eq!(under.check("uploads/out/a.jpg"), Err(Skip::DerivedKey));
        assert_eq!(under.check("uploads/variants/a.jpg"), Ok(()));
    }
}
