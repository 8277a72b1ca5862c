"""Benchmark of fused_conv1d: our op on each of its paths (direct kernels; CPU GEMM path;
vendor convolution + fused epilogue) against eager PyTorch (F.conv1d + activation) and
torch.compile of that reference, forward and forward+backward.

    python benchmarks/bench_conv1d.py                  # CPU, 1 and 2 threads, relu
    python benchmarks/bench_conv1d.py --device cuda

"native" is the path the dispatch rule (csrc/conv1d.cpp, choose_path) picks for the shape,
so its time is that path's time. Writes JSON, a Markdown table and a PNG chart to
benchmarks/results/<device>/conv1d.*.
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
from lightdl.bench.conv1d import IMPLS, ISSUE_SHAPES, SHAPES, make_case, native_path
from lightdl.ops import fused_conv1d_reference

ROOT = Path(__file__).resolve().parent


def _close(out, ref) -> bool:
    """The output elementwise; the gradients normwise (relative 1e-2): at this size a few
    pre-activations lie within float32 rounding of relu's kink, and a float32 implementation
    (eager included, measured against float64) may take either side there, which flips act'
    for that element. An indexing bug shows as an O(1) relative error either way."""
    if not isinstance(out, tuple):
        scale = max(ref.abs().max().item(), 1.0) if ref.numel() else 1.0
        return torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * scale)
    for o, r in zip(out, ref, strict=True):
        if (o - r).norm() > 1e-2 * r.norm() + 1e-6:
            return False
    return True


def run(args: argparse.Namespace) -> dict:
    rows = []
    threads_list = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    total = len(threads_list) * len(args.shapes) * len(args.modes)
    step, t0 = 0, time.time()
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name in args.shapes:
            shape = SHAPES[name]
            for mode in args.modes:
                step += 1
                sys.stderr.write(f"\r\033[K[{step}/{total}] threads={threads} {name} {mode} "
                                 f"({time.time() - t0:.0f} s)")
                torch._dynamo.reset()  # a fresh compile per case (shapes, thread count)
                compiled = torch.compile(fused_conv1d_reference, dynamic=False)
                ref = make_case(shape, "eager", mode, args.act, args.device)()
                fns, ok = {}, {}
                chosen = native_path(shape, args.device, args.act)
                impls = list(args.impls)
                if chosen not in impls:
                    # A split path (direct forward, vendor backward) is timed as itself, in
                    # the same interleaved rounds.
                    impls.append("native")
                for impl in impls:
                    fn = make_case(shape, impl, mode, args.act, args.device, compiled=compiled)
                    ok[impl] = _close(fn(), ref)
                    if ok[impl]:
                        fns[impl] = fn
                    else:
                        print(f"\nWRONG RESULT: {impl} on {name} {mode}; not timed")
                ms = Timer(args.device, warmup=2, repeats=args.repeats).run(fns)
                if chosen in ms:
                    ms["native"] = ms[chosen]
                    ok["native"] = ok[chosen]
                flops = shape.flops(mode)
                for impl, t in ms.items():
                    rows.append({
                        "threads": threads, "shape": name, "dims": shape.label(), "mode": mode,
                        "impl": impl, "path": chosen if impl == "native" else None,
                        "correct": ok[impl], "median_ms": t,
                        "gflop_per_s": flops / (t * 1e-3) / 1e9,
                        "speedup_vs_eager": ms["eager"] / t if "eager" in ms else None,
                    })
    sys.stderr.write("\r\033[K")
    return {
        "op": "fused_conv1d", "device": args.device, "dtype": "torch.float32", "act": args.act,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lightdl": lightdl.__version__, "backend_info": lightdl.ops.build_info(),
        "machine": machine_description(args.device), "repeats": args.repeats,
        "flop_model": "fwd: 2*N*C_out*C_in*K*L_out; fwdbwd: 3x that", "rows": rows,
    }


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# fused_conv1d benchmark ({result['device']}, {result['dtype']}, act={result['act']})",
        "",
        f"{m.get('gpu', m['cpu'])}, {m['cores']} cores, torch {m['torch']}, allocator: "
        f"{m['allocator']}, {result['date']}, median of {result['repeats']} interleaved rounds. "
        f"CPU kernels: {result['backend_info'].get('cpu_isa', 'n/a')}. GFLOP/s counts "
        f"{result['flop_model']}. native = the path the dispatch rule picks (direct: our "
        "kernels; gemm: our im2col + MKL GEMM + our epilogue, CPU; vendor: oneDNN/cuDNN "
        "convolution + our fused epilogue; direct/vendor: our direct forward, the vendor "
        "backward).",
        "",
        "| threads | shape | N x C_in x L -> C_out | mode | path | native ms | direct ms | gemm ms "
        "| vendor ms | eager ms | compile ms | native GFLOP/s | eager GFLOP/s | native / eager "
        "| native / compile |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by: dict[tuple, dict[str, dict]] = {}
    for r in result["rows"]:
        by.setdefault((r["threads"], r["shape"], r["mode"]), {})[r["impl"]] = r

    def f(v, spec=".2f"):
        return format(v, spec) if v is not None else "—"

    def ratio(t, impl):  # impl's time over native's, "—" where either was not timed
        return f(t[impl] / t["native"]) + "x" if "native" in t and impl in t else "—"

    for (threads, shape, mode), im in by.items():
        t = {k: v["median_ms"] for k, v in im.items()}
        n = im.get("native", {})
        lines.append(
            f"| {threads} | {shape} | {n.get('dims', '')} | {mode} | {n.get('path', '—')} | "
            f"{f(t.get('native'), '.3f')} | {f(t.get('direct'), '.3f')} | "
            f"{f(t.get('gemm'), '.3f')} | {f(t.get('vendor'), '.3f')} | {f(t.get('eager'), '.3f')} | "
            f"{f(t.get('compile'), '.3f')} | {f(n.get('gflop_per_s'), '.1f')} | "
            f"{f(im.get('eager', {}).get('gflop_per_s'), '.1f')} | "
            f"{ratio(t, 'eager')} | {ratio(t, 'compile')} |")
    lines += ["", "Speed-up of native over eager on the issue's five shapes "
              f"({', '.join(ISSUE_SHAPES)}):", "",
              "| threads | mode | geometric mean | min | max |", "|---|---|---|---|---|"]
    for threads in sorted({k[0] for k in by}):
        for mode in ("fwd", "fwdbwd"):
            v = [by[(threads, s, mode)]["native"]["speedup_vs_eager"] for s in ISSUE_SHAPES
                 if (threads, s, mode) in by and "native" in by[(threads, s, mode)]]
            if v:
                lines.append(f"| {threads} | {mode} | {geomean(v):.2f}x | {min(v):.2f}x | "
                             f"{max(v):.2f}x |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads_all = sorted({r["threads"] for r in result["rows"]})
    fig, axes = plt.subplots(len(threads_all), 2, figsize=(13, 4.2 * len(threads_all)),
                             squeeze=False)
    for row, threads in enumerate(threads_all):
        for ax, mode in zip(axes[row], ("fwd", "fwdbwd"), strict=True):
            sel = [r for r in result["rows"] if r["threads"] == threads and r["mode"] == mode]
            shapes = list(dict.fromkeys(r["shape"] for r in sel))
            impls = [i for i in ("native", "direct", "gemm", "vendor", "compile")
                     if any(r["impl"] == i for r in sel)]
            for i, impl in enumerate(impls):
                vals = [next((r["speedup_vs_eager"] for r in sel
                              if r["shape"] == s and r["impl"] == impl), 0) or 0 for s in shapes]
                ax.bar([j + 0.16 * i for j in range(len(shapes))], vals, width=0.16, label=impl)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xticks([j + 0.32 for j in range(len(shapes))])
            ax.set_xticklabels(shapes, rotation=30, fontsize=8)
            ax.set_title(f"fused_conv1d {mode}, {threads} thread(s)")
            ax.set_ylabel("speed-up over eager")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--modes", nargs="+", default=["fwd", "fwdbwd"], choices=["fwd", "fwdbwd"])
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    p.add_argument("--act", default="relu", choices=lightdl.ops.ACTIVATIONS)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if "eager" not in args.impls:
        args.impls = ["eager", *args.impls]
    if args.device != "cpu":  # the GEMM path is CPU-only (forced elsewhere it is the vendor's)
        args.impls = [i for i in args.impls if i != "gemm"]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device visible")
    with full_float32():  # CUDA: eager's cuDNN calls in float32 like ours, not TF32
        result = run(args)
    out = args.out or ROOT / "results" / args.device
    out.mkdir(parents=True, exist_ok=True)
    (out / "conv1d.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (out / "conv1d.md").write_text(md)
    plot(result, out / "conv1d.png")
    print(md)
    print(f"wrote {out / 'conv1d.json'}, {out / 'conv1d.md'}, {out / 'conv1d.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
