//! [`ManagementApi`]: delivery of frames to WebSocket connections through the API Gateway
//! Management API (`PostToConnection`). The endpoint comes from `WS_MANAGEMENT_ENDPOINT`
//! (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS, the local gateway's
//! base URL locally): the same code path everywhere.
//!
//! This is the fan-out's hot path (one call per viewer per message), so it is one SigV4
//! signed `POST /@connections/{id}` through [`SignedClient`] rather than the SDK client,
//! whose per-call machinery (endpoint rules, interceptors, retry bookkeeping) cost several
//! times the CPU of the request itself: `bench-post` measures both in one run. There is no
//! retry here: a failed post is the fan-out's to count, and a 410 is the answer that
//! prunes the connection.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rill_core::store::{Notifier, NotifyError};

use crate::ecs::SignedClient;
use crate::ecs::signed::percent_encode;

/// The Management API's SigV4 signing name.
const SIGNING_NAME: &str = "execute-api";

#[derive(Debug, Clone)]
pub struct ManagementApi {
    sdk: aws_config::SdkConfig,
    /// Built on the first post: loading the system's TLS roots costs a cold start tens of
    /// milliseconds (more in a debug build), and most functions never post.
    client: Arc<OnceLock<Result<SignedClient, String>>>,
    /// The endpoint without a trailing slash.
    endpoint: String,
}

impl ManagementApi {
    /// Fails when the configuration has no region (checked here, once).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Result<ManagementApi, String> {
        if sdk.region().is_none() {
            return Err("no AWS region configured".into());
        }
        Ok(ManagementApi {
            sdk: sdk.clone(),
            client: Arc::new(OnceLock::new()),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        })
    }

    fn client(&self) -> Result<&SignedClient, NotifyError> {
        self.client
            .get_or_init(|| SignedClient::new(&self.sdk).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| NotifyError::Failed(format!("PostToConnection client: {e}")))
    }

    /// `WS_MANAGEMENT_ENDPOINT`, defaulting to the local gateway.
    pub fn endpoint_from_env() -> String {
        std::env::var("WS_MANAGEMENT_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned())
    }
}

#[async_trait]
impl Notifier for ManagementApi {
    async fn post(&self, connection_id: &str, frame: &[u8]) -> Result<(), NotifyError> {
        let path = format!("/@connections/{}", percent_encode(connection_id));
        let sent = self
            .client()?
            .call_at(
                &self.endpoint,
                SIGNING_NAME,
                "POST",
                &path,
                &[],
                frame.to_vec(),
            )
            .await;
        match sent {
            Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
            Ok(reply) if reply.status == 410 => Err(NotifyError::Gone),
            Ok(reply) => Err(NotifyError::Failed(format!(
                "PostToConnection answered {} {}: {}",
                reply.status,
                reply.error_type.as_deref().unwrap_or("(no error type)"),
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
            ))),
            Err(e) => Err(NotifyError::Failed(format!("PostToConnection: {e}"))),
        }
    }
}
