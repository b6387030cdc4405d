//! The exit codes, in one table: `--help` prints it and a test keeps README.md's table identical.

/// Every exit code and what it means (Markdown: README.md shows the same rows).
pub const CODES: &[(u8, &str)] = &[
    (
        0,
        "report printed: data LIVE, or STALE for no longer than `--max-staleness` (the report says STALE); missing or older PnL is printed as n/a",
    ),
    (1, "any other error"),
    (2, "bad command line"),
    (3, "gateway-svc unreachable, or it did not answer within `--rpc-timeout`"),
    (
        4,
        "no data at all: the session has not synced since gateway-svc started and was not ready within `--ready-timeout`",
    ),
    (5, "data stale for longer than `--max-staleness`"),
    (6, "unknown or malformed account (`--account`)"),
    (7, "invalid symbol"),
    (130, "interrupted by SIGINT (Ctrl-C), in any phase, including while a call is in flight"),
    (143, "terminated by SIGTERM, in any phase"),
];

/// The table as `--help` prints it.
pub fn help() -> String {
    let mut out = String::from("Exit codes (each failure is one line on stderr):\n");
    for (code, meaning) in CODES {
        out.push_str(&format!("  {code:>3}  {}\n", meaning.replace('`', "")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's exit-code table has exactly these rows, in this order.
    #[test]
    fn readme_table_matches_the_code() {
        let readme = include_str!("../../README.md");
        let table = readme.split_once("| exit | meaning |").expect("README.md has the exit-code table").1;
        let rows: Vec<(u8, &str)> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.strip_prefix('|')?.strip_suffix('|')?.split(" | ").collect();
                match cells.as_slice() {
                    [code, meaning] => Some((code.trim().parse().ok()?, meaning.trim())),
                    _ => None,
                }
            })
            .collect();
        assert_eq!(rows, CODES.to_vec(), "README.md's trader-client exit-code table differs from exit::CODES");
    }
}
