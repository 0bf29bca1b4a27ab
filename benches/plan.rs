//! Criterion: parse + validate + toposort of synthetic workflows (the same generator as
//! `troupe bench plan`). Targets: 100,000 tasks ≤ 100 ms, 1,000,000 ≤ 2 s (the latter is
//! measured by `troupe bench plan --nodes 1000000`, too slow for criterion's sampling).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use troupe::bench::synthetic_workflow;
use troupe::model::parse_workflow;

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let text = synthetic_workflow(n, 42);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("parse_validate_toposort", n),
            &text,
            |b, t| b.iter(|| parse_workflow(t).unwrap()),
        );
        group.bench_with_input(BenchmarkId::new("baseline_toml_table", n), &text, |b, t| {
            b.iter(|| toml::from_str::<toml::Table>(t).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, plan);
criterion_main!(benches);
