//! The data kinds the service keeps, each with one hub in [`State`]. Every "for each kind" list
//! (stale marks, what 1102 makes live again, metrics labels, gRPC streams, front-door feeds)
//! derives from the one table at the bottom of this file, so adding a kind is one line there,
//! one hub field in [`State`], its proto, and one line where its wire encoders are declared.

use crate::hub::{Hub, HubWriter};
#[cfg(test)]
use crate::model::Freshness;
use crate::model::{AccountPnlRow, AccountRow, PositionPnlRow, PositionRow, Row, SummaryRow};
use crate::state::{State, StateWriter};

/// A row type that is one of the data kinds: which one, and where its hub is.
pub(crate) trait Kind: Row {
    /// The kind.
    const KIND: DataKind;
    /// Its hub in the shared state, for reading.
    fn hub(state: &State) -> &Hub<Self>;
    /// Its hub's writer (the session's).
    fn writer(w: &StateWriter) -> &HubWriter<Self>;
}

/// What the session does to every kind at once, whatever its rows.
pub(crate) trait Freshen {
    /// Marks the data stale for `reason` (see [`HubWriter::mark_stale`]).
    fn mark_stale(&self, reason: &str);
    /// Marks data synced in session `epoch` live again (see [`HubWriter::live_again`]).
    fn live_again(&self, epoch: u64);
    /// How fresh the data is now (what the tests check).
    #[cfg(test)]
    fn freshness(&self) -> Freshness;
}

impl<T: Row> Freshen for HubWriter<T> {
    fn mark_stale(&self, reason: &str) {
        HubWriter::mark_stale(self, reason);
    }

    fn live_again(&self, epoch: u64) {
        HubWriter::live_again(self, epoch);
    }

    #[cfg(test)]
    fn freshness(&self) -> Freshness {
        self.snapshot().freshness.clone()
    }
}

impl DataKind {
    /// Whether IB's 1102 ("connectivity restored, data maintained") makes this kind's data live
    /// again as it is. The account summary is the exception: the session asks for it again
    /// (IB refreshes its values then), so it turns live with its new rows.
    pub(crate) const fn live_again_on_1102(self) -> bool {
        !matches!(self, DataKind::Summary)
    }

    /// Whether clients can stream it (the managed accounts are only listed).
    pub(crate) const fn streamed(self) -> bool {
        !matches!(self, DataKind::Accounts)
    }
}

/// The table: variant, row type, hub field of [`State`], label in metrics and logs.
macro_rules! data_kinds {
    ($($variant:ident => $row:ty, $field:ident, $label:literal;)*) => {
        /// One kind of data the service keeps and serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum DataKind {
            $(
                #[doc = concat!("Rows of `", stringify!($row), "`, labelled `", $label, "`.")]
                $variant,
            )*
        }

        impl DataKind {
            /// Every kind, in a fixed order.
            pub(crate) const ALL: &'static [DataKind] = &[$(DataKind::$variant),*];

            /// Its name in metrics labels and logs.
            pub(crate) const fn label(self) -> &'static str {
                match self {
                    $(DataKind::$variant => $label,)*
                }
            }
        }

        $(
            impl Kind for $row {
                const KIND: DataKind = DataKind::$variant;
                fn hub(state: &State) -> &Hub<Self> {
                    &state.$field
                }
                fn writer(w: &StateWriter) -> &HubWriter<Self> {
                    &w.$field
                }
            }
        )*

        impl StateWriter {
            /// The hub of `kind`, for what the session does to every kind alike.
            pub(crate) fn freshen(&self, kind: DataKind) -> &dyn Freshen {
                match kind {
                    $(DataKind::$variant => &self.$field,)*
                }
            }
        }
    };
}

data_kinds! {
    Accounts => AccountRow, accounts, "accounts";
    Positions => PositionRow, positions, "positions";
    Summary => SummaryRow, summary, "account_summary";
    AccountPnl => AccountPnlRow, account_pnl, "account_pnl";
    PositionPnl => PositionPnlRow, position_pnl, "position_pnl";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_label_and_hub() {
        let labels: std::collections::BTreeSet<_> = DataKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), DataKind::ALL.len(), "labels are distinct");
        assert_eq!(<PositionRow as Kind>::KIND, DataKind::Positions);
        assert_eq!(<SummaryRow as Kind>::KIND.label(), "account_summary", "the label metrics have always used");
    }

    #[test]
    fn marking_every_kind_stale_reaches_every_hub() {
        let state = StateWriter::new("127.0.0.1:4002", 0);
        state.mark_all_stale("IB link lost (1100)");
        for kind in DataKind::ALL {
            // Data never synced stays UNKNOWN, now for the new reason.
            let reason = match state.freshen(*kind).freshness() {
                Freshness::Unknown { reason } => reason,
                other => panic!("{kind:?}: {other:?}"),
            };
            assert_eq!(reason, "IB link lost (1100)", "{kind:?}");
        }
    }
}
