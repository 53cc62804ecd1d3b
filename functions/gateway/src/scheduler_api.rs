//! EventBridge Scheduler's one-time schedules on the gateway's own port, for the functions
//! that write them (`AWS_ENDPOINT_URL_SCHEDULER=http://127.0.0.1:<port>`, which the
//! gateway gives every function unless set): the schedule is kept in memory and, at its
//! `at(...)` time, the gateway invokes its target function asynchronously with the
//! target's `Input`, as Scheduler does on AWS. This is what makes reminders fire on one
//! machine without an always-on process of their own.
//!
//! Served (REST-JSON, SigV4 ignored): `CreateSchedule` (`POST /schedules/{name}`, 409
//! `ConflictException` when it exists), `UpdateSchedule` (`PUT`, 404
//! `ResourceNotFoundException` when it does not), `DeleteSchedule` (`DELETE
//! ?groupName=`), `GetSchedule` (`GET ?groupName=`, what tests read back).
//!
//! Limits, stated: only one-time `at(...)` expressions in UTC (anything else is a 400
//! `ValidationException`: the stack's `rate(...)` schedules are not the functions' to
//! write); a fired schedule is removed (`ActionAfterCompletion: DELETE`, the only value
//! Rill uses); schedules live as long as the gateway process (a restart forgets them, as
//! nothing on AWS does); a time in the past fires at once; no retry policy (the gateway's
//! asynchronous invoke runs once and logs a failure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::http_api::AppState;
use crate::invoke_api::function_name;
use crate::pool::{Outcome, Pool};

/// The schedules of one gateway: `(group, name)` → the request that made it, and a
/// generation that tells a timer whether it is still the one it was set for.
#[derive(Debug, Default)]
pub struct Schedules {
    entries: Mutex<HashMap<(String, String), Entry>>,
    next_generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
struct Entry {
    request: Value,
    generation: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GroupQuery {
    #[serde(rename = "groupName")]
    group_name: Option<String>,
}

fn error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let mut response = (status, Json(json!({"Message": message}))).into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

fn validation(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn arn(group: &str, name: &str) -> String {
    format!("arn:aws:scheduler:us-east-1:000000000000:schedule/{group}/{name}")
}

/// `at(yyyy-mm-ddThh:mm:ss)` in UTC, or why not.
pub fn parse_at(request: &Value) -> Result<chrono::DateTime<Utc>, String> {
    let expression = request["ScheduleExpression"]
        .as_str()
        .ok_or("ScheduleExpression is required")?;
    match request["ScheduleExpressionTimezone"].as_str() {
        None | Some("UTC") => {}
        Some(other) => return Err(format!("only UTC is served locally, not {other:?}")),
    }
    let inner = expression
        .strip_prefix("at(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| {
            format!("only one-time at(...) schedules are served locally, not {expression:?}")
        })?;
    let naive = NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .map_err(|e| format!("{expression:?} is not at(yyyy-mm-ddThh:mm:ss): {e}"))?;
    Ok(Utc.from_utc_datetime(&naive))
}

/// The group a request names (`GroupName` in a body, `groupName` in a query), else
/// Scheduler's `default`.
fn group_of(name: Option<&str>) -> String {
    name.filter(|g| !g.is_empty())
        .unwrap_or("default")
        .to_owned()
}

impl Schedules {
    /// Stores `request` as `(group, name)` and sets its timer. `replace`: whether it must
    /// exist (`UpdateSchedule`) or must not (`CreateSchedule`).
    fn put(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        name: &str,
        request: Value,
        replace: bool,
    ) -> Response {
        if !rill_aws::schedules::valid_name(name) {
            return validation(&format!("{name:?} is not a valid schedule name"));
        }
        let at = match parse_at(&request) {
            Ok(at) => at,
            Err(e) => return validation(&e),
        };
        let Some(target) = request["Target"]["Arn"].as_str() else {
            return validation("Target.Arn is required");
        };
        if request["Target"]["RoleArn"].as_str().is_none() {
            return validation("Target.RoleArn is required");
        }
        let target = function_name(target).to_owned();
        let input = request["Target"]["Input"]
            .as_str()
            .unwrap_or("{}")
            .to_owned();
        let group = group_of(request["GroupName"].as_str());
        let key = (group.clone(), name.to_owned());
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match (entries.contains_key(&key), replace) {
                (true, false) => {
                    return error(
                        StatusCode::CONFLICT,
                        "ConflictException",
                        &format!("Schedule {name} already exists."),
                    );
                }
                (false, true) => {
                    return error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        &format!("Schedule {name} does not exist."),
                    );
                }
                _ => {}
            }
            entries.insert(
                key.clone(),
                Entry {
                    request,
                    generation,
                },
            );
        }
        info!(schedule = %name, %group, at = %at, function = %target, "schedule set");
        let schedules = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            schedules.fire(&pool, key, generation, &target, input).await;
        });
        Json(json!({"ScheduleArn": arn(&group, name)})).into_response()
    }

    /// Runs the schedule if it is still the one this timer was set for (not deleted, not
    /// moved), and removes it.
    async fn fire(
        &self,
        pool: &Arc<Pool>,
        key: (String, String),
        generation: u64,
        target: &str,
        input: String,
    ) {
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(&key) {
                Some(entry) if entry.generation == generation => {
                    entries.remove(&key);
                }
                _ => return,
            }
        }
        let Some(function) = pool.function(target).cloned() else {
            warn!(schedule = %key.1, function = %target, "schedule fired for a function this gateway does not run");
            return;
        };
        info!(schedule = %key.1, function = %target, "schedule fired");
        match function.invoke(Bytes::from(input)).await {
            Ok(Outcome::Error {
                error_type,
                message,
            }) => {
                warn!(schedule = %key.1, function = %target, %error_type, %message, "scheduled invocation failed")
            }
            Ok(_) => info!(schedule = %key.1, function = %target, "scheduled invocation done"),
            Err(e) => {
                warn!(schedule = %key.1, function = %target, error = %e, "scheduled invocation failed")
            }
        }
    }

    fn remove(&self, group: &str, name: &str) -> Option<Value> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .remove(&(group.to_owned(), name.to_owned()))
            .map(|e| e.request)
    }

    fn get(&self, group: &str, name: &str) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&(group.to_owned(), name.to_owned()))
            .map(|e| e.request.clone())
    }
}

fn not_found(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("Schedule {name} does not exist."),
    )
}

/// The request body when it is a JSON object.
fn body_json(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

const NOT_AN_OBJECT: &str = "the body is not a JSON object";

pub(crate) async fn create(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match body_json(&body) {
        Some(request) => app.schedules.put(&app.pool, &name, request, false),
        None => validation(NOT_AN_OBJECT),
    }
}

pub(crate) async fn update(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match body_json(&body) {
        Some(request) => app.schedules.put(&app.pool, &name, request, true),
        None => validation(NOT_AN_OBJECT),
    }
}

pub(crate) async fn delete(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<GroupQuery>,
) -> Response {
    let group = group_of(query.group_name.as_deref());
    match app.schedules.remove(&group, &name) {
        Some(_) => {
            info!(schedule = %name, %group, "schedule deleted");
            Json(json!({})).into_response()
        }
        None => not_found(&name),
    }
}

pub(crate) async fn get(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<GroupQuery>,
) -> Response {
    let group = group_of(query.group_name.as_deref());
    match app.schedules.get(&group, &name) {
        Some(mut request) => {
            request["Name"] = json!(name);
            request["GroupName"] = json!(group);
            request["Arn"] = json!(arn(&group, &name));
            Json(request).into_response()
        }
        None => not_found(&name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_time_utc_expressions_are_served() {
        let at = parse_at(&json!({"ScheduleExpression": "at(2027-03-04T05:06:07)"})).expect("at");
        assert_eq!(at.to_rfc3339(), "2027-03-04T05:06:07+00:00");
        for refused in [
            json!({"ScheduleExpression": "rate(5 minutes)"}),
            json!({"ScheduleExpression": "cron(0 12 * * ? *)"}),
            json!({"ScheduleExpression": "at(2027-03-04 05:06:07)"}),
            json!({"ScheduleExpression": "at(2027-03-04T05:06:07)",
                   "ScheduleExpressionTimezone": "Europe/Paris"}),
            json!({}),
        ] {
            assert!(parse_at(&refused).is_err(), "{refused}");
        }
    }
}
