//! Configuration from the environment, with working local defaults.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

/// Where Rill's data lives.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table_name: String,
    pub bucket_name: String,
    /// `AWS_ENDPOINT_URL`: moto or LocalStack locally, unset on AWS.
    pub endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_DYNAMODB`: DynamoDB Local in the local stack (which also serves
    /// DynamoDB Streams: `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`, same URL), unset on AWS.
    pub dynamodb_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_LAMBDA`: the local gateway's Lambda Invoke API (sharded fan-out
    /// invokes `events-fanout-shard` through it), unset on AWS.
    pub lambda_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_SCHEDULER`: the local gateway's EventBridge Scheduler stand-in
    /// (it keeps and fires reminders' one-time schedules), unset on AWS.
    pub scheduler_endpoint_url: Option<String>,
    pub region: String,
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda, and by the local gateway): sent as the SDK's
    /// app name (`app/<name>` in every request's user agent), so storage calls can be
    /// attributed to the function that made them (CloudTrail on AWS, the call-budget tests
    /// locally).
    pub app_name: Option<String>,
}

impl AwsSettings {
    pub fn from_env() -> AwsSettings {
        AwsSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same settings from any variable lookup (a composition root that reads its whole
    /// environment once, tests). An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> AwsSettings {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let or = |name: &str, default: &str| var(name).unwrap_or_else(|| default.to_owned());
        AwsSettings {
            table_name: or("TABLE_NAME", "rill"),
            bucket_name: or("BUCKET_NAME", "rill-media"),
            endpoint_url: var("AWS_ENDPOINT_URL"),
            dynamodb_endpoint_url: var("AWS_ENDPOINT_URL_DYNAMODB"),
            lambda_endpoint_url: var("AWS_ENDPOINT_URL_LAMBDA"),
            scheduler_endpoint_url: var("AWS_ENDPOINT_URL_SCHEDULER"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            app_name: var("AWS_LAMBDA_FUNCTION_NAME"),
        }
    }
}

/// Loads the SDK configuration: the standard credential chain, with the endpoints of the
/// settings.
///
/// The global endpoint (`AWS_ENDPOINT_URL`) is set as a shared default and the DynamoDB
/// one as a service-specific value, never both as code configuration: an endpoint set on
/// the loader counts as client configuration and would win over every per-service value,
/// while the local stack needs two (moto for S3 and the rest, DynamoDB Local for DynamoDB
/// and DynamoDB Streams).
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()));
    // A name the SDK refuses (characters outside its set) is left out, never fatal.
    if let Some(app) = settings
        .app_name
        .as_deref()
        .and_then(|n| aws_config::AppName::new(n.to_owned()).ok())
    {
        loader = loader.app_name(app);
    }
    let mut sdk = loader.load().await.into_builder();
    // What the settings say, not what the loader found: the settings were read (and
    // validated) once by the composition root.
    sdk.set_endpoint_url(settings.endpoint_url.clone());
    sdk.set_service_config(Some(ServiceEndpoints {
        dynamodb: settings.dynamodb_endpoint_url.clone(),
        lambda: settings.lambda_endpoint_url.clone(),
        scheduler: settings.scheduler_endpoint_url.clone(),
    }));
    sdk.build()
}

/// The per-service endpoints of [`AwsSettings`], answered where the SDK looks for
/// `AWS_ENDPOINT_URL_<SERVICE>` (DynamoDB Streams has its own service id, and DynamoDB
/// Local serves it on the same port; Lambda's is the local gateway's Invoke API).
#[derive(Debug)]
struct ServiceEndpoints {
    dynamodb: Option<String>,
    lambda: Option<String>,
    scheduler: Option<String>,
}

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        match key.service_id() {
            "DynamoDB" | "DynamoDB Streams" => self.dynamodb.clone(),
            "Lambda" => self.lambda.clone(),
            "Scheduler" => self.scheduler.clone(),
            _ => None,
        }
    }
}

/// How long one DynamoDB call may take, retries included, before it fails: well inside a
/// function's 10 s timeout, so a stalled table is a quick error (REST 503, an error frame
/// on a socket), never a request hanging until Lambda kills it. A timeout on the whole
/// call, not per attempt: an attempt cut off mid-flight may have been applied, and
/// retrying it would apply a counter's `ADD` twice.
pub const DYNAMODB_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6);

/// DynamoDB client; every call bounded by [`DYNAMODB_CALL_TIMEOUT`].
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(DYNAMODB_CALL_TIMEOUT)
        .build();
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(timeouts)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// How long one attempt of an S3 call may take: a stalled connection is given up and
/// retried instead of holding an ingest node's upload queue (a 2 s segment of a 1080p
/// ladder is ~2 MB, well under a second inside a region). Attempts may be cut off safely:
/// every S3 write Rill makes is a whole-object `PUT`, idempotent.
pub const S3_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// S3 client; path-style addressing whenever an endpoint override is set, because moto and
/// LocalStack on 127.0.0.1 have no per-bucket host names. Each attempt is bounded by
/// [`S3_ATTEMPT_TIMEOUT`], a whole call (the SDK's retries included) by twice that.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = sdk.endpoint_url().is_some();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
        .operation_timeout(S3_ATTEMPT_TIMEOUT * 2)
        .build();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .timeout_config(timeouts)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_fall_back_to_the_local_defaults() {
        let s = AwsSettings::from_lookup(|name| (name == "TABLE_NAME").then(String::new));
        assert_eq!(s.table_name, "rill");
        assert_eq!(s.bucket_name, "rill-media");
        assert_eq!(s.endpoint_url, None);
        assert_eq!(s.dynamodb_endpoint_url, None);
        assert_eq!(s.region, "us-east-1");
    }

    fn settings(env: &[(&str, &str)]) -> AwsSettings {
        AwsSettings::from_lookup(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn endpoint_of(sdk: &SdkConfig, service: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("key");
        sdk.service_config()?.load_config(key)
    }

    /// What each client ends up with follows from these three facts (the generated
    /// `Config::from(&SdkConfig)`: a per-service value wins unless the shared endpoint was
    /// set as code configuration; then the shared endpoint).
    #[tokio::test]
    async fn dynamodb_and_its_streams_get_their_own_endpoint_and_the_rest_the_shared_one() {
        let sdk = sdk_config(&settings(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ]))
        .await;
        assert!(!sdk.get_origin("endpoint_url").is_client_config());
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:4566"));
        let ddb = Some("http://127.0.0.1:8000".to_owned());
        assert_eq!(endpoint_of(&sdk, "DynamoDB"), ddb);
        assert_eq!(endpoint_of(&sdk, "DynamoDB Streams"), ddb);
        assert_eq!(endpoint_of(&sdk, "S3"), None);
        assert_eq!(endpoint_of(&sdk, "Lambda"), None);
    }

    #[tokio::test]
    async fn lambda_gets_its_own_endpoint() {
        let sdk = sdk_config(&settings(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:3000"),
        ]))
        .await;
        assert_eq!(
            endpoint_of(&sdk, "Lambda").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(endpoint_of(&sdk, "DynamoDB"), None);
        assert_eq!(endpoint_of(&sdk, "Scheduler"), None);
    }

    #[tokio::test]
    async fn the_scheduler_gets_its_own_endpoint() {
        let sdk = sdk_config(&settings(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_SCHEDULER", "http://127.0.0.1:3000"),
        ]))
        .await;
        assert_eq!(
            endpoint_of(&sdk, "Scheduler").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(endpoint_of(&sdk, "Lambda"), None);
    }

    #[tokio::test]
    async fn without_a_dynamodb_endpoint_dynamodb_uses_the_shared_one() {
        let sdk = sdk_config(&settings(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")])).await;
        assert_eq!(endpoint_of(&sdk, "DynamoDB"), None);
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:4566"));
    }

    #[test]
    fn aws_region_wins_over_aws_default_region() {
        let env = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ];
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(AwsSettings::from_lookup(lookup).region, "eu-west-1");
        assert_eq!(
            AwsSettings::from_lookup(|name| {
                (name == "AWS_DEFAULT_REGION").then(|| "us-west-2".to_owned())
            })
            .region,
            "us-west-2"
        );
    }
}
