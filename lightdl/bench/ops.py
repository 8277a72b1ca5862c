"""`lightdl bench ops`: time lightdl's kernels against PyTorch eager, torch.compile and the
vendor library on the user's shapes, after checking every implementation's result."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from lightdl.bench.limits import Limits, measure_limits
from lightdl.bench.spec import OpSpec, Runner
from lightdl.bench.timing import Timer, full_float32, machine_description

TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def specs() -> dict[str, OpSpec]:
    """Every op `lightdl bench ops --op` knows, by name."""
    from lightdl.bench.elementwise import ACT_POOL, ACTIVATION, BIAS_ACT, BN_ACT_POOL, LINEAR

    found = {s.name: s for s in (ACTIVATION, BIAS_ACT, ACT_POOL, BN_ACT_POOL, LINEAR)}
    for module, names in (("lightdl.bench.conv1d_spec", ("CONV1D",)),
                          ("lightdl.bench.rnn_spec", ("LSTM", "GRU"))):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        for n in names:
            s = getattr(mod, n)
            found[s.name] = s
    return found


@dataclass
class Row:
    """One timed implementation of one case (a row of `lightdl bench ops`' table)."""
    op: str
    shape: str
    mode: str
    threads: int
    impl: str
    dtype: str
    status: str  # ok | WRONG | n/a | error: ...
    ms: float | None = None
    speedup_vs_eager: float | None = None
    rate: float | None = None  # GFLOP/s or GB/s
    unit: str = ""
    pct_of_limit: float | None = None


def same(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], dtype: torch.dtype) -> bool:
    """Every tensor within the dtype's tolerance, relative to the tensor's own scale, but for
    at most 0.1% of its elements."""
    rtol = TOLERANCE.get(dtype, 1e-4)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g is None or w is None or g.shape != w.shape:
            return False
        g, w = g.detach().double(), w.detach().double()
        scale = max(1.0, float(w.abs().max())) if w.numel() else 1.0
        bad = ~torch.isclose(g, w, rtol=rtol, atol=rtol * scale)
        # A pre-activation within rounding of a kink (relu at 0) may land on the other side in
        # another summation order and flip its gradient: tolerate a few such elements, never a
        # systematic difference.
        if int(bad.sum()) > max(1, bad.numel() // 1000):
            return False
    return True


def _progress(msg: str, enabled: bool) -> None:
    if enabled:
        sys.stderr.write(f"\r\033[K{msg}")
        sys.stderr.flush()


def run_ops(ops: Sequence[str], shapes: Sequence[str] | None = None, *,
            device: str = "cpu", dtype: torch.dtype = torch.float32,
            modes: Sequence[str] = ("fwd", "fwdbwd"), impls: Sequence[str] | None = None,
            threads: Sequence[int] | None = None, repeats: int = 15, warmup: int = 3,
            options: dict | None = None, progress: bool = True,
            extra_impls: dict[str, Callable[..., Runner]] | None = None) -> dict:
    """Benchmark `ops` on `shapes` (op-specific syntax; None: each op's presets).

    extra_impls: name -> make(shape, mode, device, dtype, options) added to every op (how
    the tests inject a faulty kernel). Returns a JSON-ready dict: machine, limits per thread
    count, settings and one row per (op, shape, mode, threads, impl).
    """
    table = specs()
    unknown = [o for o in ops if o not in table]
    if unknown:
        raise ValueError(f"--op {unknown[0]!r}: expected one of {', '.join(table)} or all")
    options = dict(options or {})
    extra_impls = dict(extra_impls or {})
    if device == "cpu":
        threads = list(threads or [torch.get_num_threads()])
    else:
        threads = [torch.get_num_threads()]
    cases = []
    for op in ops:
        spec = table[op]
        chosen = list(shapes) if shapes else list(spec.presets)
        for text in chosen:
            shape = spec.presets.get(text) or spec.parse(text)
            cases.append((spec, text, shape))
    total = len(cases) * len(modes) * len(threads)
    rows: list[Row] = []
    limits: dict[int, Limits] = {}
    done = 0
    started = time.perf_counter()
    saved_threads = torch.get_num_threads()
    with full_float32():  # CUDA: every implementation in the same float32 arithmetic
        try:
            for n_threads in threads:
                if device == "cpu":
                    torch.set_num_threads(n_threads)
                _progress(f"measuring copy bandwidth, GEMM rate and multiply-add peak "
                          f"({n_threads} thread(s))", progress)
                limits[n_threads] = measure_limits(device, dtype)
                for spec, text, shape in cases:
                    for mode in modes:
                        done += 1
                        _progress(f"[{done}/{total}] {spec.name} {text} {mode} {n_threads} "
                                  f"thread(s)  {time.perf_counter() - started:.0f}s", progress)
                        rows += _one_case(spec, text, shape, mode, n_threads, device, dtype,
                                          impls, repeats, warmup, options, limits[n_threads],
                                          extra_impls)
        finally:
            torch.set_num_threads(saved_threads)
            _progress("", progress)
        machine = machine_description(device)  # records the TF32 settings used
    return {
        "machine": machine,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "limits": {str(t): lim.as_dict() for t, lim in limits.items()},
        "settings": {"repeats": repeats, "warmup": warmup, "modes": list(modes),
                     "options": options, "timing": "median of interleaved rounds"},
        "impls": {s.name: s.describe for s, _, _ in cases},
        "rows": [asdict(r) for r in rows],
    }


def _one_case(spec: OpSpec, text: str, shape: tuple, mode: str, n_threads: int, device: str,
              dtype: torch.dtype, impls: Sequence[str] | None, repeats: int, warmup: int,
              options: dict, limits: Limits, extra: dict) -> list[Row]:
    # Each case compiles its own graph: clear dynamo's caches so that the reference code,
    # compiled for many shapes, never hits the recompile limit and falls back to eager.
    torch._dynamo.reset()
    wanted = list(impls) if impls else list(spec.impls)
    wanted += [name for name in extra if name not in wanted]
    base = dict(op=spec.name, shape=text, mode=mode, threads=n_threads,
                dtype=str(dtype).replace("torch.", ""))
    rows: dict[str, Row] = {}
    runners: dict[str, Runner] = {}
    reference = None
    # The reference first: every other implementation is checked against its result.
    order = [spec.reference] + [i for i in wanted if i != spec.reference]
    for impl in order:
        if impl not in spec.impls and impl not in extra:
            rows[impl] = Row(**base, impl=impl, status="n/a")
            continue
        try:
            make = extra.get(impl) or (lambda *a, _i=impl: spec.make(a[0], _i, *a[1:]))
            run = make(shape, mode, device, dtype, options)
            out = run()
        except NotImplementedError as exc:  # this impl does not cover this case
            rows[impl] = Row(**base, impl=impl, status=f"n/a: {exc}"[:80])
            continue
        except Exception as exc:  # reported in its row: one broken impl must not end the run
            rows[impl] = Row(**base, impl=impl, status=f"error: {type(exc).__name__}: {exc}"[:160])
            continue
        if impl == spec.reference:
            reference = out
        elif reference is None or not same(out, reference, dtype):
            rows[impl] = Row(**base, impl=impl, status="WRONG")
            continue
        runners[impl] = run
        rows[impl] = Row(**base, impl=impl, status="ok")
    if runners:
        ms = Timer(device=device, warmup=warmup, repeats=repeats).run(runners)
        flop, nbytes = spec.work(shape, mode, dtype)
        eager = ms.get("eager")
        for impl, t in ms.items():
            r = rows[impl]
            r.ms = round(t, 4)
            r.speedup_vs_eager = round(eager / t, 3) if eager else None
            if spec.bound == "compute" and flop:
                r.rate, r.unit = round(flop / (t * 1e-3) / 1e9, 2), "GFLOP/s"
                r.pct_of_limit = round(100 * r.rate / limits.compute_gflops, 1)
            elif nbytes:
                r.rate, r.unit = round(nbytes / (t * 1e-3) / 1e9, 2), "GB/s"
                r.pct_of_limit = round(100 * r.rate / limits.copy_bound(nbytes), 1)
    return [rows[i] for i in order if i in wanted or i == spec.reference]


def geomean(values: Sequence[float]) -> float:
    """Geometric mean of the non-zero values (NaN when there are none)."""
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
