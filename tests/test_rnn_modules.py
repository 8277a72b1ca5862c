"""FusedLSTM / FusedGRU / FusedLSTMCell / FusedGRUCell against torch.nn: outputs and gradients
over random configurations, PackedSequence and lengths, state_dict interchange, errors."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lightdl.nn import FusedGRU, FusedGRUCell, FusedLSTM, FusedLSTMCell
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

PAIRS = {"lstm": (nn.LSTM, FusedLSTM), "gru": (nn.GRU, FusedGRU)}
CELLS = {"lstm": (nn.LSTMCell, FusedLSTMCell), "gru": (nn.GRUCell, FusedGRUCell)}


def _pair(kind, *args, **kwargs):
    """A torch.nn layer and the fused one with the same weights."""
    ref_cls, fused_cls = PAIRS[kind]
    ref = ref_cls(*args, **kwargs)
    fused = fused_cls(*args, **kwargs)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def _flat(out):
    """(y, state) -> list of tensors (y's data for a PackedSequence)."""
    y, s = out
    y = y.data if hasattr(y, "batch_sizes") else y
    return [y, *(s if isinstance(s, tuple) else (s,))]


def _assert_close_all(got, want, tol):
    for g, w in zip(got, want, strict=True):
        scale = max(1.0, w.abs().max().item() if w.numel() else 0.0)
        torch.testing.assert_close(g, w, rtol=tol, atol=tol * scale)


def _as_accurate_as_torch(got, want, exact, tol):
    """Each of our float32 results no further from the float64 result `exact` than 3x torch's
    float32 result is, plus tol of the tensor's scale. Plain closeness to torch's float32
    result fails now and then on weight gradients: where tanh saturates, its derivative
    1 - y^2 is within rounding of 0 in both (fm::tanh is exactly 1 from 7.9, torch's from 9),
    and inputs of ~50 multiply that difference (up to 3e-5 of the scale in 4000 random
    cases)."""
    for g, w, e in zip(got, want, exact, strict=True):
        scale = max(1.0, w.abs().max().item() if w.numel() else 0.0)
        err, torch_err = (g.double() - e).abs(), (w.double() - e).abs()
        worst = (err - 3 * torch_err).max().item() if g.numel() else 0.0
        assert worst <= tol * scale, f"{tuple(g.shape)}: {worst:.3g} beyond 3x torch's error"


def _forward_backward(model, x, hx=None, **kw):
    model.zero_grad()
    out = model(x, hx, **kw) if hx is not None else model(x, **kw)
    flat = _flat(out)
    loss = sum((t * torch.linspace(-1, 1, t.numel(), device=t.device).view(t.shape)).sum()
               for t in flat)
    loss.backward()
    return [t.detach() for t in flat] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("case", range(4))
def test_matches_torch_nn_random_configs(case, kind, device):
    """Random shapes (batch 1..many, seq 1..300, input 1..64, hidden 1..256, layers 1..3),
    bidirectional, batch_first, bias: outputs, final states and every parameter gradient."""
    rng = random  # seeded per test and run by the conftest fixture: fresh configs each run
    big = case == 3  # one long and wide case: seq up to 300, hidden up to 256
    T = rng.randint(100, 300) if big else rng.randint(1, 30)
    H = rng.randint(1, 256) if big else rng.randint(1, 48)
    B, n_in = rng.choice([1, rng.randint(2, 12)]), rng.randint(1, 64)
    kw = dict(num_layers=rng.randint(1, 3), bidirectional=rng.random() < 0.5,
              batch_first=rng.random() < 0.5, bias=rng.random() < 0.8)
    ref, fused = _pair(kind, n_in, H, **kw, device=device)
    shape = (B, T, n_in) if kw["batch_first"] else (T, B, n_in)
    x = signal(shape, device=device)
    L = kw["num_layers"] * (2 if kw["bidirectional"] else 1)
    hx = torch.randn(L, B, H, device=device)
    if kind == "lstm":
        hx = (hx, torch.randn(L, B, H, device=device))
    got = _forward_backward(fused, x, hx)
    want = _forward_backward(ref, x, hx)
    _assert_close_all(got, want, 1e-4)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_matches_torch_nn_dtypes(kind, dtype):
    ref, fused = _pair(kind, 6, 10, num_layers=2, bidirectional=True, dtype=dtype)
    x = signal((7, 3, 6), dtype)
    got, want = _forward_backward(fused, x), _forward_backward(ref, x)
    for g in got:
        assert g.dtype == dtype
    if dtype == torch.bfloat16:  # PyTorch rounds every op to bfloat16, we round once at the end
        want = _forward_backward(ref.double(), x.double())
        got = [g.double() for g in got]
    _assert_close_all(got, want, 1e-10 if dtype == torch.float64 else 5e-2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_variable_lengths_match_packed_sequence(batch_first, kind, device):
    T, B, n_in, H = 12, 6, 4, 9
    ref, fused = _pair(kind, n_in, H, num_layers=2, bidirectional=True, batch_first=batch_first,
                       device=device)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[random.randrange(B)] = T
    x = signal((B, T, n_in) if batch_first else (T, B, n_in), device=device)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    got = _forward_backward(fused, packed)
    want = _forward_backward(ref, packed)
    _assert_close_all(got, want, 1e-4)
    # PackedSequence out, like nn.LSTM's
    y_fused = fused(packed)[0]
    assert torch.equal(y_fused.batch_sizes, packed.batch_sizes)
    assert torch.equal(y_fused.sorted_indices, packed.sorted_indices)
    # lengths= on the padded tensor: the same outputs, zeros past each end
    y_len, state_len = fused(x, lengths=lengths)
    y_pad, _ = pad_packed_sequence(ref(packed)[0], batch_first=batch_first, total_length=T)
    torch.testing.assert_close(y_len, y_pad, rtol=1e-4, atol=1e-4)
    _assert_close_all(_flat((y_len, state_len))[1:], _flat(ref(packed))[1:], 1e-4)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_dict_interchange_both_ways(kind):
    ref_cls, fused_cls = PAIRS[kind]
    kw = dict(num_layers=2, bidirectional=True, dropout=0.25)
    torch.manual_seed(3)
    ref = ref_cls(5, 8, **kw)
    torch.manual_seed(3)
    fused = fused_cls(5, 8, **kw)
    # same keys, same initialisation
    assert list(fused.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(fused.state_dict()[k], v)
    x = signal((4, 3, 5))
    trained = ref_cls(5, 8, **kw).eval()
    fused.load_state_dict(trained.state_dict())
    fused.eval()
    _assert_close_all(_flat(fused(x)), _flat(trained(x)), 1e-5)
    back = ref_cls(5, 8, **kw).eval()
    back.load_state_dict(fused.state_dict())
    _assert_close_all(_flat(back(x)), _flat(trained(x)), 0)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_between_layers_in_training_only(kind):
    _, fused = _pair(kind, 4, 16, num_layers=2, dropout=0.5)
    x = signal((5, 3, 4))
    fused.eval()
    y_eval = fused(x)[0]
    torch.testing.assert_close(fused(x)[0], y_eval)
    fused.train()
    torch.manual_seed(0)
    y1 = fused(x)[0]
    torch.manual_seed(0)
    y2 = fused(x)[0]
    assert torch.equal(y1, y2) and not torch.allclose(y1, y_eval)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cells_match_torch_nn(kind, device):
    ref_cls, fused_cls = CELLS[kind]
    B, n_in, H = random.randint(1, 9), random.randint(1, 32), random.randint(1, 64)
    for bias in (True, False):
        ref = ref_cls(n_in, H, bias=bias, device=device)
        fused = fused_cls(n_in, H, bias=bias, device=device)
        fused.load_state_dict(ref.state_dict())
        x = signal((B, n_in), device=device)
        h = torch.randn(B, H, device=device)
        hx = (h, torch.randn(B, H, device=device)) if kind == "lstm" else h

        ref64 = copy.deepcopy(ref).double()

        def run(m, x=x, hx=hx):
            m.zero_grad()
            out = m(x, hx)
            outs = out if isinstance(out, tuple) else (out,)
            sum((o * o).sum() for o in outs).backward()
            return [o.detach() for o in outs] + [p.grad for p in m.parameters()]

        def f64(t):
            return t if t is None else (tuple(map(f64, t)) if isinstance(t, tuple) else t.double())

        for args in ((x, hx), (x[0], None)):  # batched; unbatched with zero state
            _as_accurate_as_torch(run(fused, *args), run(ref, *args), run(ref64, *map(f64, args)),
                                  1e-4)


def test_unbatched_input_and_compile():
    ref, fused = _pair("lstm", 3, 6, num_layers=2)
    x = signal((9, 3))
    _assert_close_all(_flat(fused(x)), _flat(ref(x)), 1e-5)
    compiled = torch.compile(fused, fullgraph=True)
    xb = signal((9, 2, 3))
    _assert_close_all(_flat(compiled(xb)), _flat(ref(xb)), 1e-5)


def test_errors():
    with pytest.raises(ValueError, match="proj_size=3 is not supported"):
        FusedLSTM(4, 8, proj_size=3)
    m = FusedLSTM(4, 8, num_layers=2)
    x = torch.randn(5, 2, 4)
    with pytest.raises(ValueError, match=r"hx\[0\] must have shape \(2, 2, 8\)"):
        m(x, (torch.zeros(1, 2, 8), torch.zeros(2, 2, 8)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h0, c0\)"):
        m(x, torch.zeros(2, 2, 8))
    with pytest.raises(ValueError, match="input has 3 features, expected input_size=4"):
        m(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="3-D"):
        m(torch.randn(5))
    packed = pack_padded_sequence(x, torch.tensor([5, 3]))
    with pytest.raises(ValueError, match="not both"):
        m(packed, lengths=[5, 3])
    with pytest.raises(ValueError, match=r"`lengths` must lie in \[0, seq_len=5\]"):
        FusedGRU(4, 8)(x, lengths=[7, 1])


def _autocast_reference(ref: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """ref's output under CPU bfloat16 autocast. oneDNN has no bfloat16 LSTM on CPUs without
    native bfloat16 instructions (AVX2-only machines, e.g. AMD EPYC Milan): there the same
    computation runs as autocast defines it, inputs and weights rounded to bfloat16, in float32,
    and the output rounded to bfloat16."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ref(x)[0]
    except RuntimeError as e:
        if dtype != torch.bfloat16 or "primitive descriptor" not in str(e):
            raise
    rounded = copy.deepcopy(ref)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.bfloat16().float())
        return rounded(x.bfloat16().float())[0].bfloat16()


def test_cpu_autocast_like_torch_nn():
    """Under CPU autocast nn.LSTM runs in bfloat16 and nn.GRU in float32; so do the fused ones."""
    for kind, dtype in (("lstm", torch.bfloat16), ("gru", torch.float32)):
        ref, fused = _pair(kind, 4, 8)
        x = signal((6, 3, 4))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, _ = fused(x)
        y_ref = _autocast_reference(ref, x, dtype)
        assert y.dtype == y_ref.dtype == dtype
        torch.testing.assert_close(y.float(), y_ref.float(), rtol=3e-2, atol=3e-2)
        y.float().sum().backward()
        assert fused.weight_ih_l0.grad.dtype == torch.float32
        # Without autograd the op is called past its autograd kernel (ops/_autograd.py,
        # call): autocast must still apply there.
        for mode in (torch.no_grad, torch.inference_mode):
            with mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                y_off, _ = fused(x)
            assert y_off.dtype == dtype and not y_off.requires_grad
            torch.testing.assert_close(y_off, y.detach())
