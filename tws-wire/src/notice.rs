//! Codes and texts of the errors and notices a gateway sends, as clients match them.

#![allow(missing_docs)]

/// Connectivity between IB and the gateway lost.
pub const LINK_LOST: (i32, &str) = (1100, "Connectivity between IB and Trader Workstation has been lost.");
/// Restored, but subscriptions are gone: clients must ask again.
pub const LINK_RESTORED_DATA_LOST: (i32, &str) =
    (1101, "Connectivity between IB and Trader Workstation has been restored - data lost.");
/// Restored with subscriptions kept.
pub const LINK_RESTORED_DATA_MAINTAINED: (i32, &str) =
    (1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.");
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

/// The 326 text, with the id.
pub fn client_id_in_use(client_id: i32) -> String {
    format!("Unable to connect as the client id is already in use. Retry with a unique client id. ({client_id})")
}

/// 321 for an account the connection does not manage.
pub fn unknown_account(account: &str) -> String {
    format!("Error validating request: unknown account {account}")
}

/// The codes of the data-farm notices (OK, broken, inactive), which are informational.
pub fn is_farm(code: i32) -> bool {
    matches!(code, 2103..=2108 | 2119 | 2157 | 2158)
}

/// A data-farm notice as a gateway words it, with the farm's name after the colon
/// ("Market data farm connection is OK:usfarm"). `None` for codes that are not farm notices.
pub fn farm(code: i32, name: &str) -> Option<String> {
    let text = match code {
        2103 => "Market data farm connection is broken",
        2104 => "Market data farm connection is OK",
        2108 => "Market data farm connection is inactive but should be available upon demand.",
        2119 => "Market data farm is connecting",
        2105 => "HMDS data farm connection is broken",
        2106 => "HMDS data farm connection is OK",
        2107 => "HMDS data farm connection is inactive but should be available upon demand.",
        2157 => "Sec-def data farm connection is broken",
        2158 => "Sec-def data farm connection is OK",
        _ => return None,
    };
    Some(format!("{text}:{name}"))
}
