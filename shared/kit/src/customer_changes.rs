//! What other services act on in profiles' event stream (followed with
//! [`crate::follow`]): a customer's erasure, and customers merged into a
//! survivor or unmerged again — decoded once, here, for every follower.

use crm_proto::crm::{
    events::v1::Event,
    profiles::v1::{CustomerErased, CustomersMerged, CustomersUnmerged},
};
use prost::{Message, Name};
use uuid::Uuid;

/// An event of profiles' stream, as a follower acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerChange {
    /// A customer's personal data was erased.
    Erased(Uuid),
    /// Customers were merged into a survivor.
    Merged {
        /// The merge (`customerMerges/{id}`), to undo it by.
        merge: Uuid,
        /// The customer that remains.
        survivor: Uuid,
        /// The customers merged into it.
        merged: Vec<Uuid>,
    },
    /// A merge was undone.
    Unmerged {
        /// The merge undone.
        merge: Uuid,
    },
    /// Nothing a follower acts on (or an event it cannot read).
    Other,
}

/// The event types a follower of customer changes subscribes to.
pub fn event_types() -> Vec<String> {
    vec![CustomerErased::full_name(), CustomersMerged::full_name(), CustomersUnmerged::full_name()]
}

fn id_in(name: &str, collection: &str) -> Option<Uuid> {
    name.strip_prefix(collection).and_then(|id| Uuid::parse_str(id).ok())
}

impl CustomerChange {
    /// What `event` says.
    pub fn of(event: &Event) -> Self {
        let data = event.data.as_ref().map(|any| any.value.as_slice()).unwrap_or_default();
        let customer = |name: &str| id_in(name, "customers/");
        let merge = |name: &str| id_in(name, "customerMerges/");
        let decoded = if event.r#type == CustomerErased::full_name() {
            CustomerErased::decode(data).ok().and_then(|e| customer(&e.customer)).map(Self::Erased)
        } else if event.r#type == CustomersMerged::full_name() {
            CustomersMerged::decode(data).ok().and_then(|m| {
                Some(Self::Merged {
                    merge: merge(&m.customer_merge)?,
                    survivor: customer(&m.survivor)?,
                    merged: m.merged.iter().filter_map(|c| customer(c)).collect(),
                })
            })
        } else if event.r#type == CustomersUnmerged::full_name() {
            CustomersUnmerged::decode(data).ok().and_then(|u| merge(&u.customer_merge)).map(|merge| Self::Unmerged { merge })
        } else {
            None
        };
        decoded.unwrap_or(Self::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<M: Message + Name>(message: &M) -> Event {
        Event {
            r#type: M::full_name(),
            data: Some(prost_types::Any { type_url: M::type_url(), value: message.encode_to_vec() }),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_erasures_and_merges_and_ignores_the_rest() {
        let (a, b, m) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            CustomerChange::of(&event(&CustomerErased { customer: format!("customers/{a}"), ..Default::default() })),
            CustomerChange::Erased(a)
        );
        let merged = CustomersMerged {
            customer_merge: format!("customerMerges/{m}"),
            survivor: format!("customers/{a}"),
            merged: vec![format!("customers/{b}")],
        };
        assert_eq!(CustomerChange::of(&event(&merged)), CustomerChange::Merged { merge: m, survivor: a, merged: vec![b] });
        let unmerged = CustomersUnmerged { customer_merge: format!("customerMerges/{m}"), ..Default::default() };
        assert_eq!(CustomerChange::of(&event(&unmerged)), CustomerChange::Unmerged { merge: m });
        assert_eq!(
            CustomerChange::of(&event(&CustomersUnmerged { customer_merge: "nonsense".into(), ..Default::default() })),
            CustomerChange::Other
        );
        assert_eq!(CustomerChange::of(&Event::default()), CustomerChange::Other);
    }
}
