"""Benchmark of bias_act: lightdl's native kernel against the PyTorch eager reference
(`act(x + bias)`) and torch.compile of that reference, forward and forward+backward.

    python benchmarks/bench_activations.py                   # CPU, 1 and 2 threads
    python benchmarks/bench_activations.py --device cuda     # on a GPU

Writes JSON, a Markdown table and a PNG chart to benchmarks/results/<device>/. Effective GB/s
counts the minimum traffic of the op (forward: read x, write y; forward+backward: that plus
read grad, read x, write grad_x), the same for every implementation, next to the copy
bandwidth measured at the same size in the same interleaved rounds, so under the same cache
conditions (torch.empty_like(x).copy_(x): allocation included, as it is in the ops).
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
from lightdl.bench import Timer, machine_description
from lightdl.ops import bias_act, bias_act_reference

ROOT = Path(__file__).resolve().parent
SHAPES = {  # name -> shape; rows = linear-like (N, C), planes = conv-like (N, C, L)
    "64x1024": (64, 1024),
    "1M rows": (256, 4096),
    "1M planes": (16, 64, 1024),
    "16M rows": (4096, 4096),
    "16M planes": (64, 256, 1024),
}
ACTS = ["relu", "gelu", "sigmoid", "tanh", "leaky_relu"]


def _progress(msg: str) -> None:
    sys.stderr.write(f"\r\033[K{msg}")
    sys.stderr.flush()


def _make(shape, device, dtype, mode, impl, act, compiled):
    x = torch.randn(shape, device=device, dtype=dtype)
    b = torch.randn(shape[1], device=device, dtype=dtype)
    fn = {"native": bias_act, "eager": bias_act_reference, "compile": compiled}[impl]
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return fn(x, b, act)
        return run
    xg, bg = x.clone().requires_grad_(), b.clone().requires_grad_()
    g = torch.randn(shape, device=device, dtype=dtype)

    def run():
        xg.grad = bg.grad = None
        fn(xg, bg, act).backward(g)
        return xg.grad, bg.grad
    return run


def _check(impl_out, ref_out, impl: str) -> bool:
    outs = impl_out if isinstance(impl_out, tuple) else (impl_out,)
    refs = ref_out if isinstance(ref_out, tuple) else (ref_out,)
    ok = True
    for o, r in zip(outs, refs, strict=True):
        scale = r.abs().max().item() if r.numel() else 1.0
        if not torch.allclose(o, r, rtol=1e-4, atol=1e-4 * max(scale, 1.0)):
            ok = False
    if not ok:
        print(f"\nWRONG RESULT: {impl} differs from the reference; reported as wrong, not timed")
    return ok


def run(args: argparse.Namespace) -> dict:
    device, dtype = args.device, torch.float32
    rows = []
    copy_bw: dict[str, dict[str, float]] = {}
    threads_list = args.threads if device == "cpu" else [torch.get_num_threads()]
    total = len(threads_list) * len(args.shapes) * len(args.acts) * len(args.modes)
    step = 0
    t_start = time.time()
    for threads in threads_list:
        torch.set_num_threads(threads)
        for shape_name in args.shapes:
            shape = SHAPES[shape_name]
            numel = math.prod(shape)
            elt = torch.tensor([], dtype=dtype).element_size()
            timer = Timer(device, warmup=2, repeats=args.repeats, min_seconds=args.min_seconds)
            case_bw = []
            for act in args.acts:
                for mode in args.modes:
                    step += 1
                    _progress(f"[{step}/{total}] threads={threads} {shape_name} {act} {mode} "
                              f"({time.time() - t_start:.0f} s)")
                    fns, ok = {}, {}
                    # A fresh compile per case: one compiled function reused across shapes and
                    # acts would hit dynamo's recompile limit and silently fall back to eager;
                    # inductor also bakes the thread count into its kernels.
                    torch._dynamo.reset()
                    compiled = torch.compile(bias_act_reference, dynamic=False)
                    torch.manual_seed(0)  # every implementation gets the same inputs
                    ref_out = _make(shape, device, dtype, mode, "eager", act, compiled)()
                    for impl in args.impls:
                        torch.manual_seed(0)
                        fn = _make(shape, device, dtype, mode, impl, act, compiled)
                        ok[impl] = _check(fn(), ref_out, impl)
                        if ok[impl]:
                            fns[impl] = fn
                    del ref_out
                    src = torch.randn(shape, device=device, dtype=dtype)
                    fns["copy"] = lambda src=src: torch.empty_like(src).copy_(src)
                    ms = timer.run(fns)
                    bw = 2 * numel * elt / (ms["copy"] * 1e-3) / 1e9
                    case_bw.append(bw)
                    bytes_moved = (2 if mode == "fwd" else 5) * numel * elt
                    for impl in args.impls:
                        t = ms.get(impl)
                        gbs = bytes_moved / (t * 1e-3) / 1e9 if t else None
                        rows.append({
                            "threads": threads, "shape": shape_name, "dims": list(shape),
                            "act": act, "mode": mode, "impl": impl, "correct": ok[impl],
                            "median_ms": t,
                            "speedup_vs_eager": (ms["eager"] / t) if t and "eager" in ms else None,
                            "gb_per_s": gbs,
                            "copy_gb_per_s": bw,
                            "pct_of_copy_bw": 100 * gbs / bw if gbs else None,
                        })
            copy_bw.setdefault(str(threads), {})[shape_name] = sorted(case_bw)[len(case_bw) // 2]
    _progress("")
    return {
        "op": "bias_act",
        "device": device,
        "dtype": str(dtype),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lightdl": lightdl.__version__,
        "backend_info": lightdl.ops.build_info(),
        "machine": machine_description(device),
        "repeats": args.repeats,
        "copy_bandwidth_gb_per_s": copy_bw,
        "traffic_model": "fwd: 2N elements; fwdbwd: 5N elements (minimum for the op)",
        "rows": rows,
    }


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# bias_act benchmark ({result['device']}, {result['dtype']})",
        "",
        f"{m.get('gpu', m['cpu'])}, {m['cores']} cores, torch {m['torch']}, "
        f"allocator: {m['allocator']}, {result['date']}, median of {result['repeats']} "
        "interleaved rounds.",
        f"CPU kernels: {result['backend_info'].get('cpu_isa', 'n/a')}. "
        "Effective GB/s uses the op's minimum traffic "
        f"({result['traffic_model']}); copy = torch.empty_like(x).copy_(x) at the same size, "
        "timed in the same interleaved rounds.",
        "",
        "| threads | shape | act | mode | native ms | eager ms | compile ms | native / eager "
        "| native / compile | native GB/s | copy GB/s | % of copy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple, dict[str, dict]] = {}
    for r in result["rows"]:
        by_key.setdefault((r["threads"], r["shape"], r["act"], r["mode"]), {})[r["impl"]] = r

    def f(v, spec=".2f"):
        return format(v, spec) if v is not None else "—"

    for (threads, shape, act, mode), impls in by_key.items():
        n, e, c = impls.get("native", {}), impls.get("eager", {}), impls.get("compile", {})
        nm, em, cm = n.get("median_ms"), e.get("median_ms"), c.get("median_ms")
        bw = n.get("copy_gb_per_s")
        lines.append(
            f"| {threads} | {shape} | {act} | {mode} | {f(nm, '.3f')} | {f(em, '.3f')} | "
            f"{f(cm, '.3f')} | {f(em / nm if nm and em else None)}x | "
            f"{f(cm / nm if nm and cm else None)}x | {f(n.get('gb_per_s'), '.1f')} | "
            f"{f(bw, '.1f')} | {f(n.get('pct_of_copy_bw'), '.0f')} |"
        )
    lines += ["", "Geometric means of native's speed-up (fwdbwd = forward+backward):", ""]
    lines += ["| threads | sizes | mode | vs eager | vs compile | fwd % of copy (min) |",
              "|---|---|---|---|---|---|"]
    for threads in sorted({r["threads"] for r in result["rows"]}):
        for sizes in ("1M", "16M", "all"):
            for mode in ("fwd", "fwdbwd"):
                sel = [v for (t, s, _a, md), v in by_key.items()
                       if t == threads and md == mode and (sizes == "all" or s.startswith(sizes))]
                if not sel:
                    continue
                ve = [v["eager"]["median_ms"] / v["native"]["median_ms"] for v in sel
                      if v.get("eager", {}).get("median_ms") and v.get("native", {}).get("median_ms")]
                vc = [v["compile"]["median_ms"] / v["native"]["median_ms"] for v in sel
                      if v.get("compile", {}).get("median_ms") and v.get("native", {}).get("median_ms")]
                pct = [v["native"]["pct_of_copy_bw"] for v in sel
                       if mode == "fwd" and v.get("native", {}).get("pct_of_copy_bw")]
                lines.append(f"| {threads} | {sizes} | {mode} | {f(geomean(ve) if ve else None)}x "
                             f"| {f(geomean(vc) if vc else None)}x | "
                             f"{f(min(pct) if pct else None, '.0f')} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = max(r["threads"] for r in result["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, mode in zip(axes, ("fwd", "fwdbwd"), strict=True):
        sel = [r for r in result["rows"] if r["threads"] == threads and r["mode"] == mode]
        labels = sorted({(r["shape"], r["act"]) for r in sel}, key=lambda k: (k[0], k[1]))
        for i, impl in enumerate(("native", "compile")):
            vals = []
            for shape, act in labels:
                r = next((r for r in sel if r["shape"] == shape and r["act"] == act
                          and r["impl"] == impl), None)
                vals.append(r["speedup_vs_eager"] if r and r["speedup_vs_eager"] else 0)
            ax.bar([j + 0.4 * i for j in range(len(labels))], vals, width=0.4, label=impl)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([j + 0.2 for j in range(len(labels))])
        ax.set_xticklabels([f"{s}\n{a}" for s, a in labels], rotation=90, fontsize=7)
        ax.set_title(f"bias_act {mode}, {threads} threads")
        ax.set_ylabel("speed-up over PyTorch eager")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--acts", nargs="+", default=ACTS, choices=lightdl.ops.ACTIVATIONS)
    p.add_argument("--modes", nargs="+", default=["fwd", "fwdbwd"], choices=["fwd", "fwdbwd"])
    p.add_argument("--impls", nargs="+", default=["native", "eager", "compile"],
                   choices=["native", "eager", "compile"])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--min-seconds", type=float, default=0.0,
                   help="keep timing rounds for at least this long per case")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default benchmarks/results/<device>)")
    args = p.parse_args(argv)
    if "eager" not in args.impls:
        args.impls = ["eager", *args.impls]  # speed-ups are relative to eager
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device visible")
    result = run(args)
    out = args.out or ROOT / "results" / args.device
    out.mkdir(parents=True, exist_ok=True)
    (out / "bias_act.json").write_text(json.dumps(result, indent=1))
    md = markdown(result)
    (out / "bias_act.md").write_text(md)
    plot(result, out / "bias_act.png")
    print(md)
    print(f"wrote {out / 'bias_act.json'}, {out / 'bias_act.md'}, {out / 'bias_act.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
