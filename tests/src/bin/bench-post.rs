//! `bench-post`: the CPU that one `PostToConnection` costs the function that sends it, with
//! the AWS SDK's client (`aws-sdk-apigatewaymanagement`, the anchor) and with Rill's
//! notifier (`rill_aws::notify::ManagementApi`: one SigV4-signed POST), in the same run.
//! The fan-out of a chat message is 1,000 of these per message at 1,000 viewers, on the
//! same cores as everything else locally, so their CPU is what the chat p99 is made of.
//!
//! A local HTTP server on its own thread answers every post `200` (as the gateway does for
//! an open connection); the clients run on the main thread's current-thread runtime with
//! `--concurrency` posts in flight. Client CPU = the process's CPU time minus the server
//! thread's (from `/proc`), divided by the posts; rounds alternate the two clients and the
//! median round is reported. `--burn N` keeps N threads spinning to steal CPU. No timing is
//! asserted. Run through `scripts/bench.sh post [flags]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::StreamExt;
use rill_aws::notify::ManagementApi;
use rill_core::store::Notifier;
use rill_tests::cpu_seconds;

/// A frame the size of a chat message event.
const FRAME: &[u8] = br#"{"type":"chat:message","data":{"id":"01JC0000000000000000000000","streamId":"01JC0000000000000000000001","user":{"id":"viewer-1","name":"viewer 1"},"text":"hello everyone, this is a chat message of a typical length","ts":"2026-12-07T01:00:00.000Z"}}"#;

struct Args {
    posts: usize,
    concurrency: usize,
    rounds: usize,
    burn: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        posts: 20_000,
        concurrency: 128,
        rounds: 5,
        burn: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, String> {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--posts" => a.posts = value()?.max(1),
            "--concurrency" => a.concurrency = value()?.max(1),
            "--rounds" => a.rounds = value()?.max(1),
            "--burn" => a.burn = value()?,
            "-h" | "--help" => {
                return Err(
                    "bench-post [--posts 20000] [--concurrency 128] [--rounds 5] [--burn 0]".into(),
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// Starts the answering server on its own thread; returns its port and its `/proc` stat path.
fn start_server() -> (u16, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/@connections/{id}",
                axum::routing::post(|| async { axum::http::StatusCode::OK }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let tid = std::fs::read_link("/proc/thread-self")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            tx.send((port, format!("/proc/{tid}/stat"))).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("server started")
}

/// One round: `posts` posts with `concurrency` in flight; returns (wall, client CPU) seconds.
async fn round<F, Fut>(posts: usize, concurrency: usize, server_stat: &str, post: F) -> (f64, f64)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let cpu0 = cpu_seconds("/proc/self/stat") - cpu_seconds(server_stat);
    let start = Instant::now();
    let failed = futures_util::stream::iter(0..posts)
        .map(|i| post(format!("conn-{}=", i % 1000)))
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/self/stat") - cpu_seconds(server_stat) - cpu0;
    if failed > 0 {
        eprintln!("bench-post: {failed} of {posts} posts failed");
    }
    (wall, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..args.burn {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    let (port, server_stat) = start_server();
    let endpoint = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "AKIDBENCH",
                "bench-secret",
                None,
                None,
                "bench-post",
            ))
            .load()
            .await;
        let anchor = aws_sdk_apigatewaymanagement::Client::from_conf(
            aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
                .endpoint_url(&endpoint)
                .build(),
        );
        let rill = ManagementApi::new(&sdk, &endpoint).expect("notifier");
        let sdk_post = |id: String| {
            let anchor = anchor.clone();
            async move {
                anchor
                    .post_to_connection()
                    .connection_id(id)
                    .data(Blob::new(FRAME))
                    .send()
                    .await
                    .is_ok()
            }
        };
        let rill_post = |id: String| {
            let rill = rill.clone();
            async move { rill.post(&id, FRAME).await.is_ok() }
        };
        // Warm both: connections open, credentials cached.
        round(
            args.concurrency * 2,
            args.concurrency,
            &server_stat,
            &sdk_post,
        )
        .await;
        round(
            args.concurrency * 2,
            args.concurrency,
            &server_stat,
            &rill_post,
        )
        .await;
        let (mut sdk_runs, mut rill_runs) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            sdk_runs.push(round(args.posts, args.concurrency, &server_stat, &sdk_post).await);
            rill_runs.push(round(args.posts, args.concurrency, &server_stat, &rill_post).await);
        }
        let n = args.posts as f64;
        let summary = |runs: &[(f64, f64)]| {
            let wall = median(runs.iter().map(|r| r.0).collect());
            let cpu = median(runs.iter().map(|r| r.1).collect());
            (n / wall, cpu / n * 1e6)
        };
        let (sdk_rate, sdk_cpu) = summary(&sdk_runs);
        let (rill_rate, rill_cpu) = summary(&rill_runs);
        println!(
            "bench-post: {} posts x {} rounds, {} in flight, {} burner threads; median round",
            args.posts, args.rounds, args.concurrency, args.burn
        );
        println!("| client | posts/s | client CPU per post |");
        println!("|---|---:|---:|");
        println!("| aws-sdk-apigatewaymanagement (anchor) | {sdk_rate:.0} | {sdk_cpu:.1} us |");
        println!("| rill_aws::notify::ManagementApi | {rill_rate:.0} | {rill_cpu:.1} us |");
        println!(
            "ratio (anchor / rill): throughput x{:.2}, CPU per post x{:.2}",
            rill_rate / sdk_rate,
            sdk_cpu / rill_cpu
        );
    });
    stop.store(true, Ordering::Relaxed);
}
