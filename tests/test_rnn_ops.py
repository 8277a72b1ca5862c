"""lightdl.ops.lstm / gru / lstm_cell / gru_cell against the pure-PyTorch references and
torch.nn, gradcheck, opcheck, torch.compile and bad inputs."""

from __future__ import annotations

import ctypes
import os
import random

import pytest
import torch
from torch import nn

from lightdl.ops import (
    gru,
    gru_cell,
    gru_reference,
    lstm,
    lstm_cell,
    lstm_reference,
    use_backend,
)
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

GATES = {"lstm": 4, "gru": 3}
HALF = (torch.float16, torch.bfloat16)


def _weights(kind: str, n_in: int, H: int, dtype=torch.float32, device="cpu", bias=True):
    """Parameters as torch.nn initialises them: U(-1/sqrt(H), 1/sqrt(H))."""
    G, k = GATES[kind], 1 / max(H, 1) ** 0.5

    def u(*shape):
        return (torch.rand(shape, dtype=torch.float64) * 2 * k - k).to(dtype=dtype, device=device)

    return [u(G * H, n_in), u(G * H, H), u(G * H) if bias else None, u(G * H) if bias else None]


def _call(kind, fn, x, states, params, lengths):
    """Runs fn (op or reference) and returns its outputs as a tuple."""
    return tuple(fn(x, *states, *params, lengths))


def _random_lengths(T: int, B: int) -> torch.Tensor:
    return torch.randint(0, T + 1, (B,), dtype=torch.int64)


def _run_with_grads(kind, fn, x, states, params, lengths, grads):
    leaves = [t.detach().requires_grad_() for t in (x, *states, *[p for p in params if p is not None])]
    it = iter(leaves[1 + len(states):])
    ps = [None if p is None else next(it) for p in params]
    outs = _call(kind, fn, leaves[0], leaves[1:1 + len(states)], ps, lengths)
    torch.autograd.backward([o for o in outs], [g for g in grads])
    return [o.detach() for o in outs], [t.grad for t in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["plain", "lengths", "nobias"])
def test_layer_matches_reference(variant, kind, dtype, device):
    T, B = random.randint(1, 40), random.choice([1, random.randint(2, 9)])
    n_in, H = random.randint(1, 20), random.randint(1, 40)
    _check_layer(variant, kind, dtype, device, T, B, n_in, H)


def _check_layer(variant, kind, dtype, device, T, B, n_in, H):
    """The op's outputs and gradients against the float64 reference on the same inputs."""
    x = signal((T, B, n_in), dtype, device)
    states = [torch.randn(B, H, dtype=dtype, device=device) for _ in range(GATES[kind] - 2)]
    params = _weights(kind, n_in, H, dtype, device, bias=variant != "nobias")
    lengths = _random_lengths(T, B) if variant == "lengths" else None
    fn = lstm if kind == "lstm" else gru
    ref = lstm_reference if kind == "lstm" else gru_reference
    grads = [torch.randn(T, B, H, dtype=dtype, device=device)]
    grads += [torch.randn(B, H, dtype=dtype, device=device) for _ in states]
    got_out, got_grad = _run_with_grads(kind, fn, x, states, params, lengths, grads)
    # Oracle: the reference in float64 from the same (rounded) inputs.
    d64 = [t.double() for t in (x, *states)]
    p64 = [None if p is None else p.double() for p in params]
    want_out, want_grad = _run_with_grads(kind, ref, d64[0], d64[1:], p64, lengths,
                                          [g.double() for g in grads])
    # float32: saturated gates (a wide input against a tiny hidden size, (4, 7, 200, 3) in
    # STEP_GEMM_SHAPES) make act' = a (1 - a) cancel in any float32 implementation, and the
    # weight gradients sum such terms: over 150 random draws of that shape the float32
    # reference's own error reached 2.5e-5 of the largest term, ours 4.2e-5 (GRU; elsewhere
    # both stay below 2e-6). Hence 1e-4, or a few times the float32 reference's error.
    rel = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2,
           torch.float16: 2e-3}[dtype]
    floor = [0.0] * len(want_out + want_grad)
    if dtype == torch.float32:
        r_out, r_grad = _run_with_grads(kind, ref, x, states, params, lengths, grads)
        floor = [4 * (r.double() - w).abs().max().item() if w.numel() else 0.0
                 for r, w in zip(r_out + r_grad, want_out + want_grad, strict=True)]
    for g, w, f in zip(got_out + got_grad, want_out + want_grad, floor, strict=True):
        assert g.dtype == dtype and g.shape == w.shape
        # Gradients sum over steps and rows: the tolerance scales with the largest term.
        scale = max(1.0, w.abs().max().item() if w.numel() else 0.0)
        torch.testing.assert_close(g.double(), w, rtol=rel, atol=max(rel * scale, f))
    if variant == "lengths":  # past a sequence's end: zeros out
        t = torch.arange(T)[:, None]
        assert (got_out[0].cpu()[t >= lengths[None, :]] == 0).all()


# (T, B, input, hidden) for the one-launch CUDA loop: one row per block and several (B beyond
# the SM count), W_hh past the L1 limit (8 rows per block, a partial last block), hidden sizes
# whose 8- and 4-row kernels run out of registers or shared memory, and the 1024 limit.
LOOP_SHAPES = [(1, 1, 1, 1), (9, 3, 5, 33), (25, 200, 3, 32), (6, 17, 4, 128), (4, 5, 3, 300),
               (3, 3, 2, 1024)]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["plain", "lengths", "nobias"])
@pytest.mark.parametrize("shape", LOOP_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cuda_one_launch_loop_matches_reference(shape, variant, kind, dtype, monkeypatch):
    """LIGHTDL_RNN_CUDA_LOOP=persistent (csrc/cuda/rnn_loop.cu), forward and backward."""
    monkeypatch.setenv("LIGHTDL_RNN_CUDA_LOOP", "persistent")
    _check_layer(variant, kind, dtype, "cuda", *shape)


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cuda_one_launch_loop_runs_and_handles_edges(kind, monkeypatch):
    """The env switch reaches the loop kernels (one launch each way), float64 gradcheck
    through them, and empty batches / sequences pass the state through."""
    from torch.profiler import ProfilerActivity, profile

    monkeypatch.setenv("LIGHTDL_RNN_CUDA_LOOP", "persistent")
    fn = lstm if kind == "lstm" else gru
    n_states = GATES[kind] - 2
    T, B, n_in, H = 6, 3, 2, 5
    x = signal((T, B, n_in), torch.float64, "cuda").requires_grad_()
    states = [torch.randn(B, H, dtype=torch.float64, device="cuda", requires_grad=True)
              for _ in range(n_states)]
    params = [p.requires_grad_() for p in _weights(kind, n_in, H, torch.float64, "cuda")]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(x, *states, *params)[0].sum().backward()
    names = [e.name for e in prof.events()]
    assert sum("fwd_loop" in n for n in names) == 1 and sum("bwd_loop" in n for n in names) == 1
    for lengths in (None, torch.tensor([6, 2, 0])):
        assert torch.autograd.gradcheck(lambda *a, lengths=lengths: fn(*a, lengths=lengths),
                                        (x, *states, *params))
    p = _weights(kind, n_in, H, device="cuda")
    out = fn(torch.randn(4, 0, n_in, device="cuda"), *[torch.zeros(0, H, device="cuda")
                                                       for _ in range(n_states)], *p)
    assert out[0].shape == (4, 0, H)
    s0 = [torch.randn(2, H, device="cuda") for _ in range(n_states)]
    out = fn(torch.randn(0, 2, n_in, device="cuda"), *s0, *p)
    assert out[0].shape == (0, 2, H)
    for got, want in zip(out[1:], s0, strict=True):
        assert torch.equal(got, want)


# (T, B, input, hidden) for lightdl's CPU GEMMs (csrc/cpu/step_gemm_kernels.h) and the fused
# LSTM step built on them (lstm_step_kernels.h): batches of 1-9 and 14 rows (tiles of 3 rows
# on AVX2, 6 on AVX-512, every shorter rest, and the merged last tiles of 7, 8 and 4 rows
# split in two), gate and hidden
# widths that leave a partial 32- or 64-column panel (down to 3 columns of 8-lane vectors),
# products longer than one 192- or 96-row slice of a panel (K = I + H forward, 3 H / 4 H
# backward), an input part longer than a slice (the left operand's two parts split across
# slices), and, for the weight gradients (I + H + 1, I + 1 or H + 1 rows of L^T dG over a
# chunk of steps), a chunk of 540 rows (slices of the packed dG). Last panels of at most half
# the width run in half-width tiles of twice the rows (6 or 12): 26 rows at hidden 32 give
# dh = dG W_hh and the GRU's 64 + 32 columns exactly half a panel, in tiles of 12, 7 and 7.
STEP_GEMM_SHAPES = [(5, 4, 1, 37), (3, 5, 20, 180), (7, 2, 3, 8), (4, 7, 200, 3), (2, 1, 2, 66),
                    (60, 9, 5, 20), (3, 14, 4, 33), (3, 26, 4, 32)]


@pytest.mark.parametrize("gemm", ["lightdl", "lightdl-unfused", "mkl"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("variant", ["plain", "lengths"])
@pytest.mark.parametrize("shape", STEP_GEMM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cpu_step_gemms_match_reference(shape, variant, kind, gemm, monkeypatch):
    """float32 CPU layers with each GEMM path: lightdl's step and weight-gradient GEMMs (AVX2
    hosts and AMD AVX-512 ones) and MKL's (LIGHTDL_RNN_CPU_GEMM=mkl, and every other host),
    forward and backward. The LSTM forward runs its step GEMM fused with the gate math in
    AVX-512 builds (csrc/cpu/lstm_step.h) and apart with LIGHTDL_LSTM_FUSED_STEP=0."""
    if gemm == "lightdl-unfused" and kind == "gru":
        pytest.skip("the fused step is the LSTM's")
    if gemm == "mkl":
        monkeypatch.setenv("LIGHTDL_RNN_CPU_GEMM", "mkl")
    elif _C is None or _C.rnn_cpu_gemm() != "lightdl":
        pytest.skip("lightdl's GEMMs run on AVX2 and AMD AVX-512 hosts only")
    if gemm == "lightdl-unfused":  # the LSTM's step GEMM and pointwise kernel apart
        monkeypatch.setenv("LIGHTDL_LSTM_FUSED_STEP", "0")
        assert _C.lstm_cpu_step() == "gemm+pointwise"
    assert _C is None or _C.rnn_cpu_gemm() == gemm.split("-")[0]
    _check_layer(variant, kind, torch.float32, "cpu", *shape)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_extreme_inputs_match_torch(kind):
    """Inputs of +-1e30 saturate the gates as in torch.nn (the exp and tanh of the CPU
    kernels clamp their arguments: an unclamped exp(-1e29) computed 2^n exp(r) = 0 * inf =
    NaN), and a NaN input makes NaN outputs in its own row only, from its step on."""
    torch.manual_seed(random.randrange(2**31))
    T, B, n_in, H = 6, 5, 3, 32
    x = torch.randn(T, B, n_in)
    x[1, 2, 1], x[1, 3, 1], x[2, 4, 0], x[3, 0, 2] = 1e30, -1e30, 3e29, float("nan")
    params = _weights(kind, n_in, H)
    ref = (nn.LSTM if kind == "lstm" else nn.GRU)(n_in, H)
    with torch.no_grad():
        for name, p in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), params,
                           strict=True):
            getattr(ref, name).copy_(p)
        want, _ = ref(x)
        states = [torch.zeros(B, H) for _ in range(GATES[kind] - 2)]
        got = _call(kind, lstm if kind == "lstm" else gru, x, states, params, None)[0]
    nan = torch.isnan(want)
    assert nan.any(2).tolist() == [[t >= 3 and b == 0 for b in range(B)] for t in range(T)]
    assert torch.equal(torch.isnan(got), nan)
    torch.testing.assert_close(got[~nan], want[~nan], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parallel_row_blocks_match_reference(kind, dtype):
    """From 16 rows on, the CPU time loop runs blocks of the batch in parallel
    (csrc/rnn_layer.h, over_row_blocks): uneven blocks, variable lengths, forward and backward on
    2 threads against the float64 reference. float32 runs the packed MKL GEMM, float64
    at::addmm. Up to 80 steps: the backward's blocks each run several chunks of steps (at
    least 512 rows each: 23-32 steps here) and sum their weight gradients."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        T, B, n_in, H = random.randint(10, 80), random.randint(33, 47), 5, random.randint(8, 40)
        x = signal((T, B, n_in), dtype)
        states = [torch.randn(B, H, dtype=dtype) for _ in range(GATES[kind] - 2)]
        params = _weights(kind, n_in, H, dtype)
        lengths = _random_lengths(T, B)
        grads = [torch.randn(T, B, H, dtype=dtype)] + [torch.randn(B, H, dtype=dtype)
                                                       for _ in states]
        fn, ref = (lstm, lstm_reference) if kind == "lstm" else (gru, gru_reference)
        got_out, got_grad = _run_with_grads(kind, fn, x, states, params, lengths, grads)
        want_out, want_grad = _run_with_grads(
            kind, ref, x.double(), [t.double() for t in states], [p.double() for p in params],
            lengths, [g.double() for g in grads])
    finally:
        torch.set_num_threads(previous)
    rel = 1e-10 if dtype == torch.float64 else 2e-5
    for g, w in zip(got_out + got_grad, want_out + want_grad, strict=True):
        scale = max(1.0, w.abs().max().item())
        torch.testing.assert_close(g.double(), w, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_weight_gradients_of_long_sequences_stay_accurate(kind, device):
    """A weight gradient sums over every step's rows (here 1500 x 63 per row block), in chunks
    of steps. Summed in one float32 run per element, the chunk drifted by ~1e-5 of the sum of
    its terms (step_gemm_kernels.h sums each slice of rows apart now): visible where the two
    blocks' sums cancel, as with output gradients of opposite signs in the two halves of the
    batch. The error is taken relative to |half 1's gradient| + |half 2's| (float64). Hidden
    1 makes chunks of ~16k rows; weight_ih is left out (its inputs, up to ~50, cancel within
    a half, torch.nn's float32 error is as large there). Old build: 5.4e-6 to 8.2e-6 (three
    runs); new: at most 7.8e-7 (eight runs; 5.5e-7 on MKL's path). On CUDA the weight
    gradients are one cuBLAS GEMM over all T B rows, whose summation order is cuBLAS's: not
    yet measured there (no GPU lent since this test was written)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # two row blocks
    try:
        T, B, H = 1500, 126, 1
        x = signal((T, B, 1), torch.float64)
        states = [torch.randn(B, H, dtype=torch.float64) for _ in range(GATES[kind] - 2)]
        params = _weights(kind, 1, H, torch.float64)
        grads = [torch.linspace(-1, 1, B, dtype=torch.float64).view(1, B, 1).expand(T, B, H)]
        grads += [torch.zeros(B, H, dtype=torch.float64) for _ in states]
        fn, ref = (lstm, lstm_reference) if kind == "lstm" else (gru, gru_reference)
        f32 = [t.to(device=device, dtype=torch.float32) for t in (x, *states, *params, *grads)]
        _, got = _run_with_grads(kind, fn, f32[0], f32[1:1 + len(states)],
                                 f32[1 + len(states):1 + len(states) + 4], None,
                                 f32[1 + len(states) + 4:])
        halves = [_run_with_grads(kind, ref, x[:, r], [s[r] for s in states], params, None,
                                  [g[:, r] if g.dim() == 3 else g[r] for g in grads])[1]
                  for r in (slice(0, B // 2), slice(B // 2, B))]
    finally:
        torch.set_num_threads(previous)
    first = 2 + len(states)  # x, states, then w_ih, w_hh, b_ih, b_hh
    for name, g, a, b in zip(("w_hh", "b_ih", "b_hh"), got[first:], halves[0][first:],
                             halves[1][first:], strict=True):
        err = ((g.double().cpu() - (a + b)).abs() / (a.abs() + b.abs())).max().item()
        assert err < 1.5e-6, f"{name}: {err:.3g} of the halves' gradients"


def _mkl_max_threads():
    """MKL's thread count as the calling thread sees it (its thread-local setting if any);
    None where the loaded torch has no MKL."""
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    except OSError:  # another platform's library name: no way to ask
        return None
    fn = getattr(lib, "mkl_get_max_threads", None)
    return fn() if fn is not None else None


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parallel_row_blocks_restore_mkl_threads(kind):
    """The row blocks tell MKL to stay on one thread (csrc/cpu/mkl_threads.h); the caller's
    thread, which runs a block itself, must get its MKL thread count back afterwards."""
    if _mkl_max_threads() is None:
        pytest.skip("torch without MKL (or its library not found)")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        T, B, n_in, H = 6, 32, 3, 8
        x = signal((T, B, n_in), torch.float32).requires_grad_()
        states = [torch.randn(B, H) for _ in range(GATES[kind] - 2)]
        fn = lstm if kind == "lstm" else gru
        out = _call(kind, fn, x, states, _weights(kind, n_in, H), None)
        out[0].sum().backward()
        assert _mkl_max_threads() == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_gradcheck(kind):
    T, B, n_in, H = 5, 3, 2, 3
    x = signal((T, B, n_in), torch.float64).requires_grad_()
    states = [torch.randn(B, H, dtype=torch.float64, requires_grad=True)
              for _ in range(GATES[kind] - 2)]
    params = [p.requires_grad_() for p in _weights(kind, n_in, H, torch.float64)]
    fn = lstm if kind == "lstm" else gru
    for lengths in (None, torch.tensor([5, 2, 0])):
        assert torch.autograd.gradcheck(lambda *a, lengths=lengths: fn(*a, lengths=lengths),
                                        (x, *states, *params))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_gradcheck(kind):
    x = signal((3, 4), torch.float64).requires_grad_()
    H = 5
    states = [torch.randn(3, H, dtype=torch.float64, requires_grad=True)
              for _ in range(GATES[kind] - 2)]
    params = [p.requires_grad_() for p in _weights(kind, 4, H, torch.float64)]
    fn = lstm_cell if kind == "lstm" else gru_cell
    assert torch.autograd.gradcheck(fn, (x, *states, *params))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("lengths", [False, True])
def test_opcheck(kind, lengths):
    T, B, n_in, H = 4, 3, 2, 3
    x = torch.randn(T, B, n_in, requires_grad=True)
    states = [torch.randn(B, H, requires_grad=True) for _ in range(GATES[kind] - 2)]
    params = [p.requires_grad_() for p in _weights(kind, n_in, H)]
    lens = torch.tensor([4, 1, 3]) if lengths else None
    op = torch.ops.lightdl.lstm if kind == "lstm" else torch.ops.lightdl.gru
    torch.library.opcheck(op.default, (x, *states, *params, lens))
    with torch.no_grad():  # inference: nothing kept for the backward, same results
        lean = op(x, *states, *params, lens, False)
    torch.library.opcheck(op.default, (x.detach(), *[t.detach() for t in (*states, *params)],
                                       lens, False))
    outs = op(x, *states, *params, lens)
    assert all(t.numel() == 0 for t in lean[len(states) + 1:])
    for a, b in zip(lean[:len(states) + 1], outs, strict=False):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    y = outs[0].detach()
    gy = torch.randn_like(y)
    gh = torch.randn(B, H)
    if kind == "lstm":
        args = (gy, gh, None, x.detach(), *[s.detach() for s in states],
                *[p.detach() for p in params[:2]], y, outs[3].detach(), outs[4].detach(), lens)
        backward = torch.ops.lightdl.lstm_backward
    else:
        args = (gy, gh, x.detach(), states[0].detach(), *[p.detach() for p in params[:2]], y,
                outs[2].detach(), lens)
        backward = torch.ops.lightdl.gru_backward
    torch.library.opcheck(backward.default, args)
    torch.library.opcheck(backward.default, (*args, False))
    # Without x's gradient: grad_x is empty, every other gradient the same to the bit.
    full, lean = backward(*args), backward(*args, False)
    assert full[0].shape == x.shape and lean[0].shape == (0,)
    for a, b in zip(full[1:], lean[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cells_match_nn(kind, device):
    B, n_in, H = random.randint(1, 8), random.randint(1, 16), random.randint(1, 64)
    for bias in (True, False):
        cell = (nn.LSTMCell if kind == "lstm" else nn.GRUCell)(n_in, H, bias=bias, device=device)
        x = signal((B, n_in), device=device)
        h = torch.randn(B, H, device=device)
        p = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
        if kind == "lstm":
            c = torch.randn(B, H, device=device)
            got, want = lstm_cell(x, h, c, *p), cell(x, (h, c))
            got0, want0 = lstm_cell(x[0], None, None, *p), cell(x[0])  # unbatched, zero state
        else:
            got, want = (gru_cell(x, h, *p),), (cell(x, h),)
            got0, want0 = (gru_cell(x[0], None, *p),), (cell(x[0]),)
        for g, w in zip((*got, *got0), (*want, *want0), strict=True):
            torch.testing.assert_close(g, w, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("B, n_in, H", [(1, 1, 32), (1, 8, 64), (4, 8, 64), (8, 16, 128),
                                        (1, 32, 256), (33, 8, 64)])
def test_one_step_of_few_rows_or_many_matches_nn(kind, B, n_in, H):
    """A cell's step runs its products on the weights in place at few rows and on packed
    weights at many (csrc/rnn_layer.h, few_row_steps): both sides of that rule, forward and the
    gradients of every input, against torch.nn's cells."""
    cell = (nn.LSTMCell if kind == "lstm" else nn.GRUCell)(n_in, H)
    x = signal((B, n_in)).requires_grad_()
    h = torch.randn(B, H, requires_grad=True)
    c = torch.randn(B, H, requires_grad=True)
    p = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    inputs = [x, h, c, *p] if kind == "lstm" else [x, h, *p]
    results = []
    for run in ("lightdl", "torch.nn"):
        if kind == "lstm":
            out = lstm_cell(x, h, c, *p) if run == "lightdl" else cell(x, (h, c))
        else:
            out = (gru_cell(x, h, *p),) if run == "lightdl" else (cell(x, h),)
        grads = torch.autograd.grad([o.sum() * (k + 1) for k, o in enumerate(out)], inputs)
        results.append([o.detach() for o in out] + list(grads))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_few_rows_path_gradcheck_opcheck_and_edges(kind):
    """One step of 2 rows at input 8 x hidden 64 is on the in-place side of few_row_steps for
    both kinds (csrc/lstm.cpp, csrc/gru.cpp): float64 gradcheck, opcheck of the op and its backward (with a
    zero length), an empty batch, bfloat16 input and a non-contiguous weight."""
    B, n_in, H = 2, 8, 64
    op = torch.ops.lightdl.lstm if kind == "lstm" else torch.ops.lightdl.gru
    fn = lstm if kind == "lstm" else gru
    n_states = GATES[kind] - 2
    x = signal((1, B, n_in), torch.float64).requires_grad_()
    states = [torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(n_states)]
    params = [p.requires_grad_() for p in _weights(kind, n_in, H, torch.float64)]
    lens = torch.tensor([1, 0])
    assert torch.autograd.gradcheck(lambda *a: fn(*a, lengths=lens), (x, *states, *params),
                                    fast_mode=True)
    args32 = [t.detach().float().requires_grad_() for t in (x, *states, *params)]
    torch.library.opcheck(op.default, (*args32, lens))
    outs = op(*args32, lens)
    y = outs[0].detach()
    saved = [o.detach() for o in outs[n_states + 1:]]
    inputs = [t.detach() for t in args32]
    grads = (torch.randn_like(y), torch.randn(B, H)) + ((None,) if kind == "lstm" else ())
    backward = torch.ops.lightdl.lstm_backward if kind == "lstm" else torch.ops.lightdl.gru_backward
    torch.library.opcheck(backward.default, (*grads, *inputs[:n_states + 3], y, *saved, lens))
    # empty batch
    p32 = [p.detach().float() for p in params]
    y0 = fn(torch.randn(1, 0, n_in), *[None] * n_states, *p32)[0]
    assert y0.shape == (1, 0, H)
    # bfloat16 input and weights: computed in float32, returned in bfloat16
    xb, pb = x.detach().bfloat16(), [p.bfloat16() for p in p32]
    yb = fn(xb, *[None] * n_states, *pb)[0]
    ref = (lstm_reference if kind == "lstm" else gru_reference)(
        xb.float(), *[torch.zeros(B, H)] * n_states, *[p.float() for p in pb])[0]
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.float(), ref, rtol=1e-2, atol=1e-2)
    # a non-contiguous w_hh
    w_hh = p32[1].t().contiguous().t()
    assert not w_hh.is_contiguous()
    torch.testing.assert_close(fn(x.detach().float(), *[None] * n_states, p32[0], w_hh, *p32[2:])[0],
                               fn(x.detach().float(), *[None] * n_states, *p32)[0])


def test_reference_backend_is_the_fallback():
    T, B, n_in, H = 6, 3, 2, 4
    x, h, c = signal((T, B, n_in)), torch.randn(B, H), torch.randn(B, H)
    p = _weights("lstm", n_in, H)
    lens = [6, 2, 4]
    native = lstm(x, h, c, *p, lengths=lens)
    with use_backend("reference"):
        ref = lstm(x, h, c, *p, lengths=lens)
    for a, b in zip(native, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5)


def test_empty_batch_and_sequence_and_non_contiguous():
    H, n_in = 4, 3
    p = [q.requires_grad_() for q in _weights("lstm", n_in, H)]
    # batch 0
    y, h, c = lstm(torch.randn(5, 0, n_in, requires_grad=True), None, None, *p)
    assert y.shape == (5, 0, H) and h.shape == (0, H)
    (y.sum() + h.sum()).backward()
    assert torch.equal(p[0].grad, torch.zeros_like(p[0]))
    # sequence length 0: the state passes through
    h0, c0 = torch.randn(2, H, requires_grad=True), torch.randn(2, H)
    y, h, c = lstm(torch.randn(0, 2, n_in), h0, c0, *p)
    assert y.shape == (0, 2, H) and torch.equal(h, h0.detach()) and torch.equal(c, c0)
    h.sum().backward()
    assert torch.equal(h0.grad, torch.ones(2, H))
    # non-contiguous x and weights
    x = signal((3, 7, n_in)).transpose(0, 1)  # (7, 3, n_in)
    q = _weights("gru", n_in, H)
    w_ih = q[0].t().contiguous().t()
    assert not x.is_contiguous()
    torch.testing.assert_close(gru(x, None, w_ih, *q[1:])[0],
                               gru_reference(x, torch.zeros(3, H), *q)[0], rtol=2e-5, atol=2e-5)


def test_compiles_without_graph_breaks():
    p = [q.requires_grad_() for q in _weights("lstm", 3, 5)]
    g = [q.requires_grad_() for q in _weights("gru", 5, 4)]

    def f(x, lengths):
        y, h, c = lstm(x, None, None, *p, lengths=lengths)
        z, hz = gru(y, None, *g, lengths=lengths)
        return z.sum() + h.sum() + hz.sum()

    x = torch.randn(6, 4, 3)
    lens = torch.tensor([6, 3, 1, 5])
    compiled = torch.compile(f, fullgraph=True)
    got = compiled(x, lens)
    got.backward()
    grads = [q.grad.clone() for q in p + g]
    for q in p + g:
        q.grad = None
    want = f(x, lens)
    want.backward()
    torch.testing.assert_close(got, want)
    for a, q in zip(grads, p + g, strict=True):
        torch.testing.assert_close(a, q.grad)


def test_bad_inputs():
    n_in, H = 3, 4
    x = torch.randn(5, 2, n_in)
    w_ih, w_hh, b_ih, b_hh = _weights("lstm", n_in, H)
    h = torch.zeros(2, H)
    with pytest.raises(ValueError, match=r"`x` must have shape \(seq_len, batch, input_size\)"):
        lstm(x[0], h, h, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"`w_hh` must have shape \(4\*hidden_size"):
        lstm(x, h, h, w_ih, w_hh[:, :3])
    with pytest.raises(ValueError, match=r"`w_ih` must have shape \(16, 3\)"):
        lstm(x, h, h, w_ih[:, :2], w_hh)
    with pytest.raises(ValueError, match=r"`c0` must have shape \(2, 4\)"):
        lstm(x, h, torch.zeros(3, H), w_ih, w_hh)
    with pytest.raises(ValueError, match=r"`b_hh` must have shape \(16,\)"):
        lstm(x, h, h, w_ih, w_hh, b_ih, b_hh[:3])
    with pytest.raises(TypeError, match="`w_hh` dtype torch.float64 differs from `x`"):
        lstm(x, h, h, w_ih, w_hh.double())
    with pytest.raises(ValueError, match="`w_ih` is on meta but `x` is on cpu"):
        lstm(x, h, h, w_ih.to("meta"), w_hh)
    with pytest.raises(ValueError, match=r"`lengths` must lie in \[0, seq_len=5\]"):
        lstm(x, h, h, w_ih, w_hh, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"`lengths` must have shape \(2,\)"):
        lstm(x, h, h, w_ih, w_hh, lengths=[1])
    with pytest.raises(TypeError, match="`lengths` must hold integers"):
        lstm(x, h, h, w_ih, w_hh, lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="`x` must be float32"):
        gru(x.long(), h, *_weights("gru", n_in, H))
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch, input_size\)"):
        lstm_cell(x, h, h, w_ih, w_hh)
    # Direct calls of the compiled ops are checked in C++ too.
    with pytest.raises(ValueError, match=r"lstm: `w_ih` must have shape \[16, 3\]"):
        torch.ops.lightdl.lstm(x, h, h, w_ih[:, :2], w_hh, None, None)
    with pytest.raises(ValueError, match=r"gru: `lengths` must lie in \[0, seq_len=5\]"):
        torch.ops.lightdl.gru(x, h, *_weights("gru", n_in, H), torch.tensor([9, 1]))
    with pytest.raises(ValueError, match="`lengths` must be a CPU int64 tensor"):
        torch.ops.lightdl.gru(x, h, *_weights("gru", n_in, H), torch.tensor([1, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match="`gates` must be the contiguous"):
        y, _, _, gates, cs = torch.ops.lightdl.lstm(x, h, h, w_ih, w_hh, None, None)
        torch.ops.lightdl.lstm_backward(None, None, None, x, h, h, w_ih, w_hh, y, gates[:1], cs)
