//! Classification on intake: ordered rules that match a ticket's text,
//! channel, type and the customer's category, and set its category, priority
//! and team. Two rules always apply on top: a VIP customer's ticket is at
//! least HIGH, and a VIP customer's complaint is URGENT.

use super::ticket::{OptionalChannel, Priority, TicketType};

/// What a rule looks at; every non-empty list must match (lists match any of their entries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Case-insensitive words or phrases searched in the subject and description.
    pub keywords: Vec<String>,
    /// Intake channels.
    pub channels: Vec<super::ticket::Channel>,
    /// Ticket types.
    pub types: Vec<TicketType>,
    /// Customer categories (VIP, REGULAR, NEW, POTENTIAL).
    pub customer_categories: Vec<String>,
}

/// What a matching rule does; empty fields leave the ticket alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Sets the category when the ticket has none.
    pub category: String,
    /// Raises the priority to at least this.
    pub priority: Option<Priority>,
    /// Sets the team ("teams/{id}") when the ticket has none.
    pub team: String,
}

/// One rule, applied in ascending `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Evaluation order.
    pub position: i32,
    /// When it applies.
    pub conditions: Conditions,
    /// What it does.
    pub actions: Actions,
}

/// The ticket as classification sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub subject: String,
    pub description: String,
    pub channel: OptionalChannel,
    pub kind: TicketType,
    /// The customer's category in profiles: VIP, REGULAR, NEW, POTENTIAL or "".
    pub customer_category: String,
    pub category: String,
    pub priority: Priority,
    pub team: String,
}

impl Conditions {
    fn matches(&self, t: &Intake) -> bool {
        let text = format!("{}\n{}", t.subject, t.description).to_lowercase();
        (self.keywords.is_empty() || self.keywords.iter().any(|k| text.contains(&k.to_lowercase())))
            && (self.channels.is_empty() || t.channel.0.is_some_and(|c| self.channels.contains(&c)))
            && (self.types.is_empty() || self.types.contains(&t.kind))
            && (self.customer_categories.is_empty() || self.customer_categories.contains(&t.customer_category))
    }
}

/// Applies `rules` (any order; sorted here) and the built-in VIP rules.
/// Returns the classified ticket and the positions of the rules that matched.
pub fn classify(mut ticket: Intake, rules: &[Rule]) -> (Intake, Vec<i32>) {
    let mut ordered: Vec<&Rule> = rules.iter().collect();
    ordered.sort_by_key(|r| r.position);
    let mut matched = Vec::new();
    for rule in ordered {
        if !rule.conditions.matches(&ticket) {
            continue;
        }
        matched.push(rule.position);
        let a = &rule.actions;
        if ticket.category.is_empty() && !a.category.is_empty() {
            ticket.category = a.category.clone();
        }
        if ticket.team.is_empty() && !a.team.is_empty() {
            ticket.team = a.team.clone();
        }
        if let Some(priority) = a.priority {
            ticket.priority = ticket.priority.more_urgent(priority);
        }
    }
    if ticket.customer_category == "VIP" {
        let floor = if ticket.kind == TicketType::Complaint { Priority::Urgent } else { Priority::High };
        ticket.priority = ticket.priority.more_urgent(floor);
    }
    (ticket, matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::ticket::Channel;

    fn intake(kind: TicketType, customer_category: &str) -> Intake {
        Intake {
            subject: "Invoice is WRONG".into(),
            description: "charged twice".into(),
            channel: OptionalChannel(Some(Channel::Email)),
            kind,
            customer_category: customer_category.into(),
            category: String::new(),
            priority: Priority::Normal,
            team: String::new(),
        }
    }

    fn rule(position: i32, keywords: &[&str], actions: Actions) -> Rule {
        Rule {
            position,
            conditions: Conditions { keywords: keywords.iter().map(|k| k.to_string()).collect(), ..Default::default() },
            actions,
        }
    }

    #[test]
    fn vip_customers_get_at_least_high_and_vip_complaints_are_urgent() {
        assert_eq!(classify(intake(TicketType::Question, "VIP"), &[]).0.priority, Priority::High);
        assert_eq!(classify(intake(TicketType::Complaint, "VIP"), &[]).0.priority, Priority::Urgent);
        assert_eq!(classify(intake(TicketType::Complaint, "REGULAR"), &[]).0.priority, Priority::Normal);
        let mut urgent = intake(TicketType::Question, "VIP");
        urgent.priority = Priority::Urgent;
        assert_eq!(classify(urgent, &[]).0.priority, Priority::Urgent, "never lowered");
    }

    #[test]
    fn rules_apply_in_order_first_category_and_team_win_priority_only_rises() {
        let rules = [
            rule(20, &["invoice"], Actions { category: "billing-late".into(), priority: Some(Priority::Low), team: "teams/b".into() }),
            rule(10, &["charged"], Actions { category: "billing".into(), priority: Some(Priority::High), team: String::new() }),
            rule(30, &["refund"], Actions { category: "refunds".into(), ..Default::default() }),
        ];
        let (t, matched) = classify(intake(TicketType::Problem, ""), &rules);
        assert_eq!(matched, [10, 20]);
        assert_eq!((t.category.as_str(), t.priority, t.team.as_str()), ("billing", Priority::High, "teams/b"));
    }

    #[test]
    fn every_condition_must_hold_and_caller_values_are_kept() {
        let mut r = rule(1, &[], Actions { category: "vip-desk".into(), ..Default::default() });
        r.conditions.channels = vec![Channel::Phone];
        r.conditions.customer_categories = vec!["VIP".into()];
        assert!(classify(intake(TicketType::Question, "VIP"), std::slice::from_ref(&r)).1.is_empty(), "channel differs");
        let mut phone = intake(TicketType::Question, "VIP");
        phone.channel = OptionalChannel(Some(Channel::Phone));
        phone.category = "mine".into();
        let (t, matched) = classify(phone, &[r]);
        assert_eq!((matched, t.category.as_str()), (vec![1], "mine"));
    }
}
