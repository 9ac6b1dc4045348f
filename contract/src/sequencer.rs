//! Ordering of S3 `sequencer` values.
//!
//! S3 puts a `sequencer` (a string of hex digits) on PUT and DELETE events; for the *same
//! key*, the event with the greater sequencer happened later. Values from different keys are
//! not comparable, and nothing here pretends otherwise.

use std::cmp::Ordering;

/// Compares two S3 sequencers of the same key: `Greater` means `a` is the later event.
///
/// Sequencers can differ in length. AWS's documentation of the event message structure
/// says to pad the shorter value with zeros *on the right* and then compare
/// lexicographically; that is what this does (hex digits compare case-insensitively). Some
/// older revisions of that page said "left pad"; the current text says right, and so,
/// for example, `"0055AED6DCD90281E5"` equals `"0055AED6DCD90281E500"` and is less than
/// `"0055AED6DCD90281E501"`.
///
/// ```
/// use std::cmp::Ordering;
/// use pipeline_contract::compare_sequencers;
/// assert_eq!(compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E6"), Ordering::Less);
/// assert_eq!(compare_sequencers("0055AED6DCD90281E5", "0055aed6dcd90281e500"), Ordering::Equal);
/// assert_eq!(compare_sequencers("0056", "0055AED6DCD90281E5"), Ordering::Greater);
/// ```
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let len = a.len().max(b.len());
    let digit = |s: &str, i: usize| s.as_bytes().get(i).map_or(b'0', u8::to_ascii_uppercase);
    (0..len)
        .map(|i| digit(a, i).cmp(&digit(b, i)))
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_length_compares_as_hex() {
        assert_eq!(compare_sequencers("00A", "00B"), Ordering::Less);
        assert_eq!(compare_sequencers("00B", "00A"), Ordering::Greater);
        assert_eq!(compare_sequencers("09", "0A"), Ordering::Less);
        assert_eq!(compare_sequencers("0a", "0A"), Ordering::Equal);
    }

    #[test]
    fn shorter_value_is_right_padded_with_zeros() {
        assert_eq!(compare_sequencers("ABC", "ABC000"), Ordering::Equal);
        assert_eq!(compare_sequencers("ABC", "ABC001"), Ordering::Less);
        assert_eq!(compare_sequencers("ABD", "ABC999"), Ordering::Greater);
        assert_eq!(compare_sequencers("", "0"), Ordering::Equal);
        assert_eq!(compare_sequencers("", "1"), Ordering::Less);
    }

    #[test]
    fn is_antisymmetric() {
        let values = [
            "",
            "0",
            "00",
            "1",
            "0055AED6DCD90281E5",
            "0055AED6DCD90281E5F",
            "F",
        ];
        for a in values {
            for b in values {
                assert_eq!(compare_sequencers(a, b), compare_sequencers(b, a).reverse());
            }
        }
    }
}
