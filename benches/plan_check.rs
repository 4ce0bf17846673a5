//! `plan check` of a generated 10,000-VM plan (target: ≤ 100 ms median on a 2-core machine).
//! Run: `cargo bench --bench plan_check`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wavelift::plan::synth::{generate, SynthSpec};

fn plan_check(c: &mut Criterion) {
    let text = generate(SynthSpec::new(10_000));
    let mut g = c.benchmark_group("plan_check");
    g.sample_size(30);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("10000_vms", |b| {
        b.iter(|| {
            let checked = wavelift::plan::check_str(black_box(&text), "synthetic.toml");
            assert!(checked.plan.is_some());
            checked
        })
    });
    // The floor: the toml crate's spanned parse of the same text, without our reading and rules.
    g.bench_function("10000_vms_toml_parse_only", |b| {
        b.iter(|| {
            let (root, errors) = toml::de::DeTable::parse_recoverable(black_box(&text));
            assert!(errors.is_empty());
            root
        })
    });
    g.finish();
}

criterion_group!(benches, plan_check);
criterion_main!(benches);
