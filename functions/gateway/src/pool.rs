//! Function instances: child processes behind the Lambda Runtime API, pooled per function.
//!
//! Invariants, as on Lambda:
//! - an instance runs one invocation at a time; a function has at most `max_instances`
//!   instances, and a request finding them all busy waits up to the function's timeout
//!   for one, then gets "throttled";
//! - idle instances are reused, most recently used first (warm starts);
//! - an invocation that outlives the function's timeout kills its instance; so does
//!   `/runtime/init/error`. A dead instance is never reused: the next request starts a
//!   fresh one (cold start).
//!
//! Every instance has its own Runtime API listener, so a request on it can only come from
//! that instance and needs no routing. A supervisor task owns the `Child`; it is the only
//! place that observes the exit, marks the instance dead and drops it from the pool.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::runtime_api;
use crate::template::FunctionSpec;

/// Lambda gives the init phase 10 s, apart from the invocation timeout.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many init times per function the stats keep after their instances are gone.
const INIT_HISTORY: usize = 256;
/// How long shutdown and reset wait for a killed child to be reaped.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// What the function did with an invocation.
#[derive(Debug)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`, buffered: the v2.0 response JSON.
    Response(Bytes),
    /// Streaming response mode: the JSON prelude and the raw body.
    Streamed { prelude: Bytes, body: Bytes },
    /// `POST /invocation/{id}/error`, or the runtime broke the protocol.
    Error { error_type: String, message: String },
}

/// Why an invocation produced no [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("all {0} instances stayed busy for the function's timeout")]
    Throttled(usize),
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the function instance exited during the invocation")]
    Crashed,
    #[error("the function instance failed to initialise: {0}")]
    InitFailed(String),
    #[error("the function could not be started: {0}")]
    SpawnFailed(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// One invocation on its way to an instance's `/next`.
#[derive(Debug)]
pub(crate) struct Invocation {
    pub request_id: String,
    pub event: Bytes,
    pub deadline_ms: u64,
    pub reply: oneshot::Sender<Outcome>,
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub request_id: String,
    pub reply: oneshot::Sender<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Spawned, has not asked for its first invocation yet.
    Starting,
    Idle,
    Busy,
    Dead,
}

/// Per-function counters that outlive instances.
#[derive(Debug, Default)]
pub(crate) struct FunctionCounters {
    cold_starts: AtomicU64,
    invocations: AtomicU64,
    init_history: Mutex<VecDeque<u64>>,
}

/// One running function process.
#[derive(Debug)]
pub(crate) struct Instance {
    pub id: u64,
    pub function: Arc<FunctionSpec>,
    spawned_at: Instant,
    pid: AtomicU32,
    /// Microseconds from spawn to the first `/next`: init targets are single-digit ms.
    init_us: OnceLock<u64>,
    invocations: AtomicU64,
    state: Mutex<InstanceState>,
    queue_tx: mpsc::Sender<Invocation>,
    pub(crate) queue_rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pub(crate) pending: Mutex<Option<Pending>>,
    ready: watch::Sender<bool>,
    exited: watch::Sender<bool>,
    kill: Notify,
    killed_by_gateway: AtomicBool,
    init_error: Mutex<Option<String>>,
    counters: Arc<FunctionCounters>,
}

/// Locks a std mutex, ignoring poison: every critical section here is a plain field update
/// that leaves the data consistent even if a panic interrupted another holder.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Instance {
    pub(crate) fn state(&self) -> InstanceState {
        *lock(&self.state)
    }

    fn set_state(&self, state: InstanceState) {
        let mut current = lock(&self.state);
        // Death is final: a late /next must not resurrect an instance.
        if *current != InstanceState::Dead {
            *current = state;
        }
    }

    /// Called by the Runtime API on every `/next`; the first call ends the init phase.
    pub(crate) fn mark_ready(&self) {
        if self.init_us.get().is_none() {
            let init_us = u64::try_from(self.spawned_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            if self.init_us.set(init_us).is_ok() {
                let init_ms = init_us as f64 / 1000.0;
                self.set_state(InstanceState::Idle);
                {
                    let mut history = lock(&self.counters.init_history);
                    if history.len() == INIT_HISTORY {
                        history.pop_front();
                    }
                    history.push_back(init_us);
                }
                info!(
                    function = %self.function.name,
                    instance = self.id,
                    pid = self.pid.load(Ordering::Relaxed),
                    init_ms,
                    "function instance ready"
                );
                self.ready.send_replace(true);
            }
        }
    }

    pub(crate) fn record_init_error(&self, message: String) {
        error!(function = %self.function.name, instance = self.id, %message, "function init error");
        *lock(&self.init_error) = Some(message);
        self.kill();
    }

    /// Asks the supervisor to kill the process; returns at once.
    pub(crate) fn kill(&self) {
        self.killed_by_gateway.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }

    pub(crate) async fn wait_exit(&self) {
        let mut rx = self.exited.subscribe();
        // The sender lives in `self`, so this cannot fail while we hold `&self`.
        let _ = rx.wait_for(|exited| *exited).await;
    }

    async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    fn exit_error(&self) -> InvokeError {
        match lock(&self.init_error).clone() {
            Some(message) => InvokeError::InitFailed(message),
            None if self.init_us.get().is_none() => {
                InvokeError::InitFailed("exited before asking for an invocation".into())
            }
            None => InvokeError::Crashed,
        }
    }

    fn stats(&self) -> InstanceStats {
        let pid = self.pid.load(Ordering::Relaxed);
        InstanceStats {
            id: self.id,
            pid,
            state: self.state(),
            init_ms: self.init_us.get().map(|us| *us as f64 / 1000.0),
            invocations: self.invocations.load(Ordering::Relaxed),
            rss_kb: rss_kb(pid),
            uptime_ms: u64::try_from(self.spawned_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Resident set size from procfs; `None` off Linux or once the process is gone.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The instances of one function.
#[derive(Debug)]
pub struct FunctionPool {
    spec: Arc<FunctionSpec>,
    functions_dir: PathBuf,
    max_instances: usize,
    /// One permit per concurrent invocation. An instance is spawned only when a permit
    /// holder finds no idle one, so live instances never exceed the permits.
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Arc<Instance>>>,
    live: Mutex<BTreeMap<u64, Arc<Instance>>>,
    counters: Arc<FunctionCounters>,
    next_id: Arc<AtomicU64>,
    /// Variables the gateway provides (`WS_MANAGEMENT_ENDPOINT`): above the template's
    /// literals, below the gateway's own environment.
    default_env: Arc<BTreeMap<String, String>>,
}

impl FunctionPool {
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Runs one invocation to its end.
    pub async fn invoke(self: &Arc<Self>, event: Bytes) -> Result<Outcome, InvokeError> {
        let timeout = self.spec.timeout;
        let _permit = match tokio::time::timeout(timeout, self.slots.clone().acquire_owned()).await
        {
            Err(_) => return Err(InvokeError::Throttled(self.max_instances)),
            Ok(Err(_closed)) => return Err(InvokeError::ShuttingDown),
            Ok(Ok(permit)) => permit,
        };

        let instance = match self.take_idle() {
            Some(instance) => instance,
            None => self.spawn_instance().await?,
        };

        if instance.init_us.get().is_none() {
            tokio::select! {
                biased;
                () = instance.wait_ready() => {}
                () = instance.wait_exit() => return Err(instance.exit_error()),
                () = tokio::time::sleep(INIT_TIMEOUT) => {
                    instance.kill();
                    return Err(InvokeError::InitFailed(format!(
                        "did not ask for an invocation within {INIT_TIMEOUT:?}"
                    )));
                }
            }
        }

        instance.set_state(InstanceState::Busy);
        instance.invocations.fetch_add(1, Ordering::Relaxed);
        self.counters.invocations.fetch_add(1, Ordering::Relaxed);
        let request_id = new_request_id();
        let started = Instant::now();
        let (reply, reply_rx) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.clone(),
            event,
            deadline_ms: epoch_ms(SystemTime::now() + timeout),
            reply,
        };
        // Capacity 1 and one invocation per instance at a time: never blocks for long.
        if instance.queue_tx.send(invocation).await.is_err() {
            return Err(InvokeError::Crashed);
        }

        let result = tokio::select! {
            biased;
            outcome = reply_rx => outcome.map_err(|_| instance.exit_error()),
            () = instance.wait_exit() => Err(instance.exit_error()),
            () = tokio::time::sleep(timeout) => {
                warn!(function = %self.spec.name, instance = instance.id, %request_id,
                      timeout_s = timeout.as_secs(), "invocation timed out; killing instance");
                instance.kill();
                Err(InvokeError::Timeout(timeout))
            }
        };
        debug!(function = %self.spec.name, instance = instance.id, %request_id,
               duration_ms = started.elapsed().as_millis(), ok = result.is_ok(), "invocation done");

        if result.is_ok() && instance.state() != InstanceState::Dead {
            // Back to the pool before the permit drops, so the next waiter finds it.
            instance.set_state(InstanceState::Idle);
            lock(&self.idle).push(instance);
        }
        result
    }

    fn take_idle(&self) -> Option<Arc<Instance>> {
        let mut idle = lock(&self.idle);
        while let Some(instance) = idle.pop() {
            if instance.state() != InstanceState::Dead {
                return Some(instance);
            }
        }
        None
    }

    async fn spawn_instance(self: &Arc<Self>) -> Result<Arc<Instance>, InvokeError> {
        let spawn_failed = |e: std::io::Error| InvokeError::SpawnFailed(e.to_string());
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(spawn_failed)?;
        let port = listener.local_addr().map_err(spawn_failed)?.port();

        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue_tx, queue_rx) = mpsc::channel(1);
        let instance = Arc::new(Instance {
            id,
            function: self.spec.clone(),
            spawned_at: Instant::now(),
            pid: AtomicU32::new(0),
            init_us: OnceLock::new(),
            invocations: AtomicU64::new(0),
            state: Mutex::new(InstanceState::Starting),
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            pending: Mutex::new(None),
            ready: watch::Sender::new(false),
            exited: watch::Sender::new(false),
            kill: Notify::new(),
            killed_by_gateway: AtomicBool::new(false),
            init_error: Mutex::new(None),
            counters: self.counters.clone(),
        });

        let server = tokio::spawn(runtime_api::serve(listener, instance.clone()));
        let mut child = match self.command(port).spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                error!(function = %self.spec.name, error = %e, "cannot start function");
                return Err(spawn_failed(e));
            }
        };
        let pid = child.id().unwrap_or(0);
        instance.pid.store(pid, Ordering::Relaxed);
        self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        let label = format!("{}#{id}", self.spec.name);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(label.clone(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(label, err));
        }
        lock(&self.live).insert(id, instance.clone());
        debug!(function = %self.spec.name, instance = id, pid, port, "function instance spawned");

        let pool = self.clone();
        let supervised = instance.clone();
        tokio::spawn(async move {
            pool.supervise(supervised, child).await;
        });
        Ok(instance)
    }

    fn command(&self, runtime_port: u16) -> Command {
        let spec = &self.spec;
        let mut cmd = Command::new(self.functions_dir.join(&spec.name));
        // Template literals are defaults; whatever the gateway's environment sets wins, so
        // local configuration (endpoint URLs, secrets) reaches the functions.
        for (k, v) in spec.environment.iter().chain(self.default_env.iter()) {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
        let log_stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        cmd.env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{runtime_port}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream)
        // One invocation per instance is the contract the pool relies on.
        .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        if std::env::var_os("AWS_REGION").is_none() {
            cmd.env("AWS_REGION", "us-east-1");
        }
        cmd
    }

    async fn supervise(self: Arc<Self>, instance: Arc<Instance>, mut child: Child) {
        let status = tokio::select! {
            status = child.wait() => status,
            () = instance.kill.notified() => {
                if let Err(e) = child.start_kill() {
                    warn!(function = %self.spec.name, instance = instance.id, error = %e, "kill failed");
                }
                child.wait().await
            }
        };
        instance.set_state(InstanceState::Dead);
        lock(&self.live).remove(&instance.id);
        lock(&self.idle).retain(|i| i.id != instance.id);
        instance.exited.send_replace(true);

        let expected = instance.killed_by_gateway.load(Ordering::Relaxed);
        match status {
            Ok(status) if expected => {
                debug!(function = %self.spec.name, instance = instance.id, %status, "function instance stopped");
            }
            Ok(status) => {
                warn!(function = %self.spec.name, instance = instance.id, %status, "function instance exited");
            }
            Err(e) => {
                error!(function = %self.spec.name, instance = instance.id, error = %e, "cannot reap function instance");
            }
        }
    }

    /// Kills every instance and waits until they are gone; returns how many there were.
    async fn kill_all(&self) -> usize {
        let instances: Vec<Arc<Instance>> = lock(&self.live).values().cloned().collect();
        for instance in &instances {
            instance.kill();
        }
        for instance in &instances {
            if tokio::time::timeout(EXIT_WAIT, instance.wait_exit())
                .await
                .is_err()
            {
                warn!(function = %self.spec.name, instance = instance.id, "instance did not exit after kill");
            }
        }
        instances.len()
    }

    fn stats(&self) -> FunctionStats {
        FunctionStats {
            max_instances: self.max_instances,
            timeout_ms: u64::try_from(self.spec.timeout.as_millis()).unwrap_or(u64::MAX),
            memory_mb: self.spec.memory_mb,
            cold_starts: self.counters.cold_starts.load(Ordering::Relaxed),
            invocations: self.counters.invocations.load(Ordering::Relaxed),
            init_ms_history: lock(&self.counters.init_history)
                .iter()
                .map(|us| *us as f64 / 1000.0)
                .collect(),
            instances: lock(&self.live).values().map(|i| i.stats()).collect(),
        }
    }
}

fn new_request_id() -> String {
    // Lambda request ids are UUIDs; a ULID's 128 bits in UUID layout sort by time, which
    // makes logs easier to follow.
    let hex = format!("{:032x}", u128::from(ulid::Ulid::new()));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn forward_lines(label: String, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    // Function output goes to the gateway's stderr: stdout carries only the "listening"
    // line a harness waits for.
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{label}] {line}");
    }
}

/// All function pools, by function name.
#[derive(Debug)]
pub struct Pool {
    functions: BTreeMap<String, Arc<FunctionPool>>,
}

impl Pool {
    /// `default_env`: variables every function gets unless the gateway's environment sets
    /// them; they override the template's literals.
    pub fn new(
        functions: &[FunctionSpec],
        functions_dir: &Path,
        max_instances: usize,
        default_env: BTreeMap<String, String>,
    ) -> Self {
        let max_instances = max_instances.max(1);
        let next_id = Arc::new(AtomicU64::new(1));
        let default_env = Arc::new(default_env);
        let functions = functions
            .iter()
            .map(|spec| {
                let pool = FunctionPool {
                    spec: Arc::new(spec.clone()),
                    functions_dir: functions_dir.to_owned(),
                    max_instances,
                    slots: Arc::new(Semaphore::new(max_instances)),
                    idle: Mutex::new(Vec::new()),
                    live: Mutex::new(BTreeMap::new()),
                    counters: Arc::default(),
                    next_id: next_id.clone(),
                    default_env: default_env.clone(),
                };
                (spec.name.clone(), Arc::new(pool))
            })
            .collect();
        Self { functions }
    }

    pub fn function(&self, name: &str) -> Option<&Arc<FunctionPool>> {
        self.functions.get(name)
    }

    /// Kills every instance so the next request is a cold start.
    pub async fn reset(&self) -> usize {
        let mut killed = 0;
        for pool in self.functions.values() {
            killed += pool.kill_all().await;
        }
        killed
    }

    /// Refuses new invocations, then kills every instance.
    pub async fn shutdown(&self) {
        for pool in self.functions.values() {
            pool.slots.close();
        }
        let killed = self.reset().await;
        info!(killed, "function instances stopped");
    }

    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            functions: self
                .functions
                .iter()
                .map(|(name, pool)| (name.clone(), pool.stats()))
                .collect(),
        }
    }
}

/// `GET /_gateway/stats`.
#[derive(Debug, Serialize)]
pub struct GatewayStats {
    pub functions: BTreeMap<String, FunctionStats>,
}

#[derive(Debug, Serialize)]
pub struct FunctionStats {
    pub max_instances: usize,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    /// Instances started so far.
    pub cold_starts: u64,
    pub invocations: u64,
    /// Init times (spawn to first `/next`) of the latest instances, oldest first; kept
    /// after the instances die so cold-start benchmarks can read them after a reset.
    pub init_ms_history: Vec<f64>,
    pub instances: Vec<InstanceStats>,
}

#[derive(Debug, Serialize)]
pub struct InstanceStats {
    pub id: u64,
    pub pid: u32,
    pub state: InstanceState,
    /// Milliseconds with microsecond precision; `None` while starting.
    pub init_ms: Option<f64>,
    pub invocations: u64,
    pub rss_kb: Option<u64>,
    pub uptime_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn rss_of_this_process_is_readable() {
        if cfg!(target_os = "linux") {
            assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
        }
    }
}
