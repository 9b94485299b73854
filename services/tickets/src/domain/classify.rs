//! Classification on intake: ordered rules that match a ticket's text,
//! channel, type and the customer's category, and set its category, priority
//! and team. Two rules always apply on top: a VIP customer's ticket is at
//! least HIGH, and a VIP customer's complaint is URGENT.

/// Priorities from most to least urgent, as stored.
pub const PRIORITIES: [&str; 4] = ["URGENT", "HIGH", "NORMAL", "LOW"];

fn urgency(priority: &str) -> usize {
    PRIORITIES.iter().position(|p| *p == priority).unwrap_or(PRIORITIES.len())
}

/// The more urgent of two stored priorities.
pub fn more_urgent<'a>(a: &'a str, b: &'a str) -> &'a str {
    if urgency(b) < urgency(a) { b } else { a }
}

/// What a rule looks at; every non-empty list must match (lists match any of their entries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Case-insensitive words or phrases searched in the subject and description.
    pub keywords: Vec<String>,
    /// Stored channel names.
    pub channels: Vec<String>,
    /// Stored ticket type names.
    pub types: Vec<String>,
    /// Customer categories (VIP, REGULAR, NEW, POTENTIAL).
    pub customer_categories: Vec<String>,
}

/// What a matching rule does; empty fields leave the ticket alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// Sets the category when the ticket has none.
    pub category: String,
    /// Raises the priority to at least this.
    pub priority: String,
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
    pub channel: String,
    pub kind: String,
    pub customer_category: String,
    pub category: String,
    pub priority: String,
    pub team: String,
}

impl Conditions {
    fn matches(&self, t: &Intake) -> bool {
        let text = format!("{}\n{}", t.subject, t.description).to_lowercase();
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        (self.keywords.is_empty() || self.keywords.iter().any(|k| text.contains(&k.to_lowercase())))
            && any(&self.channels, &t.channel)
            && any(&self.types, &t.kind)
            && any(&self.customer_categories, &t.customer_category)
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
        if !a.priority.is_empty() {
            ticket.priority = more_urgent(&ticket.priority, &a.priority).to_owned();
        }
    }
    if ticket.customer_category == "VIP" {
        let floor = if ticket.kind == "COMPLAINT" { "URGENT" } else { "HIGH" };
        ticket.priority = more_urgent(&ticket.priority, floor).to_owned();
    }
    (ticket, matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intake(kind: &str, customer_category: &str) -> Intake {
        Intake {
            subject: "Invoice is WRONG".into(),
            description: "charged twice".into(),
            channel: "EMAIL".into(),
            kind: kind.into(),
            customer_category: customer_category.into(),
            category: String::new(),
            priority: "NORMAL".into(),
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
        assert_eq!(classify(intake("QUESTION", "VIP"), &[]).0.priority, "HIGH");
        assert_eq!(classify(intake("COMPLAINT", "VIP"), &[]).0.priority, "URGENT");
        assert_eq!(classify(intake("COMPLAINT", "REGULAR"), &[]).0.priority, "NORMAL");
        let mut low = intake("QUESTION", "VIP");
        low.priority = "URGENT".into();
        assert_eq!(classify(low, &[]).0.priority, "URGENT", "never lowered");
    }

    #[test]
    fn rules_apply_in_order_first_category_and_team_win_priority_only_rises() {
        let rules = [
            rule(20, &["invoice"], Actions { category: "billing-late".into(), priority: "LOW".into(), team: "teams/b".into() }),
            rule(10, &["charged"], Actions { category: "billing".into(), priority: "HIGH".into(), team: String::new() }),
            rule(30, &["refund"], Actions { category: "refunds".into(), ..Default::default() }),
        ];
        let (t, matched) = classify(intake("PROBLEM", ""), &rules);
        assert_eq!(matched, [10, 20]);
        assert_eq!((t.category.as_str(), t.priority.as_str(), t.team.as_str()), ("billing", "HIGH", "teams/b"));
    }

    #[test]
    fn every_condition_must_hold_and_caller_values_are_kept() {
        let mut r = rule(1, &[], Actions { category: "vip-desk".into(), ..Default::default() });
        r.conditions.channels = vec!["PHONE".into()];
        r.conditions.customer_categories = vec!["VIP".into()];
        assert!(classify(intake("QUESTION", "VIP"), std::slice::from_ref(&r)).1.is_empty(), "channel differs");
        let mut phone = intake("QUESTION", "VIP");
        phone.channel = "PHONE".into();
        phone.category = "mine".into();
        let (t, matched) = classify(phone, &[r]);
        assert_eq!((matched, t.category.as_str()), (vec![1], "mine"));
    }
}
