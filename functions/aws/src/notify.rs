//! [`ManagementApi`]: delivery of frames to WebSocket connections through the API Gateway
//! Management API (`PostToConnection`). The endpoint comes from `WS_MANAGEMENT_ENDPOINT`
//! (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS, the local gateway's
//! base URL locally): the same code path everywhere.

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use rill_core::store::{Notifier, NotifyError};

#[derive(Debug, Clone)]
pub struct ManagementApi {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ManagementApi {
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> ManagementApi {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        ManagementApi {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(conf),
        }
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
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_gone_exception() {
                    Err(NotifyError::Gone)
                } else {
                    Err(NotifyError::Failed(
                        aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string(),
                    ))
                }
            }
        }
    }
}
