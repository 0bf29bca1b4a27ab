//! The agents example (`examples/agents/`) driven as a user would: the real binary runs
//! `summarise.toml`, whose agent (python3) spawns one child run per subdirectory through
//! `troupe spawn`, waits with `troupe wait` and combines. Over a tree built here (binary
//! files, an empty directory, symbolic links, a FIFO, odd names) and over this repository's
//! own `src/`, the root run's output must equal `check.py`'s direct walk exactly, and
//! `troupe tree` must show one succeeded run per directory at that directory's depth.

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const WORKFLOW: &str = "examples/agents/summarise.toml";
const CHECK: &str = "examples/agents/check.py";
/// The root's `[authority] budget` in summarise.toml.
const ROOT_BUDGET: f64 = 100000.0;

/// `python3 check.py DIR`: the summary computed directly.
fn check_py(dir: &Path) -> Value {
    let o = Command::new("python3")
        .arg(CHECK)
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "check.py: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// The root run's output: `troupe output RUN/agent --json`'s "output" (the workflow's
/// `output = "agent"`).
fn root_output(data: &Path, run: &str) -> Value {
    let o = run_cmd_ok(data, &["output", &format!("{run}/agent"), "--json"]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["state"], "succeeded", "{v}");
    v["output"].clone()
}

/// One directory of a tree, as found by walking it without following symbolic links.
#[derive(Debug)]
struct Dir {
    /// Levels below the root (the root is 0).
    depth: u32,
    /// Regular files in its subtree (its own included).
    files: u64,
    /// Directories in its subtree, itself included.
    dirs: u64,
}

/// Every directory under `root` (itself included) by path relative to it ("" for the root).
fn walk(root: &Path) -> BTreeMap<PathBuf, Dir> {
    fn go(root: &Path, rel: &Path, depth: u32, out: &mut BTreeMap<PathBuf, Dir>) -> (u64, u64) {
        let (mut files, mut dirs) = (0, 1);
        for entry in std::fs::read_dir(root.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap(); // lstat: a link is a link
            if kind.is_dir() {
                let (f, d) = go(root, &rel.join(entry.file_name()), depth + 1, out);
                files += f;
                dirs += d;
            } else if kind.is_file() {
                files += 1;
            }
        }
        out.insert(rel.to_owned(), Dir { depth, files, dirs });
        (files, dirs)
    }
    let mut out = BTreeMap::new();
    go(root, Path::new(""), 0, &mut out);
    out
}

/// Whether spawn key `key` names subdirectory `name` under agent.py's rule: `dir-NAME` for
/// a name of ASCII letters, digits, `.`, `_`, `-`; else `dir-SAFE-HASH`, SAFE being the name
/// with every other character replaced by `_` (at most 64) and HASH 12 hex digits.
fn key_names(key: &str, name: &str) -> bool {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if safe == name {
        return key == format!("dir-{name}");
    }
    key.strip_prefix(&format!("dir-{safe}-"))
        .is_some_and(|h| h.len() == 12 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

fn tokens(counters: &Value) -> f64 {
    counters["tokens"].as_f64().unwrap_or(0.0)
}

/// Checks `troupe tree RUN --json` against the directories of `root`: one succeeded run per
/// directory (found through the chain of spawn keys from the root run), at the directory's
/// depth; each child's budget is what agent.py reserves (files + directories of its
/// subtree) and its usage the files of its subtree (one token per file read).
fn check_tree(data: &Path, run: &str, root: &Path) {
    let dirs = walk(root);
    let nodes = tree_nodes(data, run);
    assert_eq!(
        nodes.len(),
        dirs.len(),
        "one run per directory; directories {:?}, nodes {nodes:#?}",
        dirs.keys().collect::<Vec<_>>()
    );
    let by_id: BTreeMap<&str, &Value> = nodes
        .iter()
        .map(|n| (n["run"].as_str().unwrap(), n))
        .collect();
    // The directory each node summarised, from its ancestors' keys.
    fn dir_of(n: &Value, by_id: &BTreeMap<&str, &Value>, root: &Path) -> PathBuf {
        let Some(parent) = n["parent"].as_str() else {
            return PathBuf::new();
        };
        let parent_dir = dir_of(by_id[parent], by_id, root);
        let key = n["key"].as_str().unwrap();
        let names: Vec<_> = std::fs::read_dir(root.join(&parent_dir))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| key_names(key, name))
            .collect();
        assert_eq!(
            names.len(),
            1,
            "key {key} names one subdirectory of {parent_dir:?}"
        );
        parent_dir.join(&names[0])
    }
    let mut seen = BTreeMap::new();
    for n in &nodes {
        let rel = dir_of(n, &by_id, root);
        let d = dirs
            .get(&rel)
            .unwrap_or_else(|| panic!("node {n} names {rel:?}, not a directory"));
        assert_eq!(n["state"], "succeeded", "{n}");
        assert_eq!(
            n["depth"].as_u64().unwrap(),
            u64::from(d.depth),
            "{rel:?}: {n}"
        );
        assert_eq!(
            tokens(&n["usage"]),
            d.files as f64,
            "{rel:?} read its files: {n}"
        );
        if d.depth == 0 {
            assert_eq!(tokens(&n["budget"]), ROOT_BUDGET, "{n}");
            assert!(n["parent"].is_null());
        } else {
            assert_eq!(
                n["parent_task"],
                if d.depth == 1 { "agent" } else { "main" }
            );
            assert_eq!(
                tokens(&n["budget"]),
                (d.files + d.dirs) as f64,
                "{rel:?}: {n}"
            );
        }
        assert!(
            seen.insert(rel.clone(), n["run"].clone()).is_none(),
            "{rel:?} twice"
        );
    }
}

/// A tree with what a real one holds: text and binary files, a file without a trailing
/// newline, names with spaces and non-ASCII letters, upper-case and missing extensions, a
/// dotfile, an empty directory, a directory whose name is not a safe key, symbolic links to
/// a file and to a directory and a dangling one (never followed), a FIFO (never opened), and
/// three largest files of the same size, the one with the smallest path (which wins) neither
/// the first nor the last an agent meets (own files first, then subdirectories by name).
/// Three levels below the root.
fn build_tree(root: &Path) {
    let write = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    write("README.md", b"# tree\n\nA tree for the agents example.\n");
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    write("data.bin", &binary);
    write("name with space.txt", b"one\ntwo\n");
    write("na\u{ef}ve.TXT", "caf\u{e9}\n".as_bytes());
    write("docs/guide.md", b"guide\n".repeat(40).as_slice());
    write(
        "docs/logo.PNG",
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0],
    );
    write("docs/api/v1.json", b"{\"version\": 1}\n");
    write("docs/api/old/notes", b"no newline at the end");
    write("docs/api/old/big.dat", &[b'z'; 5000]);
    write("b/big.dat", &[b'\n'; 5000]);
    write("c.dat", &[b'c'; 5000]);
    write("odd name!/.hidden", b"hidden\n");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("README.md", root.join("link-to-readme")).unwrap();
    std::os::unix::fs::symlink("docs", root.join("link-to-docs")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("b/dangling")).unwrap();
    nix::unistd::mkfifo(&root.join("docs/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
}

#[test]
fn a_built_tree_is_summarised_by_one_agent_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tree) = (tmp.path().join("data"), tmp.path().join("tree"));
    build_tree(&tree);
    let _node = NodeProc::start_agents(&data, &[]);
    let input = serde_json::json!({ "dir": tree }).to_string();
    let spawn = ["spawn", "--key", "built", "--input", &input, WORKFLOW];
    // A root spawned from outside any task, into the running node; waits for its end.
    let o = run_cmd_ok(&data, &spawn);
    let run = stdout(&o).trim().to_owned();

    let out = root_output(&data, &run);
    assert_eq!(out, check_py(&tree), "the agents' summary is check.py's");
    // And check.py's is right, by construction of the tree.
    assert_eq!(out["files"], 12, "{out:#}");
    assert_eq!(out["dirs"], 7);
    assert_eq!(out["depth"], 3);
    assert_eq!(
        out["largest"],
        serde_json::json!({"path": "b/big.dat", "bytes": 5000})
    );
    // Newline bytes: README.md 3, data.bin 16 (one i in 256 has 7i = 10 mod 256), the .txt
    // files 2 + 1, guide.md 40, logo.PNG 2 (its signature), v1.json 1, b/big.dat 5000,
    // .hidden 1.
    assert_eq!(out["lines"], 3 + 16 + 2 + 1 + 40 + 2 + 1 + 5000 + 1);
    assert_eq!(out["by_extension"][".txt"]["files"], 2);
    assert_eq!(
        out["by_extension"]["(none)"]["files"], 2,
        "notes and .hidden"
    );
    assert_eq!(out["by_extension"][".png"]["bytes"], 10);
    assert_eq!(out["by_extension"][".dat"]["files"], 3);
    check_tree(&data, &run, &tree);

    // The same key again: the same root, not run again.
    let runs = |data: &Path| {
        let o = run_cmd_ok(data, &["list", "--json"]);
        serde_json::from_str::<Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(runs(&data), 7, "the root and a child per subdirectory");
    let again = run_cmd_ok(&data, &spawn);
    assert_eq!(stdout(&again).trim(), run);
    assert!(stderr(&again).contains("attached"), "{}", stderr(&again));
    assert_eq!(runs(&data), 7);
}

#[test]
fn troupes_own_source_tree_is_summarised_through_troupe_run() {
    let src = Path::new("src");
    let deepest = walk(src).values().map(|d| d.depth).max().unwrap();
    assert!(
        deepest <= 4,
        "src/ is {deepest} levels deep, past the default max_depth 4 the example relies on"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No node serves `data`: `troupe run` starts one in its own process, with its own
    // environment (so the agents find this troupe on PATH), through which they spawn; the
    // workflow's own argument points the root agent at ../../src.
    let o = troupe(&data)
        .env("PATH", path_with_troupe())
        .args(["run", WORKFLOW])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let events = events(&data);
    let run = events[0]["run"].as_str().unwrap().to_owned();
    // The root (its workflow has an [authority]) is a root `run_spawned`; children name it.
    assert_eq!(events[0]["type"], "run_spawned");
    assert!(events[0]["parent"].is_null());
    let spawned = events
        .iter()
        .filter(|e| e["type"] == "run_spawned" && !e["parent"].is_null())
        .count();
    assert_eq!(spawned, walk(src).len() - 1, "one child per subdirectory");

    // Offline (the embedded node has stopped): the output from the journal.
    let out = root_output(&data, &run);
    assert_eq!(out, check_py(src));
    assert!(out["files"].as_u64().unwrap() > 100, "{out}");
    // `troupe tree` asks a node.
    let _node = NodeProc::start_agents(&data, &[]);
    check_tree(&data, &run, src);
}

/// A child that fails fails its parent with a message naming the child, and the parent's
/// retry re-attaches to the children its keys name instead of spawning them again.
#[test]
fn a_failed_child_fails_the_root_clearly_and_the_retry_re_attaches() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tree) = (tmp.path().join("data"), tmp.path().join("tree"));
    std::fs::create_dir_all(tree.join("good")).unwrap();
    std::fs::write(tree.join("good/a.txt"), b"a\n").unwrap();
    // A name JSON cannot carry: the agent for `bad` refuses it.
    let bad = tree.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join(std::ffi::OsStr::from_bytes(b"not-utf8-\xff.txt")),
        b"x",
    )
    .unwrap();
    let _node = NodeProc::start_agents(&data, &[]);
    let input = serde_json::json!({ "dir": tree }).to_string();
    let o = run(
        &data,
        &["spawn", "--key", "bad", "--input", &input, WORKFLOW],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let run = stdout(&o).trim().to_owned();
    assert_eq!(run_status(&data, &run)["state"], "failed");

    let nodes = tree_nodes(&data, &run);
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    let child = |key: &str| {
        nodes
            .iter()
            .find(|n| n["key"] == key)
            .unwrap_or_else(|| panic!("no child {key}: {nodes:#?}"))
    };
    assert_eq!(child("dir-good")["state"], "succeeded");
    let bad_child = child("dir-bad");
    assert_eq!(bad_child["state"], "failed");
    let bad_run = bad_child["run"].as_str().unwrap();
    let log = stdout(&run_cmd_ok(&data, &["logs", &format!("{bad_run}/main")]));
    assert!(log.contains("not valid UTF-8"), "{log}");
    // Both attempts of the root (summarise.toml: max_attempts = 2) name the failed child.
    for attempt in ["1", "2"] {
        let log = stdout(&run_cmd_ok(
            &data,
            &["logs", &format!("{run}/agent"), "--attempt", attempt],
        ));
        assert!(
            log.contains(&format!("(run {bad_run}, key dir-bad) ended failed")),
            "attempt {attempt}: {log}"
        );
    }
    // The second attempt spawned nothing new: two children, each spawned once.
    let spawned: Vec<_> = events(&data)
        .into_iter()
        .filter(|e| e["type"] == "run_spawned" && e["parent"] == run.as_str())
        .collect();
    assert_eq!(spawned.len(), 2, "{spawned:#?}");
}

/// More agents wait for their children at once than the node has worker slots: each waiting
/// agent lends its slot, so the tree finishes instead of waiting for slots its ancestors
/// hold (with 2 workers, 3 directories each with a subdirectory: 4 agents wait at once).
#[test]
fn a_tree_with_more_waiting_agents_than_workers_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, tree) = (tmp.path().join("data"), tmp.path().join("tree"));
    for d in ["a/sub/x", "b/sub/x", "c/sub/x"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
        std::fs::write(tree.join(d).join("f.txt"), "one\ntwo\n").unwrap();
    }
    let _node = NodeProc::start_agents(&data, &["--workers", "2"]);
    let input = serde_json::json!({ "dir": tree }).to_string();
    let o = run_cmd_ok(
        &data,
        &["spawn", "--key", "narrow", "--input", &input, WORKFLOW],
    );
    let run = stdout(&o).trim().to_owned();
    let out = root_output(&data, &run);
    assert_eq!(out, check_py(&tree));
    assert_eq!(out["files"], 3);
    check_tree(&data, &run, &tree);
}
