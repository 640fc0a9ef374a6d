"""Reading interactions at scale: a file of tens of millions of rows -> `SplitData` (leave-one-out), seqrec next
to the obvious pandas baseline, each measurement in a fresh subprocess (seconds and peak resident memory).

    nice -n 10 python benchmarks/io.py --rows 20000000 --dir /tmp/seqrec-io          # the full size
    python benchmarks/io.py --rows 2000000                                             # a quick check

The synthetic file is a time-ordered log: `--users` users (3 or more interactions each, log-normal activity),
`--items` items with Zipf-like popularity and integer timestamps in seconds, written once as CSV and Parquet
(kept in `--dir` and reused). Measured from each file:

- `pyarrow read`: the file -> numpy columns (pyarrow only);
- `seqrec (<ref>)`: the same read, then `Interactions.from_raw` + `leave_one_out` with the sources of git ref
  `--before` (the code before a change, measured side by side), and with the working tree;
- `seqrec load`: `seqrec.datasets.load(DataConfig(path=...))`, the whole user-file path, when it exists;
- `pandas`: `read_csv` / `read_parquet` + `factorize` + sort + a groupby last-item split.

Arrow allocates from the system allocator in every subprocess (pandas included). The pyarrow read converts one
column at a time and returns the Arrow buffers to the operating system after each (`release_unused`); without
that, the heap keeps the freed CSV blocks and the peak grows by about the size of the columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("user_id", "item_id", "timestamp")
START, SPAN = 1_577_836_800, 2 * 365 * 86_400  # two years of seconds from 2020-01-01
CHUNK = 5_000_000  # rows generated per step


# ---------------------------------------------------------------- the synthetic file


def write_files(folder: Path, rows: int, users: int, items: int, seed: int = 0) -> dict[str, Path]:
    """`interactions.csv` and `interactions.parquet` in `folder` (written only when missing)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    stem = f"interactions-{rows}-{users}-{items}"
    paths = {"parquet": folder / f"{stem}.parquet", "csv": folder / f"{stem}.csv"}
    if all(p.is_file() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    table = pa.table(dict(zip(COLUMNS, synthetic_columns(rows, users, items, seed), strict=True)))
    pq.write_table(table, paths["parquet"])
    pacsv.write_csv(table, paths["csv"])
    print(f"wrote {rows:,} rows to {folder} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return paths


def synthetic_columns(rows: int, users: int, items: int, seed: int) -> tuple[np.ndarray, ...]:
    """User, item and timestamp columns of a time-ordered log.  # 3 x [rows] int64"""
    if rows < 3 * users:
        raise SystemExit(f"--rows must be at least 3 x --users ({3 * users:,})")
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, users)
    lengths = 3 + rng.multinomial(rows - 3 * users, activity / activity.sum())  # [U], sums to rows
    user_ids = rng.permutation(users).astype(np.int64) + 1  # external ids 1..U, unrelated to activity
    user_col = np.repeat(user_ids, lengths)
    rng.shuffle(user_col)  # rows in time order interleave users
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9  # Zipf-like
    cdf = np.cumsum(popularity / popularity.sum())
    item_ids = rng.permutation(items).astype(np.int64) + 1
    item_col = np.empty(rows, dtype=np.int64)
    for lo in range(0, rows, CHUNK):
        hi = min(lo + CHUNK, rows)
        item_col[lo:hi] = item_ids[np.minimum(np.searchsorted(cdf, rng.random(hi - lo)), items - 1)]
    times = np.sort(rng.integers(START, START + SPAN, rows))
    return user_col, item_col, times


# ---------------------------------------------------------------- measurements (run in a child process)


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """The file's columns as numpy arrays, dropping each Arrow column once converted.  # name -> [n]"""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:  # declared column types: no type inference, and about half the reader's memory
        types = pacsv.ConvertOptions(column_types={name: pa.int64() for name in COLUMNS})
        table = pacsv.read_csv(path, convert_options=types)
    columns = {}
    for name in COLUMNS:
        columns[name] = table.column(name).to_numpy()
        table = table.drop_columns([name])
        pa.default_memory_pool().release_unused()  # hand the column's buffers back (the heap keeps them otherwise)
    return columns


def measure(kind: str, path: Path) -> dict:
    """One measurement; returns seconds (total and per phase, imports excluded), sizes and the peak memory."""
    import pandas  # noqa: F401  (imported up front by every kind, so each pays the same memory for imports)
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from seqrec.data.catalog import ItemCatalog
    from seqrec.data.interactions import Interactions
    from seqrec.data.splits import leave_one_out

    out: dict = {"base_mb": resident_mb()}
    start = time.perf_counter()
    if kind == "read":
        columns = read_columns(path)
        out["rows"] = len(columns["user_id"])
    elif kind == "seqrec":
        columns = read_columns(path)
        out["read_s"] = time.perf_counter() - start
        split_start = time.perf_counter()
        inter = Interactions.from_raw(columns.pop("user_id"), columns.pop("item_id"), columns.pop("timestamp"))
        data = leave_one_out(inter, ItemCatalog.empty(inter.num_items), name="io")
        out["split_s"] = time.perf_counter() - split_start
        out.update(users=data.num_users, items=data.num_items, train_rows=len(data.train.items))
    elif kind == "load":
        from seqrec.data.config import DataConfig
        from seqrec.datasets import load

        out["base_mb"] = resident_mb()
        start = time.perf_counter()
        data = load(DataConfig(path=str(path)))
        out.update(users=data.num_users, items=data.num_items, train_rows=len(data.train.items))
    elif kind == "pandas":
        out.update(pandas_split(path))
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    out["seconds"] = time.perf_counter() - start
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return out


def resident_mb() -> float:
    """Current resident memory of this process (the imports' share, taken before the measured work)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def pandas_split(path: Path) -> dict:
    """The obvious pandas pipeline: read, factorize ids, sort by user and time, last item test, second-last valid."""
    import pandas as pd

    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    frame["user"], users = pd.factorize(frame["user_id"], sort=True)
    frame["item"], items = pd.factorize(frame["item_id"], sort=True)
    frame["item"] += 1
    frame = frame.sort_values(["user", "timestamp"], kind="stable")
    from_end = frame.groupby("user").cumcount(ascending=False)
    test, valid, train = frame[from_end == 0], frame[from_end == 1], frame[from_end >= 2]
    assert len(test) == len(valid) == len(users)
    return {"users": len(users), "items": len(items), "train_rows": len(train)}


# ---------------------------------------------------------------- the parent


def run_child(kind: str, path: Path, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "ARROW_DEFAULT_MEMORY_POOL": "system"}
    cmd = [sys.executable, __file__, "--measure", kind, "--file", str(path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        return {"error": lines[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def sources_at(ref: str, folder: Path) -> Path:
    """The `src` tree of git ref `ref`, extracted into `folder`."""
    archive = folder / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def has_path_loader(src: Path) -> bool:
    return "path:" in (src / "seqrec" / "data" / "config.py").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--users", type=int, help="default: rows / 20")
    parser.add_argument("--items", type=int, help="default: rows / 100")
    parser.add_argument("--dir", type=Path, help="where the files are kept (default: a temporary folder)")
    parser.add_argument("--before", default="HEAD", help="git ref measured side by side ('' to skip)")
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file)))
        return
    users, items = args.users or args.rows // 20, args.items or args.rows // 100
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        paths = write_files(folder, args.rows, users, items)
        for path in paths.values():  # the page cache holds both files for every measurement, the first included
            with path.open("rb") as f:
                while f.read(1 << 24):
                    pass
        src_now = ROOT / "src"
        plans = [("pyarrow read", "read", src_now)]
        if args.before:
            plans.append((f"seqrec ({args.before})", "seqrec", sources_at(args.before, Path(tmp))))
        plans.append(("seqrec (working tree)", "seqrec", src_now))
        if has_path_loader(src_now):
            plans.append(("seqrec load(DataConfig(path))", "load", src_now))
        plans.append(("pandas baseline", "pandas", src_now))
        results = []
        for fmt in args.formats:
            for label, kind, src in plans:
                result = {"format": fmt, "path": label, **run_child(kind, paths[fmt], src)}
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    print_table(results, args.rows, users, items)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_table(results: list[dict], rows: int, users: int, items: int) -> None:
    int_mb = 3 * 8 * rows / 2**20  # user, item, timestamp as int64
    load = os.getloadavg()
    print(f"\n{rows:,} interactions, {users:,} users, {items:,} items; int columns {int_mb:,.0f} MiB; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average at the end "
          f"{load[0]:.2f} / {load[1]:.2f}\n")
    print("| file | path | seconds | of which split | peak MiB | work MiB | work / int columns | vs pandas |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['format']} | {r['path']} | failed: {r['error']} | | | | | |")
            continue
        pandas = next((p for p in results if p["format"] == r["format"] and p["path"] == "pandas baseline"
                       and "seconds" in p), None)
        speedup = f"{pandas['seconds'] / r['seconds']:.1f}×" if pandas and r["path"] != "pyarrow read" else ""
        split = f"{r['split_s']:.1f}" if "split_s" in r else ""
        work = r["peak_mb"] - r["base_mb"]
        print(f"| {r['format']} | {r['path']} | {r['seconds']:.1f} | {split} | {r['peak_mb']:,.0f} | {work:,.0f} | "
              f"{work / int_mb:.2f} | {speedup} |")
    print("\nwork MiB = peak resident memory minus the resident memory after imports (interpreter, numpy, pyarrow, "
          "pandas, torch); every path produced the same number of training rows: "
          f"{sorted({r.get('train_rows') for r in results if 'train_rows' in r})}")


if __name__ == "__main__":
    main()
