"""`lightdl bench`: tiny shapes, one repeat: the table, the JSON schema, the plot, shape
syntax errors, wrong-result detection, and `bench train` fused vs unfused."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest
import torch

from lightdl.bench.limits import Limits, measure_fma_peak
from lightdl.bench.ops import run_ops, specs
from lightdl.bench.report import table
from lightdl.bench.timing import Timer
from lightdl.bench.train import compare_loss_curves
from lightdl.cli import main
from lightdl.ops import _backend

ROOT = Path(__file__).resolve().parent.parent
ROW_KEYS = {"op", "shape", "mode", "threads", "impl", "dtype", "status", "ms", "speedup_vs_eager",
            "rate", "unit", "pct_of_limit"}


def test_ops_cli_table_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["bench", "ops", "--op", "bias_act", "--shape", "4x8x16", "--repeats", "1",
               "--warmup", "0", "--threads", "1", "--impl", "native", "--impl", "eager",
               "--json", str(out), "--plot", str(png), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "measured limits" in text and "bias_act  4x8x16" in text and "GB/s" in text
    result = json.loads(out.read_text())
    assert {"machine", "device", "dtype", "limits", "settings", "rows", "summary"} <= set(result)
    # The multiply-add peak is measured by the compiled extension (CPU, float32).
    peak = {"fma_GFLOPs"} if _backend._C is not None else set()
    assert set(result["limits"]["1"]) == {"copy_GBs", "copy_GBs_by_MiB", "gemm_GFLOPs"} | peak
    assert set(result["limits"]["1"]["copy_GBs_by_MiB"]) == {"0.25", "4", "64"}
    assert ("multiply-add peak" in text) == bool(peak)
    assert {r["impl"] for r in result["rows"]} == {"native", "eager"}
    for r in result["rows"]:
        assert set(r) == ROW_KEYS and r["status"] == "ok" and r["ms"] > 0
    assert png.is_file() and png.stat().st_size > 1000


@pytest.mark.parametrize("op, shape", [("linear", "8x16x4"), ("activation", "3x5"),
                                       ("bn_act_pool", "4x3x10")])
def test_every_impl_of_an_op_is_checked_and_timed(op, shape):
    result = run_ops([op], [shape], repeats=1, warmup=0, threads=[1], progress=False,
                     modes=["fwd"])
    impls = {r["impl"]: r for r in result["rows"]}
    assert set(impls) == set(specs()[op].impls)
    assert all(r["status"] == "ok" and r["ms"] > 0 for r in impls.values())
    assert impls["eager"]["speedup_vs_eager"] == 1.0


def test_a_wrong_kernel_is_reported_wrong_not_fast():
    def faulty(shape, mode, device, dtype, options):
        x = torch.randn(shape)

        def run():
            return (torch.zeros_like(x),)  # fast, and wrong
        return run

    result = run_ops(["activation"], ["16x32"], repeats=1, warmup=0, threads=[1],
                     modes=["fwd"], progress=False, extra_impls={"faulty": faulty})
    rows = {r["impl"]: r for r in result["rows"]}
    assert rows["faulty"]["status"] == "WRONG" and rows["faulty"]["ms"] is None
    assert rows["native"]["status"] == "ok"
    assert "WRONG" in table(result)


@pytest.mark.parametrize("args, message", [
    (["--op", "linear", "--shape", "8x16"], "rows x in_features x out_features"),
    (["--op", "bias_act", "--shape", "8xQ"], "N x C or N x C x L"),
    (["--op", "linear", "--op", "bias_act", "--shape", "8x8x8"], "exactly one --op"),
])
def test_wrong_shape_syntax_is_one_clear_line(args, message, capsys):
    assert main(["bench", "ops", *args, "--repeats", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bench_train_fused_vs_unfused(tmp_path, capsys):
    out = tmp_path / "train.json"
    rc = main(["bench", "train", "--config", str(ROOT / "configs" / "gates_mlp.yaml"),
               "--steps", "12", "--warmup-steps", "2", "--repeats", "1", "--quiet",
               "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"fused", "unfused"} and result["loss_agree"]
    assert result["variants"]["fused"]["samples_per_s"] > 0 and result["steps"] == 12
    assert "fused / unfused" in capsys.readouterr().out


def _drifting_curves(n: int = 300, seed: int = 0) -> tuple[list[float], list[float]]:
    """Two loss curves as two correct trainings give them: equal at first, then drifting
    apart chaotically (per-step noise up to ~5% late on) around the same trend."""
    rng = random.Random(seed)
    base = [0.7 * math.exp(-i / 80) + 0.1 for i in range(n)]
    fused = [b * (1 + min(1e-7 * 1.1 ** i, 0.05) * rng.uniform(-1, 1)) for i, b in enumerate(base)]
    return fused, base


def test_loss_curves_agree_despite_late_chaotic_drift():
    fused, unfused = _drifting_curves()
    got = compare_loss_curves(fused, unfused)
    assert got["loss_agree"], got
    assert got["loss_curve_max_rel_diff"] > 2e-2  # the old whole-curve rule (1e-2) said DIFFER


@pytest.mark.parametrize("fault", ["early", "trend", "nan"])
def test_loss_curves_differ(fault):
    """A wrong kernel shows in the first steps; a training that goes elsewhere shows in the
    block means; a NaN loss never agrees."""
    fused, unfused = _drifting_curves()
    if fault == "early":
        fused[3] *= 1.01
    elif fault == "trend":
        fused[200:] = [x * 1.2 for x in fused[200:]]
    else:
        fused[150] = float("nan")
    assert not compare_loss_curves(fused, unfused)["loss_agree"]


def _aten_calls(run) -> dict[str, int]:
    """How many times `run` calls oneDNN's convolution (forward or backward) and at::mm."""
    from torch.profiler import profile
    with profile() as p:
        run()
    counts = {"conv": 0, "mm": 0}
    for e in p.key_averages():
        if e.key in ("aten::convolution_backward", "aten::convolution"):
            counts["conv"] += e.count
        elif e.key == "aten::mm":
            counts["mm"] += e.count
    return counts


def test_conv1d_bench_times_one_path_forward_and_backward(monkeypatch):
    """bench_conv1d's forced rows ("direct", "gemm", "vendor") run their path in the backward
    too (the backward op reads LIGHTDL_CONV1D_PATH when autograd calls it, after the forward),
    and "native" runs the path the Python mirror of the rule names."""
    from lightdl.bench.conv1d import Conv1dShape, make_case, native_path
    from lightdl.ops import get_backend
    from lightdl.ops.conv1d import gemm_path_wanted
    if get_backend() != "native":
        pytest.skip("the paths exist only in the compiled extension")
    monkeypatch.delenv("LIGHTDL_CONV1D_PATH", raising=False)
    signal = Conv1dShape(2, 1, 50, 4, 7, 1, 3, 1)    # the rule picks direct
    wide = Conv1dShape(2, 16, 100, 72, 5, 1, 2, 1)   # vendor: weights 72 x 80, L_out 100
    short = Conv1dShape(2, 16, 30, 8, 5, 1, 2, 1)    # gemm: L_out = 30 (see below)
    assert native_path(signal) == "direct" and native_path(wide) == "vendor"
    # Not on AMD AVX-512 hosts: there the direct forward and the vendor's backward.
    wanted = gemm_path_wanted()
    assert native_path(short) == ("gemm" if wanted else "direct/vendor")
    assert native_path(short, "cuda") == "direct"
    assert native_path(wide, "cuda") == "vendor"
    assert _aten_calls(make_case(signal, "vendor", "fwdbwd"))["conv"] == 2  # forward, backward
    assert _aten_calls(make_case(wide, "direct", "fwdbwd")) == {"conv": 0, "mm": 0}
    # The GEMM path: one product forward, two backward (grad_input, grad_weight).
    assert _aten_calls(make_case(wide, "gemm", "fwdbwd")) == {"conv": 0, "mm": 3}
    assert _aten_calls(make_case(short, "native", "fwdbwd")) == (
        {"conv": 0, "mm": 3} if wanted else {"conv": 1, "mm": 0})
    assert _aten_calls(make_case(wide, "native", "fwdbwd"))["conv"] == 2
    # K >= 9, C_out <= 32, weights above 5120: the direct forward, the vendor backward (relu:
    # act' from the output; gelu needs the pre-activation, which only the vendor forward keeps).
    long_k = Conv1dShape(2, 24, 200, 24, 9, 2, 4, 1)
    small = Conv1dShape(2, 16, 200, 16, 9, 2, 4, 1)  # weights 2304: direct both ways
    assert native_path(small) == native_path(small, act="gelu") == "direct"
    assert _aten_calls(make_case(small, "native", "fwdbwd")) == {"conv": 0, "mm": 0}
    assert native_path(long_k) == "direct/vendor" and native_path(long_k, act="gelu") == "vendor"
    assert _aten_calls(make_case(long_k, "native", "fwdbwd"))["conv"] == 1
    assert _aten_calls(make_case(long_k, "native", "fwdbwd", act="gelu"))["conv"] == 2
    assert _aten_calls(make_case(long_k, "vendor", "fwdbwd"))["conv"] == 2


def test_timer_rotates_which_implementation_runs_first():
    # A fixed order would time each implementation in the cache state its neighbour leaves.
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    ms = Timer("cpu", warmup=0, repeats=6).run(fns)
    assert set(ms) == set("abc")
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert len(rounds) == 6 and all(sorted(r) == list("abc") for r in rounds)
    assert [r[0] for r in rounds] == list("abcabc")


def test_full_float32_turns_tf32_off_and_restores_it():
    from lightdl.bench import full_float32
    flags = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = [f.allow_tf32 for f in flags]
    try:
        for f in flags:
            f.allow_tf32 = True
        with full_float32():
            assert not any(f.allow_tf32 for f in flags)
        assert all(f.allow_tf32 for f in flags)
    finally:
        for f, v in zip(flags, saved, strict=True):
            f.allow_tf32 = v


@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_rnn_bench_switch_impls_run_under_their_switch_and_restore_it(mode, monkeypatch):
    """bench_rnn's "fused-mkl" runs the fused layer with LIGHTDL_RNN_CPU_GEMM=mkl set during
    the call only, and agrees with torch.nn like "fused" does."""
    import os

    from lightdl.bench import rnn

    monkeypatch.delenv("LIGHTDL_RNN_CPU_GEMM", raising=False)
    seen = []
    real = torch.ops.lightdl.lstm

    class Spy:  # records the switch as the op sees it
        def __call__(self, *a):
            seen.append(os.environ.get("LIGHTDL_RNN_CPU_GEMM"))
            return real(*a)

    monkeypatch.setattr(torch.ops.lightdl, "lstm", Spy())
    shape = (3, 4, 2, 5)
    want = rnn.build("lstm", shape, "torch", mode).run()
    for impl in ("fused", "fused-mkl"):
        assert rnn.same_result(rnn.build("lstm", shape, impl, mode).run(), want)
    assert seen and seen[-1] == "mkl" and None in seen
    assert "LIGHTDL_RNN_CPU_GEMM" not in os.environ


# Vector lanes and accumulators of the multiply-add loop per instruction set (fma_peak.cpp).
_FMA_LOOP = {"avx512": (16, 16), "avx2": (8, 12), "default": (4, 12)}


@pytest.mark.skipif(_backend._C is None, reason="needs the compiled extension")
@pytest.mark.parametrize("threads", [1, 2])
def test_fma_peak_counts_its_work_and_bounds_the_gemm(threads):
    C = _backend._C
    lanes, acc = _FMA_LOOP[C.cpu_isa()]
    iters = random.randint(1, 1000)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        flop, value = C.cpu_fma_peak_run(iters)
        peak = measure_fma_peak(repeats=3)
    finally:
        torch.set_num_threads(before)
    assert flop == 2 * lanes * acc * iters * threads
    assert math.isfinite(value) and value > 0
    if os.environ.get("LIGHTDL_CPU_ISA"):  # capped below the CPU's: MKL may use wider vectors
        return
    # A loop that waited on one chain's latency, or on memory, would run several times below
    # this; torch.mm on 512 x 512 cannot beat the peak by much (noise allowed).
    a = torch.randn(512, 512)
    gemm_ms = Timer(warmup=1, repeats=3).run({"mm": lambda: torch.mm(a, a)})["mm"]
    assert peak > 0.5 * 2 * 512**3 / (gemm_ms * 1e-3) / 1e9


def test_a_memory_bound_op_is_held_against_the_copy_of_its_own_size():
    by_mib = {0.25: random.uniform(100, 200), 4.0: random.uniform(50, 99), 64.0: 40.0}
    lim = Limits(40.0, 110.0, None, by_mib)
    assert lim.copy_bound(2 * 2**20 * 0.25) == by_mib[0.25]  # a 0.25 MiB copy's traffic
    assert lim.copy_bound(1.5 * 2**20) == by_mib[0.25]  # closer to 0.5 MiB than to 8 MiB
    assert lim.copy_bound(5 * 2**20) == by_mib[4.0]
    assert lim.copy_bound(2**30) == by_mib[64.0]
    assert Limits(40.0, 110.0).copy_bound(1024) == 40.0  # an older result: one copy size


def test_the_compute_bound_is_the_higher_of_gemm_rate_and_multiply_add_peak():
    assert Limits(10.0, 110.0, 270.0).compute_gflops == 270.0
    assert Limits(10.0, 110.0, None).compute_gflops == 110.0  # CUDA: the GEMM rate
    assert "fma_GFLOPs" not in Limits(10.0, 110.0).as_dict()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_rnn_matmul_flop_counts_what_the_reference_multiplies(kind, mode):
    """matmul_flop (the compute-rate tables' numerator) against torch's FLOP counter on the
    pure-PyTorch layer, with the input needing no gradient as in the benchmark cases."""
    from torch.utils.flop_counter import FlopCounterMode

    from lightdl.bench.rnn import matmul_flop
    from lightdl.ops.rnn import gru_reference, lstm_reference

    B, T, n_in, H = (random.randint(1, 5) for _ in range(4))
    G = (4 if kind == "lstm" else 3) * H
    w = [torch.randn(G, n_in), torch.randn(G, H), torch.randn(G), torch.randn(G)]
    for p in w:
        p.requires_grad_(mode == "fwdbwd")
    # h0 needs a gradient: the fused ops always return one (dh for all T steps).
    x, h0 = torch.randn(T, B, n_in), torch.zeros(B, H, requires_grad=mode == "fwdbwd")
    with FlopCounterMode(display=False) as counter:
        y = (lstm_reference(x, h0, torch.zeros(B, H), *w) if kind == "lstm"
             else gru_reference(x, h0, *w))[0]
        if mode == "fwdbwd":
            y.backward(torch.randn_like(y))
    assert counter.get_total_flops() == matmul_flop(kind, (B, T, n_in, H), mode)
