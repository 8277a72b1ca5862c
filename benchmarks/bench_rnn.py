"""Benchmark of one LSTM / GRU layer: lightdl's FusedLSTM/FusedGRU against torch.nn.LSTM/GRU,
a Python loop of nn.LSTMCell/GRUCell, and that loop with a torch.compile'd step; forward
(inference) and forward+backward. Cases and builders: lightdl/bench/rnn.py. On a CPU where
the fused layers run lightdl's per-step GEMM (`lightdl info`), "fused-mkl" times them with MKL's
instead (LIGHTDL_RNN_CPU_GEMM=mkl), the gain of that GEMM; on CUDA, "fused-loop" times the
one-launch loop (LIGHTDL_RNN_CUDA_LOOP=persistent).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 python benchmarks/bench_rnn.py
    python benchmarks/bench_rnn.py --threads 2 --append      # add rows to an existing run

Writes benchmarks/results/<device>/rnn.{json,md,png}. Every implementation's output (and, for
fwdbwd, weight gradients) is checked against torch.nn's before it is timed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import lightdl
from lightdl.bench import Timer, full_float32, machine_description
from lightdl.bench.limits import measure_fma_peak
from lightdl.bench.rnn import IMPLS, KINDS, MODES, SHAPES, build, matmul_flop, same_result
from lightdl.ops._backend import build_info

ROOT = Path(__file__).resolve().parent
LABEL = {"fused": "lightdl Fused", "torch": "torch.nn", "loop": "Python cell loop",
         "compiled": "compiled cell loop", "fused-loop": "lightdl Fused, one-launch loop",
         "fused-mkl": "lightdl Fused, MKL's step GEMM"}


def _progress(msg: str) -> None:
    sys.stderr.write(f"\r\033[K{msg}")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> tuple[list[dict], dict[str, float]]:
    """The timed rows, and the CPU's multiply-add peak (GFLOP/s) per thread count."""
    rows, peaks = [], {}
    device = args.device
    threads_list = args.threads if device == "cpu" else [torch.get_num_threads()]
    total = len(threads_list) * len(args.kinds) * len(args.shapes) * len(args.modes)
    step, t_start = 0, time.time()
    for threads in threads_list:
        torch.set_num_threads(threads)
        torch._dynamo.reset()  # inductor bakes the thread count into its kernels
        if device == "cpu":
            _progress(f"measuring the multiply-add peak ({threads} thread(s))")
            peak = measure_fma_peak()
            if peak:
                peaks[str(threads)] = round(peak, 1)
        for kind in args.kinds:
            for shape_name in args.shapes:
                shape = SHAPES[shape_name]
                for mode in args.modes:
                    step += 1
                    _progress(f"[{step}/{total}] threads={threads} {kind} {shape_name} {mode} "
                              f"({time.time() - t_start:.0f} s)")
                    want = build(kind, shape, "torch", mode, device).run()
                    fns, info = {}, {}
                    for impl in args.impls:
                        case = build(kind, shape, impl, mode, device)
                        ok = same_result(case.run(), want)
                        info[impl] = (ok, case.build_seconds)
                        if ok:
                            fns[impl] = case.run
                        else:
                            print(f"\nWRONG RESULT: {impl} {kind} {shape_name} {mode}: not timed")
                    timer = Timer(device, warmup=1, repeats=args.repeats,
                                  min_seconds=args.min_seconds)
                    ms = timer.run(fns)
                    B, T, n_in, H = shape
                    for impl in args.impls:
                        t = ms.get(impl)
                        rows.append({
                            "threads": threads, "kind": kind, "shape": shape_name,
                            "batch": B, "seq_len": T, "input_size": n_in, "hidden_size": H,
                            "mode": mode, "impl": impl, "correct": info[impl][0],
                            "median_ms": t,
                            "us_per_step": t * 1e3 / T if t else None,
                            "build_s": info[impl][1] or None,
                        })
    _progress("")
    return rows, peaks


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _speedups(rows: list[dict]) -> dict[tuple, dict[str, float]]:
    """(threads, kind, shape, mode) -> impl -> median ms."""
    out: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["median_ms"]:
            out.setdefault((r["threads"], r["kind"], r["shape"], r["mode"]), {})[r["impl"]] = (
                r["median_ms"])
    return out


def one_vs_torch(ms: dict) -> str:
    """torch.nn's time over the one-launch loop's, as a speed-up."""
    if not ms.get("fused-loop") or not ms.get("torch"):
        return "—"
    return f"{ms['torch'] / ms['fused-loop']:.2f}x"


def markdown(result: dict) -> str:
    m = result["machine"]
    f = lambda v, spec=".2f": format(v, spec) if v is not None else "—"  # noqa: E731
    lines = [
        f"# LSTM / GRU benchmark ({result['device']}, {result['dtype']})",
        "",
        f"{m.get('gpu', m['cpu'])}, {m['cores']} cores, torch {m['torch']}, allocator: "
        f"{m['allocator']}, {result['date']}, median of {result['repeats']} interleaved "
        f"rounds. CPU kernels: {result['backend_info'].get('cpu_isa', 'n/a')}.",
        "One layer, unidirectional, (batch, seq_len, input_size, hidden_size) as named. "
        "fwd = inference under no_grad; fwdbwd = forward + backward into the weights. "
        "'compiled' = the Python cell loop with its step compiled by torch.compile "
        "(the whole unrolled loop takes minutes to compile at seq_len 500 and is not timed).",
        "",
        "| threads | kind | shape | mode | fused ms | torch.nn ms | cell loop ms | compiled "
        "loop ms | fused µs/step | vs torch.nn | vs cell loop | vs compiled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = _speedups(result["rows"])
    one = any(ms.get("fused-loop") for ms in table.values())
    if one:
        lines[-2] += " one-launch loop ms | one-launch vs torch.nn |"
        lines[-1] += "---|---|"
    mkl = any(ms.get("fused-mkl") for ms in table.values())
    if mkl:  # the fused layer with MKL's step GEMM: what lightdl's GEMM gains
        lines[-2] += " fused with MKL GEMM ms | own GEMM vs MKL's |"
        lines[-1] += "---|---|"
    for (threads, kind, shape, mode), ms in table.items():
        fu = ms.get("fused")
        T = SHAPES[shape][1]

        def ratio(impl, ms=ms, fu=fu):
            return f(ms[impl] / fu) + "x" if fu and ms.get(impl) else "—"

        lines.append(
            f"| {threads} | {kind} | {shape} | {mode} | {f(fu, '.3f')} | "
            f"{f(ms.get('torch'), '.3f')} | {f(ms.get('loop'), '.3f')} | "
            f"{f(ms.get('compiled'), '.3f')} | {f(fu * 1e3 / T if fu else None, '.1f')} | "
            f"{ratio('torch')} | {ratio('loop')} | {ratio('compiled')} |"
            + (f" {f(ms.get('fused-loop'), '.3f')} | {one_vs_torch(ms)} |" if one else "")
            + (f" {f(ms.get('fused-mkl'), '.3f')} | {ratio('fused-mkl')} |" if mkl else ""))
    lines += ["", "Geometric mean over the shapes of the fused layer's speed-up:", "",
              "| threads | kind | mode | vs torch.nn | vs cell loop | vs compiled loop |"
              + (" one-launch loop vs torch.nn |" if one else "")
              + (" own GEMM vs MKL's |" if mkl else ""),
              "|---|---|---|---|---|---|" + ("---|" if one else "") + ("---|" if mkl else "")]
    keys = sorted({(t, k, md) for (t, k, _s, md) in table})
    for threads, kind, mode in keys:
        sel = [ms for (t, k, _s, md), ms in table.items()
               if (t, k, md) == (threads, kind, mode) and ms.get("fused")]

        def gm(impl, sel=sel):
            v = geomean([ms[impl] / ms["fused"] for ms in sel if ms.get(impl)])
            return f(v) + "x" if v else "—"

        one_gm = geomean([ms["torch"] / ms["fused-loop"] for ms in sel
                          if ms.get("torch") and ms.get("fused-loop")])
        lines.append(f"| {threads} | {kind} | {mode} | {gm('torch')} | {gm('loop')} | "
                     f"{gm('compiled')} |" + (f" {f(one_gm)}x |" if one and one_gm else
                                              (" — |" if one else ""))
                     + (f" {gm('fused-mkl')} |" if mkl else ""))
    lines += compute_rate(result, table)
    builds = [r["build_s"] for r in result["rows"] if r["build_s"]]
    if builds:
        lines += ["", f"torch.compile build time of the step (first call): "
                      f"{min(builds):.1f}–{max(builds):.1f} s per case."]
    return "\n".join(lines) + "\n"


def compute_rate(result: dict, table: dict[tuple, dict[str, float]]) -> list[str]:
    """Markdown lines: fused and torch.nn against the CPU's multiply-add peak (none without
    a measured peak: CUDA, or an older result file)."""
    peaks = result.get("fma_GFLOPs") or {}
    keys = [k for k in table if str(k[0]) in peaks and table[k].get("fused")]
    if not keys:
        return []
    lines = ["", "Compute rate: GFLOP/s of the layer's matrix products (`matmul_flop` in "
             "lightdl/bench/rnn.py; the gate math is not counted) and their share of the "
             "multiply-add peak measured on the same threads ("
             + ", ".join(f"{v:.0f} GFLOP/s at {t} thread(s)" for t, v in peaks.items())
             + "). 'bound' is torch.nn's time over the time of the matrix products alone at "
             "the peak: the speed-up over torch.nn that no implementation can pass.", "",
             "| threads | kind | shape | mode | fused GFLOP/s | fused % of peak | torch.nn "
             "GFLOP/s | torch.nn % of peak | fused vs torch.nn | bound |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    means: dict[tuple, list[tuple[float, float]]] = {}
    for threads, kind, shape, mode in keys:
        ms, peak = table[(threads, kind, shape, mode)], peaks[str(threads)]
        flop = matmul_flop(kind, SHAPES[shape], mode)
        rate = {impl: flop / (ms[impl] * 1e-3) / 1e9 for impl in ("fused", "torch")
                if ms.get(impl)}
        if "torch" not in rate:
            continue
        vs, bound = ms["torch"] / ms["fused"], ms["torch"] * 1e-3 / (flop / (peak * 1e9))
        means.setdefault((threads, kind, mode), []).append((vs, bound))
        lines.append(f"| {threads} | {kind} | {shape} | {mode} | {rate['fused']:.0f} | "
                     f"{100 * rate['fused'] / peak:.0f}% | {rate['torch']:.0f} | "
                     f"{100 * rate['torch'] / peak:.0f}% | {vs:.2f}x | {bound:.2f}x |")
    lines += ["", "Geometric mean over the shapes:", "",
              "| threads | kind | mode | fused vs torch.nn | bound |", "|---|---|---|---|---|"]
    for (threads, kind, mode), v in sorted(means.items()):
        lines.append(f"| {threads} | {kind} | {mode} | {geomean([a for a, _ in v]):.2f}x | "
                     f"{geomean([b for _, b in v]):.2f}x |")
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _speedups(result["rows"])
    threads = max(r["threads"] for r in result["rows"])
    kinds = [k for k in KINDS if any(key[1] == k for key in table)]
    modes = [md for md in MODES if any(key[3] == md for key in table)]
    fig, axes = plt.subplots(len(kinds), len(modes), figsize=(6 * len(modes), 4 * len(kinds)),
                             squeeze=False)
    for i, kind in enumerate(kinds):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            shapes = [s for s in SHAPES if (threads, kind, s, mode) in table]
            for n, impl in enumerate(("fused", "loop", "compiled")):
                vals = [table[(threads, kind, s, mode)].get("torch", 0)
                        / table[(threads, kind, s, mode)][impl]
                        if table[(threads, kind, s, mode)].get(impl) else 0 for s in shapes]
                ax.bar([k + 0.27 * n for k in range(len(shapes))], vals, width=0.27,
                       label=LABEL[impl])
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xticks([k + 0.27 for k in range(len(shapes))])
            ax.set_xticklabels(shapes, fontsize=7)
            ax.set_title(f"{kind} {mode}, {threads} threads")
            ax.set_ylabel("speed-up over torch.nn")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--append", action="store_true",
                   help="add these rows to the existing rnn.json (replacing equal cases)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default benchmarks/results/<device>)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device visible")
    if "fused" not in args.impls:
        args.impls = ["fused", *args.impls]
    if args.device == "cpu" and "fused-loop" in args.impls:
        args.impls.remove("fused-loop")  # the one-launch loop is CUDA's; on CPU it is "fused"
    own_gemm = build_info().get("rnn_cpu_gemm") == "lightdl"
    if (args.device == "cuda" or not own_gemm) and "fused-mkl" in args.impls:
        args.impls.remove("fused-mkl")  # there "fused" runs MKL's (or cuBLAS's) GEMM already
    out = args.out or ROOT / "results" / args.device
    out.mkdir(parents=True, exist_ok=True)
    with full_float32():  # CUDA: cuDNN's RNNs in float32 like ours, not TF32
        rows, peaks = run(args)
        machine = machine_description(args.device)
    json_path = out / "rnn.json"
    if args.append and json_path.exists():
        def key(r):
            return (r["threads"], r["kind"], r["shape"], r["mode"], r["impl"])
        new = {key(r) for r in rows}
        before = json.loads(json_path.read_text())
        rows = [r for r in before["rows"] if key(r) not in new] + rows
        peaks = {**before.get("fma_GFLOPs", {}), **peaks}
    result = {
        "op": "rnn",
        "device": args.device,
        "dtype": "torch.float32",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lightdl": lightdl.__version__,
        "backend_info": lightdl.ops.build_info(),
        "machine": machine,
        "repeats": args.repeats,
        "fma_GFLOPs": peaks,
        "rows": rows,
    }
    json_path.write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (out / "rnn.md").write_text(md)
    plot(result, out / "rnn.png")
    print(md)
    print(f"wrote {json_path}, {out / 'rnn.md'}, {out / 'rnn.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
