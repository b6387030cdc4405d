//! The data kinds the service keeps and serves. Every "for each kind" list (stale marks, what
//! 1102 makes live again, metrics labels, gRPC streams, front-door feeds) derives from
//! [`DataKind::ALL`] and the per-kind table in [`crate::state`], which gives each kind its row
//! type and its hub. Adding a kind is one line here, one line in that table, its proto, one line
//! where its wire encoders are declared (`grpc/wire.rs`) and, for the TWS front door, what its
//! requests are answered with and its rows pushed as (`front_door`).
//!
//! This module depends on nothing else in the crate, so everything can name a kind.

/// The table: variant and its label in metrics and logs.
macro_rules! data_kinds {
    ($($variant:ident => $label:literal;)*) => {
        /// One kind of data the service keeps and serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) enum DataKind {
            $(
                #[doc = concat!("Labelled `", $label, "`.")]
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
    };
}

data_kinds! {
    Accounts => "accounts";
    Positions => "positions";
    Summary => "account_summary";
    AccountPnl => "account_pnl";
    PositionPnl => "position_pnl";
}

impl DataKind {
    /// Whether IB's 1102 ("connectivity restored, data maintained") makes this kind's data live
    /// again as it is. The account summary is the exception: the session asks for it again
    /// (IB refreshes its values then), so it turns live with its new rows.
    pub(crate) const fn live_again_on_1102(self) -> bool {
        !matches!(self, DataKind::Summary)
    }

    /// Whether it is followed upstream and streamed (the managed accounts are only listed).
    pub(crate) const fn streamed(self) -> bool {
        !matches!(self, DataKind::Accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_label() {
        let labels: std::collections::BTreeSet<_> = DataKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), DataKind::ALL.len(), "labels are distinct");
        assert_eq!(DataKind::Summary.label(), "account_summary", "the label metrics have always used");
    }
}
