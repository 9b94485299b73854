//! Update masks (AIP-134): validates `update_mask` paths against the fields a
//! resource lets callers write.

use std::collections::BTreeSet;

use prost_types::FieldMask;

use crate::error::{Error, FieldViolation};

/// What an update should change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateMask {
    /// `*`: replace every writable field.
    All,
    /// These paths only (deduplicated, each one of the writable paths).
    Paths(BTreeSet<&'static str>),
}

impl UpdateMask {
    /// Parses `mask` against `writable` paths. A missing or empty mask, `*`
    /// mixed with other paths, and unknown paths are INVALID_ARGUMENT, with
    /// one violation per bad path.
    pub fn parse(mask: Option<&FieldMask>, writable: &[&'static str]) -> Result<Self, Error> {
        let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "UPDATE_MASK_REQUIRED",
                "list the fields to change in update_mask, or \"*\" to replace all writable fields",
            ));
        }
        if paths.iter().any(|p| p == "*") {
            return if paths.len() == 1 {
                Ok(Self::All)
            } else {
                Err(Error::invalid("update_mask", "INVALID_UPDATE_MASK", "\"*\" cannot be combined with other paths"))
            };
        }
        let mut chosen = BTreeSet::new();
        let mut violations = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            match writable.iter().find(|w| **w == path) {
                Some(w) => {
                    chosen.insert(*w);
                }
                None => violations.push(FieldViolation::new(
                    format!("update_mask.paths[{i}]"),
                    "UNKNOWN_FIELD_PATH",
                    format!("{path:?} is not a writable field; writable fields are: {}", writable.join(", ")),
                )),
            }
        }
        if violations.is_empty() { Ok(Self::Paths(chosen)) } else { Err(Error::InvalidArgument { violations }) }
    }

    /// Whether the update touches `path`.
    pub fn contains(&self, path: &str) -> bool {
        match self {
            Self::All => true,
            Self::Paths(paths) => paths.contains(path),
        }
    }

    /// The paths touched, resolving `*` to every writable path.
    pub fn resolve(&self, writable: &[&'static str]) -> Vec<&'static str> {
        match self {
            Self::All => writable.to_vec(),
            Self::Paths(paths) => paths.iter().copied().collect(),
        }
    }
}

/// Generates `copy_field(dst, src, path)` and `same_field(a, b, path)` for a
/// message type from a list of `"path" => field` pairs, so that applying an
/// update mask and finding the changed paths share one list.
///
/// ```ignore
/// crm_kit::mask_fields!(pb::Customer; "display_name" => display_name, "tags" => tags);
/// ```
#[macro_export]
macro_rules! mask_fields {
    ($message:ty; $($path:literal => $field:ident),* $(,)?) => {
        /// Copies field `path` from `src` to `dst`.
        pub fn copy_field(dst: &mut $message, src: &$message, path: &str) {
            match path {
                $($path => dst.$field = src.$field.clone(),)*
                other => unreachable!("{other} is not a writable path"),
            }
        }

        /// Whether `a` and `b` agree on field `path`.
        pub fn same_field(a: &$message, b: &$message, path: &str) -> bool {
            match path {
                $($path => a.$field == b.$field,)*
                other => unreachable!("{other} is not a writable path"),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITABLE: &[&str] = &["display_name", "tags", "consent"];

    fn mask(paths: &[&str]) -> FieldMask {
        FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }
    }

    #[test]
    fn known_paths_are_accepted_and_deduplicated() {
        let m = UpdateMask::parse(Some(&mask(&["tags", "display_name", "tags"])), WRITABLE).unwrap();
        assert_eq!(m.resolve(WRITABLE), vec!["display_name", "tags"]);
        assert!(m.contains("tags") && !m.contains("consent"));
    }

    #[test]
    fn star_means_all() {
        let m = UpdateMask::parse(Some(&mask(&["*"])), WRITABLE).unwrap();
        assert_eq!(m, UpdateMask::All);
        assert_eq!(m.resolve(WRITABLE).len(), 3);
    }

    #[test]
    fn bad_masks_name_each_bad_path() {
        assert_eq!(UpdateMask::parse(None, WRITABLE).unwrap_err().reason(), "UPDATE_MASK_REQUIRED");
        assert_eq!(UpdateMask::parse(Some(&mask(&["*", "tags"])), WRITABLE).unwrap_err().reason(), "INVALID_UPDATE_MASK");
        let Error::InvalidArgument { violations } = UpdateMask::parse(Some(&mask(&["tags", "nope", "etag"])), WRITABLE).unwrap_err() else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["update_mask.paths[1]", "update_mask.paths[2]"]);
    }
}
