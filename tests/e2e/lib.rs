//! The end-to-end tests live in the `e2e` test target (`e2e/main.rs`); this library is empty.
