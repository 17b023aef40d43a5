//! Reading a JSON request body: media type check (415), size limit (413), no silent truncation.

use crate::error::{ApiError, IssueType};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

/// True for `application/json`, `application/fhir+json` and other `+json` types.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        IssueType::TooLong,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// Reads the whole body of a JSON POST, at most `limit` bytes.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            if content_type.is_empty() {
                "missing Content-Type: send the request as application/json".to_owned()
            } else {
                format!(
                    "unsupported Content-Type {:?}: send the request as application/json",
                    content_type.chars().take(100).collect::<String>()
                )
            },
        ));
    }
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    // A body that arrives in one chunk is used as it is; otherwise the chunks are copied into
    // one buffer of the declared length (issue 12: it grew chunk by chunk, copying as it went).
    let mut first: Option<web::Bytes> = None;
    let mut joined: Option<web::BytesMut> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("", format!("could not read the request body: {e}"))
        })?;
        let so_far = first.as_ref().map_or(0, |b| b.len()) + joined.as_ref().map_or(0, |b| b.len());
        if so_far + chunk.len() > limit {
            return Err(too_large(limit));
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&chunk);
        } else if let Some(head) = first.take() {
            let capacity = declared.unwrap_or(0).max(head.len() + chunk.len());
            let mut buf = web::BytesMut::with_capacity(capacity);
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&chunk);
            joined = Some(buf);
        } else {
            first = Some(chunk);
        }
    }
    let body = match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(head)) => head,
        (None, None) => web::Bytes::new(),
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("", "request body is empty"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::{is_json, read_json};
    use actix_web::{FromRequest, test::TestRequest, web};

    /// `read_json` on a body sent in `chunks`, with `declared` as its Content-Length.
    async fn read(
        chunks: &[&'static [u8]],
        declared: Option<usize>,
        limit: usize,
    ) -> Result<web::Bytes, u16> {
        let mut req = TestRequest::post().insert_header(("content-type", "application/json"));
        if let Some(len) = declared {
            req = req.insert_header(("content-length", len.to_string()));
        }
        let req = req.to_http_request();
        let stream = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, actix_web::error::PayloadError>(web::Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        let mut payload = actix_web::dev::Payload::Stream {
            payload: Box::pin(stream) as std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>>,
        };
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        read_json(&req, payload, limit)
            .await
            .map_err(|e| e.status.as_u16())
    }

    #[actix_web::test]
    async fn chunks_are_joined_and_limited() {
        assert_eq!(read(&[b"{}"], Some(2), 10).await.unwrap(), &b"{}"[..]);
        let parts: &[&[u8]] = &[b"{\"a\"", b":", b"[1,2]}"];
        for declared in [None, Some(11), Some(3), Some(100)] {
            assert_eq!(
                read(parts, declared, 100).await.unwrap(),
                &b"{\"a\":[1,2]}"[..],
                "{declared:?}"
            );
        }
        // 11 bytes: over a limit of 10, within one of 11.
        assert_eq!(read(parts, None, 10).await.unwrap_err(), 413);
        assert_eq!(read(parts, None, 11).await.unwrap().len(), 11);
        assert_eq!(read(&[b"{}"], Some(11), 10).await.unwrap_err(), 413);
        assert_eq!(read(&[], Some(0), 10).await.unwrap_err(), 400);
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/FHIR+JSON"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json(""));
    }
}
