#!/usr/bin/env python3
"""The summary agent.py's tree of agents computes, computed directly: one os.walk.

    python3 examples/agents/check.py DIR

prints the summary of DIR as one JSON object (keys sorted), to compare with the root run's
output (`troupe output RUN/agent --json`'s "output"). The definitions are agent.py's: regular
files only, symbolic links never followed, `lines` counts newline bytes, `largest` is the
largest file (ties: the smallest path) relative to DIR, extensions lower-cased ("(none)" for
none), `dirs` counts DIR and every directory below it, `depth` how deep the deepest is.

Written independently of agent.py on purpose (a walk, not a recursion over summaries), so
that the two agree only if the agents' delegation and combination are right.
"""

import json
import os
import stat
import sys


def fail(error):
    raise error


def main():
    if len(sys.argv) != 2:
        print("usage: check.py DIR", file=sys.stderr)
        sys.exit(2)
    root = os.path.abspath(sys.argv[1])
    total = {"dirs": 0, "depth": 0, "files": 0, "bytes": 0, "lines": 0,
             "largest": None, "by_extension": {}}
    best = None  # (-bytes, path)
    # os.walk lists a symbolic link to a directory among the directories but, with
    # followlinks=False, never enters it; it is not a regular file either, so it counts
    # nowhere. onerror: an unreadable directory is an error, not a silent gap.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=fail):
        rel = os.path.relpath(dirpath, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        total["dirs"] += 1
        total["depth"] = max(total["depth"], depth)
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            with open(path, "rb") as f:
                data = f.read()
            size, lines = len(data), data.count(b"\n")
            relpath = name if rel == "." else rel.replace(os.sep, "/") + "/" + name
            total["files"] += 1
            total["bytes"] += size
            total["lines"] += lines
            if best is None or (-size, relpath) < best:
                best = (-size, relpath)
            ext = os.path.splitext(name)[1].lower() or "(none)"
            e = total["by_extension"].setdefault(ext, {"files": 0, "bytes": 0, "lines": 0})
            e["files"] += 1
            e["bytes"] += size
            e["lines"] += lines
    if best is not None:
        total["largest"] = {"path": best[1], "bytes": -best[0]}
    print(json.dumps(total, sort_keys=True, indent=2))


if __name__ == "__main__":
    main()
