//! Values that must never appear in logs, `Debug` output or error messages.

use std::fmt;

use serde::Deserialize;

/// A secret (a bearer token, a password). `Debug` and `Display` show `<redacted>`; only
/// [`Secret::expose`] gives the value, for the one place that sends or compares it.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared in constant time ([`constant_time_eq`]).
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Constant-time, so that comparing secrets with `==` cannot leak how much matched.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.expose())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    /// `"<redacted>"`, or `""` for an empty value (so a config dump shows that it is empty, which
    /// gives nothing away and is worth knowing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Compares without an early exit, so response time says nothing about how much of a presented
/// token matched. The length is not hidden (tokens have public, fixed shapes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "\"<redacted>\"");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(\"<redacted>\")");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"", "empty is shown as empty");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        #[derive(Deserialize)]
        struct T {
            token: Secret,
        }
        let t: T = serde::de::Deserialize::deserialize(
            serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new([("token", "s3cret")].into_iter()),
        )
        .expect("a string");
        assert_eq!(t.token.expose(), "s3cret");
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"t0k3n", b"t0k3n"));
        assert!(!constant_time_eq(b"t0k3n", b"t0k3m"), "last byte differs");
        assert!(!constant_time_eq(b"t0k3n", b"x0k3n"), "first byte differs");
        assert!(!constant_time_eq(b"t0k3n", b"t0k3"), "prefix");
        assert!(!constant_time_eq(b"t0k", b"t0k3n"), "longer");
        assert!(Secret::from("abc").matches("abc"));
        assert!(!Secret::from("abc").matches("abd"));
        assert_eq!(Secret::from("abc"), Secret::from("abc"));
        assert_ne!(Secret::from("abc"), Secret::from("abcd"));
    }
}
