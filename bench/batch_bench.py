#!/usr/bin/env python3
"""Sessions per second of `analyze batch` with 1 and 2 Dask workers.

    python bench/batch_bench.py [--sessions 24] [--workers 1,2] [--threads] [--workdir DIR]

Builds the crafted farm the batch tests use (copies of the Huawei and iOS sample sessions,
half each, no broken one), then for each worker count starts a LocalCluster (worker
processes unless --threads) and measures on it:

  cold  the first batch on the fresh cluster: every worker imports the analyzer and compiles
        its numba kernels on its first session (cluster start-up itself is reported apart)
  warm  the same sessions again with --force on the same cluster (every session re-analysed,
        nothing skipped): the steady rate
        (per task: mean wall and CPU seconds of the task's thread; wall >> CPU means the
        workers wait for a core, e.g. when other work shares the machine)
  skip  a plain re-run: every session unchanged, read back from its folder
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer import batch  # noqa: E402
from tests.batch import farm  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=24)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--threads", action="store_true", help="thread workers (processes=False)")
    p.add_argument("--workdir", help="default: a temporary folder, removed afterwards")
    args = p.parse_args()
    from dask.distributed import Client, LocalCluster

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="batch-bench-"))
    manifest = farm.build(work, per_sample=args.sessions // 2, broken=False)
    n = 2 * (args.sessions // 2)
    print(f"{n} sessions (copies of captures/huawei and captures/ios), "
          f"workers as {'threads' if args.threads else 'processes'}")
    rows = []
    try:
        for w in (int(x) for x in args.workers.split(",")):
            out = work / f"out-{w}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            cluster = LocalCluster(n_workers=w, threads_per_worker=1, processes=not args.threads,
                                   dashboard_address=None)
            client = Client(cluster)
            start = time.perf_counter() - t
            try:
                figures = {"start": start}
                for label, force in (("cold", False), ("warm", True), ("skip", False)):
                    t = time.perf_counter()
                    s = batch.run_batch(manifest, out, client=client, force=force, progress=False)
                    figures[label] = time.perf_counter() - t
                    if label == "warm":
                        done = [e for e in s["sessions"] if not e["skipped"]]
                        figures["task"] = sum(e["seconds"] for e in done) / len(done)
                        figures["task_cpu"] = sum(e["cpu_seconds"] for e in done) / len(done)
                    assert s["counts"]["failed"] == 0, s["failed"]
                    if label == "skip":
                        assert s["counts"]["skipped"] == n, s["counts"]
            finally:
                client.close()
                cluster.close()
            rows.append((w, figures))
            print(f"workers={w}: cluster start {figures['start']:.1f} s | "
                  f"cold {n / figures['cold']:.2f} sessions/s ({figures['cold']:.1f} s) | "
                  f"warm {n / figures['warm']:.2f} sessions/s ({figures['warm']:.1f} s; per task "
                  f"{figures['task']:.2f} s wall, {figures['task_cpu']:.2f} s CPU) | "
                  f"all unchanged {n / figures['skip']:.1f} sessions/s ({figures['skip']:.1f} s)",
                  flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if len(rows) > 1:
        base = rows[0][1]["warm"]
        for w, f in rows[1:]:
            print(f"speed-up warm, {w} vs {rows[0][0]} workers: {base / f['warm']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
