//! Measures the vector index: exact and HNSW latency, recall@10 of HNSW against exact search,
//! graph build time, incremental inserts and memory.
//!
//! `cargo run --release -p brigade-search --example vector_bench -- --n 100000 --dims 384 --queries 1000`
//!
//! Uniform random vectors are the worst case for HNSW and unlike embeddings, so the data is a
//! mixture of Gaussian clusters (`--clusters`, 2000 by default) around random unit centres, each
//! with its own spread (noise norm 0.5–1.5 against the centre's 1, so a point's cosine to its
//! centre is 0.55–0.9), drawn with skewed popularity (a few large clusters, many small),
//! normalised. Queries are fresh draws from the same mixture, not indexed points.
//! Options: `--ef 32,64,100,200` (search widths to sweep), `--m 16`, `--ef-construction 100`,
//! `--seed 7`.

use std::time::{Duration, Instant};

use brigade_search::vector::{HnswOptions, VectorIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    n: usize,
    dims: usize,
    queries: usize,
    clusters: usize,
    ef: Vec<usize>,
    m: usize,
    ef_construction: usize,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        n: 100_000,
        dims: 384,
        queries: 1000,
        clusters: 2000,
        ef: vec![32, 64, 100, 200],
        m: 16,
        ef_construction: 100,
        seed: 7,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let [flag, value] = pair else {
            panic!("expected `--flag value` pairs, got {raw:?}");
        };
        let number = || value.parse::<usize>().expect("a number");
        match flag.as_str() {
            "--n" => args.n = number(),
            "--dims" => args.dims = number(),
            "--queries" => args.queries = number(),
            "--clusters" => args.clusters = number(),
            "--m" => args.m = number(),
            "--ef-construction" => args.ef_construction = number(),
            "--seed" => args.seed = number() as u64,
            "--ef" => {
                args.ef = value
                    .split(',')
                    .map(|v| v.parse().expect("a number"))
                    .collect()
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * rng.random::<f32>()).cos()
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
}

struct Mixture {
    dims: usize,
    centres: Vec<f32>,
    spreads: Vec<f32>,
}

impl Mixture {
    fn new(rng: &mut StdRng, clusters: usize, dims: usize) -> Self {
        let mut centres: Vec<f32> = (0..clusters * dims).map(|_| gaussian(rng)).collect();
        centres.chunks_mut(dims).for_each(normalise);
        let spreads = (0..clusters)
            .map(|_| rng.random_range(0.5..1.5) / (dims as f32).sqrt())
            .collect();
        Mixture {
            dims,
            centres,
            spreads,
        }
    }

    fn sample(&self, rng: &mut StdRng) -> Vec<f32> {
        // Squaring a uniform draw skews popularity towards the first clusters.
        let clusters = self.spreads.len();
        let c = ((rng.random::<f32>().powi(2) * clusters as f32) as usize).min(clusters - 1);
        let centre = &self.centres[c * self.dims..(c + 1) * self.dims];
        let mut v: Vec<f32> = centre
            .iter()
            .map(|x| x + self.spreads[c] * gaussian(rng))
            .collect();
        normalise(&mut v);
        v
    }
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds this process has used (user + system), to read timings on a shared machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name, from `state`; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    ticks(11)
        .zip(ticks(12))
        .map_or(f64::NAN, |(u, s)| (u + s) / 100.0)
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

type Hits = Vec<(u64, f32)>;

fn timed(queries: &[Vec<f32>], mut search: impl FnMut(&[f32]) -> Hits) -> (Vec<Hits>, f64, f64) {
    let mut times = Vec::with_capacity(queries.len());
    let results = queries
        .iter()
        .map(|q| {
            let started = Instant::now();
            let hits = search(q);
            times.push(started.elapsed());
            hits
        })
        .collect();
    let (p50, p99) = percentiles(times);
    (results, p50, p99)
}

fn recall(got: &[Hits], truth: &[Hits]) -> f64 {
    let (mut found, mut wanted) = (0, 0);
    for (g, t) in got.iter().zip(truth) {
        wanted += t.len();
        found += g.iter().filter(|h| t.iter().any(|w| w.0 == h.0)).count();
    }
    found as f64 / wanted.max(1) as f64
}

fn main() {
    let args = parse_args();
    let k = 10;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mixture = Mixture::new(&mut rng, args.clusters, args.dims);
    let vectors: Vec<Vec<f32>> = (0..args.n).map(|_| mixture.sample(&mut rng)).collect();
    let queries: Vec<Vec<f32>> = (0..args.queries)
        .map(|_| mixture.sample(&mut rng))
        .collect();
    let items = || (0..).zip(&vectors).map(|(id, v)| (id, v.as_slice()));
    println!(
        "data: {} x {}-d unit vectors, {} Gaussian clusters; {} queries drawn from the mixture; k = {k}",
        args.n, args.dims, args.clusters, args.queries
    );
    let (rss_data, _) = rss_mib();

    let exact_only = HnswOptions {
        threshold: usize::MAX,
        ..HnswOptions::default()
    };
    let exact = VectorIndex::from_items(args.dims, exact_only, items());
    let (truth, p50, p99) = timed(&queries, |q| exact.search_exact(q, k, None));
    let nn1: Vec<f64> = truth.iter().map(|t| f64::from(t[0].1)).collect();
    println!(
        "exact:             p50 {p50:.3} ms  p99 {p99:.3} ms  (top-1 similarity mean {:.3})",
        nn1.iter().sum::<f64>() / nn1.len() as f64
    );
    let tenth = |id: u64| id.is_multiple_of(10);
    let hundredth = |id: u64| id.is_multiple_of(100);
    let (truth_10, p50, p99) = timed(&queries, |q| exact.search_exact(q, k, Some(&tenth)));
    println!("exact, 10% filter: p50 {p50:.3} ms  p99 {p99:.3} ms");
    let (_, p50, p99) = timed(&queries, |q| exact.search_exact(q, k, Some(&hundredth)));
    println!("exact, 1% filter:  p50 {p50:.3} ms  p99 {p99:.3} ms");
    let (rss_exact, _) = rss_mib();
    println!(
        "memory: vectors as generated {rss_data:.0} MiB RSS; exact index +{:.0} MiB",
        rss_exact - rss_data
    );
    drop(exact);

    let options = HnswOptions {
        threshold: 0,
        max_connections: args.m,
        ef_construction: args.ef_construction,
        background: false,
        ..HnswOptions::default()
    };
    let (rss_before, _) = rss_mib();
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    let index = VectorIndex::from_items(args.dims, options, items());
    let build = started.elapsed().as_secs_f64();
    let build_cpu = cpu_seconds() - cpu_started;
    let (rss_after, peak) = rss_mib();
    println!(
        "hnsw build (M {}, ef_construction {}): {build:.1} s wall, {build_cpu:.1} s CPU on {} threads; index +{:.0} MiB RSS (vectors + graph), peak RSS {peak:.0} MiB",
        args.m,
        args.ef_construction,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rss_after - rss_before
    );
    for &ef in &args.ef {
        index.set_ef_search(ef);
        let (got, p50, p99) = timed(&queries, |q| index.search(q, k, None));
        let (got_10, f50, f99) = timed(&queries, |q| index.search(q, k, Some(&tenth)));
        println!(
            "hnsw ef {ef:>3}:      p50 {p50:.3} ms  p99 {p99:.3} ms  recall@10 {:.4} | 10% filter: p50 {f50:.3} ms  p99 {f99:.3} ms  recall@10 {:.4}",
            recall(&got, &truth),
            recall(&got_10, &truth_10)
        );
    }

    // Incremental upkeep on the built graph: fresh vectors in, then some out.
    let extra: Vec<Vec<f32>> = (0..1000).map(|_| mixture.sample(&mut rng)).collect();
    let started = Instant::now();
    for (id, v) in (args.n as u64..).zip(&extra) {
        index.insert(id, v);
    }
    let per_insert = started.elapsed().as_secs_f64() * 1e3 / extra.len() as f64;
    let started = Instant::now();
    for id in 0..1000 {
        index.remove(id);
    }
    let per_remove = started.elapsed().as_secs_f64() * 1e6 / 1000.0;
    println!("upkeep: insert {per_insert:.3} ms each, remove {per_remove:.1} µs each");
}
