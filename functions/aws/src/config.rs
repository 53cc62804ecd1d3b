//! Configuration from the environment, with working local defaults.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where Rill's data lives.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table_name: String,
    pub bucket_name: String,
    /// `AWS_ENDPOINT_URL`: moto or LocalStack locally, unset on AWS.
    pub endpoint_url: Option<String>,
    pub region: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl AwsSettings {
    pub fn from_env() -> AwsSettings {
        AwsSettings {
            table_name: env_or("TABLE_NAME", "rill"),
            bucket_name: env_or("BUCKET_NAME", "rill-media"),
            endpoint_url: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            region: env_or("AWS_REGION", &env_or("AWS_DEFAULT_REGION", "us-east-1")),
        }
    }
}

/// Loads the SDK configuration: the standard credential chain, with the endpoint override
/// when one is set.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()));
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// S3 client; path-style addressing whenever an endpoint override is set, because moto and
/// LocalStack on 127.0.0.1 have no per-bucket host names.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = sdk.endpoint_url().is_some();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
