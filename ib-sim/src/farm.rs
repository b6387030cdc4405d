//! Named data farms and the notices a gateway sends about them.
//!
//! A real gateway reports each farm it knows by name, one notice per farm, with the name after a
//! colon: `2104 Market data farm connection is OK:usfarm`. None of the farms carries positions or
//! account data; they matter to clients only through these notices.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What a farm serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FarmKind {
    /// Market data (`usfarm`, `eufarm`, `cashfarm`, `usopt`, …).
    Market,
    /// Historical data (`ushmds`, `euhmds`, …).
    Hmds,
    /// Security definitions (`secdefnj`, `secdefil`).
    Secdef,
}

/// A farm connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FarmState {
    /// Connected.
    Ok,
    /// Disconnected while idle, reconnected on demand (market and HMDS farms only).
    Inactive,
    /// Connection lost.
    Broken,
}

/// One farm as a scenario lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Farm {
    /// Name as the gateway prints it after the colon, e.g. `usfarm`.
    pub name: String,
    /// What it serves.
    pub kind: FarmKind,
    /// State at start and after a reset.
    pub state: FarmState,
}

/// One error-channel notice with id −1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) code: i32,
    pub(crate) text: String,
}

impl Farm {
    /// The notice a gateway sends for this farm in `state`, or `None` for a combination no
    /// gateway reports (an inactive sec-def farm).
    pub(crate) fn notice_for(&self, state: FarmState) -> Option<Notice> {
        use tws_wire::notice::code::*;
        let code = match (self.kind, state) {
            (FarmKind::Market, FarmState::Ok) => MARKET_FARM_OK,
            (FarmKind::Market, FarmState::Inactive) => MARKET_FARM_INACTIVE,
            (FarmKind::Market, FarmState::Broken) => MARKET_FARM_BROKEN,
            (FarmKind::Hmds, FarmState::Ok) => HMDS_FARM_OK,
            (FarmKind::Hmds, FarmState::Inactive) => HMDS_FARM_INACTIVE,
            (FarmKind::Hmds, FarmState::Broken) => HMDS_FARM_BROKEN,
            (FarmKind::Secdef, FarmState::Ok) => SECDEF_FARM_OK,
            (FarmKind::Secdef, FarmState::Broken) => SECDEF_FARM_BROKEN,
            (FarmKind::Secdef, FarmState::Inactive) => return None,
        };
        Some(Notice { code, text: tws_wire::notice::farm(code, &self.name)? })
    }

    fn notice(&self) -> Option<Notice> {
        self.notice_for(self.state)
    }
}

/// The farms of a US paper account, in the order a gateway reports them: market data, then
/// historical data, then security definitions. Used when a scenario has no `farms` key.
pub(crate) fn default_farms() -> Vec<Farm> {
    let farm = |name: &str, kind, state| Farm { name: name.into(), kind, state };
    vec![
        farm("usfarm", FarmKind::Market, FarmState::Ok),
        farm("eufarm", FarmKind::Market, FarmState::Ok),
        farm("cashfarm", FarmKind::Market, FarmState::Inactive),
        farm("usopt", FarmKind::Market, FarmState::Ok),
        farm("ushmds", FarmKind::Hmds, FarmState::Ok),
        farm("euhmds", FarmKind::Hmds, FarmState::Inactive),
        farm("secdefnj", FarmKind::Secdef, FarmState::Ok),
    ]
}

/// Checks a farm list: unique names, and no state a gateway cannot report.
pub(crate) fn validate(farms: &[Farm]) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for f in farms {
        if f.name.is_empty() || f.name.contains([':', ',', ' ']) {
            return Err(format!("farm name {:?} must be non-empty, without ':', ',' or spaces", f.name));
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!("farm {} is listed twice", f.name));
        }
        if f.notice().is_none() {
            return Err(format!("farm {}: a sec-def farm is never \"inactive\" (only \"ok\" or \"broken\")", f.name));
        }
    }
    Ok(())
}

/// Why a farm change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FarmError {
    /// No farm has that name.
    #[error("no farm named {name:?}; the farms are {known}")]
    Unknown {
        /// Name asked for.
        name: String,
        /// Comma-separated names of the farms that exist.
        known: String,
    },
    /// The farm's kind has no notice for that state.
    #[error("farm {name} is a sec-def farm, which is only \"ok\" or \"broken\"")]
    NoSuchState {
        /// Farm name.
        name: String,
    },
}

/// The live farm states of one simulator.
#[derive(Debug)]
pub(crate) struct Farms {
    list: Vec<Farm>,
    /// Farms a link outage broke, to be reported OK again when the link returns.
    held: BTreeSet<String>,
}

impl Farms {
    pub(crate) fn new(list: Vec<Farm>) -> Self {
        Self { list, held: BTreeSet::new() }
    }

    /// One notice per farm, in list order: what a new connection is told after START_API.
    pub(crate) fn notices(&self) -> Vec<Notice> {
        self.list.iter().filter_map(Farm::notice).collect()
    }

    /// Sets one farm's state and returns the notice that reports it.
    pub(crate) fn set(&mut self, name: &str, state: FarmState) -> Result<Notice, FarmError> {
        let known = || self.list.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
        let Some(i) = self.list.iter().position(|f| f.name == name) else {
            return Err(FarmError::Unknown { name: name.into(), known: known() });
        };
        let farm = &mut self.list[i];
        let notice = farm.notice_for(state).ok_or_else(|| FarmError::NoSuchState { name: name.into() })?;
        farm.state = state;
        // An explicit change overrides what the outage would restore.
        self.held.remove(name);
        Ok(notice)
    }

    /// A link outage: every OK farm breaks. Returns their broken notices.
    pub(crate) fn break_ok(&mut self) -> Vec<Notice> {
        let mut out = Vec::new();
        for farm in self.list.iter_mut().filter(|f| f.state == FarmState::Ok) {
            farm.state = FarmState::Broken;
            self.held.insert(farm.name.clone());
            out.extend(farm.notice());
        }
        out
    }

    /// The link is back: the farms the outage broke are OK again. Returns their OK notices.
    pub(crate) fn restore(&mut self) -> Vec<Notice> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        for farm in self.list.iter_mut().filter(|f| held.contains(&f.name)) {
            farm.state = FarmState::Ok;
            out.extend(farm.notice());
        }
        out
    }

    /// Back to `list`; returns notices for every farm whose state changed.
    pub(crate) fn reset(&mut self, list: &[Farm]) -> Vec<Notice> {
        let changed = list
            .iter()
            .filter(|f| self.list.iter().find(|cur| cur.name == f.name).is_none_or(|cur| cur.state != f.state))
            .filter_map(Farm::notice)
            .collect();
        *self = Self::new(list.to_vec());
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(notices: &[Notice]) -> Vec<i32> {
        notices.iter().map(|n| n.code).collect()
    }

    #[test]
    fn notices_name_the_farm_after_a_colon() {
        let farms = Farms::new(default_farms());
        let n = farms.notices();
        assert_eq!(codes(&n), [2104, 2104, 2108, 2104, 2106, 2107, 2158]);
        assert_eq!(n[0].text, "Market data farm connection is OK:usfarm");
        assert_eq!(n[2].text, "Market data farm connection is inactive but should be available upon demand.:cashfarm");
        assert_eq!(n[5].text, "HMDS data farm connection is inactive but should be available upon demand.:euhmds");
        assert_eq!(n[6].text, "Sec-def data farm connection is OK:secdefnj");
    }

    #[test]
    fn an_outage_breaks_only_ok_farms_and_restores_them() {
        let mut farms = Farms::new(default_farms());
        let broken = farms.break_ok();
        assert_eq!(codes(&broken), [2103, 2103, 2103, 2105, 2157]);
        assert_eq!(broken[3].text, "HMDS data farm connection is broken:ushmds");
        // A farm set explicitly during the outage is not restored by it.
        assert_eq!(farms.set("eufarm", FarmState::Inactive).map(|n| n.code), Ok(2108));
        let ok = farms.restore();
        assert_eq!(codes(&ok), [2104, 2104, 2106, 2158]);
        assert!(farms.restore().is_empty());
    }

    #[test]
    fn unknown_names_and_impossible_states_are_refused() {
        let mut farms = Farms::new(default_farms());
        let err = farms.set("nofarm", FarmState::Broken).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("nofarm") && err.contains("usfarm, eufarm"), "{err}");
        assert!(matches!(farms.set("secdefnj", FarmState::Inactive), Err(FarmError::NoSuchState { .. })));
        assert_eq!(farms.set("usfarm", FarmState::Broken).map(|n| n.code), Ok(2103));
        assert_eq!(codes(&farms.reset(&default_farms())), [2104]);
    }

    #[test]
    fn validation() {
        assert!(validate(&default_farms()).is_ok());
        let mut twice = default_farms();
        twice.push(twice[0].clone());
        assert!(validate(&twice).is_err());
        let inactive_secdef = Farm { name: "secdefil".into(), kind: FarmKind::Secdef, state: FarmState::Inactive };
        assert!(validate(&[inactive_secdef]).is_err());
        let bad_name = Farm { name: "us:farm".into(), kind: FarmKind::Market, state: FarmState::Ok };
        assert!(validate(&[bad_name]).is_err());
    }
}
