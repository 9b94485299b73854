//! Masking of personal data for callers without the `pii` permission and for
//! logs: the kit's, shared with the other services.

pub use crm_kit::mask::{email, phone};

/// How a personal spreadsheet cell is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellMask {
    /// As [`email`].
    Email,
    /// As [`phone`].
    Phone,
    /// Down to its first character and "***".
    Initial,
}

/// A personal spreadsheet cell (of an export, or of a refused import row) as a caller without `pii` sees it.
pub fn cell(text: &str, how: CellMask) -> String {
    match how {
        CellMask::Email => email(text),
        CellMask::Phone => phone(text),
        CellMask::Initial => {
            let mut chars = text.chars();
            chars.next().map(|first| format!("{first}***")).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_cells_are_masked() {
        assert_eq!(cell("ada@example.com", CellMask::Email), "a***@example.com");
        assert_eq!(cell("+8613812341234", CellMask::Phone), "+86*******1234");
        assert_eq!(cell("张三", CellMask::Initial), "张***");
        assert_eq!(cell("", CellMask::Initial), "");
    }
}
