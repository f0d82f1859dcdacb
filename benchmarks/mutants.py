#!/usr/bin/env python
"""Plant a known bug in a copy of watchcache and run the short soak against it: it must be caught.

    python benchmarks/mutants.py list                      # the mutants, and what each breaks
    python benchmarks/mutants.py plant NAME DIR            # a copy of this tree in DIR, NAME planted
    python benchmarks/mutants.py run NAME [NAME ...]       # plant each in a temp copy, soak --short there
    python benchmarks/mutants.py run --all [--json FILE]   # every mutant; the table of docs/soak.md

A mutant is a small textual replacement in one function of the product, applied to a copy of the
working tree (tracked and untracked files, as ``git ls-files`` lists them), never to this checkout.
The soak in the copy runs ``python -m watchcache serve`` with ``PYTHONPATH`` = the copy, so the
replicas (and the soak's own imports) are the mutated code. Each replacement must match exactly once:
when the code it targets has moved or changed, planting fails loudly and says which function to
re-plant it in (see docs/soak.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOAK_TIMEOUT = 900
"""Seconds a mutant's short soak may take (it takes one or two minutes): past it, it is a failure
of the soak to report, not a catch."""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    function: str
    breaks: str
    old: str
    new: str


MUTANTS = (
    Mutant(
        "starve-namespace",
        "watchcache/cache/dispatcher.py",
        "Dispatcher._dispatch",
        "namespace-scoped watchers are never offered live changes (only the catch-up of their next watch)",
        "        if self._by_namespace:\n",
        "        if False:  # planted: the namespaces' groups are never offered\n",
    ),
    Mutant(
        "refuse-selector",
        "watchcache/http/watch.py",
        "Watches.watch",
        "every watch with a labelSelector is answered 500",
        "        watch = target.resource.watch_with(options)\n",
        '        if request.query.get("labelSelector"):\n'
        '            raise RuntimeError("planted: labelSelector watches refused")\n'
        "        watch = target.resource.watch_with(options)\n",
    ),
    Mutant(
        "stall-stream",
        "watchcache/cache/cache_watcher.py",
        "CacheWatcher.offer",
        "a watcher whose socket is momentarily full is dropped from dispatch without being ended: its "
        "stream stays open and silent (until timeoutSeconds)",
        "            and self._initial_end is None\n            and sink(items)\n        ):\n"
        "            return True\n",
        "            and self._initial_end is None\n        ):\n            return sink(items)\n",
    ),
    Mutant(
        "unserved-rewatch",
        "watchcache/cache/cacher.py",
        "Cache.watch",
        "a watch from an odd resourceVersion is answered 200 and never registered: after its replay it "
        "receives nothing",
        "        self.dispatcher.register(watcher)\n        return watcher\n",
        "        if since is None or since % 2 == 0:\n"
        "            self.dispatcher.register(watcher)\n"
        "        return watcher\n",
    ),
    Mutant(
        "no-410-after-relist",
        "watchcache/cache/cacher.py",
        "Cache._listed",
        "after reloading (compacted past), the open watchers are not ended with 410: they go on from "
        "the new state, missing what happened in between",
        "            self.dispatcher.end_all(Ended.ERROR, expired.status())\n",
        "            del expired\n",
    ),
    Mutant(
        "bookmark-ahead",
        "watchcache/cache/dispatcher.py",
        "Dispatcher.bookmarks",
        "periodic bookmarks carry the cache's revision + 1",
        "watcher.offer([Bookmark(revision())])",
        "watcher.offer([Bookmark(revision() + 1)])",
    ),
    Mutant(
        "resume-plus-2",
        "watchcache/cache/reflector.py",
        "Reflector.run",
        "a broken etcd watch resumes at revision + 2, skipping one revision",
        "from_revision = self._state.revision + 1",
        "from_revision = self._state.revision + 2",
    ),
    Mutant(
        "sync-no-wait",
        "watchcache/cache/ready.py",
        "Progress.sync",
        "a consistent read does not wait for the cache to catch up with etcd",
        "            await self._wait(target, self._settings.sync_timeout)\n        return target",
        "        return target",
    ),
    Mutant(
        "lost-selector-leave",
        "watchcache/cache/cache_watcher.py",
        "CacheWatcher.select",
        "an object that stops matching a selector is not sent as DELETED",
        "return Leave(change) if prev_matches else None",
        "return None",
    ),
    Mutant(
        "overflow-not-ended",
        "watchcache/cache/cache_watcher.py",
        "CacheWatcher.offer",
        "a watcher whose buffer overflows has the changes dropped instead of being ended",
        "            self.end(Ended.TOO_SLOW)\n            return False\n",
        "            return True\n",
    ),
    Mutant(
        "front-progress-ahead",
        "watchcache/etcdserver/watches.py",
        "CachedWatch.run",
        "the etcd front's progress notifications carry the revision after the last one the watch was "
        "sent (a revision not yet committed, or an event still to come)",
        "await stream.send(response_parts(front.header_field(self.sent), self.id_field, []))",
        "await stream.send(response_parts(front.header_field(self.sent + 1), self.id_field, []))",
    ),
)
BY_NAME = {m.name: m for m in MUTANTS}


def unplantable(root: Path = ROOT) -> list[str]:
    """The mutants whose target text no longer occurs exactly once (re-plant them: see docs/soak.md)."""
    problems = []
    for mutant in MUTANTS:
        path = root / mutant.file
        count = path.read_text().count(mutant.old) if path.exists() else 0
        if count != 1:
            problems.append(f"{mutant.name}: {count} matches in {mutant.file} ({mutant.function})")
    return problems


def copy_tree(dest: Path) -> None:
    """This working tree's files (tracked and untracked, not ignored) into ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        source = ROOT / raw.decode()
        if not source.is_file():
            continue  # deleted in the working tree
        target = dest / raw.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def plant(mutant: Mutant, dest: Path) -> None:
    """A copy of this tree in ``dest`` with ``mutant`` planted."""
    copy_tree(dest)
    path = dest / mutant.file
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(
            f"cannot plant {mutant.name}: its target text occurs {count} times in {mutant.file} "
            f"(want once); re-plant it in {mutant.function}: {mutant.breaks}"
        )
    path.write_text(text.replace(mutant.old, mutant.new))


def run(mutant: Mutant, out: Path) -> dict[str, object]:
    """Plant ``mutant`` in a fresh copy, run the short soak there; what the soak reported."""
    tree = Path(tempfile.mkdtemp(prefix=f"watchcache-mutant-{mutant.name}-"))
    try:
        plant(mutant, tree)
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(tree)}
        check = subprocess.run(
            [sys.executable, "-c", "import watchcache, sys; sys.stdout.write(watchcache.__file__)"],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not check.startswith(str(tree)):
            raise SystemExit(f"the copy's watchcache is not the one imported: {check}")
        soak = subprocess.Popen(
            [sys.executable, str(tree / "benchmarks" / "soak.py"), "--short", "--out", str(out)],
            env=env,
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def result(caught: bool, how: str, kinds: dict[str, int], examples: list[str]) -> dict[str, object]:
            return {
                "mutant": mutant.name,
                "caught": caught,
                "how": how,
                "kinds": kinds,
                "examples": examples,
                "seconds": round(time.monotonic() - started),
            }

        finished = True
        try:
            stdout, stderr = soak.communicate(timeout=SOAK_TIMEOUT)
        except subprocess.TimeoutExpired:
            finished = False
            # SIGINT: the soak's own clean-up stops its replicas and etcd cluster.
            soak.send_signal(signal.SIGINT)
            try:
                stdout, stderr = soak.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                soak.kill()
                stdout, stderr = soak.communicate()
        (out / "soak-output.txt").write_text(stdout + stderr)
        if not finished:
            return result(False, f"the soak did not finish within {SOAK_TIMEOUT} s", {}, [stderr[-500:]])
        summary_file = out / "summary.json"
        if not summary_file.exists():
            return result(True, f"the soak did not finish (exit {soak.returncode})", {}, [stderr[-500:]])
        summary = json.loads(summary_file.read_text())
        return result(
            summary["violations"] > 0,
            "violations",
            summary["violations_by_kind"],
            summary["violation_examples"][:3],
        )
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list")
    planting = commands.add_parser("plant")
    planting.add_argument("name", choices=sorted(BY_NAME))
    planting.add_argument("dest", type=Path)
    running = commands.add_parser("run")
    running.add_argument("names", nargs="*", metavar="NAME")
    running.add_argument("--all", action="store_true")
    running.add_argument("--out", type=Path, default=None, help="directory for each run's soak output")
    running.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args(argv)
    if args.command == "list":
        for m in MUTANTS:
            print(f"{m.name:22} {m.file}  {m.function}: {m.breaks}")
        return 0
    if args.command == "plant":
        plant(BY_NAME[args.name], args.dest)
        print(f"planted {args.name} in {args.dest}")
        return 0
    names = [m.name for m in MUTANTS] if args.all else args.names
    if not names:
        parser.error("name a mutant, or --all")
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        parser.error(f"unknown mutants {unknown}; see: mutants.py list")
    base = args.out or Path(tempfile.mkdtemp(prefix="watchcache-mutants-"))
    results = []
    for name in names:
        result = run(BY_NAME[name], base / name)
        results.append(result)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(result["kinds"].items())) or "-"  # type: ignore[attr-defined]
        print(
            f"{name:22} caught={'yes' if result['caught'] else 'NO':3} {kinds}  ({result['seconds']} s)",
            flush=True,
        )
        for example in result["examples"]:  # type: ignore[attr-defined]
            print(f"    ! {str(example)[:240]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"soak outputs in {base}")
    return 0 if all(r["caught"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
