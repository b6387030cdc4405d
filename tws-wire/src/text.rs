//! The text codec's field layer: NUL-terminated fields, the message id first.

/// Splits a frame body into its fields (the final NUL ends the last field, it does not start
/// an empty one).
pub fn split(body: &[u8]) -> Vec<String> {
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
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
    }
}
