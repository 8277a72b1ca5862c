"""Tables (terminal and Markdown), JSON and PNG charts of benchmark results."""

from __future__ import annotations

import json
from pathlib import Path

from lightdl.bench.limits import describe
from lightdl.bench.ops import geomean


def _fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def table(result: dict, markdown: bool = False) -> str:
    """One line per (op, shape, mode, threads, impl)."""
    head = ["op", "shape", "mode", "thr", "impl", "median ms", "vs eager", "rate", "% limit", "check"]
    lines = []
    for r in result["rows"]:
        rate = f"{r['rate']:.1f} {r['unit']}" if r["rate"] is not None else "-"
        lines.append([r["op"], r["shape"], r["mode"], str(r["threads"]), r["impl"], _fmt(r["ms"]),
                      _fmt(r["speedup_vs_eager"], ".2f") + ("x" if r["speedup_vs_eager"] else ""),
                      rate, _fmt(r["pct_of_limit"], ".0f"), r["status"]])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i < 5 or i == 9 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] +
                     [fmt.format(*line) for line in lines])


def limits_line(result: dict) -> str:
    """The measured limits of a result (per thread count) as one line, for a table's header."""
    parts = [f"{t} thread(s): {describe(v)}" for t, v in result["limits"].items()]
    return f"measured limits ({result['device']}, {result['dtype']}): " + "; ".join(parts)


def summary(result: dict) -> dict[str, dict[str, float]]:
    """Geometric-mean speed-up over eager per (op, mode, threads, impl)."""
    groups: dict[str, list[float]] = {}
    for r in result["rows"]:
        if r["speedup_vs_eager"] and r["impl"] != "eager":
            key = f"{r['op']} {r['mode']} {r['threads']}thr {r['impl']}"
            groups.setdefault(key, []).append(r["speedup_vs_eager"])
    return {k: {"geomean_speedup_vs_eager": round(geomean(v), 3), "cases": len(v)}
            for k, v in groups.items()}


def write_json(result: dict, path: str | Path) -> Path:
    """Writes `result` to `path` (folders made as needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def plot(result: dict, path: str | Path) -> Path:
    """Speed-up over eager per case (log scale), one bar per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["speedup_vs_eager"]]
    cases = list(dict.fromkeys(f"{r['op']} {r['shape']}\n{r['mode']} {r['threads']}t" for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cases) + 2), 4.2))
    width = 0.8 / max(1, len(impls))
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for r in rows:
            if r["impl"] == impl:
                xs.append(cases.index(f"{r['op']} {r['shape']}\n{r['mode']} {r['threads']}t") + j * width)
                ys.append(r["speedup_vs_eager"])
        ax.bar(xs, ys, width, label=impl)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))], cases, fontsize=7, rotation=60,
                  ha="right")
    ax.set_ylabel("speed-up over eager (x)")
    ax.set_title(f"lightdl bench ops ({result['device']}, {result['dtype']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
