//! Codes and texts of the errors and notices a gateway sends, as clients match them.

#![allow(missing_docs)]

/// The codes, for `match` arms.
pub mod code {
    #![allow(missing_docs)]
    pub const LINK_LOST: i32 = 1100;
    pub const LINK_RESTORED_DATA_LOST: i32 = 1101;
    pub const LINK_RESTORED_DATA_MAINTAINED: i32 = 1102;
    /// Connectivity between the gateway and IB lost (a gateway's variant of 1100).
    pub const LINK_LOST_GATEWAY: i32 = 2110;
    /// The gateway reset its API port: every API client must reconnect.
    pub const PORT_RESET: i32 = 1300;
    pub const MARKET_FARM_BROKEN: i32 = 2103;
    pub const MARKET_FARM_OK: i32 = 2104;
    pub const HMDS_FARM_BROKEN: i32 = 2105;
    pub const HMDS_FARM_OK: i32 = 2106;
    pub const HMDS_FARM_INACTIVE: i32 = 2107;
    pub const MARKET_FARM_INACTIVE: i32 = 2108;
    pub const MARKET_FARM_CONNECTING: i32 = 2119;
    pub const SECDEF_FARM_BROKEN: i32 = 2157;
    pub const SECDEF_FARM_OK: i32 = 2158;
}

/// Connectivity between IB and the gateway lost.
pub const LINK_LOST: (i32, &str) = (code::LINK_LOST, "Connectivity between IB and Trader Workstation has been lost.");
/// Restored, but subscriptions are gone: clients must ask again.
pub const LINK_RESTORED_DATA_LOST: (i32, &str) =
    (code::LINK_RESTORED_DATA_LOST, "Connectivity between IB and Trader Workstation has been restored - data lost.");
/// Restored with subscriptions kept.
pub const LINK_RESTORED_DATA_MAINTAINED: (i32, &str) = (
    code::LINK_RESTORED_DATA_MAINTAINED,
    "Connectivity between IB and Trader Workstation has been restored - data maintained.",
);
/// A second START_API on a started connection.
pub const ALREADY_STARTED: (i32, &str) = (321, "Error validating request: API already started");
/// A third account-summary subscription on one connection.
pub const TOO_MANY_SUMMARIES: (i32, &str) =
    (322, "Error processing request: Maximum number of account summary requests exceeded");
/// cancelPnL for an id that is not a reqPnL.
pub const PNL_NOT_SUBSCRIBED: (i32, &str) = (10185, "Failed to cancel PNL (not subscribed)");
/// cancelPnLSingle for an id that is not a reqPnLSingle.
pub const PNL_SINGLE_NOT_SUBSCRIBED: (i32, &str) = (10186, "Failed to cancel PNL single (not subscribed)");

/// Error 321 for an order-class request on a read-only API connection.
pub const READ_ONLY_CODE: i32 = 321;
/// Error 326: the client id is taken.
pub const CLIENT_ID_IN_USE_CODE: i32 = 326;
/// Error 320: a request that could not be read (the gateway then resets the connection).
pub const UNREADABLE_CODE: i32 = 320;
/// Error 322 for a request the server cannot process. Clients treat it as an error of that
/// request (ib_async counts 321 as a warning and would wait forever).
pub const UNSUPPORTED_CODE: i32 = 322;
/// Error 321 for a request that fails validation.
pub const INVALID_CODE: i32 = 321;

/// What a read-only gateway answers to an order, a cancel, an exercise or a global cancel.
pub fn read_only(request: &str) -> String {
    format!("Error validating request.-'{request}' : cause - The API interface is currently in Read-Only mode.")
}

/// 322 for a subscription beyond a server's limit for its kind.
pub fn too_many(what: &str, max: usize) -> String {
    format!("Error processing request: Maximum number of {what} requests ({max}) exceeded")
}

/// The 326 text, with the id.
pub fn client_id_in_use(client_id: i32) -> String {
    format!("Unable to connect as the client id is already in use. Retry with a unique client id. ({client_id})")
}

/// Characters of a client's own value an error text repeats: the limit gateway-svc's gRPC side
/// applies to the values it quotes (its filter's `MAX_LEN`), so that a client sending a
/// megabyte in one field is not sent the megabyte back.
pub const ECHO_MAX_CHARS: usize = 64;

/// `value` as an error text quotes it: its first [`ECHO_MAX_CHARS`] characters, then `…` when
/// it was longer.
pub fn echoed(value: &str) -> String {
    let mut shown: String = value.chars().take(ECHO_MAX_CHARS).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    shown
}

/// 321 for an account the connection does not manage.
pub fn unknown_account(account: &str) -> String {
    format!("Error validating request: unknown account {}", echoed(account))
}

/// 321 for an account-summary group that is neither `All` nor a managed account.
pub fn unknown_group(group: &str) -> String {
    format!("Error validating request: unknown account group {}", echoed(group))
}

/// The codes of the data-farm notices (OK, broken, inactive), which are informational.
pub fn is_farm(code: i32) -> bool {
    farm(code, "").is_some()
}

/// A data-farm notice as a gateway words it, with the farm's name after the colon
/// ("Market data farm connection is OK:usfarm"). `None` for codes that are not farm notices.
pub fn farm(code: i32, name: &str) -> Option<String> {
    use code::*;
    let text = match code {
        MARKET_FARM_BROKEN => "Market data farm connection is broken",
        MARKET_FARM_OK => "Market data farm connection is OK",
        MARKET_FARM_INACTIVE => "Market data farm connection is inactive but should be available upon demand.",
        MARKET_FARM_CONNECTING => "Market data farm is connecting",
        HMDS_FARM_BROKEN => "HMDS data farm connection is broken",
        HMDS_FARM_OK => "HMDS data farm connection is OK",
        HMDS_FARM_INACTIVE => "HMDS data farm connection is inactive but should be available upon demand.",
        SECDEF_FARM_BROKEN => "Sec-def data farm connection is broken",
        SECDEF_FARM_OK => "Sec-def data farm connection is OK",
        _ => return None,
    };
    Some(format!("{text}:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_values_are_echoed_cut_to_64_characters() {
        assert_eq!(unknown_account("DU1"), "Error validating request: unknown account DU1");
        let long = "é".repeat(ECHO_MAX_CHARS + 1);
        assert_eq!(echoed(&long), format!("{}…", "é".repeat(ECHO_MAX_CHARS)));
        assert_eq!(echoed(&long[..2 * ECHO_MAX_CHARS]), "é".repeat(ECHO_MAX_CHARS), "64 characters are not cut");
    }
}
