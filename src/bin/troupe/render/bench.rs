//! Text output of `troupe bench`: each figure beside its baseline and their ratio. (The JSON
//! output is the reports' serde shape.)

use troupe::bench::metrics::MetricsBenchReport;
use troupe::bench::saga::SagaBenchReport;
use troupe::bench::tasks::TasksBenchReport;
use troupe::bench::{JournalBenchReport, PlanBenchReport};
use troupe::Durability;

/// A count or rate rounded to a whole number with thousands separators: `1,234,567`.
pub(crate) fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// `troupe bench journal`, `seconds` per measured case.
pub(crate) fn print_journal(report: &JournalBenchReport, seconds: f64) {
    println!(
        "troupe bench journal: {}-byte events, durability {}, {:.1} s per case",
        report.event_bytes,
        match report.durability {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        },
        seconds
    );
    println!(
        "{:>9}  {:>17}  {:>20}  {:>6}  {:>10}",
        "appenders", "troupe events/s", "raw RocksDB events/s", "ratio", "mean batch"
    );
    for c in &report.append {
        println!(
            "{:>9}  {:>17}  {:>20}  {:>5.2}x  {:>10.1}",
            c.appenders,
            thousands(c.events_per_sec),
            thousands(c.baseline_events_per_sec),
            c.ratio,
            c.mean_batch
        );
    }
    let l = &report.latency;
    println!(
        "ack latency at {} events/s offered: achieved {}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        thousands(l.offered_per_sec as f64),
        thousands(l.achieved_per_sec),
        l.p50_us as f64 / 1e3,
        l.p99_us as f64 / 1e3,
        l.max_us as f64 / 1e3
    );
    let r = &report.replay;
    println!(
        "replay: {} events at {} events/s; raw RocksDB scan {} events/s; ratio {:.2}x",
        thousands(r.events as f64),
        thousands(r.events_per_sec),
        thousands(r.baseline_events_per_sec),
        r.ratio
    );
}

/// `troupe bench tasks` with `workers` for the no-op run and `true_workers` for /bin/true.
pub(crate) fn print_tasks(r: &TasksBenchReport, workers: u32, true_workers: u32) {
    println!("troupe bench tasks: durability {}", r.durability);
    let n = &r.noop;
    println!(
        "no-op tasks ({} tasks, {} workers): {} tasks/s; raw RocksDB, same events and batch size ({:.1}): {} tasks/s; ratio {:.2}x",
        thousands(n.tasks as f64), workers, thousands(n.figure), n.mean_batch, thousands(n.baseline), n.ratio
    );
    let p = &r.process;
    println!(
        "/bin/true tasks ({} tasks, {} workers): {} tasks/s; raw tokio::process loop: {} spawns/s; ratio {:.2}x",
        thousands(p.tasks as f64), true_workers, thousands(p.figure), thousands(p.baseline), p.ratio
    );
    if let Some(m) = &r.memory {
        println!(
            "memory per queued task ({} queued): {:.0} B; model state alone: {:.0} B; ratio {:.2}x",
            thousands(m.tasks as f64),
            m.figure,
            m.baseline,
            m.ratio
        );
    }
    let c = &r.control;
    println!(
        "control round trip (status RUN, {} requests): p50 {:.2} ms, p99 {:.2} ms; raw socket ping-pong p50 {:.2} ms, p99 {:.2} ms; p99 ratio {:.2}x",
        c.samples, c.p50_us as f64 / 1e3, c.p99_us as f64 / 1e3, c.baseline_p50_us as f64 / 1e3, c.baseline_p99_us as f64 / 1e3, c.ratio
    );
    let l = &r.submit_to_done;
    println!(
        "submit -> done, one no-op task ({} runs): p50 {:.2} ms, p99 {:.2} ms; three raw sync writes p50 {:.2} ms; p50 ratio {:.2}x",
        l.samples, l.p50_us as f64 / 1e3, l.p99_us as f64 / 1e3, l.baseline_p50_us as f64 / 1e3, l.ratio
    );
}

/// `troupe bench metrics` with `scrape_tasks` in the journal while scraping.
pub(crate) fn print_metrics(r: &MetricsBenchReport, scrape_tasks: usize) {
    let s = &r.scrape;
    println!(
        "scrape /metrics ({} tasks in the journal): p50 {:.2} ms, p99 {:.2} ms; GET /healthz p50 {:.2} ms; p50 ratio {:.2}x",
        thousands(scrape_tasks as f64), s.p50_ms, s.p99_ms, s.baseline_p50_ms, s.ratio
    );
    let m = &r.since;
    println!(
        "metrics --since 7d ({} events, {} buckets): query p50 {:.1} ms, p99 {:.1} ms{}; raw scan of the events p50 {:.1} ms; p50 ratio {:.3}x",
        thousands(m.events as f64), m.buckets, m.query.p50_ms, m.query.p99_ms,
        m.cli_p50_ms.map(|c| format!(", CLI process p50 {c:.1} ms")).unwrap_or_default(),
        m.query.baseline_p50_ms, m.query.ratio
    );
    for d in &r.dashboard {
        println!(
            "dashboard refresh ({} queued tasks): p50 {:.1} ms, p99 {:.1} ms; status round trip p50 {:.2} ms; p50 ratio {:.1}x",
            thousands(d.tasks as f64), d.refresh.p50_ms, d.refresh.p99_ms, d.refresh.baseline_p50_ms, d.refresh.ratio
        );
    }
    let o = &r.overhead;
    let rounds: Vec<String> = o
        .rounds
        .iter()
        .map(|(on, off)| format!("{}/{}", thousands(*on), thousands(*off)))
        .collect();
    println!(
        "metrics cost ({} no-op tasks, {} rounds on/off: {}): {} tasks/s with metrics, {} without; ratio {:.3}x",
        thousands(o.tasks as f64), o.rounds.len(), rounds.join(" "), thousands(o.figure), thousands(o.baseline), o.ratio
    );
}

/// `troupe bench saga`.
pub(crate) fn print_saga(r: &SagaBenchReport) {
    let a = &r.approvals;
    println!(
        "approvals listing ({} pending, {} bytes): p50 {:.1} ms, max {:.1} ms; raw socket round trip of the same size p50 {:.1} ms, max {:.1} ms; p50 ratio {:.2}x",
        thousands(a.pending as f64), thousands(a.response_bytes as f64), a.p50_ms, a.max_ms, a.baseline_p50_ms, a.baseline_max_ms, a.ratio
    );
    let c = &r.compensation;
    println!(
        "saga compensation ({} steps): {} steps/s; {} no-op tasks in sequence: {} tasks/s; ratio {:.2}x",
        thousands(c.steps as f64), thousands(c.figure), thousands(c.steps as f64), thousands(c.baseline), c.ratio
    );
}

/// `troupe bench reads`.
pub(crate) fn print_reads(r: &troupe::bench::reads::ReadsBenchReport) {
    println!(
        "dispatch under reads ({} no-op tasks per round, rounds alternated):",
        thousands(r.tasks as f64)
    );
    for (i, round) in r.rounds.iter().enumerate() {
        use troupe::bench::reads::Reader;
        let who = match round.reader {
            Reader::None => "no reader   ",
            Reader::Full => "full reader ",
            Reader::Light => "light reader",
        };
        if round.reader == Reader::None {
            println!(
                "  round {}: {who} {} tasks/s",
                i + 1,
                thousands(round.tasks_per_s)
            );
        } else {
            println!(
                "  round {}: {who} {} tasks/s; {} reads, p99 {:.2} ms",
                i + 1,
                thousands(round.tasks_per_s),
                thousands(round.reads as f64),
                round.read_p99_us as f64 / 1000.0
            );
        }
    }
    println!(
        "  mean ÷ mean without a reader: full reader {:.3}x, light reader {:.3}x",
        r.ratio, r.light_ratio
    );
    println!(
        "read latency with {} tasks queued (raw socket round trip of the same size):",
        thousands(r.queued as f64)
    );
    for l in &r.latency {
        println!(
            "  {:<9} p50 {:.2} ms, p99 {:.2} ms ({} bytes; raw p50 {:.2} ms, p99 {:.2} ms)",
            l.kind,
            l.p50_us as f64 / 1000.0,
            l.p99_us as f64 / 1000.0,
            thousands(l.response_bytes as f64),
            l.baseline_p50_us as f64 / 1000.0,
            l.baseline_p99_us as f64 / 1000.0
        );
    }
}

/// `troupe bench plan`.
pub(crate) fn print_plan(report: &PlanBenchReport) {
    let format = report.format.to_uppercase();
    println!(
        "troupe bench plan: {} tasks, {} dependencies, {:.1} MiB of {format}, median of {} runs",
        thousands(report.nodes as f64),
        thousands(report.edges as f64),
        report.bytes as f64 / (1024.0 * 1024.0),
        report.runs
    );
    println!(
        "parse + validate + toposort: {:.1} ms (of which validate + toposort {:.1} ms); \
         plain {format} parse (baseline): {:.1} ms; ratio {:.2}x",
        report.figure, report.validate_plan_ms, report.baseline, report.ratio
    );
}

/// `troupe bench fanout`.
pub(crate) fn print_fanout(r: &troupe::bench::fanout::FanOutBenchReport) {
    let rounds: Vec<String> = r
        .rounds
        .iter()
        .map(|(f, p)| format!("{}/{}", thousands(*f), thousands(*p)))
        .collect();
    println!(
        "fan-out of {} no-op instances: {} instances/s; {} plain no-op tasks: {} tasks/s; ratio {:.2}x (medians; rounds fan-out/plain: {})",
        thousands(r.instances as f64),
        thousands(r.figure),
        thousands(r.instances as f64),
        thousands(r.baseline),
        r.ratio,
        rounds.join(" ")
    );
}

/// `bench agents`: both figures, every round.
pub(crate) fn print_agents(r: &troupe::bench::agents::AgentsBenchReport) {
    let latency: Vec<String> = r
        .latency_rounds
        .iter()
        .map(|(a, b)| format!("{a}/{b}"))
        .collect();
    println!(
        "spawn + wait of one no-op child: p50 {:.2}x the submit → done latency of a one-task run (target ≤ 2x; rounds spawn+wait/submit→done µs: {})",
        r.latency_ratio,
        latency.join(" ")
    );
    let tree: Vec<String> = r
        .tree_rounds
        .iter()
        .map(|(a, b)| format!("{}/{}", thousands(*a), thousands(*b)))
        .collect();
    println!(
        "tree of {} in-process no-op agents: {:.2}x the no-op task rate (target ≥ 0.5x; rounds tree runs/s / no-op tasks/s: {})",
        thousands(r.tree_runs as f64),
        r.tree_ratio,
        tree.join(" ")
    );
}

/// `met` or `not met`.
fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// `bench cluster`: the three cases, every round.
pub(crate) fn print_cluster(r: &troupe::bench::cluster::ClusterBenchReport) {
    println!(
        "troupe bench cluster: worker nodes on loopback with {} slots each, heartbeat {} ms, rounds alternated",
        r.slots, r.heartbeat_ms
    );
    let rounds: Vec<String> = r
        .throughput_rounds
        .iter()
        .map(|(a, b)| format!("{}/{}", thousands(*a), thousands(*b)))
        .collect();
    println!(
        "/bin/true throughput ({} tasks): 2 worker nodes {:.2}x a local node with {} workers (median; target ≥ 0.7x: {}; rounds remote/local tasks/s: {})",
        thousands(r.tasks as f64),
        r.throughput_ratio,
        2 * r.slots,
        met(r.throughput_ratio >= 0.7),
        rounds.join(" ")
    );
    let rounds: Vec<String> = r
        .latency_rounds
        .iter()
        .map(|(a, b)| format!("{:.2}/{:.2}", *a as f64 / 1e3, *b as f64 / 1e3))
        .collect();
    println!(
        "submit → done of a one-task /bin/true run: p50 on one worker node {:.2}x a local node's (median; target ≤ 3x: {}; rounds remote/local p50 ms over {} runs: {})",
        r.latency_ratio,
        met(r.latency_ratio <= 3.0),
        r.samples,
        rounds.join(" ")
    );
    let rounds: Vec<String> = r
        .lost_rounds
        .iter()
        .map(|l| {
            format!(
                "{} ms (node_lost {} ms, seen {:.0} ms)",
                l.retry_placed_ms, l.node_lost_ms, l.retry_seen_ms
            )
        })
        .collect();
    println!(
        "kill -9 of a worker running a task → its retry placed on the other worker: {} ms (median; bound 2 × heartbeat + 500 ms = {} ms: {}; rounds: {})",
        r.lost_ms,
        r.lost_bound_ms,
        met(r.lost_ms >= 0 && r.lost_ms as u64 <= r.lost_bound_ms),
        rounds.join(", ")
    );
}

/// `troupe bench control`.
pub(crate) fn print_control(r: &troupe::bench::control::ControlBenchReport) {
    let ms = |us: u64| us as f64 / 1000.0;
    for (what, p) in [("baseline", &r.baseline), ("load", &r.load)] {
        let t = &p.tally;
        println!(
            "{what} ({} clients, {:.0} s): reads {} (p99 {:.2} ms, max {:.2} ms); follow frames {} (p99 {:.2} ms, max {:.2} ms, {} events); connects max {:.2} ms",
            p.clients, r.secs, thousands(t.reads.count as f64), ms(t.reads.p99_us), ms(t.reads.max_us),
            thousands(t.follow.count as f64), ms(t.follow.p99_us), ms(t.follow.max_us),
            thousands(t.followed_events as f64), ms(t.connects.max_us)
        );
        println!(
            "  submits acknowledged {} (p99 {:.2} ms, max {:.2} ms; twice {}, missing {}, unacknowledged runs {}, attached {}); tasks dispatched {} ({} tasks/s); client errors {}",
            thousands(p.submits_acked as f64), ms(t.submits.p99_us), ms(t.submits.max_us),
            p.acked_twice, p.acked_missing, p.unacked_runs, t.attached,
            thousands(p.tasks_dispatched as f64), thousands(p.tasks_per_s), t.errors.len()
        );
        for e in t.errors.iter().take(5).chain(&t.garbage.notes) {
            println!("    {e}");
        }
    }
    let g = &r.load.tally.garbage;
    println!(
        "  garbage client: {} connections, {} answered with an error and closed, {} refused (node full), {} closed, {} hung, {} accepted; connect/drop loop: {} connections",
        thousands(g.connections as f64), thousands(g.answered as f64), thousands(g.busy as f64), thousands(g.closed as f64), g.hung, g.accepted,
        thousands(r.load.tally.churned as f64)
    );
    println!(
        "load ÷ baseline: read p99 {:.2}x, longest read wait {:.2}x, tasks/s {:.3}x",
        r.read_p99_ratio, r.read_max_ratio, r.dispatch_ratio
    );
}
