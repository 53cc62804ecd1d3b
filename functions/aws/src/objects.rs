//! Reading media objects (playlists, segments) from S3.

use crate::AwsError;

/// An object's bytes and the headers a CDN would pass on.
#[derive(Debug, Clone)]
pub struct Object {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub etag: Option<String>,
}

/// `Ok(None)` when the key does not exist.
pub async fn get_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Object>, AwsError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let content_type = out.content_type().map(str::to_owned);
            let cache_control = out.cache_control().map(str::to_owned);
            let etag = out.e_tag().map(str::to_owned);
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| AwsError(format!("reading s3://{bucket}/{key}: {e}")))?
                .into_bytes()
                .to_vec();
            Ok(Some(Object {
                body,
                content_type,
                cache_control,
                etag,
            }))
        }
        Err(e) => {
            let e = e.into_service_error();
            if e.is_no_such_key() {
                Ok(None)
            } else {
                Err(AwsError::from_sdk(&format!("get s3://{bucket}/{key}"), e))
            }
        }
    }
}
