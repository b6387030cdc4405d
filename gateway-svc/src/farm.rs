//! IB's data farms, as a real gateway reports them: one notice per farm, the farm's name after
//! the last colon ("Market data farm connection is OK:usfarm"), several farms per code.
//!
//! None of these farms carries positions or account data: market data (2103/2104/2108/2119),
//! historical data (HMDS, 2105/2106/2107) and security definitions (2157/2158). A farm outage is
//! therefore reported (Health lists every farm, a metric per farm) but never makes accounts,
//! positions or the summary stale and never takes the service out of SERVING. Only the IB link
//! itself (1100/1101/1102/2110, 1300) does that; see docs/OPERATIONS.md.

use std::time::SystemTime;

/// What a farm serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FarmKind {
    /// Market data (usfarm, eufarm, cashfarm, usopt …).
    MarketData,
    /// Historical market data (ushmds, euhmds …).
    Historical,
    /// Security definitions (secdefnj, secdefil).
    SecDef,
}

impl FarmKind {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FarmKind::MarketData => "market_data",
            FarmKind::Historical => "historical",
            FarmKind::SecDef => "sec_def",
        }
    }
}

/// A farm's connection as the gateway last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarmStatus {
    /// Connected.
    Ok,
    /// Not connected now, but available on demand (2107/2108): normal for idle farms.
    Inactive,
    /// Connecting (2119).
    Connecting,
    /// Broken.
    Broken,
}

impl FarmStatus {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FarmStatus::Ok => "ok",
            FarmStatus::Inactive => "inactive",
            FarmStatus::Connecting => "connecting",
            FarmStatus::Broken => "broken",
        }
    }

    /// Every status, for metrics that export one series per status.
    pub const ALL: [FarmStatus; 4] = [FarmStatus::Ok, FarmStatus::Inactive, FarmStatus::Connecting, FarmStatus::Broken];
}

/// One farm in Health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farm {
    /// Name as the gateway spells it ("usfarm").
    pub name: String,
    /// What it serves.
    pub kind: FarmKind,
    /// Last reported status.
    pub status: FarmStatus,
    /// When that status was reported.
    pub since: SystemTime,
    /// The notice code that reported it.
    pub code: i32,
}

/// Reads a farm notice; `None` for any other code.
pub(crate) fn parse(code: i32, message: &str) -> Option<Farm> {
    use tws_wire::notice::code::*;
    let (kind, status) = match code {
        MARKET_FARM_BROKEN => (FarmKind::MarketData, FarmStatus::Broken),
        MARKET_FARM_OK => (FarmKind::MarketData, FarmStatus::Ok),
        MARKET_FARM_INACTIVE => (FarmKind::MarketData, FarmStatus::Inactive),
        MARKET_FARM_CONNECTING => (FarmKind::MarketData, FarmStatus::Connecting),
        HMDS_FARM_BROKEN => (FarmKind::Historical, FarmStatus::Broken),
        HMDS_FARM_OK => (FarmKind::Historical, FarmStatus::Ok),
        HMDS_FARM_INACTIVE => (FarmKind::Historical, FarmStatus::Inactive),
        SECDEF_FARM_BROKEN => (FarmKind::SecDef, FarmStatus::Broken),
        SECDEF_FARM_OK => (FarmKind::SecDef, FarmStatus::Ok),
        _ => return None,
    };
    // The name follows the last colon; a notice without one still counts, under its kind.
    let name = match message.rsplit_once(':') {
        Some((_, name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => format!("({})", kind.as_str()),
    };
    Some(Farm { name, kind, status, since: SystemTime::now(), code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn farms_are_read_by_name_and_code() {
        let f = parse(2104, "Market data farm connection is OK:usfarm").unwrap();
        assert_eq!((f.name.as_str(), f.kind, f.status), ("usfarm", FarmKind::MarketData, FarmStatus::Ok));
        let f =
            parse(2107, "HMDS data farm connection is inactive but should be available upon demand.:euhmds").unwrap();
        assert_eq!((f.name.as_str(), f.kind, f.status), ("euhmds", FarmKind::Historical, FarmStatus::Inactive));
        let f = parse(2157, "Sec-def data farm connection is broken:secdefnj").unwrap();
        assert_eq!((f.name.as_str(), f.status), ("secdefnj", FarmStatus::Broken));
        assert_eq!(parse(2103, "Market data farm connection is broken").unwrap().name, "(market_data)");
        assert!(parse(1100, "Connectivity between IB and TWS has been lost.").is_none());
    }
}
