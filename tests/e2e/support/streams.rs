//! gateway-svc's streams as a client folds them: with `ibgw-client`'s view, which every client of
//! the project uses, and the shapes the tests compare with the simulator's book.

use std::collections::BTreeMap;

use ibgw_client::{Kind, Positions, Summary, View};

/// Positions by (account, contract id): quantity.
pub type Quantities = BTreeMap<(String, i64), String>;
/// Account-summary values by (account, tag, currency).
pub type Values = BTreeMap<(String, String, String), String>;

/// Applies `m` to `view`. It must follow the previous message: a skipped seq, a first message
/// other than a SNAPSHOT or an epoch change without RESYNC fails the test.
pub fn fold<K: Kind>(view: &mut View<K>, m: &K::Message)
where
    K::Message: Clone,
{
    if let Err(gap) = view.apply_message(m.clone()) {
        panic!("{} stream does not follow: {gap}", K::NAME);
    }
}

/// A position view's quantities.
pub fn quantities(view: &View<Positions>) -> Quantities {
    view.rows().iter().map(|(k, p)| (k.clone(), p.quantity.clone())).collect()
}

/// A summary view's values.
pub fn values(view: &View<Summary>) -> Values {
    view.rows().iter().map(|(k, v)| (k.clone(), v.value.clone())).collect()
}
