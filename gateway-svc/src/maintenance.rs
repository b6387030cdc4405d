//! Maintenance windows: the gateway's daily auto-restart and IBKR's reset windows. An outage
//! inside a window is expected (health says so, alerts can stay quiet, retries slow down); one
//! outside is not.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::Deserialize;

/// `[maintenance]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// IANA time zone the window times are in (IB schedules in US Eastern time).
    pub time_zone: String,
    /// Reconnect cadence inside a window (instead of the exponential backoff).
    pub retry_interval_ms: u64,
    /// The windows.
    pub windows: Vec<WindowSettings>,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self { time_zone: "America/New_York".into(), retry_interval_ms: 30_000, windows: Vec::new() }
    }
}

/// One recurring window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    /// Shown in health, e.g. "gateway auto-restart".
    pub name: String,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Length in minutes (may cross midnight).
    pub duration_minutes: u32,
    /// Days the window starts on (`Mon` … `Sun`); empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
}

/// When outages are expected, and how often to retry during them: `[maintenance]` validated.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// The windows.
    pub schedule: Schedule,
    /// Retry cadence inside a window.
    pub retry_interval: std::time::Duration,
}

/// Validated windows, ready to answer "are we inside one now?".
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    windows: Vec<Window>,
}

#[derive(Debug, Clone)]
struct Window {
    name: String,
    start: Time,
    minutes: i64,
    days: Vec<Weekday>,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

impl Schedule {
    /// Validates the settings; the error names the offending key.
    pub fn new(s: &MaintenanceSettings) -> Result<Schedule, String> {
        let tz = TimeZone::get(&s.time_zone)
            .map_err(|_| format!("maintenance.time_zone = {:?} is not a known IANA zone", s.time_zone))?;
        let windows = s
            .windows
            .iter()
            .map(|w| {
                let start = Time::strptime("%H:%M", &w.start)
                    .map_err(|_| format!("maintenance window {:?}: start = {:?} is not HH:MM", w.name, w.start))?;
                if w.duration_minutes == 0 || w.duration_minutes > 24 * 60 {
                    return Err(format!("maintenance window {:?}: duration_minutes must be 1..=1440", w.name));
                }
                let days = w
                    .days
                    .iter()
                    .map(|d| {
                        weekday(d).ok_or_else(|| format!("maintenance window {:?}: day {d:?} is not Mon..Sun", w.name))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Window { name: w.name.clone(), start, minutes: i64::from(w.duration_minutes), days })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Schedule { tz, windows })
    }

    /// The window `at` falls in, if any.
    pub fn active_at(&self, at: Timestamp) -> Option<&str> {
        let local: Zoned = at.to_zoned(self.tz.clone());
        self.windows.iter().find(|w| w.contains(&local)).map(|w| w.name.as_str())
    }

    /// The window now falls in, if any.
    pub fn active_now(&self) -> Option<&str> {
        self.active_at(Timestamp::now())
    }
}

impl Window {
    fn contains(&self, local: &Zoned) -> bool {
        // A window that started yesterday may still be running (e.g. 23:45 for 30 minutes).
        [0i64, -1].into_iter().any(|offset| {
            let Ok(day) = local.date().checked_add(offset.days()) else { return false };
            if !self.days.is_empty() && !self.days.contains(&day.weekday()) {
                return false;
            }
            let Ok(start) = day.to_datetime(self.start).to_zoned(local.time_zone().clone()) else { return false };
            let Ok(end) = start.checked_add(self.minutes.minutes()) else { return false };
            start.timestamp() <= local.timestamp() && local.timestamp() < end.timestamp()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(start: &str, minutes: u32, days: &[&str]) -> Schedule {
        let s = MaintenanceSettings {
            time_zone: "America/New_York".into(),
            retry_interval_ms: 1000,
            windows: vec![WindowSettings {
                name: "reset".into(),
                start: start.into(),
                duration_minutes: minutes,
                days: days.iter().map(|d| d.to_string()).collect(),
            }],
        };
        Schedule::new(&s).expect("valid")
    }

    fn at(s: &str) -> Timestamp {
        s.parse::<Zoned>().expect("valid zoned").timestamp()
    }

    #[test]
    fn windows_respect_the_time_zone_and_midnight() {
        let w = schedule("23:45", 30, &[]);
        assert_eq!(w.active_at(at("2026-11-24T23:50-05:00[America/New_York]")), Some("reset"));
        assert_eq!(w.active_at(at("2026-11-25T00:10-05:00[America/New_York]")), Some("reset"), "crosses midnight");
        assert_eq!(w.active_at(at("2026-11-25T00:16-05:00[America/New_York]")), None);
        // 23:50 in New York is 04:50 UTC the next day.
        assert_eq!(w.active_at(at("2026-11-25T04:50Z[UTC]")), Some("reset"));
        assert_eq!(w.active_at(at("2026-11-24T23:50Z[UTC]")), None);
    }

    #[test]
    fn days_limit_where_a_window_starts() {
        // Sunday 01:00 ET token expiry, weekly.
        let w = schedule("01:00", 60, &["Sun"]);
        assert_eq!(w.active_at(at("2026-11-29T01:30-05:00[America/New_York]")), Some("reset"), "a Sunday");
        assert_eq!(w.active_at(at("2026-11-30T01:30-05:00[America/New_York]")), None, "a Monday");
    }

    #[test]
    fn bad_settings_name_the_problem() {
        let s = MaintenanceSettings { time_zone: "Mars/Olympus".into(), ..MaintenanceSettings::default() };
        assert!(Schedule::new(&s).unwrap_err().contains("time_zone"));
        let mut s = MaintenanceSettings::default();
        s.windows.push(WindowSettings { name: "x".into(), start: "25:00".into(), duration_minutes: 5, days: vec![] });
        assert!(Schedule::new(&s).unwrap_err().contains("HH:MM"));
        let mut s = MaintenanceSettings::default();
        s.windows.push(WindowSettings {
            name: "x".into(),
            start: "01:00".into(),
            duration_minutes: 5,
            days: vec!["Funday".into()],
        });
        assert!(Schedule::new(&s).unwrap_err().contains("Funday"));
    }
}
