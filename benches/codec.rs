//! Criterion: the per-event costs on the journal's hot paths: envelope encode and decode
//! (CRC32C + bincode) of a 200-byte event, and folding one event into the state.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use troupe::bench::sized_event;
use troupe::model::{parse_workflow, Event, EventRecord, RunId, State, TaskId, Timestamp};
use troupe::storage::codec::{decode_event, encode_event_into};

fn codec(c: &mut Criterion) {
    let rec = sized_event(200, 1);
    let mut buf = Vec::with_capacity(256);
    encode_event_into(1, &rec, &mut buf).unwrap();
    let bytes = buf.clone();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_200B", |b| {
        b.iter(|| {
            buf.clear();
            encode_event_into(1, &rec, &mut buf).unwrap();
        })
    });
    g.bench_function("decode_200B", |b| {
        b.iter(|| decode_event(1, &bytes).unwrap())
    });
    g.finish();
}

fn fold(c: &mut Criterion) {
    let mut text = String::from("name = \"f\"\n");
    for i in 0..1000 {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
    }
    let wf = Arc::new(parse_workflow(&text).unwrap());
    let ids: Vec<TaskId> = (0..1000).map(|i| wf.task_id(i).clone()).collect();
    let mut g = c.benchmark_group("fold");
    g.throughput(Throughput::Elements(2001));
    g.bench_function("run_of_1000_tasks", |b| {
        b.iter(|| {
            let run = RunId::from_u128(1);
            let mut s = State::new();
            let mut seq = 0;
            let mut apply = |s: &mut State, event| {
                seq += 1;
                s.apply(
                    seq,
                    &EventRecord {
                        time: Timestamp(seq),
                        event,
                    },
                )
                .unwrap();
            };
            apply(
                &mut s,
                Event::RunSubmitted {
                    run,
                    workflow: wf.clone(),
                },
            );
            for id in &ids {
                apply(
                    &mut s,
                    Event::AttemptStarted {
                        run,
                        task: id.clone(),
                        attempt: 1,
                    },
                );
                apply(
                    &mut s,
                    Event::TaskSucceeded {
                        run,
                        task: id.clone(),
                        attempt: 1,
                        usage: None,
                    },
                );
            }
            s
        })
    });
    g.finish();
}

criterion_group!(benches, codec, fold);
criterion_main!(benches);
