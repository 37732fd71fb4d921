//! `certroll bench`: measures the roll queue on this machine, in a scratch
//! store (never the real one), with durable commits (`synchronous=FULL`).
//!
//! - scheduling N rolls (one transaction, and one per roll);
//! - N rolls due at one instant, run by the engine `serve` runs: time from
//!   the instant until all are committed, rolls/s, lateness p50/p99/max;
//! - N rolls at distinct instants spread over a window: lateness;
//! - a real `certroll serve` process idling over N scheduled rolls: CPU
//!   time and resident memory.
//!
//! Lateness is measured when the transaction holding the roll has
//! committed, not when it started.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Duration, Utc};

use crate::cert::bundle::{self, Entry, Input};
use crate::cert::{Scope, SlotKey, UsageType};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::schedule::engine::{Engine, Msg};
use crate::store::{NewCert, OpCtx, RollOutcome, Store};

/// Sizes of one benchmark run.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub schedule_n: usize,
    pub burst_sizes: Vec<usize>,
    pub spread_n: usize,
    pub spread_secs: i64,
    pub idle_n: usize,
    pub idle_secs: u64,
    pub delivery_n: usize,
    /// Only these measurements (all when empty).
    pub only: Vec<Case>,
}

/// One of the benchmark's measurements (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// Scheduling rolls, in one transaction and one transaction each
    Schedule,
    /// Rolls due at one instant, and the limit of the store's own writes
    Burst,
    /// Rolls at distinct instants over a window: lateness
    Spread,
    /// Events through the outbox to a local webhook
    Delivery,
    /// An idle `certroll serve`, then scrapes of its /metrics
    Idle,
    /// The renewal duty over many slots under a rollover policy
    Renewal,
}

impl BenchPlan {
    fn runs(&self, case: Case) -> bool {
        self.only.is_empty() || self.only.contains(&case)
    }
}

impl BenchPlan {
    pub fn full() -> BenchPlan {
        BenchPlan {
            schedule_n: 10_000,
            burst_sizes: vec![10_000, 100_000],
            spread_n: 10_000,
            spread_secs: 60,
            idle_n: 100_000,
            idle_secs: 60,
            delivery_n: 10_000,
            only: Vec::new(),
        }
    }

    pub fn quick() -> BenchPlan {
        BenchPlan {
            schedule_n: 1_000,
            burst_sizes: vec![1_000],
            spread_n: 200,
            spread_secs: 2,
            idle_n: 1_000,
            idle_secs: 2,
            delivery_n: 200,
            only: Vec::new(),
        }
    }
}

/// A certificate pair to roll between, generated fresh (self-signed EC
/// P-256 via ring): the benchmark needs no fixture files.
fn certs() -> Result<(Entry, Entry)> {
    let make = |cn: &str| -> Result<Entry> {
        let pem = crate::bench::selfsigned::make(cn)?;
        let parsed = bundle::parse(&Input {
            data: pem.as_bytes(),
            key_file: None,
            password: None,
        })
        .map_err(|e| anyhow!("benchmark certificate: {e}"))?;
        Ok(parsed.entries.into_iter().next().expect("one entry"))
    };
    Ok((make("bench-a.contoso.com")?, make("bench-b.contoso.com")?))
}

fn new_cert(e: &Entry) -> NewCert<'_> {
    NewCert {
        cert: &e.cert,
        chain: &e.chain,
        key: e.key.as_ref(),
        friendly_name: None,
        source_file: Some("bench"),
        request: None,
    }
}

fn slots(prefix: &str, n: usize) -> Vec<SlotKey> {
    (0..n)
        .map(|i| {
            SlotKey::new(
                Scope::Pool(format!("{prefix}{i:06}.bench.example")),
                UsageType::from_canonical("OAuthTokenIssuer"),
            )
        })
        .collect()
}

fn ctx() -> OpCtx {
    OpCtx {
        now: Utc::now(),
        actor: "bench".into(),
    }
}

fn bench_config() -> Result<Arc<Config>> {
    // Bench certificates are self-signed EC with no SIP domain; the policy
    // is the default otherwise. Maintenance off: it is not measured here.
    Ok(Arc::new(Config::parse(
        "[serve]\nmaintenance = \"\"\n[policy.OAuthTokenIssuer]\nmin_remaining_days = 0\n",
        Path::new("bench.toml"),
    )?))
}

/// A burst's figures: when the last of `n` rolls committed, and the
/// lateness percentiles (`lat` sorted, in ms).
fn print_burst(out: &mut dyn std::io::Write, title: &str, n: usize, lat: &[f64]) -> Result<()> {
    let last = last(lat);
    writeln!(out, "\n{title}:")?;
    writeln!(
        out,
        "  all committed {:.3} s after the instant, {:.0} rolls/s",
        last / 1000.0,
        n as f64 / (last / 1000.0).max(1e-9)
    )?;
    writeln!(
        out,
        "  lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(lat, 50.0),
        percentile(lat, 99.0),
        last
    )?;
    Ok(())
}

/// A fresh store at `loc` with `n` slots holding `a`, and `b` scheduled for
/// all of them in one transaction, a day ahead.
fn scheduled_far(
    loc: &crate::store::Location,
    prefix: &str,
    n: usize,
    a: &Entry,
    b: &Entry,
) -> Result<Store> {
    let (mut store, keys) = prepared_at(loc, prefix, n, a)?;
    store.schedule(
        Some(&new_cert(b)),
        &b.cert.thumbprint,
        &keys,
        Utc::now() + Duration::days(1),
        false,
        &ctx(),
    )?;
    Ok(store)
}

/// `n` rolls due at one instant, run by `engines` engines of `serve` on
/// the store at `loc` (fresh): the lateness of each, sorted, in ms.
fn burst(
    loc: &crate::store::Location,
    n: usize,
    engines: usize,
    a: &Entry,
    b: &Entry,
) -> Result<Vec<f64>> {
    let mut store = scheduled_far(loc, "b", n, a, b)?;
    // Scheduled far ahead, then moved to the instant: the time to schedule
    // is already behind; the lead leaves time for the engines to start.
    store.bench_move_due(Utc::now() + Duration::milliseconds(2_000))?;
    let mut stores = vec![store];
    for _ in 1..engines {
        stores.push(Store::open_at(loc)?);
    }
    run_engines(stores, n)
}

/// The limit of the store's own writes for a burst of `n` (see
/// `Store::bench_write_limit`), on the store at `loc` (fresh): seconds.
fn write_limit(loc: &crate::store::Location, n: usize, a: &Entry, b: &Entry) -> Result<f64> {
    let mut store = scheduled_far(loc, "w", n, a, b)?;
    let batch = bench_config()?.serve.batch_size as usize;
    let (took, done) = store.bench_write_limit("bench-limit", batch)?;
    if done != n {
        return Err(anyhow!("the write limit wrote {done} of {n} rolls"));
    }
    Ok(took.as_secs_f64())
}

/// The write limit's figures, and each burst's share of its rate (`bursts`:
/// a label and the lateness of its last roll in ms).
fn print_limit(
    out: &mut dyn std::io::Write,
    n: usize,
    limit: f64,
    bursts: &[(&str, f64)],
) -> Result<()> {
    let batch = bench_config()?.serve.batch_size;
    writeln!(
        out,
        "  limit of the store's own writes: {limit:.3} s, {:.0} rolls/s (the statements of a roll's transaction, {batch} rolls to one, no engine)",
        n as f64 / limit.max(1e-9)
    )?;
    for (label, last_ms) in bursts {
        writeln!(
            out,
            "  the burst{label} ran at {:.0} % of that rate",
            100.0 * limit / (last_ms / 1000.0).max(1e-9)
        )?;
    }
    Ok(())
}

/// The lateness of the last roll of a burst (`lat` sorted), in ms.
fn last(lat: &[f64]) -> f64 {
    lat.iter().cloned().fold(0.0, f64::max)
}

/// `plan.spread_n` rolls at distinct instants over `plan.spread_secs`, on
/// the store at `loc` (fresh), each scheduled in a transaction of its own
/// as separate `set --roll` would: the lateness of each, sorted, in ms.
fn spread(
    loc: &crate::store::Location,
    plan: &BenchPlan,
    a: &Entry,
    b: &Entry,
) -> Result<Vec<f64>> {
    let n = plan.spread_n;
    let (mut store, keys) = prepared_at(loc, "d", n, a)?;
    let far = Utc::now() + Duration::days(1);
    for k in &keys {
        store.schedule(
            Some(&new_cert(b)),
            &b.cert.thumbprint,
            std::slice::from_ref(k),
            far,
            false,
            &ctx(),
        )?;
    }
    // Then moved into the window, which opens after the engine's start.
    let start = Utc::now() + Duration::seconds(2);
    let step = Duration::microseconds(plan.spread_secs * 1_000_000 / n as i64);
    store.bench_spread_due(start, step)?;
    if Utc::now() + Duration::milliseconds(500) > start {
        return Err(anyhow!(
            "moving {n} rolls into the window took more than its 2 s lead: the lateness would measure that"
        ));
    }
    run_engine(store, n)
}

fn print_spread(
    out: &mut dyn std::io::Write,
    plan: &BenchPlan,
    on: &str,
    lat: &[f64],
) -> Result<()> {
    writeln!(
        out,
        "\n{} rolls at distinct instants over {} s{on}:",
        plan.spread_n, plan.spread_secs
    )?;
    writeln!(
        out,
        "  lateness p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(lat, 50.0),
        percentile(lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN)
    )?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A fresh store with `n` slots holding `a` as current.
fn prepared(dir: &Path, prefix: &str, n: usize, a: &Entry) -> Result<(Store, Vec<SlotKey>)> {
    prepared_at(&crate::store::Location::sqlite(dir), prefix, n, a)
}

fn prepared_at(
    loc: &crate::store::Location,
    prefix: &str,
    n: usize,
    a: &Entry,
) -> Result<(Store, Vec<SlotKey>)> {
    let mut store = Store::open_at(loc)?;
    let keys = slots(prefix, n);
    for chunk in keys.chunks(10_000) {
        store.assign(Some(&new_cert(a)), &a.cert.thumbprint, chunk, &ctx())?;
    }
    Ok((store, keys))
}

pub fn run(
    plan: &BenchPlan,
    out: &mut dyn std::io::Write,
    bin: &Path,
    scratch: Option<&Path>,
) -> Result<()> {
    let tmp;
    let root: PathBuf = match scratch {
        Some(p) => p.to_path_buf(),
        None => {
            tmp = tempdir()?;
            tmp.0.clone()
        }
    };
    let (a, b) = certs()?;
    writeln!(
        out,
        "certroll bench: {} CPU(s), SQLite {} (synchronous=FULL, WAL), scratch store in {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        rusqlite_version(),
        root.display()
    )?;

    // 1. Scheduling.
    if plan.runs(Case::Schedule) {
        let n = plan.schedule_n;
        let (mut store, keys) = prepared(&root.join("schedule"), "s", n, &a)?;
        let at = Utc::now() + Duration::days(1);
        let t = Instant::now();
        store.schedule(
            Some(&new_cert(&b)),
            &b.cert.thumbprint,
            &keys,
            at,
            false,
            &ctx(),
        )?;
        let one_tx = t.elapsed();
        let per = n.min(1_000);
        let (mut store2, keys2) = prepared(&root.join("schedule-each"), "e", per, &a)?;
        let t = Instant::now();
        for k in &keys2 {
            store2.schedule(
                Some(&new_cert(&b)),
                &b.cert.thumbprint,
                std::slice::from_ref(k),
                at,
                false,
                &ctx(),
            )?;
        }
        let each = t.elapsed();
        writeln!(
            out,
            "\nschedule {n} rolls in one transaction:     {:>9.3} s  ({:.0} rolls/s)",
            one_tx.as_secs_f64(),
            n as f64 / one_tx.as_secs_f64()
        )?;
        writeln!(
            out,
            "schedule {per} rolls, one transaction each: {:>9.3} s  ({:.0} rolls/s, {:.2} ms per durable commit)",
            each.as_secs_f64(),
            per as f64 / each.as_secs_f64(),
            each.as_secs_f64() * 1000.0 / per as f64
        )?;
    }

    // 2. Bursts: all due at one instant, and the store's own write limit.
    if plan.runs(Case::Burst) {
        for &n in &plan.burst_sizes {
            let loc = crate::store::Location::sqlite(&root.join(format!("burst-{n}")));
            let lat = burst(&loc, n, 1, &a, &b)?;
            print_burst(
                out,
                &format!("{n} rolls due at one instant (engine of `serve`)"),
                n,
                &lat,
            )?;
            let loc = crate::store::Location::sqlite(&root.join(format!("limit-{n}")));
            let limit = write_limit(&loc, n, &a, &b)?;
            print_limit(out, n, limit, &[("", last(&lat))])?;
        }
    }

    // 3. Spread: distinct instants over a window.
    if plan.runs(Case::Spread) {
        let loc = crate::store::Location::sqlite(&root.join("spread"));
        let lat = spread(&loc, plan, &a, &b)?;
        print_spread(out, plan, "", &lat)?;
    }

    // 4. Notifications: events through the outbox to a local webhook.
    if plan.runs(Case::Delivery) && plan.delivery_n > 0 {
        let n = plan.delivery_n;
        let dir = root.join("delivery");
        let (store, _) = prepared(&dir, "n", n, &a)?;
        drop(store);
        let (port, received) = receiver::start()?;
        let config = Config::parse(
            &format!(
                "[serve]\nmaintenance = \"\"\n[notify]\nbatch_size = 64\n[[notify.webhook]]\nname = \"bench\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
            ),
            Path::new("bench.toml"),
        )?;
        let mut notifier = crate::notify::notifier::Notifier::new(
            Store::open(&dir)?,
            &config,
            Arc::new(SystemClock),
        )
        .map_err(|e| anyhow!(e))?;
        let t = Instant::now();
        let mut delivered = 0;
        while delivered < n {
            let s = notifier.pass()?;
            if s.retried + s.dead > 0 {
                return Err(anyhow!(
                    "{} benchmark deliveries failed",
                    s.retried + s.dead
                ));
            }
            delivered += s.delivered;
            if t.elapsed() > std::time::Duration::from_secs(600) {
                return Err(anyhow!("delivery did not finish in 10 minutes"));
            }
        }
        let took = t.elapsed().as_secs_f64();
        writeln!(
            out,
            "\n{n} events through the outbox to a local webhook (HTTP/1.1 keep-alive, 64 at once):"
        )?;
        writeln!(
            out,
            "  {:.3} s, {:.0} events/s, receiver got {}",
            took,
            n as f64 / took,
            received.load(std::sync::atomic::Ordering::Relaxed)
        )?;
    }

    // 5. An idle `certroll serve` process over many scheduled rolls.
    if plan.runs(Case::Idle) {
        let loc = crate::store::Location::sqlite(&root.join("idle"));
        idle(out, plan, bin, &loc, None, "", &a, &b)?;
    }

    // 6. The renewal duty's survey and a pass with nothing due.
    if plan.runs(Case::Renewal) {
        let loc = crate::store::Location::sqlite(&root.join("renewal"));
        renewal(out, plan.idle_n, &loc, &a)?;
    }
    Ok(())
}

/// The renewal duty over `n` slots under a self-signed policy, none due:
/// what `renew --what-if` (and `get`, `check`, `/metrics`) read, and a pass
/// of serve's duty that finds nothing to do.
fn renewal(
    out: &mut dyn std::io::Write,
    n: usize,
    loc: &crate::store::Location,
    a: &Entry,
) -> Result<()> {
    let (mut store, _) = prepared_at(loc, "r", n, a)?;
    let config = Config::parse(
        "[policy.OAuthTokenIssuer]\nmin_remaining_days = 0\nscopes = []\n\
         [renewal.OAuthTokenIssuer]\nmethod = \"self-signed\"\ngenerate_before_days = 6\n\
         promote_before_days = 5\ncritical_before_days = 1\n",
        Path::new("bench.toml"),
    )?;
    // The bench certificate lives far longer than six days: nothing is due.
    let now = Utc::now();
    let t = std::time::Instant::now();
    let all = crate::ops::renew::survey(&store, &config, now, &[], None)?;
    let survey = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let report = crate::ops::renew::pass(&mut store, &config, now, "bench")?;
    let pass = t.elapsed().as_secs_f64();
    writeln!(
        out,
        "\nthe renewal duty over {} slots under a policy (nothing due):",
        all.len()
    )?;
    writeln!(
        out,
        "  survey (renew --what-if, get, check, /metrics) {survey:.3} s; a pass of serve's duty {pass:.3} s ({} steps)",
        report.outcomes.len()
    )?;
    Ok(())
}

/// An idle `certroll serve` over `plan.idle_n` scheduled rolls in the store
/// at `loc` (`store` the configuration's `[store]` section and password
/// when it is PostgreSQL): its CPU over a quiet interval once its start
/// (and expiry watch) is done, then scrapes of its /metrics.
#[allow(clippy::too_many_arguments)]
fn idle(
    out: &mut dyn std::io::Write,
    plan: &BenchPlan,
    bin: &Path,
    loc: &crate::store::Location,
    store: Option<(String, Option<String>)>,
    on: &str,
    a: &Entry,
    b: &Entry,
) -> Result<()> {
    let n = plan.idle_n;
    let dir = &loc.data_dir;
    let (mut store_, keys) = prepared_at(loc, "i", n, a)?;
    let at = Utc::now() + Duration::days(1);
    for chunk in keys.chunks(10_000) {
        store_.schedule(
            Some(&new_cert(b)),
            &b.cert.thumbprint,
            chunk,
            at,
            false,
            &ctx(),
        )?;
    }
    drop(store_);
    let cfg = dir.join("bench.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (section, password) = store.unwrap_or_default();
    std::fs::write(
        &cfg,
        format!("[serve]\nmaintenance = \"\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{section}"),
    )?;
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["--config"])
        .arg(&cfg)
        .args(["--data-dir"])
        .arg(dir)
        .args(["-q", "serve"])
        .stdin(std::process::Stdio::null());
    if let Some(pw) = password {
        cmd.env("CERTROLL_STORE_PASSWORD", pw);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    // Let it start and finish its expiry watch: until it used under 1 %
    // of a CPU over a second (not by scraping it, which would count the
    // scrape's memory), at most 5 minutes.
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    let mut before = proc_stat(pid)?.0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if let Ok(Some(status)) = child.try_wait() {
            return Err(anyhow!(
                "the idle `certroll serve` exited at start: {status}"
            ));
        }
        let now = proc_stat(pid)?.0;
        if now - before < 0.01 {
            break;
        }
        before = now;
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(anyhow!(
                "the idle `certroll serve` was still busy after 5 minutes"
            ));
        }
    }
    let (cpu0, _) = proc_stat(pid)?;
    let t = Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(plan.idle_secs));
    let (cpu1, rss) = proc_stat(pid)?;
    let wall = t.elapsed().as_secs_f64();
    // Scrapes of /metrics over the same store: every slot's certificates
    // are read at each scrape.
    let mut scrapes = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let body = http_get(port, "/metrics")?;
        scrapes.push(t.elapsed().as_secs_f64());
        size = body.len();
    }
    let (_, rss_after) = proc_stat(pid)?;
    scrapes.sort_by(f64::total_cmp);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait()?;
    writeln!(
        out,
        "\nidle `certroll serve` over {n} scheduled rolls{on} for {:.0} s:",
        wall
    )?;
    writeln!(
        out,
        "  CPU {:.3} s ({:.3} %), resident memory {:.1} MiB, exit {}",
        cpu1 - cpu0,
        (cpu1 - cpu0) / wall * 100.0,
        rss as f64 / 1024.0,
        status.code().map_or("signal".into(), |c| c.to_string())
    )?;
    writeln!(
        out,
        "\nGET /metrics over {n} slots{on} (current and pending each; series of their own for up to {} of them), 5 scrapes:",
        crate::config::HttpConfig::default().metrics_max_slots
    )?;
    writeln!(
        out,
        "  median {:.3} s, slowest {:.3} s, {:.1} MiB of text; serve's resident memory after {:.1} MiB",
        scrapes[scrapes.len() / 2],
        scrapes[scrapes.len() - 1],
        size as f64 / (1024.0 * 1024.0),
        rss_after as f64 / 1024.0
    )?;
    Ok(())
}

/// A plain HTTP/1.1 GET (Connection: close); the body, or an error for a
/// status other than 200.
fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::anyhow!("the listener on port {port}: {e}"));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("GET {path}: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(anyhow::anyhow!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

/// Runs the engine over `store` until `n` jobs succeeded; returns each
/// job's lateness at commit, in ms, sorted. Progress is followed through
/// the engine's observer, not by querying the store (which would compete
/// with the engine for the CPU).
fn run_engine(store: Store, n: usize) -> Result<Vec<f64>> {
    run_engines(vec![store], n)
}

/// As [`run_engine`], with one engine per store (on one shared database).
fn run_engines(stores: Vec<Store>, n: usize) -> Result<Vec<f64>> {
    struct Progress {
        lateness: Vec<f64>,
        failed: usize,
    }
    let progress = Arc::new(Mutex::new(Progress {
        lateness: Vec::with_capacity(n),
        failed: 0,
    }));
    let mut threads = Vec::new();
    for store in stores {
        let sink = progress.clone();
        let engine = Engine::new(store, bench_config()?, Arc::new(SystemClock))?.with_observer(
            Box::new(move |results, committed: DateTime<Utc>| {
                let mut p = sink.lock().expect("progress lock");
                for r in results {
                    match r.outcome {
                        RollOutcome::Succeeded { .. } => {
                            let d = committed - r.due_at;
                            p.lateness
                                .push(d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
                        }
                        _ => p.failed += 1,
                    }
                }
            }),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        threads.push((tx, std::thread::spawn(move || engine.run(rx))));
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    let outcome = loop {
        {
            let p = progress.lock().expect("progress lock");
            if p.failed > 0 {
                break Err(anyhow!("{} benchmark rolls did not succeed", p.failed));
            }
            if p.lateness.len() >= n {
                break Ok(());
            }
        }
        if Instant::now() > deadline {
            break Err(anyhow!("the benchmark did not finish in 10 minutes"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    for (tx, _) in &threads {
        let _ = tx.send(Msg::Shutdown);
    }
    for (_, thread) in threads {
        thread
            .join()
            .map_err(|_| anyhow!("the engine thread panicked"))??;
    }
    outcome?;
    let mut l = std::mem::take(&mut progress.lock().expect("progress lock").lateness);
    l.sort_by(f64::total_cmp);
    Ok(l)
}

/// CPU seconds (user + system) and VmRSS in KiB of a process.
fn proc_stat(pid: u32) -> Result<(f64, u64)> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    let after = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad /proc stat"))? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks / hz, rss))
}

fn rusqlite_version() -> String {
    let conn = rusqlite::Connection::open_in_memory();
    conn.and_then(|c| c.query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0)))
        .unwrap_or_else(|_| "?".into())
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

fn tempdir() -> Result<TempDir> {
    let base = std::env::temp_dir().join(format!("certroll-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(TempDir(base))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod receiver {
    //! A minimal HTTP/1.1 receiver with keep-alive, answering 200 to every
    //! request: the far end of the delivery benchmark.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub fn start() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let c = c.clone();
                std::thread::spawn(move || {
                    let Ok(mut out) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        c.fetch_add(1, Ordering::Relaxed);
                        if out
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok((port, count))
    }
}

mod selfsigned {
    //! A self-signed EC P-256 certificate and key (rcgen on ring): enough
    //! for the benchmark to have something to roll.

    use anyhow::Result;

    pub fn make(cn: &str) -> Result<String> {
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(vec![cn.to_string()])?;
        let cert = params.self_signed(&key)?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
    }
}

/// The bursts and the spread of [`run`] on a PostgreSQL server: each in a
/// scratch database of its own (created on `target`'s server, which needs
/// CREATEDB, and dropped after), the bursts with one engine and with
/// three sharing the database.
pub fn run_postgres(
    plan: &BenchPlan,
    out: &mut dyn std::io::Write,
    bin: &Path,
    target: &crate::store::PostgresTarget,
) -> Result<()> {
    use crate::store::{Database, Location};
    // The master key of the scratch stores.
    let tmp = tempdir()?;
    let scratch = tmp.0.clone();
    let (a, b) = certs()?;
    writeln!(
        out,
        "\ncertroll bench on PostgreSQL {}: scratch databases certroll_bench_* on that server",
        target.describe()
    )?;
    let mut case = 0;
    let mut fresh = |what: &str| -> Result<(Location, String)> {
        case += 1;
        let name = format!("certroll_bench_{}_{case}", std::process::id());
        let t = target
            .create_scratch_database(&name)
            .with_context(|| format!("{what}: cannot create the scratch database {name}"))?;
        Ok((
            Location {
                data_dir: scratch.join(&name),
                database: Database::Postgres(Box::new(t)),
                master_key_file: None,
            },
            name,
        ))
    };
    if plan.runs(Case::Burst) {
        for &n in &plan.burst_sizes {
            let mut lasts = Vec::new();
            for engines in [1usize, 3] {
                let (loc, name) = fresh("burst")?;
                let lat = burst(&loc, n, engines, &a, &b)?;
                print_burst(
                    out,
                    &format!("{n} rolls due at one instant, {engines} engine(s) on PostgreSQL"),
                    n,
                    &lat,
                )?;
                lasts.push(last(&lat));
                target.drop_scratch_database(&name)?;
            }
            let (loc, name) = fresh("limit")?;
            let limit = write_limit(&loc, n, &a, &b)?;
            writeln!(out, "{n} rolls on PostgreSQL, the store's own writes:")?;
            print_limit(
                out,
                n,
                limit,
                &[(" of 1 engine", lasts[0]), (" of 3 engines", lasts[1])],
            )?;
            target.drop_scratch_database(&name)?;
        }
    }
    if plan.runs(Case::Spread) {
        let (loc, name) = fresh("spread")?;
        let lat = spread(&loc, plan, &a, &b)?;
        print_spread(out, plan, ", PostgreSQL", &lat)?;
        target.drop_scratch_database(&name)?;
    }
    if plan.runs(Case::Idle) {
        let (loc, name) = fresh("idle")?;
        let crate::store::Database::Postgres(t) = &loc.database else {
            unreachable!("a scratch database is on PostgreSQL");
        };
        let section = t.store_section();
        idle(
            out,
            plan,
            bin,
            &loc,
            Some(section),
            " on PostgreSQL",
            &a,
            &b,
        )?;
        target.drop_scratch_database(&name)?;
    }
    Ok(())
}
