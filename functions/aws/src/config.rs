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
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            app_name: var("AWS_LAMBDA_FUNCTION_NAME"),
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
    // A name the SDK refuses (characters outside its set) is left out, never fatal.
    if let Some(app) = settings
        .app_name
        .as_deref()
        .and_then(|n| aws_config::AppName::new(n.to_owned()).ok())
    {
        loader = loader.app_name(app);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_fall_back_to_the_local_defaults() {
        let s = AwsSettings::from_lookup(|name| (name == "TABLE_NAME").then(String::new));
        assert_eq!(s.table_name, "rill");
        assert_eq!(s.bucket_name, "rill-media");
        assert_eq!(s.endpoint_url, None);
        assert_eq!(s.region, "us-east-1");
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
