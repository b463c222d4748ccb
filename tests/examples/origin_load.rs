//! Load generator for `bench/origin.sh`: KV writes, replication lag, a
//! continuous writer for failover drills, and the checks that read its log
//! back. Talks to real origin processes over HTTP; starts none itself (the
//! script owns the processes so its trap can clean them up).
//!
//! ```text
//! origin_load write  --url U [--url U2 ...] --conns C --seconds S --ns NS --prefix P [--value-bytes B]
//! origin_load lag    --leader U --follower U --samples N --ns NS
//! origin_load churn  --url U1 --url U2 ... --conns C --ns NS --log FILE --stop-file F --max-seconds S
//! origin_load failover --log FILE --kills FILE
//! origin_load verify --url U1 ... --ns NS --log FILE
//! ```
//!
//! Every mode prints one line of `key=value` figures on stdout (progress and
//! problems go to stderr), so the script can pick fields with `sed`.
//! Latencies are client-side: request sent → response head received.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Per-request limit; above the origin's 5 s write timeout so its 503s
/// arrive instead of client-side timeouts.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Debug, Default)]
struct Args {
    values: HashMap<String, Vec<String>>,
}

impl Args {
    fn parse(rest: &[String]) -> anyhow::Result<Self> {
        let mut args = Args::default();
        let mut it = rest.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .with_context(|| format!("expected --flag, got {flag:?}"))?;
            let value = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            args.values
                .entry(name.to_string())
                .or_default()
                .push(value.clone());
        }
        Ok(args)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    fn one(&self, name: &str) -> anyhow::Result<String> {
        self.values
            .get(name)
            .and_then(|v| v.last().cloned())
            .with_context(|| format!("--{name} is required"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.values.get(name).and_then(|v| v.last()) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} {text:?} is not a number")),
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("reqwest client builds")
}

fn token() -> String {
    std::env::var("ORIGIN_TOKEN").unwrap_or_else(|_| "bench-token".into())
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = argv.split_first() else {
        bail!("usage: origin_load write|lag|churn|failover|verify --flag value ...");
    };
    let args = Args::parse(rest)?;
    match mode.as_str() {
        "write" => write(&args).await,
        "lag" => lag(&args).await,
        "churn" => churn(&args).await,
        "failover" => failover(&args),
        "verify" => verify(&args).await,
        other => bail!("unknown mode {other:?}"),
    }
}

/// Closed-loop writers: `conns` workers, each PUTs unique keys back to back
/// for `seconds`. Reports acknowledged writes per second and latency
/// percentiles of the acknowledged ones.
async fn write(args: &Args) -> anyhow::Result<()> {
    let urls = args.all("url");
    if urls.is_empty() {
        bail!("--url is required");
    }
    let conns: usize = args.num("conns", 1)?;
    let seconds: f64 = args.num("seconds", 10.0)?;
    let ns = args.one("ns")?;
    let prefix = args.one("prefix")?;
    let value = "v".repeat(args.num("value-bytes", 100)?);
    let client = client();
    let token = token();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..conns {
        let (client, token, value) = (client.clone(), token.clone(), value.clone());
        let base = format!("{}/kv/{ns}/{prefix}-w{w}-", urls[w % urls.len()]);
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut seq) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < until {
                seq += 1;
                let t0 = Instant::now();
                let sent = client
                    .put(format!("{base}{seq}"))
                    .bearer_auth(&token)
                    .body(value.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        lat.push(t0.elapsed().as_micros() as u64);
                    }
                    Ok(r) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("write: {} from {base}{seq}", r.status());
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("write: {e}");
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "ok={} errors={} seconds={:.2} qps={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        lat.len(),
        errors,
        elapsed,
        lat.len() as f64 / elapsed,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 99.0),
        pct_ms(&lat, 100.0),
    );
    Ok(())
}

/// Replication lag: one write at a time on the leader; from its
/// acknowledgement, GET the key on the follower back to back until it is
/// served. The resolution is one follower GET (a fraction of a ms here).
async fn lag(args: &Args) -> anyhow::Result<()> {
    let leader = args.one("leader")?;
    let follower = args.one("follower")?;
    let samples: usize = args.num("samples", 200)?;
    let ns = args.one("ns")?;
    let client = client();
    let token = token();
    let mut lags = Vec::new();
    let mut polls_total = 0u64;
    for i in 0..samples {
        let path = format!("/kv/{ns}/lag-{}-{i}", std::process::id());
        let r = client
            .put(format!("{leader}{path}"))
            .bearer_auth(&token)
            .body("x")
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("write on the leader answered {}", r.status());
        }
        let acked = Instant::now();
        loop {
            polls_total += 1;
            let r = client
                .get(format!("{follower}{path}"))
                .bearer_auth(&token)
                .send()
                .await?;
            if r.status().is_success() {
                lags.push(acked.elapsed().as_micros() as u64);
                break;
            }
            if acked.elapsed() > Duration::from_secs(5) {
                bail!("the follower did not serve {path} within 5 s of its acknowledgement");
            }
        }
    }
    lags.sort_unstable();
    println!(
        "samples={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} polls_per_sample={:.1}",
        lags.len(),
        pct_ms(&lags, 50.0),
        pct_ms(&lags, 99.0),
        pct_ms(&lags, 100.0),
        polls_total as f64 / lags.len().max(1) as f64,
    );
    Ok(())
}

/// One write attempt of the continuous writer.
struct Attempt {
    start_ns: u128,
    end_ns: u128,
    /// HTTP status, or 0 when no response came (refused, reset, timeout).
    status: u16,
    key: String,
}

/// Continuous writer for failover drills: `conns` workers write a fresh key
/// per attempt, each to its current origin, moving to the next origin after
/// any failure. Runs until `--stop-file` exists, then writes every attempt
/// (`start_ns end_ns status key`, wall-clock ns) to `--log`.
async fn churn(args: &Args) -> anyhow::Result<()> {
    let urls = Arc::new(args.all("url"));
    if urls.is_empty() {
        bail!("--url is required");
    }
    let conns: usize = args.num("conns", 4)?;
    let ns = args.one("ns")?;
    let log = args.one("log")?;
    let stop_file = args.one("stop-file")?;
    let max_seconds: f64 = args.num("max-seconds", 300.0)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let until = Instant::now() + Duration::from_secs_f64(max_seconds);
        tokio::spawn(async move {
            while !std::path::Path::new(&stop_file).exists() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let client = client();
    let token = token();
    let mut tasks = Vec::new();
    for w in 0..conns {
        let (client, token, urls, stop, ns) = (
            client.clone(),
            token.clone(),
            urls.clone(),
            stop.clone(),
            ns.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            let (mut at, mut seq) = (w % urls.len(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let key = format!("c-w{w}-{seq}");
                let start_ns = now_ns();
                let sent = client
                    .put(format!("{}/kv/{ns}/{key}", urls[at]))
                    .bearer_auth(&token)
                    .body("x")
                    .send()
                    .await;
                let status = sent.map_or(0, |r| r.status().as_u16());
                attempts.push(Attempt {
                    start_ns,
                    end_ns: now_ns(),
                    status,
                    key,
                });
                if !(200..300).contains(&status) {
                    at = (at + 1) % urls.len();
                    // Connection refused returns at once; do not spin on it.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            attempts
        }));
    }
    let mut out = String::new();
    let (mut acked, mut failed) = (0, 0);
    for t in tasks {
        for a in t.await? {
            if (200..300).contains(&a.status) {
                acked += 1;
            } else {
                failed += 1;
            }
            out.push_str(&format!(
                "{} {} {} {}\n",
                a.start_ns, a.end_ns, a.status, a.key
            ));
        }
    }
    std::fs::write(&log, out).with_context(|| format!("cannot write {log}"))?;
    println!("acked={acked} failed={failed}");
    Ok(())
}

fn read_attempts(path: &str) -> anyhow::Result<Vec<Attempt>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() != 4 {
                bail!("bad log line {line:?}");
            }
            Ok(Attempt {
                start_ns: f[0].parse()?,
                end_ns: f[1].parse()?,
                status: f[2].parse()?,
                key: f[3].to_string(),
            })
        })
        .collect()
}

/// Failover time per kill from the churn log and the kill times (`dead_ns
/// node` per line, taken once the killed leader was reaped): death → the
/// first acknowledgement of a write *sent after* it (writes in flight at
/// the kill do not count, so this is the conservative reading). Also the
/// longest gap between acknowledgements.
fn failover(args: &Args) -> anyhow::Result<()> {
    let attempts = read_attempts(&args.one("log")?)?;
    let kills_path = args.one("kills")?;
    let kills: Vec<u128> = std::fs::read_to_string(&kills_path)
        .with_context(|| format!("cannot read {kills_path}"))?
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    let mut acks: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .collect();
    acks.sort_by_key(|a| a.end_ns);
    let mut times = Vec::new();
    let mut fields = Vec::new();
    for (i, kill) in kills.iter().enumerate() {
        let next_kill = kills.get(i + 1).copied().unwrap_or(u128::MAX);
        let first = acks
            .iter()
            .filter(|a| a.start_ns >= *kill && a.end_ns < next_kill)
            .map(|a| a.end_ns)
            .min();
        match first {
            Some(end) => {
                let s = (end - kill) as f64 / 1e9;
                times.push(s);
                fields.push(format!("kill{}_s={s:.3}", i + 1));
            }
            None => fields.push(format!("kill{}_s=none", i + 1)),
        }
    }
    let gap_ms = acks
        .windows(2)
        .map(|w| (w[1].end_ns - w[0].end_ns) as f64 / 1e6)
        .fold(0.0, f64::max);
    let failed = attempts.len() - acks.len();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let (max, p50) = if sorted.len() == kills.len() && !sorted.is_empty() {
        (
            format!("{:.3}", sorted[sorted.len() - 1]),
            format!("{:.3}", sorted[(sorted.len() - 1) / 2]),
        )
    } else {
        ("none".into(), "none".into())
    };
    println!(
        "{} failover_max_s={max} failover_p50_s={p50} max_ack_gap_ms={gap_ms:.0} acked={} failed_attempts={failed}",
        fields.join(" "),
        acks.len()
    );
    Ok(())
}

/// Every acknowledged key in the churn log must be served by every origin
/// given (a local listing, not a strong read). Prints the number of
/// acknowledged writes missing from at least one of them.
async fn verify(args: &Args) -> anyhow::Result<()> {
    let ns = args.one("ns")?;
    let acked: BTreeSet<String> = read_attempts(&args.one("log")?)?
        .into_iter()
        .filter(|a| (200..300).contains(&a.status))
        .map(|a| a.key)
        .collect();
    let client = client();
    let token = token();
    let mut lost = BTreeSet::new();
    let mut per_node = Vec::new();
    for url in args.all("url") {
        let mut keys = BTreeSet::new();
        let mut after = String::new();
        loop {
            let page: serde_json::Value = client
                .get(format!("{url}/kv/{ns}?prefix=c-&after={after}"))
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let entries = page["entries"].as_array().context("no entries")?;
            for e in entries {
                keys.insert(e["key"].as_str().context("no key")?.to_string());
            }
            match entries.last() {
                Some(last) if page["truncated"].as_bool() == Some(true) => {
                    after = last["key"].as_str().context("no key")?.to_string();
                }
                _ => break,
            }
        }
        let missing: Vec<&String> = acked.difference(&keys).collect();
        if !missing.is_empty() {
            eprintln!(
                "verify: {url} lacks {} acknowledged keys, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
        per_node.push(missing.len().to_string());
        lost.extend(missing.into_iter().cloned());
    }
    println!(
        "acked_keys={} lost_acked_writes={} missing_per_node={}",
        acked.len(),
        lost.len(),
        per_node.join(",")
    );
    Ok(())
}
