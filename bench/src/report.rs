//! Printing: one table per scenario while it runs, and one summary line per headline figure with
//! its baseline, ratio and goal.

use std::fmt::Write as _;

use crate::stats::{Summary, ms};

/// A plain-text table with aligned columns.
#[derive(Debug, Clone)]
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self { title: title.into(), headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells print empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(s, " {cell}{} |", " ".repeat(pad));
            }
            s
        };
        let mut out = format!("\n{}\n{}\n|", self.title, line(&self.headers));
        for w in &width {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// The latency cells `p50, p95, p99, max` of a summary (dashes when there were no samples).
pub fn latency_cells(s: Option<&Summary>) -> Vec<String> {
    match s {
        Some(s) => vec![ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max)],
        None => vec!["—".into(); 4],
    }
}

/// A ratio as `12.3×`.
pub fn times(r: f64) -> String {
    if !r.is_finite() {
        "—".into()
    } else if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Mebibytes from kibibytes, as `/proc/<pid>/status` reports them.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "—".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// One headline figure: what was measured, against what, and whether its goal was met.
#[derive(Debug, Clone)]
pub struct Line {
    /// Scenario name.
    pub scenario: &'static str,
    /// What the figure is.
    pub metric: String,
    /// The figure.
    pub value: String,
    /// The baseline figure it is compared with.
    pub baseline: String,
    /// Ratio to the baseline, as printed.
    pub ratio: String,
    /// The goal, as text; empty when there is none.
    pub goal: String,
    /// Whether the goal was met; `None` without a goal.
    pub met: Option<bool>,
}

impl Line {
    /// A line without a goal.
    pub fn new(scenario: &'static str, metric: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            scenario,
            metric: metric.into(),
            value: value.into(),
            baseline: String::new(),
            ratio: String::new(),
            goal: String::new(),
            met: None,
        }
    }

    /// Adds the baseline and the ratio to it.
    pub fn baseline(mut self, baseline: impl Into<String>, ratio: f64) -> Self {
        self.baseline = baseline.into();
        self.ratio = times(ratio);
        self
    }

    /// Adds a goal and whether it was met.
    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Self {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }
}

/// Prints the summary of every headline figure.
pub fn print_summary(lines: &[Line]) {
    let mut t = Table::new("SUMMARY", &["scenario", "figure", "value", "baseline", "ratio", "goal", "verdict"]);
    for l in lines {
        let verdict = match l.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "—",
        };
        t.row(vec![
            l.scenario.into(),
            l.metric.clone(),
            l.value.clone(),
            l.baseline.clone(),
            l.ratio.clone(),
            l.goal.clone(),
            verdict.into(),
        ]);
    }
    t.print();
    let missed = lines.iter().filter(|l| l.met == Some(false)).count();
    if missed > 0 {
        println!("{missed} performance goal(s) missed (reported, not a failure).");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new("T", &["a", "bb"]);
        t.row(vec!["xxx".into(), "y".into()]);
        let text = t.render();
        assert!(text.contains("| a   | bb |"), "{text}");
        assert!(text.contains("| xxx | y  |"), "{text}");
        assert_eq!(times(23.456), "23.5×");
        assert_eq!(times(0.8123), "0.81×");
        assert_eq!(mib(Some(2048)), "2.0 MiB");
    }
}
