//! Ingest-node parts of the harness: a real `rill-ingest` on free ports against a
//! [`Stack`]'s table and bucket, and ffmpeg publishing a test pattern over RTMP.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::*;

/// A running `rill-ingest` node on free ports, against a [`Stack`]'s table and bucket.
#[derive(Debug)]
pub struct IngestNode {
    pub rtmp: String,
    pub http: String,
    child: Child,
}

impl IngestNode {
    pub fn start(stack: &Stack, extra_env: &[(&str, &str)]) -> IngestNode {
        let bin = bin_dir().join("rill-ingest");
        assert!(
            bin.exists(),
            "{} is missing: build the workspace first",
            bin.display()
        );
        let mut cmd = Command::new(&bin);
        cmd.envs(aws_env(
            &stack.moto,
            &stack.dynamodb,
            &stack.table,
            &stack.bucket,
        ))
        .env("RTMP_ADDR", "127.0.0.1:0")
        .env("INGEST_HTTP_ADDR", "127.0.0.1:0")
        .env("WEBRTC_UDP_ADDR", "127.0.0.1:0")
        .env("HLS_BASE_URL", stack.url("/hls"))
        // The default (from the cores, at a 1080p ladder's cost) is 1 on a 2-core
        // machine; tests publish several small streams per node.
        .env("NODE_CAPACITY", "8");
        let (child, line) = spawn_announcing(cmd, extra_env);
        // rill-ingest listening on rtmp://A http://B
        let mut parts = line.split_whitespace().skip(3);
        let rtmp = parts
            .next()
            .unwrap_or_else(|| panic!("unexpected ingest output {line:?}"))
            .to_owned();
        let http = parts
            .next()
            .unwrap_or_else(|| panic!("unexpected ingest output {line:?}"))
            .to_owned();
        IngestNode { rtmp, http, child }
    }

    /// The node's process id (CPU accounting in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the node finalises its streams before it exits.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal_term();
        self.wait_exit(Duration::from_secs(30))
    }

    /// Sends SIGTERM and returns at once (the node drains, then exits).
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: the node dies without finalising anything or releasing its leases.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for IngestNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pushes a generated test pattern over RTMP to `rtmp://.../live/{key}` as OBS/ffmpeg would
/// (see [`test_pattern_args`]); blocks until ffmpeg exits and returns its success (a refused
/// publish fails at once).
pub fn publish_rtmp(
    rtmp: &str,
    key: &str,
    size: &str,
    seconds: u32,
    realtime: bool,
    kbps: u32,
) -> bool {
    rtmp_command(rtmp, key, size, seconds, realtime, kbps)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn rtmp_command(
    rtmp: &str,
    key: &str,
    size: &str,
    seconds: u32,
    realtime: bool,
    kbps: u32,
) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args(test_pattern_args(size, seconds, kbps))
        .args(["-f", "flv", &format!("{rtmp}/live/{key}")])
        .stdin(Stdio::null());
    cmd
}

/// A real-time RTMP publish running in the background (killed on drop).
#[derive(Debug)]
pub struct RtmpPublisher {
    child: Child,
}

impl RtmpPublisher {
    /// Starts publishing `seconds` of a `size` test pattern at 1000 kbit/s in real time.
    pub fn start(rtmp: &str, key: &str, size: &str, seconds: u32) -> RtmpPublisher {
        let child = rtmp_command(rtmp, key, size, seconds, true, 1000)
            .spawn()
            .expect("spawn ffmpeg");
        RtmpPublisher { child }
    }

    /// Whether ffmpeg is still publishing after `grace` (a refused publish ends within a
    /// second or two).
    pub fn still_running_after(&mut self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// Whether ffmpeg is still publishing, now (no wait).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtmpPublisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// ffmpeg arguments for a generated test pattern as OBS would send it: `size` at 30 fps for
/// `seconds`, H.264 (x264 veryfast) at `kbps` with maxrate = bitrate, a 2 s buffer and a
/// keyframe every 2 s, and a 440 Hz tone in AAC. The output (and `-re`) is the caller's.
pub fn test_pattern_args(size: &str, seconds: u32, kbps: u32) -> Vec<String> {
    let rate = format!("{kbps}k");
    [
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        &rate,
        "-maxrate",
        &rate,
        "-bufsize",
        &format!("{}k", kbps * 2),
        "-g",
        "60",
        "-c:a",
        "aac",
    ]
    .map(str::to_owned)
    .to_vec()
}
