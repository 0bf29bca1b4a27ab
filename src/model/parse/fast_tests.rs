//! The fast path against the full path, on random workflows in both formats, most of them
//! with something wrong: random settings (valid or not), values of the wrong type, unknown,
//! repeated or missing fields, `null`s, members in any order, then random damage to the
//! text. The fast path must accept exactly what the full path accepts, with the same
//! workflow (spec and plan), and `parse` must answer exactly what the full path answers.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::*;

/// A value of the format, to be written in TOML or JSON.
#[derive(Debug, Clone)]
enum V {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<V>),
    Table(Vec<(String, V)>),
    /// JSON only (written as a TOML syntax error).
    Null,
}

fn s(text: &str) -> V {
    V::Str(text.to_owned())
}

fn strs(items: &[&str]) -> V {
    V::Array(items.iter().map(|i| s(i)).collect())
}

fn toml_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value(v: &V) -> String {
    match v {
        V::Str(t) => toml_str(t),
        V::Int(i) => i.to_string(),
        V::Float(f) => format!("{f:?}"),
        V::Bool(b) => b.to_string(),
        V::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        V::Table(fields) => format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        V::Null => "null".to_owned(),
    }
}

fn json_value(v: &V) -> String {
    match v {
        V::Str(t) => serde_json::to_string(t).unwrap(),
        V::Int(i) => i.to_string(),
        V::Float(f) => format!("{f:?}"),
        V::Bool(b) => b.to_string(),
        V::Array(items) => format!(
            "[{}]",
            items.iter().map(json_value).collect::<Vec<_>>().join(", ")
        ),
        V::Table(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{}: {}", json_value(&s(k)), json_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        V::Null => "null".to_owned(),
    }
}

/// The top level in TOML: plain keys, then tables, then `[[task]]` tables (a `task` that is
/// not an array of tables is written inline).
fn to_toml(top: &[(String, V)]) -> String {
    let mut out = String::new();
    let is_section = |k: &str, v: &V| match v {
        V::Table(_) => true,
        V::Array(items) => {
            k == "task" && !items.is_empty() && items.iter().all(|i| matches!(i, V::Table(_)))
        }
        _ => false,
    };
    for (k, v) in top.iter().filter(|(k, v)| !is_section(k, v)) {
        out.push_str(&format!("{} = {}\n", toml_str(k), toml_value(v)));
    }
    for (k, v) in top.iter().filter(|(k, v)| is_section(k, v)) {
        match v {
            V::Table(fields) => {
                out.push_str(&format!("[{}]\n", toml_str(k)));
                for (f, v) in fields {
                    out.push_str(&format!("{} = {}\n", toml_str(f), toml_value(v)));
                }
            }
            V::Array(items) => {
                for item in items {
                    let V::Table(fields) = item else {
                        unreachable!()
                    };
                    out.push_str(&format!("[[{}]]\n", toml_str(k)));
                    for (f, v) in fields {
                        out.push_str(&format!("{} = {}\n", toml_str(f), toml_value(v)));
                    }
                }
            }
            _ => unreachable!(),
        }
    }
    out
}

/// The top level in JSON, one task object per line.
fn to_json(top: &[(String, V)]) -> String {
    let members: Vec<String> = top
        .iter()
        .map(|(k, v)| match v {
            V::Array(items) if k == "task" => format!(
                "{}: [\n{}\n]",
                json_value(&s(k)),
                items.iter().map(json_value).collect::<Vec<_>>().join(",\n")
            ),
            v => format!("{}: {}", json_value(&s(k)), json_value(v)),
        })
        .collect();
    format!("{{\n{}\n}}\n", members.join(",\n"))
}

const IDS: &[&str] = &["a", "b", "c", "build.x-1", "a b", "t[0]", "", ".."];

/// Makes a random value of a field.
type Make = fn(&mut StdRng) -> V;

/// Something of the wrong type, for any field.
fn wrong(rng: &mut StdRng) -> V {
    [
        V::Int(1),
        V::Float(2.5),
        V::Bool(true),
        s("x"),
        strs(&["x"]),
        V::Array(vec![s("x"), V::Int(1)]),
        V::Table(vec![("x".into(), V::Int(1))]),
        V::Table(vec![]),
        V::Null,
    ]
    .choose(rng)
    .unwrap()
    .clone()
}

fn duration(rng: &mut StdRng) -> V {
    s(["10m", "1s", "1h 30m", "0s", "90", "200years", "soon"]
        .choose(rng)
        .unwrap())
}

fn retry(rng: &mut StdRng) -> V {
    let mut fields = Vec::new();
    if rng.random_bool(0.5) {
        fields.push(("max_attempts".into(), V::Int(rng.random_range(-1..5))));
    }
    if rng.random_bool(0.5) {
        fields.push(("initial_interval".into(), duration(rng)));
    }
    if rng.random_bool(0.4) {
        let v = [V::Float(2.0), V::Int(3), V::Float(0.5), s("2")];
        fields.push(("backoff_coefficient".into(), v.choose(rng).unwrap().clone()));
    }
    if rng.random_bool(0.4) {
        fields.push(("max_interval".into(), duration(rng)));
    }
    if rng.random_bool(0.3) {
        let v = [V::Float(0.1), V::Int(0), V::Float(1.5)];
        fields.push(("jitter".into(), v.choose(rng).unwrap().clone()));
    }
    if rng.random_bool(0.05) {
        fields.push(("tries".into(), V::Int(1)));
    }
    V::Table(fields)
}

fn env(rng: &mut StdRng) -> V {
    let mut fields = vec![("LC_ALL".to_owned(), s("C"))];
    if rng.random_bool(0.3) {
        let v = [
            "{{ tasks.a.output }}",
            "x\u{0}y",
            "caf\u{e9} \"ok\"\n",
            "{{ item }}",
        ];
        fields.push(("MSG".into(), s(v.choose(rng).unwrap())));
    }
    if rng.random_bool(0.1) {
        fields.push(("A=B".into(), s("1")));
    }
    V::Table(fields)
}

fn argv(rng: &mut StdRng) -> V {
    let argvs: &[&[&str]] = &[
        &["true"],
        &["make", "-j2"],
        &[],
        &[""],
        &["echo", "{{ tasks.a.output }}"],
        &["echo", "{{ tasks.b.output.files[0] }}"],
        &["echo", "{{ item }}", "{{ index }}"],
        &["echo", "{{ nope"],
        &["a\u{0}b"],
    ];
    strs(argvs.choose(rng).unwrap())
}

fn task(rng: &mut StdRng, i: usize) -> V {
    let mut f: Vec<(String, V)> = Vec::new();
    let id = if rng.random_bool(0.85) {
        ["a", "b", "c", "d", "e"][i % 5]
    } else {
        IDS.choose(rng).unwrap()
    };
    if rng.random_bool(0.97) {
        f.push(("id".into(), s(id)));
    }
    match rng.random_range(0..10) {
        0 => f.push(("shell".into(), s("make && echo ok"))),
        1 => {
            f.push(("shell".into(), s("x")));
            f.push(("command".into(), argv(rng)));
        }
        2 => {}
        _ => f.push(("command".into(), argv(rng))),
    }
    if rng.random_bool(0.6) {
        let n = rng.random_range(0..3);
        let deps: Vec<&str> = (0..n)
            .map(|_| *["a", "b", "c", "d", "e", "zz", "a"].choose(rng).unwrap())
            .collect();
        f.push(("depends_on".into(), strs(&deps)));
    }
    let optional: &[(&str, Make)] = &[
        ("cwd", |_| s("src")),
        ("priority", |r| V::Int(r.random_range(-3..3))),
        ("pool", |r| s(["cc", "nope", ""].choose(r).unwrap())),
        ("requires_approval", |r| V::Bool(r.random_bool(0.5))),
        ("compensate", |_| strs(&["make", "clean"])),
        ("compensate_shell", |_| s("make clean")),
        ("approval_timeout", duration),
        ("timeout", duration),
        ("retry", retry),
        ("env", env),
        ("labels", |r| {
            strs(&[["ci", "nightly", "bad label"].choose(r).unwrap()])
        }),
        ("compensate_retry", retry),
        ("max_output", |r| {
            V::Int([1024, 0, 1 << 40].choose(r).copied().unwrap())
        }),
        ("gate", |_| strs(&["test", "-f", "ok"])),
        ("max_fan_out", |r| {
            V::Int([100, 0, 2_000_000].choose(r).copied().unwrap())
        }),
        ("gate_shell", |_| s("test -f ok")),
        ("for_each", |r| {
            s([
                "{{ tasks.a.output }}",
                "{{ tasks.b.output.files }}",
                "{{ item }}",
                "x",
            ]
            .choose(r)
            .unwrap())
        }),
    ];
    for (name, make) in optional {
        if rng.random_bool(0.08) {
            f.push(((*name).into(), make(rng)));
        }
    }
    if rng.random_bool(0.05) {
        f.push(("colour".into(), s("red")));
    }
    if rng.random_bool(0.1) && !f.is_empty() {
        let k = rng.random_range(0..f.len());
        f[k].1 = wrong(rng);
    }
    if rng.random_bool(0.03) && !f.is_empty() {
        let k = rng.random_range(0..f.len());
        f.push(f[k].clone());
    }
    f.shuffle(rng);
    V::Table(f)
}

/// A random workflow, as top-level members.
fn workflow(rng: &mut StdRng) -> Vec<(String, V)> {
    let mut top: Vec<(String, V)> = Vec::new();
    if rng.random_bool(0.97) {
        top.push((
            "name".into(),
            s(["release", "", "a\tb", "caf\u{e9}"].choose(rng).unwrap()),
        ));
    }
    if rng.random_bool(0.3) {
        top.push(("max_concurrency".into(), V::Int(rng.random_range(0..4))));
    }
    if rng.random_bool(0.4) {
        let mut pools = vec![("cc".to_owned(), V::Int(rng.random_range(0..3)))];
        if rng.random_bool(0.1) {
            pools.push(("bad pool".into(), V::Int(1)));
        }
        top.push(("pools".into(), V::Table(pools)));
    }
    if rng.random_bool(0.4) {
        let mut d: Vec<(String, V)> = Vec::new();
        let optional: &[(&str, Make)] = &[
            ("timeout", duration),
            ("retry", retry),
            ("env", env),
            ("cwd", |_| s("src")),
            ("pool", |r| s(["cc", "nope"].choose(r).unwrap())),
            ("priority", |r| V::Int(r.random_range(-3..3))),
            ("requires_approval", |r| V::Bool(r.random_bool(0.5))),
            ("approval_timeout", duration),
            ("compensate_retry", retry),
            ("max_output", |r| {
                V::Int([1024, 0].choose(r).copied().unwrap())
            }),
            ("max_fan_out", |r| {
                V::Int([100, 0, 2_000_000].choose(r).copied().unwrap())
            }),
        ];
        for (name, make) in optional {
            if rng.random_bool(0.2) {
                d.push(((*name).into(), make(rng)));
            }
        }
        if rng.random_bool(0.05) {
            d.push(("colour".into(), s("red")));
        }
        top.push(("defaults".into(), V::Table(d)));
    }
    if rng.random_bool(0.97) {
        let n = rng.random_range(0..7);
        top.push((
            "task".into(),
            V::Array((0..n).map(|i| task(rng, i)).collect()),
        ));
    }
    if rng.random_bool(0.03) {
        top.push(("colour".into(), s("red")));
    }
    if rng.random_bool(0.05) && !top.is_empty() {
        let k = rng.random_range(0..top.len());
        top[k].1 = wrong(rng);
    }
    top.shuffle(rng);
    top
}

/// A random workflow with no problem (most of the time: nothing stops a `max_interval`
/// shorter than an `initial_interval`), using every field.
fn clean_workflow(rng: &mut StdRng) -> Vec<(String, V)> {
    let mut top: Vec<(String, V)> = vec![("name".into(), s("release"))];
    if rng.random_bool(0.3) {
        top.push(("max_concurrency".into(), V::Int(rng.random_range(1..4))));
    }
    let pools = rng.random_bool(0.5);
    if pools {
        top.push((
            "pools".into(),
            V::Table(vec![("cc".into(), V::Int(2)), ("io".into(), V::Int(1))]),
        ));
    }
    let valid_duration = |r: &mut StdRng| s(["10m", "1s", "1h 30m", "2d"].choose(r).unwrap());
    let valid_retry = |r: &mut StdRng| {
        let mut f = vec![("max_attempts".to_owned(), V::Int(r.random_range(0..5)))];
        if r.random_bool(0.5) {
            f.push(("initial_interval".into(), s("1s")));
            f.push(("max_interval".into(), s("1m")));
        }
        if r.random_bool(0.5) {
            f.push(("backoff_coefficient".into(), V::Float(1.5)));
            f.push(("jitter".into(), V::Float(0.25)));
        }
        f.shuffle(r);
        V::Table(f)
    };
    let approval = rng.random_bool(0.2);
    if rng.random_bool(0.4) {
        let mut d: Vec<(String, V)> =
            vec![("env".into(), V::Table(vec![("LC_ALL".into(), s("C"))]))];
        if rng.random_bool(0.5) {
            d.push(("timeout".into(), valid_duration(rng)));
        }
        if rng.random_bool(0.5) {
            d.push(("retry".into(), valid_retry(rng)));
        }
        if rng.random_bool(0.3) {
            d.push(("cwd".into(), s("src")));
        }
        if pools && rng.random_bool(0.3) {
            d.push(("pool".into(), s("cc")));
        }
        if rng.random_bool(0.3) {
            d.push(("priority".into(), V::Int(2)));
        }
        if approval {
            d.push(("requires_approval".into(), V::Bool(true)));
            d.push(("approval_timeout".into(), s("1h")));
        }
        if rng.random_bool(0.3) {
            d.push(("compensate_retry".into(), valid_retry(rng)));
        }
        if rng.random_bool(0.3) {
            d.push(("max_output".into(), V::Int(4096)));
        }
        if rng.random_bool(0.2) {
            d.push(("max_fan_out".into(), V::Int(500)));
        }
        d.shuffle(rng);
        top.push(("defaults".into(), V::Table(d)));
    }
    let n = rng.random_range(1..8);
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut f: Vec<(String, V)> = vec![("id".into(), s(&format!("t{i}")))];
        if rng.random_bool(0.8) {
            f.push(("command".into(), strs(&["make", "-j2", "caf\u{e9} \"q\""])));
        } else {
            f.push(("shell".into(), s("make && echo ok")));
        }
        let mut deps: Vec<String> = (0..i)
            .filter(|_| rng.random_bool(0.3))
            .map(|j| format!("t{j}"))
            .collect();
        deps.shuffle(rng);
        if i > 0 && rng.random_bool(0.15) {
            deps.retain(|d| d != "t0");
            deps.push("t0".into());
            f.push(("for_each".into(), s("{{ tasks.t0.output.files }}")));
            if rng.random_bool(0.5) {
                f.push(("max_fan_out".into(), V::Int(100)));
            }
        }
        if !deps.is_empty() || rng.random_bool(0.2) {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            f.push(("depends_on".into(), strs(&deps)));
        }
        let p = 0.12;
        if rng.random_bool(p) {
            f.push(("cwd".into(), s("build")));
        }
        if rng.random_bool(p) {
            f.push(("priority".into(), V::Int(rng.random_range(-3..3))));
        }
        if pools && rng.random_bool(p) {
            f.push(("pool".into(), s("io")));
        }
        if rng.random_bool(p) {
            f.push(("requires_approval".into(), V::Bool(true)));
            f.push(("approval_timeout".into(), valid_duration(rng)));
        }
        if rng.random_bool(p) {
            if rng.random_bool(0.5) {
                f.push(("compensate".into(), strs(&["make", "clean"])));
            } else {
                f.push(("compensate_shell".into(), s("make clean")));
            }
            if rng.random_bool(0.5) {
                f.push(("compensate_retry".into(), valid_retry(rng)));
            }
        }
        if rng.random_bool(p) {
            f.push(("timeout".into(), valid_duration(rng)));
        }
        if rng.random_bool(p) {
            f.push(("retry".into(), valid_retry(rng)));
        }
        if rng.random_bool(p) {
            f.push((
                "env".into(),
                V::Table(vec![
                    ("MSG".into(), s("caf\u{e9} \"ok\"\n")),
                    ("N".into(), s("1")),
                ]),
            ));
        }
        if rng.random_bool(p) {
            f.push(("labels".into(), strs(&["ci", "nightly"])));
        }
        if rng.random_bool(p) {
            f.push(("max_output".into(), V::Int(1024)));
        }
        if rng.random_bool(p) {
            if rng.random_bool(0.5) {
                f.push(("gate".into(), strs(&["test", "-f", "ok"])));
            } else {
                f.push(("gate_shell".into(), s("test -f ok")));
            }
        }
        f.shuffle(rng);
        tasks.push(V::Table(f));
    }
    top.push(("task".into(), V::Array(tasks)));
    top.shuffle(rng);
    top
}

/// One flaw put into a workflow: a value of the wrong type, an unknown, repeated or missing
/// field, a `null`, anywhere.
fn flaw(rng: &mut StdRng, top: &mut Vec<(String, V)>) {
    // A table to spoil: the top level, a table in it, a task, a table in a task.
    fn count(v: &[(String, V)]) -> usize {
        1 + v
            .iter()
            .map(|(_, value)| match value {
                V::Table(t) => count(t),
                V::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        V::Table(t) => count(t),
                        _ => 0,
                    })
                    .sum(),
                _ => 0,
            })
            .sum::<usize>()
    }
    fn nth<'v>(v: &'v mut Vec<(String, V)>, n: &mut usize) -> Option<&'v mut Vec<(String, V)>> {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
        for (_, value) in v.iter_mut() {
            let found = match value {
                V::Table(t) => nth(t, n),
                V::Array(items) => items.iter_mut().find_map(|i| match i {
                    V::Table(t) => nth(t, n),
                    _ => None,
                }),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let mut n = rng.random_range(0..count(top));
    let table = nth(top, &mut n).expect("n < count");
    match rng.random_range(0..5) {
        0 if !table.is_empty() => {
            let k = rng.random_range(0..table.len());
            table[k].1 = wrong(rng);
        }
        1 if !table.is_empty() => {
            let k = rng.random_range(0..table.len());
            table.remove(k);
        }
        2 if !table.is_empty() => {
            let k = rng.random_range(0..table.len());
            table.push(table[k].clone());
        }
        3 if !table.is_empty() => {
            let k = rng.random_range(0..table.len());
            table[k].1 = V::Null;
        }
        _ => table.push(("colour".into(), s("red"))),
    }
}

/// Random damage to the text: a character deleted, or a snippet put in.
fn damage(rng: &mut StdRng, text: &mut String) {
    let snippets = [
        ",",
        "}",
        "]",
        "[",
        "{",
        "\"",
        "null",
        "1",
        "\n",
        "=",
        "#",
        " ",
        "\\",
        "[[task]]\n",
        "id = \"q\"\n",
        "\"x\": 1, ",
        "é",
    ];
    for _ in 0..rng.random_range(1..3) {
        let mut at = rng.random_range(0..=text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        if rng.random_bool(0.5) && at < text.len() {
            text.remove(at);
        } else {
            text.insert_str(at, snippets.choose(rng).unwrap());
        }
    }
}

/// The fast path of `format` on `text`.
fn fast(format: WorkflowFormat, text: &str) -> Option<Workflow> {
    match format {
        WorkflowFormat::Toml => fast::toml(text),
        WorkflowFormat::Json => fast::json(text),
    }
}

/// Checks the fast path against the full path on `text`; whether the full path accepted it.
fn agree(format: WorkflowFormat, text: &str) -> bool {
    let full = format.parse_full(text);
    let quick = fast(format, text);
    match (&quick, &full) {
        (Some(q), Ok(f)) => {
            assert_eq!(q.spec(), f.spec(), "{format:?} spec differs for:\n{text}");
            assert_eq!(
                q.plan().topological_order(),
                f.plan().topological_order(),
                "{format:?} plan differs for:\n{text}"
            );
            for t in 0..q.len() as u32 {
                assert_eq!(
                    q.fan_outs_from(t).collect::<Vec<_>>(),
                    f.fan_outs_from(t).collect::<Vec<_>>()
                );
            }
        }
        (None, Err(_)) => {}
        (Some(_), Err(e)) => {
            panic!("{format:?}: fast path accepts what the full path refuses ({e}):\n{text}")
        }
        (None, Ok(_)) => panic!("{format:?}: fast path gives up on a valid file:\n{text}"),
    }
    // And what a caller sees is the full path's answer, problems and all.
    match (format.parse(text), full) {
        (Ok(a), Ok(b)) => assert_eq!(a.spec(), b.spec()),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "for:\n{text}"),
        (a, b) => panic!("parse and the full path disagree on:\n{text}\n{a:?}\n{b:?}"),
    }
    quick.is_some()
}

#[test]
fn the_fast_path_accepts_exactly_what_the_full_path_accepts() {
    let mut accepted = [0usize; 2];
    let cases = 3000;
    for seed in 0..cases {
        let mut rng = StdRng::seed_from_u64(seed);
        let (top, damaged) = match seed % 10 {
            0..=3 => (clean_workflow(&mut rng), false),
            4..=5 => {
                let mut top = clean_workflow(&mut rng);
                flaw(&mut rng, &mut top);
                (top, false)
            }
            6 => (clean_workflow(&mut rng), true),
            _ => (workflow(&mut rng), rng.random_bool(0.3)),
        };
        for (k, format) in [WorkflowFormat::Toml, WorkflowFormat::Json]
            .into_iter()
            .enumerate()
        {
            let mut text = match format {
                WorkflowFormat::Toml => to_toml(&top),
                WorkflowFormat::Json => to_json(&top),
            };
            if damaged {
                damage(&mut rng, &mut text);
            }
            if text.trim().is_empty() {
                continue;
            }
            accepted[k] += usize::from(agree(format, &text));
        }
    }
    eprintln!("accepted (TOML, JSON): {accepted:?} of {cases}");
    // Both outcomes are well represented (so the test can fail both ways).
    for n in accepted {
        assert!(
            n > cases as usize / 20 && n < cases as usize * 9 / 10,
            "{accepted:?}"
        );
    }
}

#[test]
fn the_fast_path_reads_the_reference_workflows_as_the_full_path_does() {
    for text in [
        super::json_tests::TOML,
        include_str!("../../../examples/release.toml"),
    ] {
        assert!(agree(WorkflowFormat::Toml, text));
    }
    assert!(agree(WorkflowFormat::Json, super::json_tests::JSON));
    for format in [WorkflowFormat::Toml, WorkflowFormat::Json] {
        let text = crate::bench::synthetic_workflow_as(2000, 7, format);
        assert!(agree(format, &text));
    }
}

#[test]
fn a_json_top_level_field_after_the_tasks_is_taken_into_account() {
    let text = r#"{"task": [{"id": "a", "command": ["x"], "pool": "cc"}], "pools": {"cc": 1}, "name": "n"}"#;
    assert!(agree(WorkflowFormat::Json, text));
    let text = r#"{"task": [{"id": "a", "command": ["x"], "pool": "cc"}], "pools": {"dd": 1}, "name": "n"}"#;
    assert!(!agree(WorkflowFormat::Json, text));
    let text = r#"{"name": "n", "task": [{"id": "a", "command": ["x"], "approval_timeout": "1h"}], "defaults": {"requires_approval": true}}"#;
    assert!(agree(WorkflowFormat::Json, text));
}
