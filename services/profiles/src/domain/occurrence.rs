//! An occurrence's writable data after validation (客户事件).

use chrono::NaiveDate;
use uuid::Uuid;

/// An occurrence as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceDraft {
    /// The tenant's category key.
    pub category: String,
    pub occur_date: NaiveDate,
    pub premises: Option<Uuid>,
    /// Who handled it; the caller when a create leaves it empty.
    pub handler: String,
    pub description: String,
}

/// Whether `category` is a category key: 1-50 letters, digits, '_' or '-'.
pub fn is_category(category: &str) -> bool {
    (1..=50).contains(&category.chars().count()) && category.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn categories_are_short_keys() {
        assert!(super::is_category("renovation"));
        assert!(super::is_category("装修"));
        assert!(!super::is_category(""));
        assert!(!super::is_category("two words"));
        assert!(!super::is_category(&"x".repeat(51)));
    }
}
