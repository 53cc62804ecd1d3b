//! Idempotent creation of the table and bucket, for local stacks and tests. The shapes
//! here must match infra/template.yaml (a test compares them).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use crate::AwsError;

/// GSI: streams of one channel in one status, ordered by the status's time.
pub const GSI_CHANNEL_STATUS: &str = "byChannelStatus";
/// GSI: streams in one status across channels.
pub const GSI_STATUS: &str = "byStatus";
/// GSI: stream by the SHA-256 of its key.
pub const GSI_KEY_HASH: &str = "byKeyHash";
/// TTL attribute (epoch seconds) on connections, reactions and samples.
pub const TTL_ATTRIBUTE: &str = "ttl";

fn attr(name: &str) -> Result<AttributeDefinition, AwsError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| AwsError(e.to_string()))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, AwsError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| AwsError(e.to_string()))
}

fn gsi(
    name: &str,
    hash: &str,
    range: Option<&str>,
    projection: ProjectionType,
) -> Result<GlobalSecondaryIndex, AwsError> {
    let mut b = GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .projection(Projection::builder().projection_type(projection).build());
    if let Some(range) = range {
        b = b.key_schema(key(range, KeyType::Range)?);
    }
    b.build().map_err(|e| AwsError(e.to_string()))
}

/// Creates the single table (keys, GSIs, stream, TTL) unless it exists.
pub async fn ensure_table(db: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), AwsError> {
    match db.describe_table().table_name(name).send().await {
        Ok(_) => return Ok(()),
        Err(e) => {
            let e = e.into_service_error();
            if !e.is_resource_not_found_exception() {
                return Err(AwsError::from_sdk("describe table", e));
            }
        }
    }
    let created = db
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .attribute_definitions(attr("gsi2pk")?)
        .attribute_definitions(attr("gsi2sk")?)
        .attribute_definitions(attr("keyHash")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi(
            GSI_CHANNEL_STATUS,
            "gsi1pk",
            Some("gsi1sk"),
            ProjectionType::All,
        )?)
        .global_secondary_indexes(gsi(
            GSI_STATUS,
            "gsi2pk",
            Some("gsi2sk"),
            ProjectionType::All,
        )?)
        .global_secondary_indexes(gsi(
            GSI_KEY_HASH,
            "keyHash",
            None,
            ProjectionType::KeysOnly,
        )?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| AwsError(e.to_string()))?,
        )
        .send()
        .await;
    if let Err(e) = created {
        let e = e.into_service_error();
        // Another process may have created it between describe and create.
        if !e.is_resource_in_use_exception() {
            return Err(AwsError::from_sdk("create table", e));
        }
    }
    db.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| AwsError(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("enable TTL", e.into_service_error()))?;
    Ok(())
}

/// Creates the media bucket unless it exists, with the template's CORS rules (players read
/// from any origin; the web app uploads thumbnails with presigned `PUT`s).
pub async fn ensure_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), AwsError> {
    if s3.head_bucket().bucket(name).send().await.is_err()
        && let Err(e) = s3.create_bucket().bucket(name).send().await
    {
        let e = e.into_service_error();
        if !e.is_bucket_already_owned_by_you() {
            return Err(AwsError(format!(
                "create bucket {name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )));
        }
    }
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let rule = |methods: &[&str], headers: &[&str], exposed: &[&str]| {
        let mut b = CorsRule::builder()
            .allowed_origins("*")
            .max_age_seconds(3600);
        for m in methods {
            b = b.allowed_methods(*m);
        }
        for h in headers {
            b = b.allowed_headers(*h);
        }
        for h in exposed {
            b = b.expose_headers(*h);
        }
        b.build()
            .map_err(|e| AwsError(format!("CORS rule for {name}: {e}")))
    };
    let cors = CorsConfiguration::builder()
        .cors_rules(rule(
            &["GET", "HEAD"],
            &["*"],
            &["Content-Length", "Content-Range", "ETag"],
        )?)
        .cors_rules(rule(&["PUT"], &["Content-Type", "Cache-Control"], &[])?)
        .build()
        .map_err(|e| AwsError(format!("CORS for {name}: {e}")))?;
    s3.put_bucket_cors()
        .bucket(name)
        .cors_configuration(cors)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("put bucket CORS", e.into_service_error()))?;
    Ok(())
}
