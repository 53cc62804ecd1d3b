//! `bench-api`: what the API costs as the gateway sees it. Run through
//! `scripts/bench.sh api` (release build).
//!
//! 1. Cold init and RSS per function: reset the gateway's instances, call each function once,
//!    read init time (spawn to first Runtime API `next`) and resident memory from
//!    `/_gateway/stats`. Repeated `--cold-rounds` times; the median is printed.
//! 2. Warm latency: `--concurrency` clients send `GET /api/streams/:id` through the gateway
//!    for `--requests` requests in all; p50/p99 and throughput.
//! 3. Anchor, same run, same concurrency and count: `GetItem` straight to moto's DynamoDB,
//!    the floor any handler pays. The ratio gateway/anchor is the cost of the Lambda
//!    plumbing, JSON and auth on top of storage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_tests::{Stack, User};
use serde_json::{Value, json};

struct Args {
    cold_rounds: usize,
    concurrency: usize,
    requests: usize,
}

fn args() -> Args {
    let mut a = Args {
        cold_rounds: 5,
        concurrency: 8,
        requests: 4000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| {
                eprintln!("usage: bench-api [--cold-rounds N] [--concurrency N] [--requests N]");
                std::process::exit(2)
            });
        match flag.as_str() {
            "--cold-rounds" => a.cold_rounds = value.max(1),
            "--concurrency" => a.concurrency = value.max(1),
            "--requests" => a.requests = value.max(1),
            _ => {
                eprintln!("unknown flag {flag}");
                std::process::exit(2)
            }
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One request that reaches each function (the answer's status does not matter: the
/// instance has initialised once it answers).
fn probe(function: &str, id: &str, msg: &str) -> (&'static str, String, Option<Value>) {
    match function {
        "streams-create" => (
            "POST",
            "/api/streams/create".into(),
            Some(json!({"channelId":"bench","title":"cold"})),
        ),
        "streams-start" => ("POST", format!("/api/streams/{id}/start"), Some(json!({}))),
        "streams-end" => (
            "POST",
            format!("/api/streams/{}/end", rill_core::ids::new_id()),
            Some(json!({})),
        ),
        "streams-cancel" => (
            "POST",
            format!("/api/streams/{}/cancel", rill_core::ids::new_id()),
            Some(json!({})),
        ),
        "streams-update" => (
            "PATCH",
            format!("/api/streams/{id}"),
            Some(json!({"title":"bench"})),
        ),
        "streams-rotate-key" => (
            "POST",
            format!("/api/streams/{}/key", rill_core::ids::new_id()),
            Some(json!({})),
        ),
        "streams-get" => ("GET", format!("/api/streams/{id}"), None),
        "streams-list" => ("GET", "/api/streams/live".into(), None),
        "streams-hls" => ("GET", format!("/api/streams/{id}/hls"), None),
        "streams-viewers" => ("GET", format!("/api/streams/{id}/viewers"), None),
        "chat-list" => ("GET", format!("/api/streams/{id}/chat"), None),
        "chat-send" => (
            "POST",
            format!("/api/streams/{id}/chat"),
            Some(json!({"content":"cold"})),
        ),
        "chat-delete" => (
            "DELETE",
            format!("/api/streams/{id}/chat/{}", rill_core::ids::new_id()),
            None,
        ),
        "chat-pin" => (
            "POST",
            format!("/api/streams/{id}/chat/{msg}/pin"),
            Some(json!({})),
        ),
        "reactions-send" => (
            "POST",
            format!("/api/streams/{id}/reactions"),
            Some(json!({"emoji":"🔥"})),
        ),
        "streams-metrics" => ("GET", format!("/api/streams/{id}/metrics"), None),
        "questions-list" => ("GET", format!("/api/streams/{id}/questions"), None),
        "questions-upvote" => (
            "POST",
            format!(
                "/api/streams/{id}/questions/{}/upvote",
                rill_core::ids::new_id()
            ),
            Some(json!({})),
        ),
        "questions-answer" => (
            "POST",
            format!(
                "/api/streams/{id}/questions/{}/answer",
                rill_core::ids::new_id()
            ),
            Some(json!({})),
        ),
        "bans-add" => ("PUT", format!("/api/streams/{id}/bans/someone"), None),
        "bans-remove" => ("DELETE", format!("/api/streams/{id}/bans/someone"), None),
        "moderators-add" => ("PUT", format!("/api/streams/{id}/moderators/someone"), None),
        "moderators-remove" => (
            "DELETE",
            format!("/api/streams/{id}/moderators/someone"),
            None,
        ),
        "moderators-list" => ("GET", format!("/api/streams/{id}/moderators"), None),
        "members-set" => (
            "PUT",
            "/api/channels/bench/members/someone".into(),
            Some(json!({"role":"follower"})),
        ),
        "members-remove" => ("DELETE", "/api/channels/bench/members/someone".into(), None),
        "members-list" => ("GET", "/api/channels/bench/members".into(), None),
        "channels-get" => ("GET", "/api/channels/bench".into(), None),
        "channels-create" => ("POST", "/api/channels".into(), Some(json!({"name":"cold"}))),
        _ => ("GET", "/api/openapi.json".into(), None),
    }
}

/// Socket, table-stream and fan-out shard functions have no HTTP route; bench-realtime
/// exercises them.
fn has_http_route(function: &str) -> bool {
    !function.starts_with("ws-") && !function.starts_with("events-")
}

async fn load<F, Fut>(concurrency: usize, requests: usize, op: F) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, remaining) = (op.clone(), remaining.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let t = Instant::now();
                assert!(op().await, "request failed during the benchmark");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    let wall = started.elapsed();
    all.sort();
    (all, wall)
}

#[tokio::main]
async fn main() {
    let args = args();
    let stack = Stack::start_with(&[("GATEWAY_MAX_INSTANCES", "4")]);
    let owner = User::named("bench-owner");
    let created = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"bench","title":"Bench"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let msg = owner
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"pin me"}),
        )
        .await;
    let msg_id = msg.body["id"].as_str().expect("msg id").to_owned();

    // 1. cold init and RSS
    let functions: Vec<String> = stack.gateway_stats().await["functions"]
        .as_object()
        .expect("functions")
        .keys()
        .cloned()
        .collect();
    let functions: Vec<String> = functions
        .into_iter()
        .filter(|f| has_http_route(f))
        .collect();
    let mut init: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut rss: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..args.cold_rounds {
        stack
            .http
            .post(stack.url("/_gateway/reset"))
            .send()
            .await
            .expect("reset");
        for f in &functions {
            let (method, path, body) = probe(f, &id, &msg_id);
            owner.send(&stack, method, &path, body).await;
        }
        let s = stack.gateway_stats().await;
        for f in &functions {
            let inst = &s["functions"][f]["instances"][0];
            if let Some(ms) = inst["init_ms"].as_f64() {
                init.entry(f.clone()).or_default().push(ms);
            }
            if let Some(kb) = inst["rss_kb"].as_f64() {
                rss.entry(f.clone()).or_default().push(kb / 1024.0);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "\n## Cold init and memory per function ({} rounds, median)\n",
        args.cold_rounds
    );
    println!("| function | init ms | RSS MB |");
    println!("|---|---:|---:|");
    let (mut worst_init, mut worst_rss) = (0f64, 0f64);
    for f in &functions {
        let i = median(init.entry(f.clone()).or_default());
        let r = median(rss.entry(f.clone()).or_default());
        worst_init = worst_init.max(i);
        worst_rss = worst_rss.max(r);
        println!("| {f} | {i:.2} | {r:.1} |");
    }
    println!(
        "\nworst median init {worst_init:.2} ms (target <= 10), worst RSS {worst_rss:.1} MB (target <= 16)"
    );

    // 2. warm latency through the gateway
    let url = stack.url(&format!("/api/streams/{id}"));
    let http = stack.http.clone();
    // warm up every instance the load will use
    let _ = load(args.concurrency, args.concurrency * 10, {
        let (http, url) = (http.clone(), url.clone());
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(url)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        }
    })
    .await;
    let (gw, gw_wall) = load(args.concurrency, args.requests, move || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;

    // 3. anchor: GetItem straight to moto
    let db = stack.dynamodb().await;
    let table = stack.table.clone();
    let key = rill_aws::keys::stream(&id).item();
    let (anchor, anchor_wall) = load(args.concurrency, args.requests, move || {
        let (db, table, key) = (db.clone(), table.clone(), key.clone());
        async move {
            db.get_item()
                .table_name(table)
                .set_key(Some(key))
                .consistent_read(true)
                .send()
                .await
                .map(|o| o.item.is_some())
                .unwrap_or(false)
        }
    })
    .await;

    println!(
        "\n## GET /api/streams/:id, {} requests, {} concurrent\n",
        args.requests, args.concurrency
    );
    println!("| path | p50 ms | p99 ms | req/s |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, lat: &[Duration], wall: Duration| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} |",
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            lat.len() as f64 / wall.as_secs_f64()
        );
    };
    row("gateway -> streams-get -> DynamoDB (moto)", &gw, gw_wall);
    row("anchor: GetItem -> DynamoDB (moto)", &anchor, anchor_wall);
    println!(
        "\nratio gateway/anchor: p50 {:.2}x, p99 {:.2}x",
        ms(percentile(&gw, 0.5)) / ms(percentile(&anchor, 0.5)),
        ms(percentile(&gw, 0.99)) / ms(percentile(&anchor, 0.99))
    );
}
