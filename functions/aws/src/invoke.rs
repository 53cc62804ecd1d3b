//! Asynchronous Lambda invocations (`X-Amz-Invocation-Type: Event`) of one function, signed
//! by [`SignedClient`] (no Lambda SDK crate for one call): the fan-out's shards
//! ([`crate::shards`]) and webhook deliveries. Locally `AWS_ENDPOINT_URL_LAMBDA` is the
//! gateway, which serves the Invoke API for the template's functions.
//!
//! `Ok` means Lambda queued the event (HTTP 202), not that the function ran; Lambda retries
//! a failed asynchronous invocation twice on its own.

use aws_config::SdkConfig;

use crate::ecs::signed::percent_encode;
use crate::ecs::{Service, SignedClient};

/// Lambda's payload limit for an asynchronous (`Event`) invocation: 256 KB.
pub const MAX_EVENT_PAYLOAD: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct AsyncInvoker {
    aws: SignedClient,
    function: String,
}

impl AsyncInvoker {
    pub fn new(aws: SignedClient, function: impl Into<String>) -> AsyncInvoker {
        AsyncInvoker {
            aws,
            function: function.into(),
        }
    }

    /// The invoker of the function named (name or ARN) by the variable `name`; `None` when
    /// it is unset or empty.
    pub fn from_lookup(
        sdk: &SdkConfig,
        name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<AsyncInvoker>, String> {
        let Some(function) = lookup(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let aws = SignedClient::new(sdk).map_err(|e| e.to_string())?;
        Ok(Some(AsyncInvoker::new(aws, function.trim())))
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    /// Queues one invocation with `payload` (JSON, at most [`MAX_EVENT_PAYLOAD`]).
    pub async fn invoke(&self, payload: Vec<u8>) -> Result<(), String> {
        if payload.len() > MAX_EVENT_PAYLOAD {
            return Err(format!(
                "payload of {} bytes is over the {MAX_EVENT_PAYLOAD}-byte limit",
                payload.len()
            ));
        }
        let path = format!(
            "/2015-03-31/functions/{}/invocations",
            percent_encode(&self.function)
        );
        let headers = [
            ("content-type", "application/json"),
            ("x-amz-invocation-type", "Event"),
        ];
        self.aws
            .call_rest_raw(Service::Lambda, "Invoke", "POST", &path, &headers, payload)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
