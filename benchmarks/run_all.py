"""Run every benchmark preset on this machine and write benchmarks/results/<device>/:
one JSON and one PNG per op (`ops_<op>.json/.png`), the training benchmarks
(`train_<config>.json`) and `summary.md` (what the README quotes).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 python benchmarks/run_all.py
    python benchmarks/run_all.py --device cuda --out /some/folder      # on a GPU machine

Allocator: with glibc's defaults every tensor >= 32 MiB is a fresh mmap that page-faults
on each call; the settings above (or LD_PRELOAD of jemalloc) avoid that, and every JSON file
records the allocator in use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lightdl.bench.limits import describe  # noqa: E402
from lightdl.bench.ops import run_ops, specs  # noqa: E402
from lightdl.bench.report import plot, summary, table, write_json  # noqa: E402
from lightdl.bench.train import bench_train, format_train  # noqa: E402

TRAIN_CONFIGS = ("af_cnn", "af_lstm")


def _ops_section(results: dict[str, dict]) -> list[str]:
    lines = ["## Kernels: geometric-mean speed-up over PyTorch eager", "",
             "| op | mode | threads | " + " | ".join(("native", "compile", "vendor")) + " |",
             "|---|---|---|---|---|---|"]
    for op, res in results.items():
        s = summary(res)
        keys = sorted({k.rsplit(" ", 1)[0] for k in s})
        for key in keys:
            _, mode, thr = key.split(" ")
            cells = [f"{s[f'{key} {i}']['geomean_speedup_vs_eager']:.2f}x" if f"{key} {i}" in s else "-"
                     for i in ("native", "compile", "vendor")]
            lines.append(f"| {op} | {mode} | {thr.replace('thr', '')} | " + " | ".join(cells) + " |")
    lines.append("")
    for op, res in results.items():
        lines += [f"### {op}", "", table(res, markdown=True), ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="folder (default benchmarks/results/<device>)")
    p.add_argument("--op", action="append", default=None,
                   help="ops to time (default all; summary.md reuses the others' ops_*.json)")
    p.add_argument("--threads", type=int, action="append", default=None,
                   help="CPU thread counts (default 1 and 2)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--no-train", action="store_true",
                   help="skip the training benchmarks (summary.md reuses the train_*.json there)")
    p.add_argument("--no-ops", action="store_true",
                   help="skip the kernel benchmarks (summary.md reuses the ops_*.json there)")
    p.add_argument("--train-steps", type=int, default=80)
    p.add_argument("--train-repeats", type=int, default=5,
                   help="interleaved runs per variant (the median is reported; this VM's "
                        "run-to-run noise is ~20%%)")
    args = p.parse_args(argv)
    device = args.device
    out = Path(args.out or ROOT / "benchmarks" / "results" / device.split(":")[0])
    out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or ([1, 2] if device == "cpu" else None)
    started = time.perf_counter()
    # summary.md covers every op and training config with results in `out`: what this run
    # does not time (--op, --no-ops, --no-train) comes from the JSON an earlier run left there,
    # and the summary says which parts are which.
    wanted = set(args.op or specs())
    results, reused = {}, []
    for op in specs():
        if args.no_ops or op not in wanted:
            if (out / f"ops_{op}.json").is_file():
                results[op] = json.loads((out / f"ops_{op}.json").read_text())
                reused.append(op)
            continue
        res = run_ops([op], None, device=device, threads=threads, repeats=args.repeats)
        res["summary"] = summary(res)
        write_json(res, out / f"ops_{op}.json")
        plot(res, out / f"ops_{op}.png")
        results[op] = res
        print(f"{op}: done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    trains = {}
    for name in TRAIN_CONFIGS:
        for n_threads in threads or [None]:
            key = f"{name}_{n_threads}thr" if n_threads else name
            if args.no_train:
                if (out / f"train_{key}.json").is_file():
                    trains[key] = json.loads((out / f"train_{key}.json").read_text())
                    reused.append(f"train {key}")
                continue
            res = bench_train(str(ROOT / "configs" / f"{name}.yaml"), steps=args.train_steps,
                              warmup_steps=10, repeats=args.train_repeats, threads=n_threads,
                              overrides=[] if device == "cpu" else ["--trainer.accelerator", "gpu"])
            (out / f"train_{key}.json").write_text(json.dumps(res, indent=1) + "\n")
            trains[key] = res
            print(format_train(res), file=sys.stderr)
    first = next(iter(results.values()), None)
    machine = first["machine"] if first else {}
    lines = [f"# lightdl benchmarks: {device}", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by "
             f"`benchmarks/run_all.py` in {time.perf_counter() - started:.0f} s.",
             f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
             + (f", GPU {machine['gpu']}" if "gpu" in machine else "")
             + f"; torch {torch.__version__}; allocator: {machine.get('allocator', '?')}.",
             "Medians of interleaved rounds; every implementation was checked against eager "
             "before timing (check column).", ""]
    if reused:
        lines += [f"Not re-run this time (from the JSON an earlier run left in this folder, each "
                  f"with its own date): {', '.join(reused)}.", ""]
    if first:
        lines += ["Measured limits: " + "; ".join(
            f"{t} thread(s): {describe(v)}" for t, v in first["limits"].items()), ""]
    if trains:
        lines += ["## Training: fused vs torch.nn layers (`lightdl bench train`)", "",
                  "| config | threads | fused samples/s | unfused samples/s | speed-up | "
                  "fused s/epoch | unfused s/epoch | loss curves |", "|---|---|---|---|---|---|---|---|"]
        for res in trains.values():
            f, u = res["variants"]["fused"], res["variants"]["unfused"]
            lines.append(f"| {Path(res['config']).stem} | {res['threads']} | {f['samples_per_s']:.0f} | "
                         f"{u['samples_per_s']:.0f} | {res['speedup']:.2f}x | {f['s_per_epoch']:.2f} | "
                         f"{u['s_per_epoch']:.2f} | {'agree' if res['loss_agree'] else 'DIFFER'} "
                         f"({res['loss_curve_max_rel_diff']:.0e}) |")
        lines.append("")
    lines += _ops_section(results)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/summary.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
