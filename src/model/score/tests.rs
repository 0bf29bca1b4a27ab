use std::collections::BinaryHeap;

use super::*;

const MIN: u64 = 60_000;

fn at(minutes: u64) -> Timestamp {
    // An instant of today's order of magnitude, so the absolute rank is as large as in use.
    Timestamp(1_764_000_000_000 + minutes * MIN)
}

fn inputs(priority: i32, deadline: Option<Timestamp>, ready_since: Timestamp) -> Inputs<'static> {
    Inputs {
        priority,
        deadline,
        ready_since,
        labels: &[],
    }
}

#[test]
fn the_rank_orders_as_the_score_does_at_every_instant() {
    let w = Weights::default();
    let tasks = [
        inputs(0, None, at(0)),
        inputs(0, Some(at(5)), at(3)),
        inputs(0, Some(at(90)), at(1)),
        inputs(1, None, at(20)),
        inputs(0, Some(at(0)), at(30)),
        inputs(-2, Some(at(10_000)), at(2)),
    ];
    for now in [at(30), at(61), at(500), at(100_000)] {
        for a in &tasks {
            for b in &tasks {
                let (sa, sb) = (parts(&w, a, now).score, parts(&w, b, now).score);
                if (sa - sb).abs() > 1e-6 {
                    assert_eq!(
                        rank(&w, a).cmp(&rank(&w, b)),
                        sa.total_cmp(&sb),
                        "{a:?} {b:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_parts_add_up_with_units_of_minutes() {
    let mut w = Weights::default();
    w.label_boosts.insert("vip".into(), 500.0);
    let labels = ["vip".to_owned(), "other".to_owned()];
    let i = Inputs {
        priority: 2,
        deadline: Some(at(10)),
        ready_since: at(0),
        labels: &labels,
    };
    let p = parts(&w, &i, at(30));
    assert_eq!(p.priority, 2000.0);
    assert_eq!(p.labels, 500.0);
    assert!((p.deadline - 20.0).abs() < 1e-9, "20 min late: {p:?}");
    assert!((p.age - 3.0).abs() < 1e-9, "30 min at 0.1: {p:?}");
    assert!((p.score - 2523.0).abs() < 1e-9);
    // Without a deadline: ready_since + 1 h.
    let p = parts(&w, &inputs(0, None, at(0)), at(30));
    assert!((p.deadline + 30.0).abs() < 1e-9, "{p:?}");
}

#[test]
fn a_deadline_in_the_past_ranks_first_among_equal_priorities() {
    let w = Weights::default();
    let past = rank(&w, &inputs(0, Some(at(0)), at(1000)));
    let soon = rank(&w, &inputs(0, Some(at(1010)), at(1000)));
    let later = rank(&w, &inputs(0, Some(at(1100)), at(1000)));
    let none = rank(&w, &inputs(0, None, at(1000)));
    assert!(past > soon && soon > none && none > later);
    // Priority stays dominant: one step outweighs 15 hours of lateness at the defaults.
    let urgent_low = rank(&w, &inputs(0, Some(at(1000 - 15 * 60)), at(1000)));
    assert!(rank(&w, &inputs(1, None, at(1000))) > urgent_low);
}

/// A task without a deadline, ready at t = 0, against a stream of two tasks a minute, each
/// due 10 minutes after it arrives, served one a minute (the queue grows without bound):
/// the task runs within a bounded time, because its effective deadline (1 h) passes and the
/// newcomers' do not.
#[test]
fn a_task_without_a_deadline_is_not_starved_by_a_stream_with_deadlines() {
    let w = Weights::default();
    let mut heap = BinaryHeap::new();
    let mut age = 0u64;
    let mut push =
        |heap: &mut BinaryHeap<(Rank, std::cmp::Reverse<u64>, bool)>, i: Inputs, lone: bool| {
            heap.push((rank(&w, &i), std::cmp::Reverse(age), lone));
            age += 1;
        };
    push(&mut heap, inputs(0, None, at(0)), true);
    let mut served_at = None;
    for minute in 0..1_000 {
        for _ in 0..2 {
            push(
                &mut heap,
                inputs(0, Some(at(minute + 10)), at(minute)),
                false,
            );
        }
        if heap.pop().unwrap().2 {
            served_at = Some(minute);
            break;
        }
    }
    // Newcomers rank above it only until minute 46 (1.1·m + 10 > 60), so at most ~92 run
    // before it.
    let m = served_at.expect("the task without a deadline never ran");
    assert!(m <= 100, "ran at minute {m}");
    // Without the age weight it still runs: the implicit deadline alone bounds the wait.
    let w = Weights {
        age: 0.0,
        ..Weights::default()
    };
    let lone = rank(&w, &inputs(0, None, at(0)));
    assert!(lone > rank(&w, &inputs(0, Some(at(61)), at(51))));
    assert!(lone < rank(&w, &inputs(0, Some(at(59)), at(49))));
}

#[test]
fn with_scoring_off_the_rank_is_the_priority() {
    let w = Weights::off();
    let a = inputs(3, Some(at(0)), at(50));
    assert_eq!(rank(&w, &a), Rank::new(3.0));
    assert_eq!(
        rank(&w, &inputs(0, Some(at(0)), at(0))),
        rank(&w, &inputs(0, None, at(900)))
    );
    let p = parts(&w, &a, at(100));
    assert_eq!(
        (p.priority, p.deadline, p.age, p.score),
        (3.0, 0.0, 0.0, 3.0)
    );
}

#[test]
fn label_boosts_add_points_per_listed_label() {
    let mut w = Weights::default();
    w.label_boosts.insert("vip".into(), 2000.0);
    let vip = ["vip".to_owned()];
    let boosted = Inputs {
        labels: &vip,
        ..inputs(0, None, at(0))
    };
    assert!(rank(&w, &boosted) > rank(&w, &inputs(1, None, at(0))));
}

#[test]
fn negative_zero_ranks_equal_to_zero() {
    assert_eq!(Rank::new(-0.0), Rank::new(0.0));
    assert!(Rank::new(-1.0) < Rank::new(0.0));
}
