//! What the session does with IB's notices: the link (1100/1101/1102/2110, 1300), data farms
//! (reported, never turned into staleness: see [`crate::farm`]) and the API library's own
//! notice-lag signal.

use ibapi::prelude::Notice;
use tracing::{debug, info, warn};

use super::{Actor, End, lost};
use crate::farm::{self, Farm, FarmStatus};
use crate::kind::DataKind;

/// What a notice asks the session to do.
pub(super) enum NoticeAction {
    None,
    Teardown(End),
    /// Every subscription again (1101: IB dropped them).
    Resync,
    /// The account summary again (1102: data maintained, but the summary is refreshed).
    RefreshSummary,
}

impl Actor {
    pub(super) fn on_notice(&self, notice: &Notice, link_lost: &mut bool) -> NoticeAction {
        let code = notice.code;
        if let Some(farm) = farm::parse(code, &notice.message) {
            self.state.metrics.upstream_notice("farm");
            self.on_farm(farm);
            return NoticeAction::None;
        }
        use tws_wire::notice::code;
        match code {
            code::LINK_LOST | code::LINK_LOST_GATEWAY => {
                self.state.metrics.upstream_notice("link");
                warn!(code, message = %notice.message, "IB link lost; serving last known data as stale");
                *link_lost = true;
                self.state.mark_all_stale(&format!("IB link lost ({code})"));
                NoticeAction::None
            }
            code::LINK_RESTORED_DATA_LOST => {
                self.state.metrics.upstream_notice("link");
                info!(code, "IB link restored, data lost: resubscribing");
                *link_lost = false;
                NoticeAction::Resync
            }
            code::LINK_RESTORED_DATA_MAINTAINED => {
                self.state.metrics.upstream_notice("link");
                info!(code, "IB link restored, data maintained: refreshing account summary");
                *link_lost = false;
                // Every subscription but the summary's carries on: its data is live again. (PnL
                // was forgotten here once, when this was a list by hand, and stayed STALE after
                // every 1102: data-truth seed 20017. The kinds now come from one table.)
                // Only data this session has already synced, though: rows still from the previous
                // session (PnL, subscribed after READY, may still be collecting its first set)
                // stay stale until their own resync.
                for kind in DataKind::ALL.iter().filter(|k| k.live_again_on_1102()) {
                    self.state.freshen(*kind).live_again(self.epoch);
                }
                NoticeAction::RefreshSummary
            }
            code::PORT_RESET => {
                self.state.metrics.upstream_notice("link");
                NoticeAction::Teardown(lost("port_reset", "gateway reset its API port (1300)"))
            }
            // The crate dropped notices for us: a 1100 or 1101 may be among them, so nothing
            // we concluded from notices can be trusted. A new session re-learns all of it.
            ibapi::NOTICE_STREAM_LAG_CODE => {
                self.state.metrics.upstream_notice("other");
                NoticeAction::Teardown(lost(
                    "notice_lag",
                    format!("upstream notices were dropped ({})", notice.message),
                ))
            }
            _ => {
                self.state.metrics.upstream_notice("other");
                debug!(code, message = %notice.message, "notice");
                NoticeAction::None
            }
        }
    }

    /// Records a farm's new status. Farms carry no account data (see [`crate::farm`]): they
    /// are reported, never turned into staleness or NOT_SERVING.
    fn on_farm(&self, farm: Farm) {
        match farm.status {
            FarmStatus::Broken => {
                warn!(farm = %farm.name, kind = farm.kind.as_str(), code = farm.code, "data farm broken (account data unaffected)");
            }
            _ => info!(farm = %farm.name, kind = farm.kind.as_str(), status = farm.status.as_str(), "data farm"),
        }
        self.state.metrics.farm(&farm);
        self.state.update_health(|h| match h.farms.iter_mut().find(|f| f.name == farm.name) {
            Some(known) if known.status == farm.status => {}
            Some(known) => *known = farm,
            None => {
                h.farms.push(farm);
                h.farms.sort_by(|a, b| a.name.cmp(&b.name));
            }
        });
    }
}
