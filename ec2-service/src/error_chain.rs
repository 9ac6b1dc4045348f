//! [`error_chain`]: one line with an error and every cause, for logs and failure reasons.

/// The error and all its causes, `: `-separated, without repeating a cause already in the
/// text (SDK messages include their own chain).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the downloaded source")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_once() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(
            error_chain(&error),
            "cannot read the downloaded source: disk on fire"
        );
    }
}
