//! Choosing an agent for a ticket: among the team's members who are available,
//! below their capacity and skilled for the ticket's category, either the next
//! one after the last assignee (round robin) or the least loaded.

/// How a team hands out tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In turn, by agent id, after the last one assigned.
    RoundRobin,
    /// To the member with the fewest open tickets (ties by agent id).
    LeastLoaded,
    /// Never automatically.
    Manual,
}

impl Strategy {
    /// Stored and wire name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "ROUND_ROBIN",
            Strategy::LeastLoaded => "LEAST_LOADED",
            Strategy::Manual => "MANUAL",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Strategy::RoundRobin, Strategy::LeastLoaded, Strategy::Manual].into_iter().find(|s| s.name() == name)
    }
}

/// A team member as seen by dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Agent subject.
    pub agent: String,
    /// Most open tickets the agent takes.
    pub capacity: i64,
    /// Open tickets assigned now.
    pub load: i64,
    /// Categories the agent handles; empty = all.
    pub skills: Vec<String>,
    /// Taking work now.
    pub available: bool,
}

impl Candidate {
    fn eligible(&self, category: &str) -> bool {
        self.available
            && self.load < self.capacity
            && (self.skills.is_empty() || category.is_empty() || self.skills.iter().any(|s| s == category))
    }
}

/// The agent to assign, or `None` when nobody fits (the ticket waits in the team queue).
pub fn choose<'a>(strategy: Strategy, candidates: &'a [Candidate], category: &str, last_assigned: &str) -> Option<&'a str> {
    let mut eligible: Vec<&Candidate> = candidates.iter().filter(|c| c.eligible(category)).collect();
    eligible.sort_by(|a, b| a.agent.cmp(&b.agent));
    match strategy {
        Strategy::Manual => None,
        Strategy::LeastLoaded => eligible.iter().min_by_key(|c| c.load).map(|c| c.agent.as_str()),
        Strategy::RoundRobin => eligible.iter().find(|c| c.agent.as_str() > last_assigned).or(eligible.first()).map(|c| c.agent.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(agent: &str, load: i64, capacity: i64, skills: &[&str], available: bool) -> Candidate {
        Candidate { agent: agent.into(), capacity, load, skills: skills.iter().map(|s| s.to_string()).collect(), available }
    }

    #[test]
    fn round_robin_takes_turns_and_wraps() {
        let team = [member("bob", 0, 5, &[], true), member("alice", 0, 5, &[], true), member("carol", 0, 5, &[], true)];
        assert_eq!(choose(Strategy::RoundRobin, &team, "", ""), Some("alice"));
        assert_eq!(choose(Strategy::RoundRobin, &team, "", "alice"), Some("bob"));
        assert_eq!(choose(Strategy::RoundRobin, &team, "", "carol"), Some("alice"));
        assert_eq!(choose(Strategy::RoundRobin, &team, "", "zed"), Some("alice"), "a departed last assignee restarts the turn");
    }

    #[test]
    fn only_available_skilled_members_with_spare_capacity_qualify() {
        let team = [
            member("alice", 5, 5, &[], true),        // full
            member("bob", 0, 5, &["billing"], true), // wrong skill for "tech"
            member("carol", 0, 5, &[], false),       // away
            member("dave", 1, 5, &["tech"], true),
        ];
        assert_eq!(choose(Strategy::RoundRobin, &team, "tech", ""), Some("dave"));
        assert_eq!(choose(Strategy::LeastLoaded, &team, "billing", ""), Some("bob"));
        assert_eq!(choose(Strategy::LeastLoaded, &team[..3], "tech", ""), None);
        assert_eq!(choose(Strategy::Manual, &team, "tech", ""), None);
    }

    #[test]
    fn least_loaded_prefers_the_emptiest_then_the_first_by_id() {
        let team = [member("bob", 2, 5, &[], true), member("alice", 3, 5, &[], true), member("carol", 2, 5, &[], true)];
        assert_eq!(choose(Strategy::LeastLoaded, &team, "", ""), Some("bob"));
        assert!(Strategy::parse("LEAST_LOADED") == Some(Strategy::LeastLoaded) && Strategy::parse("x").is_none());
    }
}
