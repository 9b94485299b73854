//! `multipart/form-data` uploads (a browser's `<form>` or `FormData`): the
//! file is the first part that has a filename, or else the first part named
//! after the route's body field (`file`), as clients that send bytes without
//! a filename do. Its bytes are streamed as they arrive; parts before it are
//! read past (never kept), parts after it are not read at all.

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use multer::Multipart;

use crate::errors::ApiError;

/// The file part of a multipart body.
pub(crate) struct FilePart {
    /// The filename the client gave, if any.
    pub(crate) file_name: Option<String>,
    /// The part's own content type (`text/csv`), if given.
    pub(crate) content_type: Option<String>,
    /// The part's bytes, as they arrive.
    pub(crate) data: BoxStream<'static, Result<Bytes, ApiError>>,
}

/// Whether `content_type` declares a multipart form.
pub(crate) fn is_multipart(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("multipart/form-data")
}

/// Reads `body` (whose `Content-Type` is `content_type`) up to the start of
/// its file part; see the module docs for which part that is.
pub(crate) async fn file_part<S>(body: S, content_type: &str, field: &str) -> Result<FilePart, ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
{
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let mut multipart = Multipart::new(body, boundary);
    while let Some(part) = multipart.next_field().await.map_err(malformed)? {
        if part.file_name().is_some() || part.name() == Some(field) {
            return Ok(FilePart {
                file_name: part.file_name().filter(|n| !n.is_empty()).map(str::to_owned),
                content_type: part.content_type().map(ToString::to_string),
                // The part reads on from the body after `multipart` is dropped.
                data: part.map_err(malformed).boxed(),
            });
        }
    }
    Err(ApiError::bad_request(
        "NO_FILE_PART",
        format!("the multipart/form-data body has no file: no part with a filename, and none named {field:?}"),
    ))
}

/// A multipart error as the client's: the body's own read error (a stalled
/// or broken upload) as it was, anything else a malformed body.
fn malformed(error: multer::Error) -> ApiError {
    match error {
        multer::Error::StreamReadFailed(source) => match source.downcast::<ApiError>() {
            Ok(error) => *error,
            Err(other) => ApiError::bad_request("INVALID_BODY", format!("reading the request body failed: {other}")),
        },
        other => ApiError::bad_request("INVALID_MULTIPART", format!("the multipart/form-data body is malformed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, stream};

    use super::*;

    const FORM: &str = "multipart/form-data; boundary=XyZ";

    /// `body` as frames of `frame` bytes, as the network would cut it.
    fn frames(body: &str, frame: usize) -> impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static {
        let frames: Vec<Result<Bytes, ApiError>> = body.as_bytes().chunks(frame).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        stream::iter(frames)
    }

    fn read(body: &str, frame: usize) -> Result<(Option<String>, Option<String>, String), ApiError> {
        block_on(async {
            let part = file_part(frames(body, frame), FORM, "file").await?;
            let data: Vec<Bytes> = part.data.try_collect().await?;
            Ok((part.file_name, part.content_type, String::from_utf8(data.concat()).unwrap()))
        })
    }

    fn reason(result: Result<impl std::fmt::Debug, ApiError>) -> &'static str {
        match result.expect_err("should fail") {
            ApiError::BadRequest { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_file_part_is_streamed_with_its_name_and_type() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nskipped\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"customers.csv\"\r\nContent-Type: text/csv\r\n\r\n\
                    name,email\r\nAda,ada@example.com\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"second.csv\"\r\n\r\nnot read\r\n--XyZ--\r\n";
        for frame in [1, 7, 4096] {
            let (file_name, content_type, data) = read(body, frame).unwrap();
            assert_eq!(file_name.as_deref(), Some("customers.csv"), "frames of {frame}");
            assert_eq!(content_type.as_deref(), Some("text/csv"));
            assert_eq!(data, "name,email\r\nAda,ada@example.com");
        }
    }

    #[test]
    fn a_part_named_after_the_body_field_is_the_file_without_a_filename() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\na,b\n1,2\n\r\n--XyZ--\r\n";
        assert_eq!(read(body, 5).unwrap(), (None, None, "a,b\n1,2\n".to_owned()));
    }

    #[test]
    fn forms_without_a_file_or_malformed_are_bad_requests() {
        let no_file = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n";
        assert_eq!(reason(read(no_file, 64)), "NO_FILE_PART");
        assert_eq!(reason(read("not a multipart body at all", 64)), "INVALID_MULTIPART");
        let cut_short = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n1,2";
        assert_eq!(reason(read(cut_short, 64)), "INVALID_MULTIPART");
        let no_boundary = block_on(file_part(frames("", 1), "multipart/form-data", "file"));
        assert_eq!(reason(no_boundary.map(|_| ())), "INVALID_MULTIPART");
    }

    #[test]
    fn the_bodys_own_errors_come_through() {
        let stalled = stream::iter(vec![Err(ApiError::BodyStalled { idle: std::time::Duration::from_secs(10) })]);
        let result = block_on(file_part(stalled, FORM, "file"));
        assert!(matches!(result, Err(ApiError::BodyStalled { .. })), "{:?}", result.err());
    }

    #[test]
    fn multipart_is_told_by_its_media_type() {
        assert!(is_multipart("multipart/form-data; boundary=x") && is_multipart("Multipart/Form-Data"));
        assert!(!is_multipart("text/csv") && !is_multipart("multipart/mixed; boundary=x"));
    }
}
