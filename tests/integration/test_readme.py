"""The README runs: every fenced code block in it is run, checked, or exempted with a reason.

- ``sh`` blocks run through bash (``-e -o pipefail``) from the repository's root and ``python`` blocks
  through this Python (as ``.venv/bin/python -``, the way the tour says to paste them), in the
  README's order, against ``watchcache serve --embedded-etcd`` started as ``./scripts/serve`` starts it
  (on a free port: the README's ``http://127.0.0.1:8080`` is replaced by the service's address), with
  a private ``HOME`` and no kubeconfig;
- ``yaml`` blocks are parsed, and a watchcache configuration (a ``resources:`` key) is loaded as
  ``watchcache serve --config`` loads it; the kustomize overlay is rendered by
  ``tests/integration/test_deploy.py``;
- the ``text`` block (the architecture's tree) must name every module and package of ``watchcache/``,
  and only those;
- a block preceded by ``<!-- not run: REASON -->`` is exempt (a command that serves until stopped, or
  needs docker, a cluster or certificates) and counted.

Any other block fails the test: nothing in the README goes unchecked. After the walk the service is
stopped with Ctrl-C (SIGINT to its process group), and nothing is left: no process of it, of its etcd
or of the tour (kubectl's background watch), no etcd data dir, no file in the repository, and in
``HOME`` nothing but kubectl's cache. And every link of the README resolves inside the repository.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.serve import live_processes_mentioning, read_banner, start_serve, wait_ready

from watchcache.config import parse_config

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TOUR_URL = "http://127.0.0.1:8080"
"""The address the README's commands use: where ``./scripts/serve`` listens by default."""
RUN_TIMEOUT = 120.0
"""Seconds one block may take."""

_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")


@dataclass(frozen=True)
class Block:
    line: int
    """Line number of the opening fence (1-based)."""
    lang: str
    text: str
    exempt: str | None
    """The reason given by a ``<!-- not run: ... -->`` comment right before the block."""

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'no language'})"


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines = README.read_text().splitlines()
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"README.md:{i + 1}: a code block that never ends"
        reason = _NOT_RUN.match(previous)
        text = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(i + 1, opening[1], text, reason[1] if reason else None))
        previous = ""
        i = end + 1
    return blocks


BLOCKS = readme_blocks()
RUN = [b for b in BLOCKS if b.exempt is None and b.lang in ("sh", "python")]
YAML = [b for b in BLOCKS if b.exempt is None and b.lang == "yaml"]
TREE = [b for b in BLOCKS if b.exempt is None and b.lang == "text"]
EXEMPT = [b for b in BLOCKS if b.exempt is not None]

EXPECTED_OUTPUT = {
    "get flunders -n default -o wide": "my-flunder",
    "watch.Watch().stream": "ADDED from-python",
    "EmbeddedEtcd": "DELETED a",
}
"""A line of a block → what its output must contain (beyond exiting 0)."""


def test_every_block_is_run_checked_or_exempted() -> None:
    """Each block is run (sh, python), checked (yaml, text) or exempted with a reason; none is
    silently skipped, and the tour's kubectl, curl and Python are among those run."""
    unhandled = [str(b) for b in BLOCKS if b not in RUN + YAML + TREE + EXEMPT]
    assert unhandled == [], f"neither run, checked nor exempted (<!-- not run: why -->): {unhandled}"
    assert all(b.exempt and b.exempt.strip() for b in EXEMPT)
    run = "".join(b.text for b in RUN)
    for needed in ("kubectl --server", "curl -s", "from kubernetes import", "from watchcache import"):
        assert needed in run, needed
    print(f"README blocks: {len(RUN)} run, {len(YAML) + len(TREE)} checked, {len(EXEMPT)} exempted")
    for block in EXEMPT:
        print(f"  {block}: not run: {block.exempt}")


def test_the_tour_uses_the_address_serve_listens_on() -> None:
    """``./scripts/serve`` picks no port, so it serves on ``watchcache serve``'s default, the port
    the README's commands name."""
    serve = (REPO / "scripts" / "serve").read_text().splitlines()
    command = next(line for line in serve if line.startswith("exec "))
    assert command == 'exec .venv/bin/watchcache serve --embedded-etcd --config examples/watchcache.yaml "$@"'
    help_text = subprocess.run(
        [sys.executable, "-m", "watchcache", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "(default: 8080)" in help_text
    assert any(TOUR_URL in b.text for b in RUN)


def test_yaml_blocks_parse_and_configurations_load() -> None:
    """Every YAML block parses; each watchcache configuration loads as ``--config`` would load it;
    the other one is the kustomize overlay that test_deploy renders."""
    assert YAML
    for block in YAML:
        data = yaml.safe_load(block.text)
        assert isinstance(data, dict), block
        if data.get("kind") == "Kustomization":
            assert block.text.startswith("# overlay/kustomization.yaml"), block
        else:
            parse_config(block.text, source=str(block))


def test_the_architecture_names_every_module() -> None:
    """The tree names each of watchcache/'s modules and packages (``__init__``/``__main__`` apart)."""
    (tree,) = TREE
    named: set[str] = set()
    for line in tree.text.splitlines()[1:]:
        names = line[:30].strip(" ├└│─")
        named |= {name for name in names.split() if name.endswith((".py", "/"))}
    package = REPO / "watchcache"
    modules = {p.name for p in package.glob("*.py") if not p.name.startswith("__")}
    packages = {p.parent.name + "/" for p in package.glob("*/__init__.py")}
    present = modules | packages
    assert named == present


async def run_block(block: Block, url: str, home: Path) -> str:
    """Run one block as the tour says to; its output (stdout then stderr)."""
    text = block.text.replace(TOUR_URL, url)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    # No bytecode: the checkout must look the same after the walk, whatever the blocks imported.
    env |= {"HOME": str(home), "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    command = ["bash", "-e", "-o", "pipefail", "-c", text] if block.lang == "sh" else [sys.executable, "-"]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            out, err = await proc.communicate(text.encode() if block.lang == "python" else b"")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = out.decode() + err.decode()
    assert proc.returncode == 0, f"{block} exited {proc.returncode}:\n{text}\n---\n{output}"
    for line, expected in EXPECTED_OUTPUT.items():
        if line in block.text:
            assert expected in output, f"{block}: no {expected!r} in:\n{output}"
    return output


def untracked_files() -> set[str]:
    listed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in listed.splitlines() if line.startswith(("??", "!!"))}


@pytest.mark.timeout(400)
async def test_the_walk_runs_every_block_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """``./scripts/serve``'s service, every runnable block in order against it, then Ctrl-C: exit 0,
    and no process, no etcd data and no file of the walk remains (kubectl's cache in HOME apart)."""
    home = tmp_path / "home"
    home.mkdir()
    before = untracked_files()
    proc = await start_serve("--embedded-etcd", "--port", "0", log=tmp_path / "stderr")
    try:
        banner = await read_banner(proc)
        assert banner.etcd_dir is not None
        await wait_ready(banner.url)
        for block in RUN:
            await run_block(block, banner.url, home)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        async with asyncio.timeout(30):
            assert await proc.wait() == 0, (tmp_path / "stderr").read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not banner.etcd_dir.exists()
    assert live_processes_mentioning(str(banner.etcd_dir)) == {}
    port = banner.url.rsplit(":", 1)[1]
    assert live_processes_mentioning(f"127.0.0.1:{port}") == {}  # kubectl's watch among them
    assert untracked_files() == before
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert all(p.startswith(".kube/cache/") for p in left), left


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_stay_in_the_repository_and_resolve() -> None:
    """Every link of the README points into the repository, at a file that exists and, with an
    anchor, at one of its headings."""
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.DOTALL)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        path, _, anchor = link.partition("#")
        target = (REPO / path) if path else README
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target), link
