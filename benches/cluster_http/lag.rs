//! The relay lag every node records as it applies another node's event
//! (`agora_consumer_lag_seconds`: the event's commit time → applied here),
//! summed over the nodes, read before and after a run.

use super::{Cluster, NODES};

/// The histogram's cumulative buckets (upper bound s, count), sum and count.
#[derive(Default)]
pub struct Lag {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

/// Every node's histogram now, added up.
pub async fn scrape(cluster: &Cluster) -> Lag {
    let mut total = Lag::default();
    for n in 0..NODES {
        let url = format!("{}/metrics", cluster.base(n));
        let text = cluster
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        total.add(&parse(&text));
    }
    total
}

fn parse(text: &str) -> Lag {
    let mut lag = Lag::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("agora_consumer_lag_seconds") else {
            continue;
        };
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if let Some(bucket) = rest.strip_prefix("_bucket{le=\"") {
            let bound = bucket.split('"').next().unwrap_or("+Inf");
            let bound = bound.parse().unwrap_or(f64::INFINITY);
            lag.buckets.push((bound, value));
        } else if rest.starts_with("_sum") {
            lag.sum = value;
        } else if rest.starts_with("_count") {
            lag.count = value;
        }
    }
    lag
}

impl Lag {
    fn add(&mut self, other: &Lag) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// What was recorded after `before`.
    pub fn since(&self, before: &Lag) -> Lag {
        let buckets = self
            .buckets
            .iter()
            .map(|(bound, n)| {
                let was = before
                    .buckets
                    .iter()
                    .find(|b| b.0 == *bound)
                    .map_or(0.0, |b| b.1);
                (*bound, n - was)
            })
            .collect();
        Lag {
            buckets,
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// The smallest bucket bound holding quantile `q`, ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        let want = self.count * q;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= want)
            .map_or(f64::INFINITY, |(bound, _)| bound * 1000.0)
    }

    /// "events, mean, p50 ≤, p99 ≤" for the report.
    pub fn describe(&self) -> String {
        if self.count == 0.0 {
            return "no events applied".to_owned();
        }
        format!(
            "{:.0} events, mean {:.1} ms, p50 ≤ {} ms, p99 ≤ {} ms",
            self.count,
            self.sum / self.count * 1000.0,
            self.quantile_ms(0.50),
            self.quantile_ms(0.99),
        )
    }
}
