//! The REST load: requests started on a fixed schedule (open loop: a slow answer does not
//! slow the schedule), each picked from a weighted mix by smooth weighted round robin (so
//! every kind is spread evenly over the run), every answer counted by status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A request that has not answered by then is a transport error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight beyond this are not started (counted as `skipped`): the client is
/// not allowed to pile up without bound if the stack stalls.
const MAX_IN_FLIGHT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    GetStream,
    ListLive,
    ListPast,
    GetChat,
    GetViewers,
    GetMetrics,
    GetHls,
    GetMaster,
    GetChannel,
    GetQuestions,
    PostChat,
    PatchTitle,
    /// `POST /api/streams/create` then `POST /api/streams/{id}/end` as the owner: two
    /// requests, counted apart.
    CreateEnd,
}

/// The mix, in percent of scheduled slots (`CreateEnd` slots send two requests).
pub const MIX: [(Op, u32); 13] = [
    (Op::GetStream, 18),
    (Op::ListLive, 12),
    (Op::ListPast, 3),
    (Op::GetChat, 14),
    (Op::GetViewers, 10),
    (Op::GetMetrics, 6),
    (Op::GetHls, 5),
    (Op::GetMaster, 8),
    (Op::GetChannel, 4),
    (Op::GetQuestions, 4),
    (Op::PostChat, 12),
    (Op::PatchTitle, 2),
    (Op::CreateEnd, 2),
];

/// Row labels of the per-request table.
fn label(op: Op, second: bool) -> &'static str {
    match (op, second) {
        (Op::GetStream, _) => "GET /api/streams/{id}",
        (Op::ListLive, _) => "GET /api/streams/live",
        (Op::ListPast, _) => "GET /api/streams/past",
        (Op::GetChat, _) => "GET /api/streams/{id}/chat",
        (Op::GetViewers, _) => "GET /api/streams/{id}/viewers",
        (Op::GetMetrics, _) => "GET /api/streams/{id}/metrics",
        (Op::GetHls, _) => "GET /api/streams/{id}/hls",
        (Op::GetMaster, _) => "GET /hls/live/{id}/master.m3u8",
        (Op::GetChannel, _) => "GET /api/channels/{id}",
        (Op::GetQuestions, _) => "GET /api/streams/{id}/questions",
        (Op::PostChat, _) => "POST /api/streams/{id}/chat",
        (Op::PatchTitle, _) => "PATCH /api/streams/{id} (owner)",
        (Op::CreateEnd, false) => "POST /api/streams/create (owner)",
        (Op::CreateEnd, true) => "POST /api/streams/{id}/end (owner)",
    }
}

/// Smooth weighted round robin (nginx's): deterministic, each op spread evenly.
#[derive(Debug)]
struct Picker {
    current: Vec<i64>,
    /// How often each op was picked so far.
    picked: Vec<u64>,
}

impl Picker {
    fn new() -> Picker {
        Picker {
            current: vec![0; MIX.len()],
            picked: vec![0; MIX.len()],
        }
    }

    /// The next op and how many times it was picked before: the op's own counter, which
    /// spreads it over the streams and the chatters evenly (the slot number would not:
    /// an op picked every 50 slots would always land on the same stream of two).
    fn next(&mut self) -> (Op, u64) {
        let total: i64 = MIX.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut best = 0;
        for (i, (_, w)) in MIX.iter().enumerate() {
            self.current[i] += i64::from(*w);
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= total;
        self.picked[best] += 1;
        (MIX[best].0, self.picked[best] - 1)
    }
}

/// Counts for one row.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub by_status: BTreeMap<u16, u64>,
    /// Transport errors and timeouts, by reason.
    pub transport: BTreeMap<String, u64>,
    /// Error codes of 4xx answers (`error.code`), by status and code.
    pub codes: BTreeMap<(u16, String), u64>,
    pub latencies_ms: Vec<f64>,
}

impl Row {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.transport.values().sum::<u64>()
    }

    pub fn class(&self, class: u16) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| **s / 100 == class)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn transport_errors(&self) -> u64 {
        self.transport.values().sum()
    }

    pub fn rate_limited(&self) -> u64 {
        self.by_status.get(&429).copied().unwrap_or(0)
    }

    /// 5xx, transport errors and 4xx other than 429 (the mix sends nothing a correct
    /// server should refuse, so any other 4xx is a fault on one side or the other).
    pub fn errors(&self) -> u64 {
        self.class(5) + self.transport_errors() + self.class(4) - self.rate_limited()
    }
}

/// Everything the load saw, shared with the sampler.
#[derive(Debug, Default)]
pub struct Tally {
    rows: Mutex<BTreeMap<&'static str, Row>>,
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub errors: AtomicU64,
    pub skipped: AtomicU64,
    in_flight: AtomicUsize,
    /// Chat messages stored through REST, per live stream.
    pub chats_ok: Vec<AtomicU64>,
}

impl Tally {
    pub fn new(streams: usize) -> Tally {
        Tally {
            chats_ok: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            ..Tally::default()
        }
    }

    pub fn rows(&self) -> BTreeMap<&'static str, Row> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, label: &'static str, outcome: &Result<(u16, Value), String>, ms: f64) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let row = rows.entry(label).or_default();
        row.latencies_ms.push(ms);
        let error = match outcome {
            Ok((status, body)) => {
                *row.by_status.entry(*status).or_default() += 1;
                if (400..500).contains(status) {
                    let code = body["error"]["code"].as_str().unwrap_or("?").to_owned();
                    *row.codes.entry((*status, code)).or_default() += 1;
                }
                *status >= 500 || ((400..500).contains(status) && *status != 429)
            }
            Err(reason) => {
                *row.transport.entry(reason.clone()).or_default() += 1;
                true
            }
        };
        self.answered.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the load acts on.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub http: reqwest::Client,
    /// The live streams.
    pub streams: Vec<String>,
    pub channel: String,
    pub owner_token: String,
    /// Signed-in users who post chat over REST, taken in turn (far under the per-user rate
    /// limit: see `main`).
    pub chatter_tokens: Vec<String>,
    /// One per live stream: the owner's edits of a stream go one at a time, as from the
    /// web app's edit form. Two overlapping PATCHes of one stream may rightly end in 409
    /// `conflict` (the second was read before the first was written: optimistic versions).
    pub edits: Arc<Vec<tokio::sync::Mutex<()>>>,
}

async fn call(
    t: &Target,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut req = t.http.request(method, format!("{}{path}", t.base));
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.map_err(|e| reason(&e))?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| reason(&e))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// [`call`] and its latency in ms.
async fn timed_call(
    t: &Target,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (Result<(u16, Value), String>, f64) {
    let started = Instant::now();
    let r = call(t, method, path, token, body).await;
    (r, started.elapsed().as_secs_f64() * 1000.0)
}

fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timeout ({} s)", REQUEST_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

/// One scheduled slot: slot `n` of the run, the `k`th of its op.
async fn run_op(t: Arc<Target>, tally: Arc<Tally>, op: Op, n: u64, k: u64) {
    use reqwest::Method;
    let which = (k as usize) % t.streams.len();
    let id = t.streams[which].as_str();
    let path = match op {
        Op::GetStream => format!("/api/streams/{id}"),
        Op::ListLive => "/api/streams/live".into(),
        Op::ListPast => "/api/streams/past".into(),
        Op::GetChat => format!("/api/streams/{id}/chat"),
        Op::GetViewers => format!("/api/streams/{id}/viewers"),
        Op::GetMetrics => format!("/api/streams/{id}/metrics"),
        Op::GetHls => format!("/api/streams/{id}/hls"),
        Op::GetMaster => format!("/hls/live/{id}/master.m3u8"),
        Op::GetChannel => format!("/api/channels/{}", t.channel),
        Op::GetQuestions => format!("/api/streams/{id}/questions"),
        Op::PostChat | Op::PatchTitle => format!("/api/streams/{id}"),
        Op::CreateEnd => "/api/streams/create".into(),
    };
    let (outcome, ms) = match op {
        Op::PostChat => {
            let token = &t.chatter_tokens[(k as usize / t.streams.len()) % t.chatter_tokens.len()];
            let body = json!({"content": format!("soak r{n}")});
            let (r, ms) = timed_call(
                &t,
                Method::POST,
                &format!("{path}/chat"),
                Some(token),
                Some(body),
            )
            .await;
            if matches!(r, Ok((201, _))) {
                tally.chats_ok[which].fetch_add(1, Ordering::Relaxed);
            }
            (r, ms)
        }
        Op::PatchTitle => {
            let body = json!({"title": format!("Soak {which} (edit {n})")});
            let _one_at_a_time = t.edits[which].lock().await;
            timed_call(&t, Method::PATCH, &path, Some(&t.owner_token), Some(body)).await
        }
        Op::CreateEnd => {
            let body = json!({"channelId": t.channel, "title": format!("Soak short {n}")});
            let (r, ms) =
                timed_call(&t, Method::POST, &path, Some(&t.owner_token), Some(body)).await;
            let created = match &r {
                Ok((201, b)) => b["id"].as_str().map(str::to_owned),
                _ => None,
            };
            tally.record(label(op, false), &r, ms);
            let Some(created) = created else { return };
            tally.sent.fetch_add(1, Ordering::Relaxed);
            timed_call(
                &t,
                Method::POST,
                &format!("/api/streams/{created}/end"),
                Some(&t.owner_token),
                Some(json!({})),
            )
            .await
        }
        _ => timed_call(&t, Method::GET, &path, None, None).await,
    };
    tally.record(label(op, op == Op::CreateEnd), &outcome, ms);
}

/// Sends `rps` slots a second until `until`, then waits (up to the request timeout) for
/// the ones in flight.
pub async fn run(t: Target, tally: Arc<Tally>, rps: u32, until: tokio::time::Instant) {
    let t = Arc::new(t);
    let mut picker = Picker::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        let at = tick.tick().await;
        if at >= until {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let (op, k) = picker.next();
        n += 1;
        if tally.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            tally.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tally.sent.fetch_add(1, Ordering::Relaxed);
        tally.in_flight.fetch_add(1, Ordering::Relaxed);
        let (t, tally) = (t.clone(), tally.clone());
        tasks.spawn(async move {
            run_op(t, tally.clone(), op, n, k).await;
            tally.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let _ = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picker_follows_the_weights_exactly_over_one_cycle() {
        let mut p = Picker::new();
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        assert_eq!(total, 100);
        let mut counts: BTreeMap<Op, u32> = BTreeMap::new();
        for _ in 0..total {
            *counts.entry(p.next().0).or_default() += 1;
        }
        for (op, w) in MIX {
            assert_eq!(counts[&op], w, "{op:?}");
        }
    }
}
