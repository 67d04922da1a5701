"""The fault matrix: hostile inputs and killed processes, every record accounted.

    .venv/bin/python -m benchmarks.faults --work /tmp/faults

Builds a corpus of >= 10,000 real records (public-domain book chunks and Common Crawl documents
from ../shared/corpora as jsonl / .jsonl.gz / .jsonl.zst shards with per-file ids 0..n, and the
real WARCs) plus hostile files (colliding ids, a deeply nested JSON line, a WARC with a corrupt
member, decompression bombs in .jsonl.gz / .jsonl.zst / .warc.gz, malformed lines). Then runs
`curator curate` as a user would (CLI, embedded Ray) uninterrupted, and again under each fault:
the driver's process group SIGKILLed in pass 1, in dedup and in pass 2 then re-run, a Ray worker
SIGKILLed mid-file, a second job started on the same folder, the inputs changed before a resume.

Records in are counted here, independently of curator's readers: non-blank lines by a byte
scan of the decompressed stream, WARC response records with FastWARC (curator reads WARC with
warcio), and the hostile files by construction. Peak memory is the largest resident set of any
one process of the job's tree (driver, raylet, workers), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psutil
import zstandard

from policies.pool import chunk_paragraphs
from tests.connectors.bombs import (
    jsonl_gz_long_line,
    jsonl_zst_zeros,
    warc_gz_big_body,
    warc_response,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
BOMB_BYTES = 2 << 30  # decompressed size of each bomb: 2 GiB in a ~2 MB (gz) or ~64 KB (zst) file
WORKER_MEMORY = 2 << 30  # ray.worker_memory_bytes for every run: the bound the matrix checks
RECORDS_PER_FILE = 400


# --- the corpus --------------------------------------------------------------------------------


def real_texts() -> list[tuple[str, str]]:
    """(origin, text): book chunks of ~2 KB and whole Common Crawl / Dolma documents."""
    out: list[tuple[str, str]] = []
    for name in ("books.jsonl.gz", "cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz",
                 "dolma-documents-000.jsonl.gz"):
        with gzip.open(SHARED / name, "rt", encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"]
                chunks = chunk_paragraphs(text, 2000) if len(text) > 8000 else [text]
                out.extend((name, c) for c in chunks)
    return out


def write_lines(path: Path, lines: list[bytes]) -> None:
    data = b"".join(lines)
    if path.suffix == ".gz":
        data = gzip.compress(data, 6)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor(level=3).compress(data)
    path.write_bytes(data)


def build_real(root: Path) -> list[Path]:
    """Per-file ids 0..n (the id collisions every such dataset has), three compressions."""
    texts = real_texts()
    files = []
    suffixes = (".jsonl", ".jsonl.gz", ".jsonl.zst")
    for k, start in enumerate(range(0, len(texts), RECORDS_PER_FILE)):
        part = texts[start : start + RECORDS_PER_FILE]
        path = root / "real" / f"part-{k:03d}{suffixes[k % 3]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_lines(path, [json.dumps({"id": i, "text": t}).encode() + b"\n"
                           for i, (_, t) in enumerate(part)])
        files.append(path)
    for warc in sorted(SHARED.glob("*.warc.gz")):
        target = root / "warc" / warc.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(warc, target)
        files.append(target)
    return files


def gzip_member(data: bytes) -> bytes:
    return gzip.compress(data, 6)


@dataclass
class Hostile:
    path: Path
    records: int  # records in, by construction
    good: int  # records that are well-formed documents (must not be lost)
    kind: str


def build_hostile(root: Path, paras: list[str]) -> list[Hostile]:
    h = root / "hostile"
    h.mkdir(parents=True, exist_ok=True)
    out: list[Hostile] = []
    good = [json.dumps({"id": f"g{i}", "text": paras[i]}).encode() + b"\n" for i in range(8)]

    # The same document under the same id in 8 files, and a unique one sharing that id.
    for i in range(8):
        p = h / f"collide-{i}.jsonl"
        lines = [json.dumps({"id": "same", "text": paras[100]}).encode() + b"\n"]
        if i == 0:
            lines.append(json.dumps({"id": "same", "text": paras[101]}).encode() + b"\n")
        write_lines(p, lines)
        out.append(Hostile(p, len(lines), len(lines), "colliding ids (8 files)"))

    nested = b'{"id": "deep", "text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"
    p = h / "nested.jsonl"
    write_lines(p, good[:4] + [nested] + good[4:])
    out.append(Hostile(p, 9, 8, "deeply nested JSON line"))

    # Malformed lines of several kinds between good ones.
    bad = [b"{not json}\n", b'{"text": "\xff\xfe bad utf8"}\n', b'{"text": 42}\n', b"[1, 2]\n",
           b'{"id": "no text"}\n']
    p = h / "malformed.jsonl.gz"
    write_lines(p, [x for pair in zip(good[:5], bad, strict=True) for x in pair])
    out.append(Hostile(p, 10, 5, "malformed lines"))

    # A WARC whose 4th member (of 10) is damaged mid-stream.
    pages = [f"<html><body><p>{paras[200 + i]}</p></body></html>".encode() for i in range(10)]
    members = [gzip_member(b"".join(warc_response(f"https://example.org/{i}", len(page),
                                                  iter([page]), f"page{i}")))
               for i, page in enumerate(pages)]
    broken = bytearray(members[3])
    mid = len(broken) // 2
    broken[mid : mid + 40] = os.urandom(40)
    members[3] = bytes(broken)
    p = h / "corrupt-member.warc.gz"
    p.write_bytes(b"".join(members))
    out.append(Hostile(p, 10, 9, "WARC with a corrupt member"))

    # Bombs: one huge line / body between good records (tests/connectors/bombs.py).
    for build, name, records, good, kind in (
        (jsonl_gz_long_line, "bomb.jsonl.gz", 5, 4, "gzip bomb (2 GiB line)"),
        (jsonl_zst_zeros, "bomb.jsonl.zst", 3, 2, "zstd bomb (2 GiB line)"),
        (warc_gz_big_body, "bomb.warc.gz", 4, 3, "WARC bomb (2 GiB body)"),
    ):
        out.append(Hostile(build(h / name, BOMB_BYTES), records, good, kind))
    return out


# --- independent counts --------------------------------------------------------------------


def count_lines(path: Path) -> int:
    """Non-blank lines of the decompressed stream, scanned in 1 MiB chunks (no JSON parser)."""
    opener = {".gz": lambda: gzip.open(path, "rb"),
              ".zst": lambda: zstandard.ZstdDecompressor().stream_reader(
                  open(path, "rb"), read_across_frames=True)}
    n, content = 0, False
    with opener.get(path.suffix, lambda: open(path, "rb"))() as f:
        while chunk := f.read(1 << 20):
            pieces = chunk.split(b"\n")
            for piece in pieces[:-1]:
                content = content or bool(piece.strip())
                n += content
                content = False
            content = content or bool(pieces[-1].strip())
    return n + content


def count_warc_responses(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with open(path, "rb") as f:
        return sum(1 for _ in ArchiveIterator(f, record_types=WarcRecordType.response))


def records_in(path: Path) -> int:
    return count_warc_responses(path) if ".warc" in path.name else count_lines(path)


# --- running curator -------------------------------------------------------------------------


@dataclass
class Job:
    proc: subprocess.Popen
    peak_rss: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        root = psutil.Process(self.proc.pid)
        while not self.stop.wait(0.05):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    self.peak_rss = max(self.peak_rss, p.memory_info().rss)
                except psutil.Error:
                    pass


def start(corpus: Path, out: Path, extra: tuple[str, ...] = ()) -> Job:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    curator = str(Path(sys.executable).parent / "curator")  # the console script a user runs
    cmd = [curator, "curate", "--input", str(corpus), "--output", str(out), "--quiet",
           "--set", f"ray.worker_memory_bytes={WORKER_MEMORY}", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = Job(proc)
    threading.Thread(target=job.sample, daemon=True).start()
    return job


def finish(job: Job, timeout: float = 1800) -> tuple[int, str, int]:
    _, err = job.proc.communicate(timeout=timeout)
    job.stop.set()
    return job.proc.returncode, err, job.peak_rss


def kill_when(job: Job, ready, timeout: float = 900) -> int:
    deadline = time.time() + timeout
    while not ready():
        if job.proc.poll() is not None:
            raise RuntimeError(f"job ended before the kill point: {job.proc.stderr.read()}")
        if time.time() > deadline:
            raise RuntimeError("kill point never reached")
        time.sleep(0.05)
    os.killpg(job.proc.pid, signal.SIGKILL)
    job.proc.wait()
    job.stop.set()
    time.sleep(1)
    return job.peak_rss


def kill_a_worker_mid_file(out: Path, timeout: float = 900) -> int:
    """SIGKILL the first process seen holding a pass-1 file open; returns its pid."""
    target = str(out / "_work" / "pass1")
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                for fd in (proc / "fd").iterdir():
                    if os.readlink(fd).startswith(target):
                        os.kill(int(proc.name), signal.SIGKILL)
                        return int(proc.name)
            except OSError:
                continue
        time.sleep(0.02)
    raise RuntimeError("never caught a worker mid-file")


# --- comparing runs ----------------------------------------------------------------------------


def run_digest(out: Path) -> str:
    """Manifest (sorted by doc_id), shards and tokenizer, as one hash."""
    h = hashlib.sha256()
    m = pl.read_parquet(out / "manifest" / "*.parquet").sort("doc_id")
    h.update(m.write_ipc(None).getvalue())
    s = pl.read_parquet(out / "shards" / "*" / "*.parquet").sort("doc_id")
    h.update(s.write_ipc(None).getvalue())
    h.update((out / "tokenizer.model").read_bytes())
    return h.hexdigest()


def accounting(out: Path, expected: dict[str, int]) -> dict[str, int]:
    m = pl.read_parquet(out / "manifest" / "*.parquet",
                        columns=["source", "record", "decision", "text_hash"])
    rows = dict(m.group_by("source").len().iter_rows())
    in_total = sum(expected.values())
    accounted = sum(min(rows.get(s, 0), n) for s, n in expected.items())
    keys_dup = m.height - m.select(["source", "record"]).n_unique()
    kept = m.filter(pl.col("decision") == "kept")
    texts_dup = kept.height - kept["text_hash"].n_unique()
    return {"in": in_total, "accounted": accounted, "lost": in_total - accounted,
            "duplicated": keys_dup + texts_dup, "rows": m.height}


def said(stderr: str, width: int = 140) -> str:
    """The CLI's error line, unwrapped (rich wraps it to the terminal), cut to `width`."""
    text = " ".join(stderr.split())
    return text[text.find("error:"):][:width] if "error:" in text else text[-width:]


@dataclass
class Row:
    case: str
    records_in: int
    accounted: int | str
    lost: int | str
    duplicated: int | str
    identical: str
    peak: int
    note: str = ""

    def md(self) -> str:
        return (f"| {self.case} | {self.records_in:,} | {self.accounted} | {self.lost} | "
                f"{self.duplicated} | {self.identical} | {self.peak / 2**20:,.0f} MiB | "
                f"{self.note} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/curator-faults"))
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "faults.md")
    args = ap.parse_args()
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    t0 = time.time()
    real = build_real(corpus)
    paras = [t for _, t in real_texts()[:400]]
    hostile = build_hostile(corpus, paras)
    expected = {str(p): records_in(p) for p in real}
    expected.update({str(h.path): h.records for h in hostile})
    for h in hostile:  # the constructed count agrees with an independent scan where one exists
        if h.path.name.endswith(".jsonl") and "nested" not in h.path.name:
            assert count_lines(h.path) == h.records, h.path
    print(f"corpus: {len(real)} real files, {len(hostile)} hostile files, "
          f"{sum(expected.values()):,} records in ({time.time() - t0:.0f} s)", flush=True)

    rows: list[Row] = []
    ref = work / "reference"
    t = time.time()
    rc, err, peak = finish(start(corpus, ref))
    assert rc == 0, err
    ref_s = time.time() - t
    digest = run_digest(ref)
    acc = accounting(ref, expected)
    rows.append(Row("uninterrupted run (reference)", acc["in"], acc["accounted"], acc["lost"],
                    acc["duplicated"], "-", peak, f"{ref_s:.0f} s"))
    m = pl.read_parquet(ref / "manifest" / "*.parquet",
                        columns=["source", "decision", "reason"])
    for kind in dict.fromkeys(h.kind for h in hostile):
        paths = [str(h.path) for h in hostile if h.kind == kind]
        sub = m.filter(pl.col("source").is_in(paths))
        n_in = sum(h.records for h in hostile if h.kind == kind)
        n_good = sum(h.good for h in hostile if h.kind == kind)
        reasons = sub.filter(pl.col("decision") == "quarantined")["reason"].value_counts()
        quarantined = ", ".join(f"{r} {n}" for r, n in reasons.sort("reason").iter_rows())
        not_quarantined = sub.filter(pl.col("decision") != "quarantined").height
        rows.append(Row(f"  in it: {kind}", n_in, sub.height, n_in - min(n_in, sub.height),
                        sub.height - min(n_in, sub.height), "-", peak,
                        f"{not_quarantined} of {n_good} good records read; "
                        f"quarantined: {quarantined or 'none'}"))
    print("\n".join(r.md() for r in rows), flush=True)

    def finished(case: str, job: Job, note: str = "", peak_before: int = 0) -> None:
        """A row for a job that must end like the uninterrupted run."""
        rc, err, peak = finish(job)
        assert rc == 0, err
        out = Path(job.proc.args[job.proc.args.index("--output") + 1])
        acc = accounting(out, expected)
        same = "yes" if run_digest(out) == digest else "NO"
        rows.append(Row(case, acc["in"], acc["accounted"], acc["lost"], acc["duplicated"], same,
                        max(peak, peak_before), note))
        print(rows[-1].md(), flush=True)

    def resumed(case: str, ready) -> None:
        out = work / case.split()[0]
        job = start(corpus, out)
        peak = kill_when(job, lambda: ready(out))
        finished(case.split(" ", 1)[1], start(corpus, out), peak_before=peak)

    def marked(phase: str, n: int = 1):
        return lambda out: len(list((out / "_done" / phase).glob("*.json"))) >= n

    n_units = len(expected)
    resumed("kill_pass1 driver SIGKILL in pass 1, re-run", marked("pass1", 3))
    resumed("kill_dedup driver SIGKILL as dedup starts, re-run", marked("pass1", n_units))
    resumed("kill_pass2 driver SIGKILL in pass 2, re-run", marked("pass2", 3))

    job = start(corpus, work / "worker")
    killed = kill_a_worker_mid_file(work / "worker")
    finished("a Ray worker SIGKILLed mid-file", job, f"pid {killed}; the run went on")

    out = work / "second"
    first = start(corpus, out)
    while not (out / "_lock").exists():
        time.sleep(0.05)
    time.sleep(2)
    rc2, err2, _ = finish(start(corpus, out), timeout=300)
    finished("a second job on the same folder", first, f"second exits {rc2}: `{said(err2)}`")

    out = work / "changed"
    job = start(corpus, out)
    kill_when(job, lambda: marked("pass1", 3)(out))
    extra = corpus / "real" / "part-000.jsonl"
    saved = extra.read_bytes()
    extra.write_bytes(saved + json.dumps({"id": "new", "text": paras[0]}).encode() + b"\n")
    rc, err, peak = finish(start(corpus, out), timeout=300)
    extra.write_bytes(saved)
    rows.append(Row("inputs changed, then resumed", sum(expected.values()), "-", "-", "-",
                    "refused", peak,
                    f"exits {rc} before any work: `{said(err)}`"))
    print(rows[-1].md(), flush=True)

    header = (
        "## Fault matrix: hostile input and killed processes\n\n"
        "`.venv/bin/python -m benchmarks.faults` (benchmarks/faults.py). "
        f"{sum(expected.values()):,} records in "
        f"({len(real)} real files: book chunks and Common Crawl documents as jsonl / .jsonl.gz /"
        " .jsonl.zst with per-file ids 0..n, and 3 real WARCs; plus "
        f"{len(hostile)} hostile files). Records in are counted by the benchmark, not by "
        "curator's readers (a byte scan for non-blank lines, FastWARC for WARC responses, "
        "construction for hostile files). Accounted: manifest rows per source, up to its "
        "records in. Duplicated: repeated (source, record) rows plus kept documents with the "
        "same text. Identical: manifest, shards and tokenizer.model hash equal to the "
        "uninterrupted run's. Peak: the largest resident set of any one process of the job "
        f"(bound: ray.worker_memory_bytes={WORKER_MEMORY >> 20} MiB for workers). Every run is "
        "`curator curate` on its own embedded Ray, 2 shared cores.\n\n"
        "| case | records in | accounted | lost | duplicated | identical | peak RSS | note |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    text = header + "\n".join(r.md() for r in rows) + "\n"
    args.results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
