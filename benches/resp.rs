//! Framing and classification costs, per command.
//!
//! Run: `cargo bench --bench resp`
//!
//! Baseline (2026-11-24, 2-core VM, Rust 1.95,
//! `cargo bench --bench resp -- --warm-up-time 1 --measurement-time 2`):
//! * resp::request/scan_pipeline_{1,16,256}: 24.6 ns, 413 ns, 6.6 µs (about 25 ns per command)
//! * resp::reply/status_x16: 124 ns; bulk_x16: 207 ns (8–13 ns per reply)
//! * resp::command/classify_get: 28.9 ns; classify_mixed_case: 36.9 ns; special_set: 5.2 ns

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sentinel_proxy::resp::command::{CommandTable, special};
use sentinel_proxy::resp::reply::ReplyScanner;
use sentinel_proxy::resp::request::{RequestScanner, Scanned};

/// `n` pipelined `SET key:<i> <16-byte value>` commands, as clients send them.
fn pipeline(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:06}");
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\n0123456789abcdef\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    out
}

fn request_framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp::request");
    for n in [1usize, 16, 256] {
        let input = pipeline(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("scan_pipeline_{n}"), |b| {
            let mut scanner = RequestScanner::default();
            b.iter(|| {
                let mut at = 0;
                let mut count = 0;
                while let Ok(Some(Scanned::Request(r))) = scanner.scan(black_box(&input[at..])) {
                    at += r.len;
                    count += 1;
                }
                count
            })
        });
    }
    group.finish();
}

fn reply_framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp::reply");
    let mut ok = Vec::new();
    let mut bulk = Vec::new();
    for _ in 0..16 {
        ok.extend_from_slice(b"+OK\r\n");
        bulk.extend_from_slice(b"$16\r\n0123456789abcdef\r\n");
    }
    for (name, input) in [("status_x16", ok), ("bulk_x16", bulk)] {
        group.throughput(Throughput::Elements(16));
        group.bench_function(name, |b| {
            let mut scanner = ReplyScanner::default();
            b.iter(|| {
                let mut at = 0;
                while let Ok(Some(r)) = scanner.scan(black_box(&input[at..])) {
                    at += r.len;
                }
                at
            })
        });
    }
    group.finish();
}

fn classification(c: &mut Criterion) {
    let mut group = c.benchmark_group("resp::command");
    let table = CommandTable::builtin();
    group.throughput(Throughput::Elements(1));
    group.bench_function("classify_get", |b| b.iter(|| table.info(black_box(b"get"))));
    group.bench_function("classify_mixed_case", |b| {
        b.iter(|| table.info(black_box(b"ZRangeByScore")))
    });
    group.bench_function("special_set", |b| b.iter(|| special(black_box(b"SET"))));
    group.finish();
}

criterion_group!(benches, request_framing, reply_framing, classification);
criterion_main!(benches);
