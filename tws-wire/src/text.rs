//! The text codec's field layer: NUL-terminated fields, the message id first.

/// Most fields a client request may carry; a frame with more is malformed. The largest real
/// request, placeOrder, has about 180 fields at versions 178 to 200, plus 8 per combo leg, 2 per
/// algo parameter, smart-combo-routing parameter or misc option and about 6 per condition: an
/// order with a dozen of each stays under 500. 2048 leaves four times that, while a 1 MiB frame
/// of NUL bytes no longer costs a million strings.
pub const MAX_REQUEST_FIELDS: usize = 2048;

/// Splits a frame body into its fields (the final NUL ends the last field, it does not start
/// an empty one).
pub fn split(body: &[u8]) -> Vec<String> {
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

/// The number of fields [`split`] makes of `body`, counted without allocating.
pub fn count(body: &[u8]) -> usize {
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    if body.is_empty() { 0 } else { 1 + body.iter().filter(|b| **b == 0).count() }
}

/// [`split`], or `None` when `body` has more than `max` fields (counted before anything is
/// allocated).
pub fn split_at_most(body: &[u8], max: usize) -> Option<Vec<String>> {
    (count(body) <= max).then(|| split(body))
}

/// Joins fields into a frame body, each terminated by NUL.
pub fn join(fields: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|s| s.len() + 1).sum());
    for field in fields {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    out
}

/// Field `i` of a text frame body, without copying; `None` past the end or when not UTF-8.
/// For readers that look at one field of many frames (benchmarks).
pub fn field(body: &[u8], i: usize) -> Option<&str> {
    body.split(|b| *b == 0).nth(i).and_then(|f| std::str::from_utf8(f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_are_read_in_place() {
        let f = vec!["61".to_owned(), "3".into(), String::new(), "DU1".into()];
        let body = join(&f);
        assert_eq!(split(&body), f);
        assert_eq!(field(&body, 0), Some("61"));
        assert_eq!(field(&body, 2), Some(""));
        assert_eq!(field(&body, 3), Some("DU1"));
        assert_eq!(field(&body, 9), None);
        assert_eq!(count(&body), 4);
        assert_eq!(count(b""), 0);
        assert_eq!(split_at_most(&body, 4), Some(f));
        assert_eq!(split_at_most(&body, 3), None);
    }
}
