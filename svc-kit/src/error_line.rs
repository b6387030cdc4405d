//! An error and its causes as one line, for logs and for the one line a binary prints before
//! it exits.

/// The error and its sources on one line ("transport error: connection refused"). A level whose
/// text the level above already says is left out, so wrappers that repeat their source
/// ("tcp connect error: tcp connect error: ...") read once.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut above = s.clone();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !above.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        above = text;
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::source_chain;

    #[derive(Debug)]
    struct Level(&'static str, Option<Box<Level>>);

    impl std::fmt::Display for Level {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Level {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn each_level_reads_once() {
        let io = Level("Connection refused (os error 111)", None);
        let connect = Level("tcp connect error", Some(Box::new(io)));
        let wrapper = Level("tcp connect error", Some(Box::new(connect)));
        let top = Level("transport error", Some(Box::new(wrapper)));
        assert_eq!(source_chain(&top), "transport error: tcp connect error: Connection refused (os error 111)");
        let io = Level("Address already in use (os error 98)", None);
        let embeds = Level("cannot listen on 127.0.0.1:4002: Address already in use (os error 98)", Some(Box::new(io)));
        assert_eq!(source_chain(&embeds), "cannot listen on 127.0.0.1:4002: Address already in use (os error 98)");
    }
}
