#!/usr/bin/env python3
"""One agent of a recursive directory summariser, run as a troupe task.

The agent is given one directory. It delegates each immediate subdirectory to a child run
(`troupe spawn`, one agent like itself per subdirectory, with a budget), summarises its own
regular files while the children work, waits for them (`troupe wait --json`) and combines
their summaries with its own. The summary it writes to $TROUPE_OUTPUT is:

    {"dirs": N, "depth": N, "files": N, "bytes": N, "lines": N,
     "largest": {"path": "a/b.txt", "bytes": N} | null,
     "by_extension": {".py": {"files": N, "bytes": N, "lines": N}, "(none)": {...}}}

over the directory's whole subtree: `dirs` counts the directory itself and every directory
below it, `depth` is how many levels the deepest one is below it, `lines` counts newline
bytes, `largest.path` is relative to the directory (ties: the smallest path), extensions are
lower-cased ("(none)" for a name without one). Only regular files count; symbolic links
(to files or directories) are never followed, and FIFOs, sockets and devices are skipped.
check.py computes the same summary directly with os.walk.

Which directory:
  - a spawned run's input, the file $TROUPE_INPUT holding {"dir": PATH};
  - else (a root run started by `troupe run`) $SUMMARISE_DIR, else the first argument.
A relative path is taken from the task's cwd (the workflow file's folder, examples/agents).

Budget: every agent reports {"tokens": <files it read>} to $TROUPE_USAGE. A child's budget
is what its subtree will read plus one token per directory in it (troupe refuses a budget
of 0, and an empty directory must still be able to delegate), counted by listing the
subtree (which reads no file). The reservations nest, so the whole tree never uses more
than the root's [authority] budget; if the root's budget is too small, the first spawn
that does not fit is refused and the agent fails saying so.

Keys: a child's key is its subdirectory's name (made safe), so a retried attempt of this
agent gets the same children back (finished ones are never run again).

Python 3.7+ standard library only.
"""

import hashlib
import json
import os
import re
import stat
import subprocess
import sys

# troupe's default max_children (live children per run): spawn at most this many at once.
MAX_LIVE = 16
# Bytes read per call when counting lines.
CHUNK = 1 << 16


def die(message):
    print("agent: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def json_name(name, where):
    """`name` if JSON can carry it (valid UTF-8), else fail naming the path."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        die("%r: the name is not valid UTF-8, so it cannot go into a JSON summary" % where)
    return name


def listing(path):
    """(regular files as (name, lstat), subdirectory names) of `path`, sorted by name,
    without following symbolic links."""
    files, subdirs = [], []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as e:
        die("cannot list %s: %s" % (path, e))
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(entry.name)
        elif stat.S_ISREG(st.st_mode):
            files.append((entry.name, st))
    return files, subdirs


def subtree_size(path):
    """(regular files, directories) under `path`, itself included: a listing, no reads."""
    files, subdirs = listing(path)
    n_files, n_dirs = len(files), 1
    for d in subdirs:
        f, s = subtree_size(os.path.join(path, d))
        n_files += f
        n_dirs += s
    return n_files, n_dirs


def key_of(name):
    """A stable, printable spawn key for subdirectory `name`: the name itself if it is
    made of letters, digits, '.', '_' and '-' (at most 64), else a cleaned-up form plus a
    hash of the exact name (so two names never share a key)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64]
    if safe == name:
        return "dir-" + name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return "dir-%s-%s" % (safe, digest)


def measure(path):
    """(bytes, newline count) of the regular file at `path`."""
    size = lines = 0
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                lines += chunk.count(b"\n")
    except OSError as e:
        die("cannot read %s: %s" % (path, e))
    return size, lines


def extension(name):
    ext = os.path.splitext(name)[1].lower()
    return ext if ext else "(none)"


def empty_summary():
    return {
        "dirs": 1,
        "depth": 0,
        "files": 0,
        "bytes": 0,
        "lines": 0,
        "largest": None,
        "by_extension": {},
    }


def add_extension(into, ext, counts):
    e = into.setdefault(ext, {"files": 0, "bytes": 0, "lines": 0})
    for k in ("files", "bytes", "lines"):
        e[k] += counts[k]


def bigger(a, b):
    """The larger of two `largest` candidates (None: no file); ties go to the smaller path."""
    if a is None:
        return b
    if b is None:
        return a
    if (-b["bytes"], b["path"]) < (-a["bytes"], a["path"]):
        return b
    return a


def add_child(summary, name, child):
    """Folds the summary of subdirectory `name` into `summary`."""
    summary["dirs"] += child["dirs"]
    summary["depth"] = max(summary["depth"], child["depth"] + 1)
    for k in ("files", "bytes", "lines"):
        summary[k] += child[k]
    if child["largest"] is not None:
        largest = {"path": name + "/" + child["largest"]["path"],
                   "bytes": child["largest"]["bytes"]}
        summary["largest"] = bigger(summary["largest"], largest)
    for ext, counts in child["by_extension"].items():
        add_extension(summary["by_extension"], ext, counts)


def summarise_files(directory, files, summary):
    """Reads this agent's own regular files into `summary`; returns how many it read."""
    for name, _ in files:
        size, lines = measure(os.path.join(directory, name))
        summary["files"] += 1
        summary["bytes"] += size
        summary["lines"] += lines
        summary["largest"] = bigger(summary["largest"], {"path": name, "bytes": size})
        add_extension(summary["by_extension"], extension(name),
                      {"files": 1, "bytes": size, "lines": lines})
    return len(files)


def wait_for(directory, pending):
    """Waits for the children `pending` ((name, run id) pairs) and returns their
    (name, output) pairs; fails naming the first child that did not succeed."""
    code, out = troupe("wait", "--json", *[run for _, run in pending])
    results = {}
    for line in out.splitlines():
        r = json.loads(line)
        results[r["run"]] = r
    done = []
    for name, run in pending:
        r = results.get(run)
        if r is None:
            die("troupe wait (exit %d) said nothing of the child for %s (run %s)"
                % (code, name, run))
        if r["state"] != "succeeded":
            die("the child for %s (run %s, key %s) ended %s; `troupe tree %s` shows the tree"
                % (os.path.join(directory, name), run, r["key"], r["state"],
                   os.environ["TROUPE_RUN_ID"]))
        done.append((name, r["output"]))
    if code != 0:
        die("troupe wait exited %d" % code)
    return done


def troupe(*args):
    """Runs `troupe ARGS...`; (exit code, stdout). stderr goes to the attempt's log."""
    try:
        p = subprocess.run(["troupe"] + list(args), stdout=subprocess.PIPE,
                           universal_newlines=True)
    except OSError as e:
        die("cannot run troupe (is it on PATH?): %s" % e)
    return p.returncode, p.stdout


def which_dir():
    input_file = os.environ.get("TROUPE_INPUT")
    if input_file:
        with open(input_file) as f:
            value = json.load(f)
        if not isinstance(value, dict) or not isinstance(value.get("dir"), str):
            die('the input must be {"dir": PATH}, not %s' % json.dumps(value))
        return value["dir"]
    if os.environ.get("SUMMARISE_DIR"):
        return os.environ["SUMMARISE_DIR"]
    if len(sys.argv) > 1:
        return sys.argv[1]
    die("no directory: give an input {\"dir\": PATH}, SUMMARISE_DIR or an argument")


def write_json(env, value):
    """Writes `value` to the file named by $env (through a temporary file and a rename, so
    the node never reads half of it)."""
    path = os.environ[env]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, sort_keys=True)
    os.replace(tmp, path)


def main():
    for var in ("TROUPE_OUTPUT", "TROUPE_USAGE", "TROUPE_RUN_ID"):
        if not os.environ.get(var):
            die("%s is not set: run me as a troupe task (troupe run summarise.toml)" % var)
    directory = os.path.abspath(which_dir())
    if not os.path.isdir(directory):
        die("%s is not a directory" % directory)
    me = os.path.abspath(__file__)
    files, subdirs = listing(directory)
    for name in [f for f, _ in files] + subdirs:
        json_name(name, os.path.join(directory, name))
    print("agent: depth %s, %s: %d files, %d subdirectories"
          % (os.environ.get("TROUPE_DEPTH", "?"), directory, len(files), len(subdirs)),
          flush=True)

    summary = empty_summary()
    read = 0
    children = []  # (name, output) in name order
    # Delegate first (so the children work while this agent reads its own files), at most
    # MAX_LIVE at a time: a batch is spawned, then waited for, before the next. With no
    # subdirectory there is one empty batch, in which the agent reads its own files.
    batches = [subdirs[i:i + MAX_LIVE] for i in range(0, len(subdirs), MAX_LIVE)] or [[]]
    for b, batch in enumerate(batches):
        pending = []  # (name, run id)
        for name in batch:
            path = os.path.join(directory, name)
            n_files, n_dirs = subtree_size(path)
            code, out = troupe(
                "spawn", "--detach",
                "--key", key_of(name),
                "--input", json.dumps({"dir": path}, sort_keys=True),
                "--budget", "tokens=%d" % (n_files + n_dirs),
                "--command", "python3", me)
            if code != 0:
                die("spawning the agent for %s failed (troupe spawn exit %d; its reason is "
                    "above)" % (path, code))
            pending.append((name, out.strip()))
        if b == 0:
            read = summarise_files(directory, files, summary)
        if pending:
            children += wait_for(directory, pending)

    for name, child in children:
        add_child(summary, name, child)
    write_json("TROUPE_USAGE", {"tokens": read})
    write_json("TROUPE_OUTPUT", summary)
    print("agent: %d files, %d bytes, %d lines in %d directories"
          % (summary["files"], summary["bytes"], summary["lines"], summary["dirs"]), flush=True)


if __name__ == "__main__":
    main()
