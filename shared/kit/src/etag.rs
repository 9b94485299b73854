//! Etags (AIP-154) derived from a row's revision counter, which every update
//! increments; the store compares revisions in its `UPDATE ... WHERE`, so a
//! stale etag can never overwrite a newer version.

use crate::error::Error;

/// The etag of revision `revision`.
pub fn of_revision(revision: i64) -> String {
    format!("r{revision}")
}

/// The revision an etag stands for; `None` when the caller sent no etag.
pub fn parse(etag: &str, field: &str) -> Result<Option<i64>, Error> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix('r')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "INVALID_ETAG", "the etag was not issued by this service; use the value from the resource"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse(&of_revision(42), "etag").unwrap(), Some(42));
        assert_eq!(parse("", "etag").unwrap(), None);
    }

    #[test]
    fn foreign_etags_are_invalid() {
        for bad in ["42", "r", "r-1", "r0", "rx", "W/\"r1\""] {
            assert_eq!(parse(bad, "customer.etag").unwrap_err().reason(), "INVALID_ETAG", "{bad}");
        }
    }
}
