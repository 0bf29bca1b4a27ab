//! The node config file end to end: `troupe node start --print-config` and refusals.

mod common;

use common::*;

fn print_config(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut c = troupe(dir);
    c.args(["node", "start", "--print-config"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn value(out: &std::process::Output) -> toml::Table {
    assert!(out.status.success(), "{}", stderr(out));
    toml::from_str(&stdout(out)).unwrap()
}

#[test]
fn defaults_file_environment_and_flags_in_that_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let v = value(&print_config(&dir, &[], &[]));
    assert_eq!(v["workers"].as_integer(), Some(16));
    assert_eq!(v["grace"].as_str(), Some("10s"));
    assert_eq!(v["durability"].as_str(), Some("sync"));
    assert_eq!(v["approval"]["timeout"].as_str(), Some("30days"));
    assert_eq!(v["scheduling"]["scoring"].as_bool(), Some(true));
    assert_eq!(v["scheduling"]["priority"].as_float(), Some(1000.0));
    assert_eq!(v["scheduling"]["default_deadline"].as_str(), Some("1h"));
    assert!(
        !dir.join("journal").exists(),
        "--print-config starts nothing"
    );

    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("troupe.toml"),
        "workers = ${TEST_WORKERS}\ngrace = \"${TEST_GRACE:-3s}\"\n[approval]\ntimeout = \"2h\"\n\
         [[approval.rule]]\npool = \"${TEST_POOL:-prod}\"\n",
    )
    .unwrap();
    let v = value(&print_config(&dir, &[], &[("TEST_WORKERS", "4")]));
    assert_eq!(v["workers"].as_integer(), Some(4));
    assert_eq!(v["grace"].as_str(), Some("3s"));
    assert_eq!(v["approval"]["timeout"].as_str(), Some("2h"));
    assert_eq!(v["approval"]["rule"][0]["pool"].as_str(), Some("prod"));
    let v = value(&print_config(
        &dir,
        &[],
        &[
            ("TEST_WORKERS", "4"),
            ("TROUPE_WORKERS", "6"),
            ("TROUPE_DURABILITY", "buffered"),
        ],
    ));
    assert_eq!(
        v["workers"].as_integer(),
        Some(6),
        "TROUPE_* beats the file"
    );
    assert_eq!(v["durability"].as_str(), Some("buffered"));
    let v = value(&print_config(
        &dir,
        &["--workers", "2"],
        &[("TEST_WORKERS", "4"), ("TROUPE_WORKERS", "6")],
    ));
    assert_eq!(
        v["workers"].as_integer(),
        Some(2),
        "a flag beats everything"
    );
    // The printed config is itself a valid config.
    let printed = stdout(&print_config(&dir, &[], &[("TEST_WORKERS", "5")]));
    let again = workflow(tmp.path(), "printed.toml", &printed);
    let v = value(&print_config(
        &dir,
        &["--config", again.to_str().unwrap()],
        &[],
    ));
    assert_eq!(v["workers"].as_integer(), Some(5));
}

#[test]
fn bad_config_is_refused_with_its_place_and_nothing_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 10] = [
        ("workers = 0\n", &[], "troupe.toml:1:11: workers must be between 1 and 10000 (got 0)"),
        ("workers = -2\n", &[], "troupe.toml:1:11: workers must be between 1 and 10000 (got -2)"),
        ("workers = 100000000\n", &[], "troupe.toml:1:11: workers must be between 1 and 10000 (got 100000000)"),
        ("", &[("TROUPE_WORKERS", "100000000")], "TROUPE_WORKERS=100000000: workers must be between 1 and 10000"),
        ("threads = 2\n", &[], "troupe.toml:1:1: unknown field `threads`"),
        ("grace = \"${NOT_SET_ANYWHERE}\"\n", &[], "troupe.toml:1:10: `${NOT_SET_ANYWHERE}`: the environment variable NOT_SET_ANYWHERE is not set"),
        ("", &[("TROUPE_WORKERS", "zero")], "TROUPE_WORKERS=zero: not a worker count"),
        ("", &[("TROUPE_GRACE", "later")], "TROUPE_GRACE=later: not a duration"),
        ("[scheduling]\ndeadline = -1\n", &[], "troupe.toml:2:12: scheduling.deadline must be a finite number of points, at least 0 (got -1)"),
        ("[scheduling.label_boosts]\nvip = nan\n", &[], "troupe.toml:2:7: scheduling.label_boosts.vip must be a finite number of points, at least 0 (got NaN)"),
    ];
    for (text, env, want) in cases {
        std::fs::write(dir.join("troupe.toml"), text).unwrap();
        for args in [
            &["node", "start"][..],
            &["node", "start", "--print-config"][..],
        ] {
            let mut c = troupe(&dir);
            c.args(args);
            for (k, v) in env {
                c.env(k, v);
            }
            let o = c.output().unwrap();
            assert_eq!(
                o.status.code(),
                Some(2),
                "{text:?} {args:?}: {}",
                stderr(&o)
            );
            assert!(stderr(&o).contains(want), "{text:?}: {}", stderr(&o));
            assert!(!dir.join("journal").exists(), "nothing was written");
        }
    }
    std::fs::remove_file(dir.join("troupe.toml")).unwrap();
    for workers in ["0", "100000000"] {
        for args in [&["--print-config"][..], &[][..]] {
            let o = run(
                &dir,
                &[&["node", "start", "--workers", workers][..], args].concat(),
            );
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(
                stderr(&o).contains(&format!(
                    "--workers: workers must be between 1 and 10000 (got {workers})"
                )),
                "{}",
                stderr(&o)
            );
        }
    }
    assert!(!dir.join("journal").exists(), "nothing was written");
}

/// A config path that is not a config file (`/dev/zero`, a huge log) is refused after at most
/// 1 MiB is read, instead of growing until the OOM killer ends the node.
#[test]
fn config_file_is_read_up_to_a_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let big = tmp.path().join("big.toml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    for file in ["/dev/zero", big.to_str().unwrap()] {
        for args in [&["--print-config"][..], &[][..]] {
            let o = run(
                &dir,
                &[&["node", "start", "--config", file][..], args].concat(),
            );
            assert_eq!(o.status.code(), Some(2), "{file}: {}", stderr(&o));
            assert!(
                stderr(&o).contains(&format!(
                    "{file}: larger than the 1 MiB limit for config files"
                )),
                "{file}: {}",
                stderr(&o)
            );
        }
    }
    assert!(!dir.join("journal").exists(), "nothing was written");
}
