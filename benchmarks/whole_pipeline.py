"""What `curator curate` costs a user vs datatrove 0.10.1, whole process tree, same input, same
stages, 2 workers each: wall, CPU seconds of every process either side starts (Ray's cluster
included), peak summed PSS and the largest single process.

    flock /tmp/curator-heavy.lock .venv/bin/python -m benchmarks.whole_pipeline \\
        --sizes 3 25 100 --repeats 3

Input: 16 jsonl.gz files of real text (public-domain books and Debian's kernel docs in 2-4 KB
line-aligned chunks, Common Crawl / Dolma documents, the Debian handbook's English HTML as text,
GCIDE dictionary entries in ~2 KB groups), sources interleaved round-robin; past the distinct
text (~100 MB) documents repeat as exact duplicates under new ids (both sides' dedup removes
them). Runs rotate over the sides (each first in turn); medians.

  curator: `curator curate --input DIR --output RUN --quiet` with the web preset's rules, the
    language filter off (datatrove has no language model offline), MinHash 5-gram shingles
    14 bands x 8 rows, tokenizer trained on 20 M chars, `ray.num_cpus=2`.
  datatrove: LocalPipelineExecutor, workers=2, run by `python -m benchmarks.whole_pipeline
    --datatrove-run INPUT OUT`: (1) JsonlReader -> Gopher repetition -> Gopher quality -> C4 ->
    FineWeb -> JsonlWriter -> MinhashDedupSignature, (2) MinhashDedupBuckets, (3)
    MinhashDedupCluster, a byte-level BPE trained with `tokenizers` on 20 M chars of stage 1's
    output (curator's vocabulary size), (4) JsonlReader -> MinhashDedupFilter ->
    DocumentTokenizer.

Writes benchmarks/results/whole_pipeline.md (--out).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gzip
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import psutil

from benchmarks.texts import group_pieces

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path("/work/shared/corpora")
DEBIAN = Path("/work/data/debian")
N_FILES = 16
WORKERS = 2
SHINGLE, BANDS, ROWS = 5, 14, 8
SAMPLE_CHARS = 20_000_000
EOS = "<|endoftext|>"
# curator's overrides, the same on every run: the language filter off (datatrove's needs a
# fasttext model it cannot download offline) and C4's curator-only "too many lines removed" drop
# off (datatrove keeps the fragments; with the drop on, curator would keep fewer documents and do
# less dedup and tokenization work than datatrove). `--curator-set` adds to these (last wins).
CURATOR_SETS = [
    "language.enabled=false",
    # datatrove's pipeline here has no PII step: the same stages on both sides
    "pii.email=false",
    "pii.ip=false",
    "quality.c4.max_removed_char_fraction=1",
    f"dedup.shingle_size={SHINGLE}",
    f"dedup.bands={BANDS}",
    f"dedup.rows={ROWS}",
    f"tokenizer.sample_chars={SAMPLE_CHARS}",
    f"ray.num_cpus={WORKERS}",
]
RESULT_TAG = "WHOLE_PIPELINE_DATATROVE "  # prefix of the datatrove subprocess's result line


# --------------------------------------------------------------------------------------------
# Corpus


@dataclass
class Sources:
    """Where the real text comes from; a missing source (None / empty) is left out."""

    books: list[Path] = field(default_factory=list)  # jsonl.gz of whole books: chunked
    web: list[Path] = field(default_factory=list)  # jsonl.gz of web documents: taken whole
    kernel_docs: Path | None = None  # folder searched for **/*.rst.gz: chunked per file
    handbook: Path | None = None  # folder of the handbook's English *.html: text, chunked
    gcide: Path | None = None  # gcide.dict.dz (gzip-compatible): entries in ~2 KB groups

    @classmethod
    def from_dirs(cls, corpora: Path = CORPORA, debian: Path = DEBIAN) -> Sources:
        corpora, debian = Path(corpora), Path(debian)
        books = [p for p in [corpora / "books.jsonl.gz"] if p.exists()]
        web = sorted(corpora.glob("cc_*.jsonl.gz")) + sorted(corpora.glob("dolma*.jsonl.gz"))
        kernel = sorted(debian.glob("linux-doc-*/usr/share/doc/linux-doc-*/Documentation"))
        handbook = debian / "debian-handbook/usr/share/doc/debian-handbook/html/en-US"
        gcide = debian / "dict-gcide/usr/share/dictd/gcide.dict.dz"
        return cls(
            books=books,
            web=web,
            kernel_docs=kernel[-1] if kernel else None,
            handbook=handbook if handbook.is_dir() else None,
            gcide=gcide if gcide.is_file() else None,
        )


def chunk_lines(text: str, rng: random.Random, lo: int = 2000, hi: int = 4000) -> list[str]:
    """Whole lines grouped into chunks of a target drawn in [lo, hi] chars per chunk."""
    chunks = group_pieces(text.split("\n"), "\n", lambda: rng.randint(lo, hi))
    return [c.strip("\n") for c in chunks if c.strip()]


def _jsonl_texts(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [t for line in f if line.strip() and (t := json.loads(line).get("text") or "")]


class _HTMLText(HTMLParser):
    """Text of an HTML page: block elements end lines, script/style dropped, <pre> kept."""

    BLOCK = {
        "p", "div", "br", "li", "dt", "dd", "tr", "pre", "table", "section", "title",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "dl",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    lines = [ln.rstrip() for ln in "".join(parser.parts).split("\n")]
    text = "\n".join(ln if ln.strip() else "" for ln in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _gcide_docs(path: Path, group_chars: int = 2000) -> list[str]:
    """Dictionary entries (a headword at column 0, blank line between entries) in groups."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    entries = (e.strip("\n") for e in re.split(r"\n\n+(?=\S)", text))
    kept = (e for e in entries if e.strip() and not e.startswith("00-database"))
    return group_pieces(kept, "\n\n", lambda: group_chars)


def load_sources(sources: Sources, rng: random.Random) -> dict[str, list[str]]:
    """Every source's documents, each list in a seeded shuffled order."""
    out: dict[str, list[str]] = {}
    books = [c for p in sources.books for t in _jsonl_texts(p) for c in chunk_lines(t, rng)]
    web = [t for p in sources.web for t in _jsonl_texts(p)]
    kernel: list[str] = []
    if sources.kernel_docs:
        for p in sorted(Path(sources.kernel_docs).rglob("*.rst.gz")):
            with gzip.open(p, "rt", encoding="utf-8", errors="replace") as f:
                kernel.extend(chunk_lines(f.read(), rng))
    handbook: list[str] = []
    if sources.handbook:
        for p in sorted(Path(sources.handbook).glob("*.html")):
            handbook.extend(chunk_lines(html_to_text(p.read_text(errors="replace")), rng))
    gcide = _gcide_docs(Path(sources.gcide)) if sources.gcide else []
    for name, docs in (
        ("books", books), ("web", web), ("kernel_docs", kernel), ("handbook", handbook),
        ("gcide", gcide),
    ):  # fmt: skip
        docs = [d for d in docs if d.strip()]
        if docs:
            rng.shuffle(docs)
            out[name] = docs
    return out


def build_corpus(
    size_mb: float, out_dir: Path | str, sources: Sources, seed: int = 0, n_files: int = N_FILES
) -> dict:
    """Write `n_files` jsonl.gz files ({"id", "text"}) holding ~size_mb MB (1e6 bytes of UTF-8
    text) of the sources' documents, taken round-robin across sources (a source that runs out
    drops out of the round) and dealt round-robin across files. Past the distinct documents the
    same order starts again: repeats are exact duplicates with ids `<id>-rep<k>`. Returns what
    was written: docs, repeats, MB per source."""
    rng = random.Random(seed)
    pools = load_sources(sources, rng)
    if not pools:
        raise ValueError(f"no text found in {sources}")
    order: list[tuple[str, int]] = []  # (source, index) round-robin
    cursors = {name: 0 for name in pools}
    while cursors:
        for name in list(cursors):
            i = cursors[name]
            if i < len(pools[name]):
                order.append((name, i))
                cursors[name] = i + 1
            else:
                del cursors[name]
    distinct_bytes = sum(len(pools[n][i].encode("utf-8")) for n, i in order)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [
        gzip.open(out / f"part-{k:02d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=6)
        for k in range(n_files)
    ]
    target = size_mb * 1e6
    written = docs = repeats = repeat_bytes = 0
    by_source: dict[str, dict[str, float]] = {n: {"docs": 0, "mb": 0.0} for n in pools}
    try:
        k = 0
        while written < target:
            for name, i in order:
                text = pools[name][i]
                doc_id = f"{name}-{i}" if k == 0 else f"{name}-{i}-rep{k}"
                files[docs % n_files].write(json.dumps({"id": doc_id, "text": text}) + "\n")
                nbytes = len(text.encode("utf-8"))
                written += nbytes
                docs += 1
                by_source[name]["docs"] += 1
                by_source[name]["mb"] += nbytes / 1e6
                if k:
                    repeats += 1
                    repeat_bytes += nbytes
                if written >= target:
                    break
            k += 1
    finally:
        for f in files:
            f.close()
    return {
        "dir": str(out),
        "files": n_files,
        "docs": docs,
        "repeats": repeats,
        "distinct_docs": docs - repeats,
        "text_mb": written / 1e6,
        "repeat_mb": repeat_bytes / 1e6,
        "distinct_available_docs": len(order),
        "distinct_available_mb": distinct_bytes / 1e6,
        "by_source": {n: {"docs": int(v["docs"]), "mb": round(v["mb"], 3)}
                      for n, v in by_source.items()},
        "seed": seed,
    }


# --------------------------------------------------------------------------------------------
# Process-tree measurement

PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37


@contextlib.contextmanager
def subreaper():
    """Make this process the reaper of its orphaned descendants while measuring (Linux): a
    process whose parent exits first (a forkserver, a Ray process outliving `ray start`) is
    then reparented here, and reaping it adds its CPU, and that of every child it reaped, to
    what wait4 reports. Yields whether it is on; restores the previous setting after."""
    if not sys.platform.startswith("linux"):
        yield False
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = ctypes.c_int(0)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
    on = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield on
    finally:
        if on and not before.value:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def ignores_sigchld(pid: int) -> bool:
    """Whether `pid` ignores SIGCHLD: its children are then reaped by the kernel and their CPU
    is in nobody's rusage, so it is taken from the last sample of each of them instead."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool((int(line.split()[1], 16) >> (signal.SIGCHLD - 1)) & 1)
    except (OSError, ValueError):
        pass
    return False


@dataclass
class _Seen:
    proc: psutil.Process
    name: str
    cpu: float = 0.0  # own user + system, last sample
    cpu_children: float = 0.0  # its reaped children's, last sample
    auto_reaped_by: str | None = None  # its parent's name while that parent ignores SIGCHLD
    reaped: bool = False  # by us: counted by wait4


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid of every process (one pass over /proc)."""
    private = getattr(psutil, "_ppid_map", None)  # what Process.children() itself uses
    if private is not None:
        return private()
    out = {}
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            out[p.pid] = p.ppid()
    return out


def _proc_name(p: psutil.Process) -> str:
    """Ray workers are all `python` by name: their title (`ray::Pass1Worker`) says more."""
    with contextlib.suppress(psutil.Error, IndexError):
        first = p.cmdline()[0]
        if first.startswith("ray::"):  # ray::Pass1Worker.process -> ray::Pass1Worker
            return first.split()[0].split(".")[0]
    return p.name()


def measure_tree(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: str | Path | None = None,
    stderr: str | Path | None = None,
    poll_s: float = 0.2,
    linger_s: float = 60.0,
) -> dict:
    """Run `cmd` and measure its whole process tree from outside.

    CPU: the rusage of every process this one reaps -- the command, and (as subreaper) any
    descendant orphaned before it exits -- which includes every descendant reaped by its parent
    on the way up; plus, for processes whose parent ignores SIGCHLD (the kernel reaps them and
    their CPU is in no rusage: Ray's raylet does this to its workers), their last sampled CPU.
    `cpu_polled_s` (the sum of every process's last sampled own CPU) is a lower bound to check
    against. Memory: each sample sums PSS (RSS where PSS cannot be read) over the tree; peaks
    of the sum and of the largest process. Wall: start to the command's exit (pidfd: no polling
    delay); descendants still alive then are measured until they exit, killed after `linger_s`.
    Other children this process has when it starts are left out.
    """
    with subreaper() as reaper:
        return _measure_tree(cmd, reaper, env, cwd, stdout, stderr, poll_s, linger_s)


def _measure_tree(
    cmd: list[str],
    subreaper: bool,
    env: dict[str, str] | None,
    cwd: str | Path | None,
    stdout: str | Path | None,
    stderr: str | Path | None,
    poll_s: float,
    linger_s: float,
) -> dict:
    me = os.getpid()
    foreign = {c.pid for c in psutil.Process(me).children()}
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    out_f = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    if stderr and stderr == stdout:
        err_f = out_f
    else:
        err_f = open(stderr, "wb") if stderr else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out_f, stderr=err_f)
    finally:
        for f in {id(out_f): out_f, id(err_f): err_f}.values():
            if f is not subprocess.DEVNULL:
                f.close()
    pidfd = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(proc.pid)
    seen: dict[tuple[int, float], _Seen] = {}
    current: dict[int, _Seen] = {}  # pid -> the process that has it now
    reaped_cpu = 0.0
    rc: int | None = None
    wall: float | None = None
    exited_at: float | None = None
    peak_sum = peak_one = 0
    peak_one_name = ""
    rss_samples = samples = killed = 0

    def tree() -> tuple[list[int], list[int]]:
        """(our children, all their descendants), leaving out the foreign children."""
        kids: dict[int, list[int]] = {}
        for pid, ppid in _ppid_map().items():
            kids.setdefault(ppid, []).append(pid)
        ours = [c for c in kids.get(me, []) if c not in foreign]
        todo, found = list(ours), []
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(kids.get(pid, []))
        return ours, found

    def record(pid: int) -> _Seen | None:
        rec = current.get(pid)
        try:
            if rec is None or not rec.proc.is_running():  # new, or the pid was reused
                p = psutil.Process(pid)
                rec = seen[(pid, p.create_time())] = current[pid] = _Seen(p, _proc_name(p))
        except psutil.Error:
            return None
        return rec

    def sample(pids: list[int]) -> None:
        nonlocal peak_sum, peak_one, peak_one_name, samples, rss_samples
        total = 0
        ignoring: dict[int, str | None] = {}
        for pid in pids:
            rec = record(pid)
            if rec is None:
                continue
            p = rec.proc
            if rec.name in ("python", "ray::IDLE"):  # a Ray worker retitles itself by task
                rec.name = _proc_name(p)
            try:
                with p.oneshot():
                    ppid = p.ppid()
                    if ppid not in ignoring:
                        ignoring[ppid] = None
                        if ignores_sigchld(ppid):
                            with contextlib.suppress(psutil.Error):
                                ignoring[ppid] = psutil.Process(ppid).name()
                    rec.auto_reaped_by = ignoring[ppid]
                    ct = p.cpu_times()
                    rec.cpu = ct.user + ct.system
                    rec.cpu_children = ct.children_user + ct.children_system
                    if p.status() == psutil.STATUS_ZOMBIE:
                        continue
                    try:
                        mem = p.memory_full_info().pss
                    except (psutil.AccessDenied, AttributeError):
                        mem = p.memory_info().rss
                        rss_samples += 1
            except psutil.Error:
                continue
            total += mem
            if mem > peak_one:
                peak_one, peak_one_name = mem, rec.name
        peak_sum = max(peak_sum, total)
        samples += 1

    def reap(children: list[int]) -> None:
        nonlocal reaped_cpu, rc, wall
        for child in children:
            try:
                pid, status, ru = os.wait4(child, os.WNOHANG)
            except ChildProcessError:
                continue
            if not pid:
                continue
            reaped_cpu += ru.ru_utime + ru.ru_stime
            if pid in current:
                current.pop(pid).reaped = True
            if pid == proc.pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc  # so Popen never waits for it again
                wall = time.perf_counter() - t0

    try:
        while True:
            ours, pids = tree()
            sample(pids)
            reap(ours)
            if rc is not None:
                exited_at = exited_at or time.perf_counter()
                ours, pids = tree()
                if not ours or not subreaper:
                    break
                if time.perf_counter() - exited_at > linger_s:
                    for pid in pids:  # ours: started by the measured command
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                            killed += 1
            if pidfd is not None and rc is None:
                select.select([pidfd], [], [], poll_s)
            else:
                time.sleep(poll_s)
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if rc is None:  # interrupted: leave nothing running
            for pid in tree()[1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
    auto: Counter = Counter()
    for r in seen.values():
        if r.auto_reaped_by and not r.reaped:
            auto[r.auto_reaped_by] += r.cpu + r.cpu_children
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    by_name: Counter = Counter()
    for r in seen.values():
        by_name[r.name] += r.cpu
    return {
        "rc": rc,
        "wall_s": wall,
        "cpu_s": reaped_cpu + sum(auto.values()),
        "cpu_rusage_s": reaped_cpu,
        "cpu_auto_reaped_s": sum(auto.values()),
        "auto_reaped_by": {k: round(v, 2) for k, v in auto.items()},
        "cpu_polled_s": sum(r.cpu for r in seen.values()),
        "peak_pss_mb": peak_sum / 1e6,
        "peak_proc_pss_mb": peak_one / 1e6,
        "peak_proc_name": peak_one_name,
        "rss_fallback_samples": rss_samples,
        "procs_seen": len(seen),
        "cpu_by_name": {k: round(v, 2) for k, v in by_name.most_common(8)},
        "samples": samples,
        "linger_s": (time.perf_counter() - exited_at) if exited_at else None,
        "killed_lingering": killed,
        "subreaper": subreaper,
        "monitor_cpu_s": (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime),
    }


def _tail(path: Path, n: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-n:]
    return ""


# --------------------------------------------------------------------------------------------
# Floor: read + gunzip + json parse + hash, one process


def floor(corpus: Path) -> dict:
    import xxhash

    c0, t0 = time.process_time(), time.perf_counter()
    docs = nbytes = 0
    for p in sorted(Path(corpus).glob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                b = json.loads(line)["text"].encode("utf-8")
                xxhash.xxh3_128_hexdigest(b)  # curator's exact-dedup hash
                docs += 1
                nbytes += len(b)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "docs": docs,
        "mb": nbytes / 1e6,
    }


# --------------------------------------------------------------------------------------------
# The two sides


def _env(pythonpath: bool = False) -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)  # curator starts its own embedded cluster
    if pythonpath:  # datatrove's forkserver workers import benchmarks.whole_pipeline
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_curator(corpus: Path, work: Path, tag: str, extra_sets: list[str],
                poll_s: float = 0.2) -> dict:
    run_dir = work / f"curator-{tag}"
    shutil.rmtree(run_dir, ignore_errors=True)
    curator = str(Path(sys.executable).parent / "curator")
    sets = [*CURATOR_SETS, *extra_sets]
    cmd = [curator, "curate", "--input", str(corpus), "--output", str(run_dir), "--quiet"]
    cmd += [a for kv in sets for a in ("--set", kv)]
    log = work / f"curator-{tag}.log"
    m = measure_tree(cmd, env=_env(), cwd=ROOT, stdout=log, stderr=log, poll_s=poll_s)
    if m["rc"] != 0:
        raise RuntimeError(f"curator exited {m['rc']}:\n{_tail(log)}")
    stats = json.loads((run_dir / "stats.json").read_text())
    m.update(
        records=stats["records"],
        kept=stats["kept"],
        tokens=stats["tokens"],
        dedup=stats.get("dedup", {}),
        outcomes=stats.get("outcomes", {}),
        phases=stats.get("wall_seconds", {}),
        executor=stats.get("executor", "ray"),  # runs before it existed were all on Ray
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return m


def run_datatrove(corpus: Path, work: Path, tag: str, vocab_size: int) -> dict:
    out = work / f"datatrove-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "benchmarks.whole_pipeline", "--datatrove-run", str(corpus),
           str(out), "--vocab-size", str(vocab_size)]  # fmt: skip
    stdout, log = work / f"datatrove-{tag}.out", work / f"datatrove-{tag}.log"
    m = measure_tree(cmd, env=_env(pythonpath=True), cwd=ROOT, stdout=stdout, stderr=log)
    if m["rc"] != 0:
        raise RuntimeError(f"datatrove exited {m['rc']}:\n{_tail(log)}")
    lines = [ln for ln in _tail(stdout, 10**6).splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"datatrove run printed no result:\n{_tail(log)}")
    m.update(json.loads(lines[-1][len(RESULT_TAG):]))
    shutil.rmtree(out, ignore_errors=True)
    return m


def _step_stats(stats) -> dict[str, dict[str, float]]:
    """A datatrove PipelineStats as {step name: {stat: total}}."""
    out: dict[str, dict[str, float]] = {}
    for step in json.loads(stats.to_json()):
        vals = {}
        for k, v in step.get("stats", {}).items():
            vals[k] = v.get("total", v.get("sum", 0)) if isinstance(v, dict) else v
        out[step["name"]] = vals
    return out


def _sample_texts(folder: Path, max_chars: int):
    """Documents of the jsonl.gz files in `folder`, one line from each file in turn, until
    `max_chars` characters are given."""
    handles = [gzip.open(p, "rt", encoding="utf-8") for p in sorted(folder.glob("*.jsonl.gz"))]
    given = 0
    try:
        while handles and given < max_chars:
            for h in list(handles):
                line = h.readline()
                if not line:
                    handles.remove(h)
                    continue
                text = json.loads(line)["text"]
                given += len(text)
                yield text
                if given >= max_chars:
                    break
    finally:
        for h in handles:
            h.close()


def train_bpe(texts, vocab_size: int, path: Path) -> None:
    """A byte-level BPE (GPT-2 style) with the EOS special token, saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.save(str(path))


def datatrove_pipeline(
    input_dir: Path, out: Path, workers: int = WORKERS, vocab_size: int = 8000,
    sample_chars: int = SAMPLE_CHARS,
) -> dict:  # fmt: skip
    """The datatrove run, in this process (the benchmark runs it as its own subprocess)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    input_dir, out = Path(input_dir), Path(out)
    n_tasks = len(list(input_dir.glob("*.jsonl.gz")))
    mc = MinhashConfig(
        n_grams=SHINGLE,
        num_buckets=BANDS,
        hashes_per_bucket=ROWS,
        hash_config=HashConfig(precision=32),  # 32-bit like curator's signature
    )
    phases: dict[str, float] = {}
    stats: dict[str, dict] = {}

    def stage(name: str, pipeline: list, tasks: int) -> None:
        t0 = time.perf_counter()
        res = LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
            logging_dir=str(out / "logs" / name),
        ).run()  # fmt: skip
        phases[name] = time.perf_counter() - t0
        stats[name] = _step_stats(res)

    stage(
        "filter_signatures",
        [
            JsonlReader(str(input_dir)),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(),
            FineWebQualityFilter(),
            JsonlWriter(str(out / "filtered")),
            MinhashDedupSignature(output_folder=str(out / "sigs"), config=mc),
        ],
        n_tasks,
    )
    # Stage 4 pairs its reader's rank r with signature file r: every rank needs its file, even
    # one whose documents were all dropped (the writer opens a file at the first document only).
    for r in range(n_tasks):
        p = out / "filtered" / f"{r:05d}.jsonl.gz"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            gzip.open(p, "wb").close()
    # Buckets needs tasks divisible by num_buckets: one task per bucket.
    stage(
        "buckets",
        [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"),
                             config=mc)],
        BANDS,
    )  # fmt: skip
    stage(
        "cluster",
        [MinhashDedupCluster(input_folder=str(out / "buckets"),
                             output_folder=str(out / "remove_ids"), config=mc)],
        1,
    )  # fmt: skip
    t0 = time.perf_counter()
    tok_path = out / "tokenizer.json"
    train_bpe(_sample_texts(out / "filtered", sample_chars), vocab_size, tok_path)
    phases["tokenizer_train"] = time.perf_counter() - t0
    stage(
        "dedup_filter_tokenize",
        [
            JsonlReader(str(out / "filtered")),
            MinhashDedupFilter(input_folder=str(out / "remove_ids")),
            DocumentTokenizer(
                output_folder=str(out / "tokens"),
                tokenizer_name_or_path=str(tok_path),
                eos_token=EOS,  # curator appends EOS to every document too
                shuffle_documents=False,  # curator writes its shards unshuffled
            ),
        ],
        n_tasks,
    )
    s1, s4 = stats["filter_signatures"], stats["dedup_filter_tokenize"]

    def find(st: dict, prefix: str) -> dict:
        return next((v for k, v in st.items() if prefix.lower() in k.lower()), {})

    return {
        "phases": phases,
        "records": int(find(s1, "reader").get("documents", 0)),
        "after_rules": int(find(s4, "stage 4").get("total", 0)),
        "kept": int(find(s4, "stage 4").get("forwarded", 0)),
        "near_dups_removed": int(find(s4, "stage 4").get("dropped", 0)),
        "tokens": int(find(s4, "tokeniz").get("tokens", 0)),
        "rule_drops": {
            k.split(": ", 1)[-1].split(" ", 1)[-1]: int(v.get("dropped", 0))
            for k, v in s1.items()
            if "FILTER" in k
        },
        "stage_stats": stats,
    }


# --------------------------------------------------------------------------------------------
# Protocol and report


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None or x != x else format(x, spec)


def summarize(rows: list[dict]) -> dict:
    keys = ["wall_s", "cpu_s", "cpu_polled_s", "peak_pss_mb", "peak_proc_pss_mb",
            "monitor_cpu_s", "kept", "tokens", "records"]  # fmt: skip
    return {k: median([r[k] for r in rows if r.get(k) is not None]) for k in keys}


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Fixed + per-MB through the smallest and largest size: (fixed, per_mb)."""
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = min(points), max(points)
    if x1 == x0:
        return None
    b = (y1 - y0) / (x1 - x0)
    return y0 - b * x0, b


def _executors(runs: list[dict]) -> str:
    """Where a side's runs ran (stats.json `executor`): 'local', 'ray' or both."""
    return "/".join(sorted({r.get("executor", "ray") for r in runs}))


def markdown(results: list[dict], command: str, vocab_size: int) -> str:
    from benchmarks.paired_stats import sign_flip_p

    lines = [
        "## Whole pipeline: `curator curate` vs datatrove 0.10.1, whole process tree",
        "",
        f"Command: `{command}`",
        "",
        "Same input, same stages, 2 workers each; every process either side starts is measured "
        "from outside (psutil every 0.2 s): **CPU-s** is user + system of the whole tree, "
        "exited processes included (wait4 rusage of every process reaped, this process being "
        "the subreaper of orphans, plus the last sample of auto-reaped ones); **peak PSS** is the "
        "largest sum of proportional set sizes over the tree (shared pages counted once, so "
        "Ray's object store and forked workers are not double counted), and the largest single "
        "process. Runs rotate over the sides, each first in turn; "
        "medians over repeats. Ratio = datatrove / curator.",
        "",
        "- **curator**: `curator curate --input DIR --output RUN --quiet` "
        + " ".join(f"`--set {s}`" for s in CURATOR_SETS)
        + " (web preset otherwise: normalize, Gopher repetition + quality, C4, FineWeb, exact "
        "+ MinHash dedup, curriculum score, sentencepiece BPE trained on the rule survivors, "
        "tokenize, shards + manifest + catalog + report), `ray.executor` at its default "
        "(`auto`: local worker processes for inputs up to `ray.local_max_mb` on disk, else an "
        "embedded Ray cluster started and stopped inside the run; the table says which ran). "
        "**curator on Ray**, where measured: the same command with `--set ray.executor=ray`, "
        "in the same rotation.",
        "- **datatrove**: LocalPipelineExecutor, workers=2, 4 stages run one after another: "
        "(1) JsonlReader -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter -> "
        "FineWebQualityFilter -> JsonlWriter -> MinhashDedupSignature (16 tasks), "
        "(2) MinhashDedupBuckets (14 tasks), (3) MinhashDedupCluster, then a byte-level BPE "
        f"trained with `tokenizers` (vocab {vocab_size:,}, curator's default) on 20 M chars of "
        "stage 1's output, (4) JsonlReader -> MinhashDedupFilter -> DocumentTokenizer "
        "(16 tasks). MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, "
        "32-bit hashes).",
        "- **floor**: one Python process reads, gunzips, json-parses and xxh3-hashes every "
        "document: the least any pipeline over these files costs.",
        "- **input**: 16 jsonl.gz files built by `build_corpus` (seed 0) from real text: "
        "public-domain books (2-4 KB line-aligned chunks), Common Crawl / Dolma documents "
        "(whole), Linux kernel docs from Debian's linux-doc-6.1 (2-4 KB chunks of each .rst), "
        "the Debian handbook's English HTML as plain text (2-4 KB chunks) and GCIDE dictionary "
        "entries (~2 KB groups), sources taken round-robin (a source that runs out drops out) "
        "and dealt round-robin over the files, so every file holds a mix. About 100 MB is "
        "distinct; past it the same documents come again under new ids (exact duplicates). "
        "Sizes are MB of UTF-8 text, not of gzip.",
        "",
    ]
    for res in results:
        info, cur, dt, fl = res["corpus"], res["curator"], res["datatrove"], res["floor"]
        c, d = summarize(cur), summarize(dt) if dt else None
        mb = info["text_mb"]
        src = ", ".join(f"{n} {v['docs']:,} docs / {v['mb']:.1f} MB"
                        for n, v in info["by_source"].items())  # fmt: skip
        rep = (
            f"{info['repeats']:,} docs ({info['repeat_mb']:.1f} MB) are repeats: exact "
            "duplicates of earlier documents under new ids, removed by both sides' dedup "
            "(curator: exact then MinHash; datatrove: MinHash)"
            if info["repeats"]
            else "no repeats (all distinct documents)"
        )
        fl_cpu = median([f["cpu_s"] for f in fl]) / mb
        fl_wall = median([f["wall_s"] for f in fl]) / mb
        lines += [
            f"### {mb:.1f} MB of text, {info['docs']:,} documents in {info['files']} jsonl.gz "
            "files",
            "",
            f"Sources: {src}; {rep}. Runs: {len(cur)} curator, {len(dt) if dt else 0} datatrove.",
            "",
            "| | wall s | CPU-s | CPU-s per MB | peak summed PSS MB | peak process PSS MB "
            "| kept docs | tokens |",
            "|---|---|---|---|---|---|---|---|",
            f"| curator ({_executors(cur)}) | {c['wall_s']:.1f} | {c['cpu_s']:.1f} | "
            f"{c['cpu_s'] / mb:.2f} | "
            f"{c['peak_pss_mb']:,.0f} | {c['peak_proc_pss_mb']:,.0f} | {c['kept']:,.0f} | "
            f"{c['tokens']:,.0f} |",
        ]
        on_ray = res.get("curator_ray") or []
        if on_ray:
            cr = summarize(on_ray)
            lines += [
                f"| curator on Ray ({_executors(on_ray)}) | {cr['wall_s']:.1f} | "
                f"{cr['cpu_s']:.1f} | {cr['cpu_s'] / mb:.2f} | {cr['peak_pss_mb']:,.0f} | "
                f"{cr['peak_proc_pss_mb']:,.0f} | {cr['kept']:,.0f} | {cr['tokens']:,.0f} |",
                f"| *curator on Ray / curator* | *{cr['wall_s'] / c['wall_s']:.2f}x* | "
                f"*{cr['cpu_s'] / c['cpu_s']:.2f}x* | | "
                f"*{cr['peak_pss_mb'] / c['peak_pss_mb']:.2f}x* | "
                f"*{cr['peak_proc_pss_mb'] / c['peak_proc_pss_mb']:.2f}x* | | |",
            ]
        if d:
            ratios = [b["cpu_s"] / a["cpu_s"] for a, b in zip(cur, dt, strict=False)]
            import numpy as np

            p = sign_flip_p(np.log(ratios)) if len(ratios) >= 2 else float("nan")
            lines += [
                f"| datatrove | {d['wall_s']:.1f} | {d['cpu_s']:.1f} | {d['cpu_s'] / mb:.2f} | "
                f"{d['peak_pss_mb']:,.0f} | {d['peak_proc_pss_mb']:,.0f} | {d['kept']:,.0f} | "
                f"{d['tokens']:,.0f} |",
                f"| **ratio** | **{d['wall_s'] / c['wall_s']:.2f}x** | "
                f"**{d['cpu_s'] / c['cpu_s']:.2f}x** | | "
                f"{d['peak_pss_mb'] / c['peak_pss_mb']:.2f}x | "
                f"{d['peak_proc_pss_mb'] / c['peak_proc_pss_mb']:.2f}x | | |",
            ]
        lines += [
            f"| floor (read + gunzip + parse + hash, 1 process) | {fl_wall * mb:.2f} | "
            f"{fl_cpu * mb:.2f} | {fl_cpu:.3f} | | | | |",
            "",
        ]
        if d and len(ratios) > 1:
            lines += [
                f"CPU ratio per pair: {', '.join(f'{r:.2f}x' for r in ratios)} (sign-flip p of "
                f"the log ratios {_fmt(p, '.2f')}; with {len(ratios)} pairs the smallest "
                f"possible is {2 / 2 ** len(ratios):.2f}).",
                "",
            ]
        # phases
        cp = {k: median([r["phases"].get(k, 0.0) for r in cur]) for k in cur[0]["phases"]}
        lines += [
            "| curator phase (RUN/stats.json) | wall s |",
            "|---|---|",
            *[f"| {k} | {v:.1f} |" for k, v in cp.items()],
            f"| rest (start-up, workers or Ray cluster up/down, catalog + report) | "
            f"{c['wall_s'] - sum(cp.values()):.1f} |",
            "",
        ]
        if d:
            dp = {k: median([r["phases"].get(k, 0.0) for r in dt]) for k in dt[0]["phases"]}
            lines += [
                "| datatrove stage | wall s |",
                "|---|---|",
                *[f"| {k} | {v:.1f} |" for k, v in dp.items()],
                f"| rest (interpreter, imports) | {d['wall_s'] - sum(dp.values()):.1f} |",
                "",
            ]
        c0 = cur[0]
        dd = dt[0] if dt else None
        cdd = c0["dedup"]
        c_drops = {k.split("/", 1)[1]: v for k, v in c0["outcomes"].items() if "/" in k}
        lines += [
            f"Work done (first run): curator read {c0['records']:,} records, "
            f"{cdd.get('n_docs', 0):,} passed the rules, dedup removed "
            f"{cdd.get('n_exact_duplicates', 0):,} exact + {cdd.get('n_near_duplicates', 0):,} "
            f"near duplicates, kept {c0['kept']:,}; "
            + (
                f"datatrove read {dd['records']:,}, {dd['after_rules']:,} passed the rules, "
                f"MinHash removed {dd['near_dups_removed']:,}, kept {dd['kept']:,}."
                if dd
                else "datatrove skipped at this size."
            ),
            "",
            "Rule drops: curator "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(c_drops.items(), key=lambda kv: -kv[1]))
            + (
                "; datatrove "
                + ", ".join(f"{k} {v:,}" for k, v in dd.get("rule_drops", {}).items())
                if dd
                else ""
            )
            + ".",
            "",
            "CPU by process (first run, own CPU as last sampled): curator "
            + ", ".join(f"{k} {v:.1f} s" for k, v in c0["cpu_by_name"].items())
            + (
                "; datatrove " + ", ".join(f"{k} {v:.1f} s" for k, v in dd["cpu_by_name"].items())
                if dd
                else ""
            )
            + ". Counted from samples because their parent ignores SIGCHLD (no rusage): "
            + (", ".join(f"{v:.1f} s under {k}" for k, v in c0["auto_reaped_by"].items())
               or "none")
            + f". The monitor's own CPU, not counted: {c['monitor_cpu_s']:.1f} s per curator run"
            + (f", {d['monitor_cpu_s']:.1f} s per datatrove run." if d else "."),
            "",
        ]
    # across sizes
    lines += ["### Across sizes", ""]
    if len(results) < 2:
        lines.append("- one size only: no fit")
    for side in ("curator", "datatrove"):
        pts = [(r["corpus"]["text_mb"], summarize(r[side])["cpu_s"]) for r in results if r[side]]
        mem = [(r["corpus"]["text_mb"], summarize(r[side])["peak_pss_mb"])
               for r in results if r[side]]  # fmt: skip
        f = fit(pts)
        if f:
            lines.append(
                f"- {side}: CPU-s ~ {f[0]:.1f} s fixed + {f[1]:.2f} s per MB (two-point fit "
                f"through {min(pts)[0]:.0f} and {max(pts)[0]:.0f} MB)"
            )
        mem = sorted(mem)
        for (x0, y0), (x1, y1) in zip(mem, mem[1:], strict=False):
            lines.append(
                f"- {side}: peak summed PSS grows {(y1 - y0) / (x1 - x0):.1f} MB per input MB "
                f"from {x0:.0f} to {x1:.0f} MB ({y0:,.0f} -> {y1:,.0f} MB)"
            )
    fl = [(r["corpus"]["text_mb"], median([f["cpu_s"] for f in r["floor"]]))
          for r in results]  # fmt: skip
    ff = fit(fl)
    if ff:
        lines.append(f"- floor: {ff[0]:.2f} s fixed + {ff[1]:.3f} s per MB")
    lines += [
        "",
        "Parity notes: both sides run the same four rule families with datatrove's thresholds, "
        "but the implementations differ in places (rules section: curator counts duplicate "
        "n-gram characters over every repeated n-gram where datatrove walks greedily, so curator "
        "drops more repetitive chunks of books, kernel docs and the dictionary); the kept-docs "
        "column and the rule drops above say how much the surviving sets differ. curator's "
        "language filter is off because datatrove's needs a fasttext model that cannot be "
        "downloaded offline; curator's C4 `max_removed_char_fraction` drop (a curator-only rule "
        "that drops hard-wrapped text instead of keeping its fragments) is off, else curator "
        "would pass far fewer documents on to dedup and tokenization. Curator does work "
        "datatrove's pipeline does not: Unicode normalization, exact dedup before MinHash, the "
        "curriculum score, the excluded-documents sample, manifest + catalog + report, and "
        "starting/stopping a Ray cluster. The tokenizers differ in kind (sentencepiece BPE with "
        "byte fallback vs byte-level BPE, both vocab "
        f"{vocab_size:,}); curator samples its 20 M training chars by doc-id hash over all rule "
        "survivors, datatrove's side takes the first 20 M chars reading its 16 filtered files "
        "in turn (at sizes over 20 M surviving chars it reads less than curator does). Both "
        "trainers and datatrove's encoder use every core of the machine, curator's encoder one "
        "thread per worker. datatrove's DocumentTokenizer runs with shuffle_documents=False "
        "(curator writes unshuffled shards); its MinHash uses 32-bit hashes like curator's.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[3, 25, 100], help="MB of text")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--skip-datatrove-above", type=float, default=100,
        help="run datatrove only at sizes below this many MB (it is skipped at >= MB)",
    )  # fmt: skip
    ap.add_argument("--corpora", type=Path, default=CORPORA, help="books + CC/Dolma jsonl.gz")
    ap.add_argument("--debian", type=Path, default=DEBIAN,
                    help="unpacked linux-doc-6.1, debian-handbook, dict-gcide")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, help="corpora and runs (default: a temp dir)")
    ap.add_argument("--curator-set", action="append", default=[],
                    help="extra curator --set KEY=VALUE (after the benchmark's own)")  # fmt: skip
    ap.add_argument("--ray-arm", action="store_true",
                    help="also run curator with ray.executor=ray in the same rotation")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/whole_pipeline.md"))
    ap.add_argument("--json", help="also write every run's measurements here")
    # the datatrove side's own entry point
    ap.add_argument("--datatrove-run", nargs=2, metavar=("INPUT", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--vocab-size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    from curator.config import TokenizerConfig

    vocab_size = args.vocab_size or TokenizerConfig().vocab_size
    if args.datatrove_run:
        res = datatrove_pipeline(Path(args.datatrove_run[0]), Path(args.datatrove_run[1]),
                                 vocab_size=vocab_size)  # fmt: skip
        print(RESULT_TAG + json.dumps(res), flush=True)
        return

    command = ".venv/bin/python -m benchmarks.whole_pipeline " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    import importlib.util

    missing = [m for m in ("orjson", "spacy", "tokenizers") if not importlib.util.find_spec(m)]
    if any(s < args.skip_datatrove_above for s in args.sizes) and missing:
        # datatrove's JsonlReader/JsonlWriter need orjson, its English word tokenizer spaCy
        sys.exit(f"the datatrove side needs {missing}: .venv/bin/pip install {' '.join(missing)}")
    sources = Sources.from_dirs(args.corpora, args.debian)
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="whole-pipeline-"))
        )
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for size in args.sizes:
            corpus = work / f"corpus-{size:g}mb"
            shutil.rmtree(corpus, ignore_errors=True)
            info = build_corpus(size, corpus, sources, seed=args.seed)
            print(f"corpus {size:g} MB: {json.dumps(info)}", flush=True)
            res = {"corpus": info, "curator": [], "datatrove": [], "curator_ray": [],
                   "floor": []}
            with_dt = size < args.skip_datatrove_above
            for r in range(args.repeats):
                res["floor"].append(floor(corpus))
                sides = ["curator", "datatrove"] if with_dt else ["curator"]
                sides += ["curator_ray"] if args.ray_arm else []
                # each side first once in every len(sides) repeats
                for side in sides[r % len(sides):] + sides[: r % len(sides)]:
                    tag = f"{size:g}mb-r{r}"
                    if side == "curator":
                        m = run_curator(corpus, work, tag, args.curator_set)
                    elif side == "curator_ray":
                        m = run_curator(corpus, work, tag + "-ray",
                                        [*args.curator_set, "ray.executor=ray"])
                    else:
                        m = run_datatrove(corpus, work, tag, vocab_size)
                    res[side].append(m)
                    print(
                        f"{size:g} MB repeat {r} {side}: wall {m['wall_s']:.1f} s, CPU "
                        f"{m['cpu_s']:.1f} s (polled {m['cpu_polled_s']:.1f}), peak PSS "
                        f"{m['peak_pss_mb']:,.0f} MB (process {m['peak_proc_pss_mb']:,.0f} MB "
                        f"{m['peak_proc_name']}), kept {m['kept']:,}, {m['procs_seen']} procs",
                        flush=True,
                    )
            results.append(res)
            shutil.rmtree(corpus, ignore_errors=True)
    text = markdown(results, command.strip(), vocab_size)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(ROOT))
    # Run the module's own copy (not __main__'s), so the datatrove side's pipeline objects
    # pickle by reference to benchmarks.whole_pipeline in its forkserver workers.
    from benchmarks import whole_pipeline

    whole_pipeline.main()
