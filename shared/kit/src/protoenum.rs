//! Proto enums stored as short names: `CUSTOMER_CATEGORY_VIP` ⇄ `VIP`,
//! `*_UNSPECIFIED` (0) ⇄ "". Short names keep the database readable and
//! independent of proto numbering.

/// The stored short name of enum number `value`, given the generated
/// `as_str_name` (through `name_of`) and the value prefix. 0 → "";
/// an unknown number is an error.
pub fn short_name(value: i32, name_of: impl Fn(i32) -> Option<&'static str>, prefix: &str) -> Result<String, (&'static str, String)> {
    if value == 0 {
        return Ok(String::new());
    }
    name_of(value).map(|n| n.trim_start_matches(prefix).to_owned()).ok_or(("INVALID_ENUM", format!("{value} is not a known value")))
}

/// The enum number of a stored short name ("" or unknown → 0), given the
/// generated `from_str_name` (through `number_of`).
pub fn number(short: &str, prefix: &str, number_of: impl Fn(&str) -> Option<i32>) -> i32 {
    if short.is_empty() { 0 } else { number_of(&format!("{prefix}{short}")).unwrap_or(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(v: i32) -> Option<&'static str> {
        [(1, "COLOR_RED"), (2, "COLOR_DARK_BLUE")].iter().find(|(n, _)| *n == v).map(|(_, s)| *s)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(short_name(2, name_of, "COLOR_").unwrap(), "DARK_BLUE");
        assert_eq!(short_name(0, name_of, "COLOR_").unwrap(), "");
        assert_eq!(short_name(9, name_of, "COLOR_").unwrap_err().0, "INVALID_ENUM");
        let number_of = |s: &str| [(1, "COLOR_RED"), (2, "COLOR_DARK_BLUE")].iter().find(|(_, n)| *n == s).map(|(v, _)| *v);
        assert_eq!(number("DARK_BLUE", "COLOR_", number_of), 2);
        assert_eq!(number("", "COLOR_", number_of), 0);
        assert_eq!(number("GREEN", "COLOR_", number_of), 0);
    }
}
