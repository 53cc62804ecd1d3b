//! Resident memory and CPU of the stack's processes, read from `/proc`: the gateway, the
//! ingest node, the function instances (the gateway's children, named by their
//! executable) and, for context, DynamoDB Local and moto (descendants of this process).

use std::collections::{BTreeMap, HashMap};

/// One function instance at one moment.
#[derive(Debug, Clone)]
pub struct Instance {
    pub pid: u32,
    pub function: String,
    pub rss_kb: u64,
}

/// Every process the soak watches, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub gateway_kb: u64,
    pub node_kb: u64,
    pub functions: Vec<Instance>,
    /// Context only (not judged): DynamoDB Local holds the run's data in memory.
    pub dynamodb_kb: u64,
    pub moto_kb: u64,
    /// utime + stime so far, seconds.
    pub gateway_cpu: f64,
    pub node_cpu: f64,
    pub functions_cpu: f64,
}

impl Snapshot {
    pub fn functions_kb(&self) -> u64 {
        self.functions.iter().map(|i| i.rss_kb).sum()
    }

    /// The largest instance: (function, kB).
    pub fn largest(&self) -> Option<(&str, u64)> {
        self.functions
            .iter()
            .max_by_key(|i| i.rss_kb)
            .map(|i| (i.function.as_str(), i.rss_kb))
    }

    /// Per function: (instances, largest instance kB, total kB).
    pub fn by_function(&self) -> BTreeMap<String, (usize, u64, u64)> {
        let mut out: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
        for i in &self.functions {
            let e = out.entry(i.function.clone()).or_default();
            e.0 += 1;
            e.1 = e.1.max(i.rss_kb);
            e.2 += i.rss_kb;
        }
        out
    }
}

/// `VmRSS` of a process in kB (0 once it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu(pid: u32) -> f64 {
    rill_tests::cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// The parent pid, from `/proc/{pid}/stat` (field 4, after the parenthesised name).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `argv` joined by spaces (`comm` is cut at 15 characters: `events-fanout-s`).
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Every process and its parent.
fn parents() -> HashMap<u32, u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect()
}

/// Descendants of `root` (not `root` itself).
fn descendants(parents: &HashMap<u32, u32>, root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&child, &pp) in parents {
            if pp == p {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

pub fn snapshot(gateway: u32, node: u32) -> Snapshot {
    let parents = parents();
    let mut s = Snapshot {
        gateway_kb: rss_kb(gateway),
        node_kb: rss_kb(node),
        gateway_cpu: cpu(gateway),
        node_cpu: cpu(node),
        ..Snapshot::default()
    };
    for (&pid, &pp) in &parents {
        if pp != gateway {
            continue;
        }
        let argv0 = cmdline(pid);
        let function = argv0
            .split_whitespace()
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or("?")
            .to_owned();
        s.functions_cpu += cpu(pid);
        s.functions.push(Instance {
            pid,
            function,
            rss_kb: rss_kb(pid),
        });
    }
    s.functions.sort_by_key(|i| i.pid);
    for pid in descendants(&parents, std::process::id()) {
        // The services run under shell wrappers whose command lines name them too.
        let cmd = cmdline(pid);
        let program = cmd
            .split_whitespace()
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or("");
        if program == "java" && cmd.contains("DynamoDBLocal") {
            s.dynamodb_kb += rss_kb(pid);
        } else if program.starts_with("python") && cmd.contains("moto_server") {
            s.moto_kb += rss_kb(pid);
        }
    }
    s
}

/// Total RSS of the instances alive in both snapshots, in each: what a leak would grow,
/// apart from instances the gateway added in between.
pub fn same_instances_kb(a: &Snapshot, b: &Snapshot) -> (u64, u64, usize) {
    let in_b: HashMap<u32, u64> = b.functions.iter().map(|i| (i.pid, i.rss_kb)).collect();
    let (mut ka, mut kb, mut n) = (0, 0, 0);
    for i in &a.functions {
        if let Some(&k) = in_b.get(&i.pid) {
            ka += i.rss_kb;
            kb += k;
            n += 1;
        }
    }
    (ka, kb, n)
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
