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

/// Reading the media bucket (the local CDN stand-in).
#[derive(Debug, Clone)]
pub struct MediaObjects {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl MediaObjects {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> MediaObjects {
        MediaObjects {
            s3,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `Ok(None)` when the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, AwsError> {
        get_object(&self.s3, &self.bucket, key).await
    }
}

/// `Ok(None)` when the key does not exist.
async fn get_object(
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

/// Presigned `PUT`s into the media bucket, for uploads straight from browsers.
#[derive(Debug)]
pub struct S3Uploads {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Uploads {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Uploads {
        S3Uploads {
            s3,
            bucket: bucket.into(),
        }
    }
}

#[async_trait::async_trait]
impl rill_core::store::UploadSigner for S3Uploads {
    async fn sign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        valid_for: std::time::Duration,
    ) -> Result<rill_core::store::SignedUpload, rill_core::store::StoreError> {
        use aws_sdk_s3::presigning::PresigningConfig;
        use rill_core::store::StoreError;
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("presign {what} s3://{}/{key}: {e}", self.bucket))
        };
        let config =
            PresigningConfig::expires_in(valid_for).map_err(|e| unavailable("config", &e))?;
        let length = i64::try_from(content_length).map_err(|e| unavailable("length", &e))?;
        // Signed headers bind the object to what was asked for: S3 refuses a PUT whose type or
        // length differs, which is how the size limit holds for a browser upload.
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .cache_control("public, max-age=300")
            .presigned(config)
            .await
            .map_err(|e| unavailable("put", &aws_sdk_s3::error::DisplayErrorContext(e)))?;
        // The browser sets Content-Length itself; the trace id the SDK adds inside Lambda is
        // not signed, and a bucket's CORS rules would refuse it in the preflight.
        let headers = request
            .headers()
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("content-length")
                    && !name.eq_ignore_ascii_case("x-amzn-trace-id")
            })
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let expires_at = rill_core::time::now()
            + chrono::Duration::from_std(valid_for).map_err(|e| unavailable("expiry", &e))?;
        Ok(rill_core::store::SignedUpload {
            url: request.uri().to_owned(),
            headers,
            expires_at,
        })
    }
}
