//! Percentiles: exact over a list (chat), or over a 1 ms histogram (reactions, where the
//! (viewer, reaction) pairs run into the millions).

/// p50/p99/max of a set of latencies in ms; `n` is how many there were.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest rank over `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |p: f64| values[(((values.len() - 1) as f64) * p).round() as usize];
        Summary {
            n: values.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: values[values.len() - 1],
        }
    }

    /// `"p50 12.3 ms, p99 45.6 ms"`, or "none" when nothing arrived.
    pub fn ms(&self) -> String {
        if self.n == 0 {
            return "none delivered".into();
        }
        format!("p50 {:.1} ms, p99 {:.1} ms", self.p50, self.p99)
    }
}

/// Counts per whole millisecond up to [`Histogram::CAP_MS`]; later values land in the last
/// bucket (and are reported as that cap).
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    n: u64,
    max: f64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub const CAP_MS: usize = 300_000;

    pub fn new() -> Histogram {
        Histogram {
            buckets: vec![0; Self::CAP_MS + 1],
            n: 0,
            max: 0.0,
        }
    }

    pub fn add(&mut self, ms: f64) {
        let i = (ms.max(0.0) as usize).min(Self::CAP_MS);
        self.buckets[i] += 1;
        self.n += 1;
        self.max = self.max.max(ms);
    }

    fn at(&self, p: f64) -> f64 {
        let rank = (((self.n - 1) as f64) * p).round() as u64;
        let mut seen = 0;
        for (ms, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen > rank {
                return ms as f64;
            }
        }
        Self::CAP_MS as f64
    }

    pub fn summary(&self) -> Summary {
        if self.n == 0 {
            return Summary::default();
        }
        Summary {
            n: self.n,
            p50: self.at(0.5),
            p99: self.at(0.99),
            max: self.max,
        }
    }
}

/// The most of `times` (seconds, sorted) that fall in any window of `window` seconds.
pub fn peak_in_window(times: &[f64], window: f64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_windows() {
        let s = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max), (51.0, 99.0, 100.0));
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.add(f64::from(v));
        }
        let hs = h.summary();
        assert_eq!((hs.p50, hs.p99), (51.0, 99.0));
        assert_eq!(peak_in_window(&[0.0, 0.2, 0.5, 0.99, 1.0, 1.1], 1.0), 5);
        assert_eq!(peak_in_window(&[0.0, 1.0, 2.0], 1.0), 1);
    }
}
