"""torch.func on lightdl's ops and modules: grad, vjp, jacrev, vmap and per-sample gradients
(vmap of grad) give the reference backend's results, run the compiled ops, and asking for a
second derivative raises a clear error instead of returning zeros."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, hessian, jacrev, vjp, vmap

import lightdl.ops as ops
from lightdl.nn import FusedGRU, FusedLSTM
from lightdl.ops import _autograd, _backend
from tests.helpers import DEVICES, signal

pytestmark = pytest.mark.skipif(_backend._C is None, reason="compiled kernels unavailable")

D = torch.float64
TOL = dict(rtol=1e-9, atol=1e-11)


def _lstm(x, w):
    w_ih = torch.linspace(-0.5, 0.5, 4 * 5 * 3, dtype=D, device=w.device).view(20, 3)
    return ops.lstm(x, None, None, w_ih, w, None, None)[0]


def _gru(x, w):
    w_ih = torch.linspace(-0.5, 0.5, 3 * 5 * 3, dtype=D, device=w.device).view(15, 3)
    return ops.gru(x, None, w_ih, w, None, None)[0]


# name -> (compiled op, f(x, w), x shape, w shape, batch dim of x). Smooth activations (and
# inputs away from 0 for max pooling's ties) so that every transform is well defined.
CASES = {
    "activation": ("activation", lambda x, w: ops.activation(x * w[0], "gelu"), (3, 4, 6), (1,), 0),
    "bias_act": ("bias_act", lambda x, w: ops.bias_act(x, w, "silu"), (3, 4, 6), (4,), 0),
    "fused_linear": ("fused_linear", lambda x, w: ops.fused_linear(x, w, None, "tanh"), (3, 5),
                     (4, 5), 0),
    "fused_conv1d": ("fused_conv1d", lambda x, w: ops.fused_conv1d(x, w, None, padding=1,
                                                                   act="sigmoid"),
                     (3, 2, 8), (3, 2, 3), 0),
    "act_pool1d": ("act_pool1d", lambda x, w: ops.act_pool1d(x * w[0], "tanh", "max", 2),
                   (3, 4, 6), (1,), 0),
    "batch_norm_act_pool1d": ("bn_act_pool1d", lambda x, w: ops.batch_norm_act_pool1d(
        x, None, None, w, None, True, 0.1, 1e-5, "silu", "avg", 2, 2, 0), (3, 4, 6), (4,), 0),
    "lstm": ("lstm", _lstm, (4, 3, 3), (20, 5), 1),
    "gru": ("gru", _gru, (4, 3, 3), (15, 5), 1),
    "lstm_cell": ("lstm", lambda x, w: ops.lstm_cell(x, None, None, w[:, :3], w)[0], (3, 3),
                  (20, 5), 0),
    "gru_cell": ("gru", lambda x, w: ops.gru_cell(x, None, w[:, :3], w), (3, 3), (15, 5), 0),
}


def _spy(monkeypatch, op_name: str) -> list[int]:
    """Counts the applications of the op's autograd.Function for transforms (proof that the
    compiled op, not a fallback, ran under the transform)."""
    qualname = f"lightdl::{op_name}"
    base = _autograd._TRANSFORM_FUNCTIONS[qualname]
    calls: list[int] = []

    class Spy(base):
        @staticmethod
        def forward(*args):
            calls.append(1)
            return base.forward(*args)

    monkeypatch.setitem(_autograd._TRANSFORM_FUNCTIONS, qualname, Spy)
    return calls


def _transform(kind: str, f, x: torch.Tensor, w: torch.Tensor, bdim: int):
    def loss(w, x):
        return f(x, w).sin().sum()

    if kind == "grad_w":
        return grad(loss)(w, x)
    if kind == "grad_x":
        return grad(loss, argnums=1)(w, x)
    if kind == "vjp":
        y, pullback = vjp(lambda w: f(x, w), w)
        return pullback(torch.cos(y))[0]
    if kind == "jacrev":
        return jacrev(lambda w: f(x, w).sum(bdim).flatten()[:6])(w)
    if kind == "per_sample":
        return vmap(grad(lambda w, s: loss(w, s.unsqueeze(bdim))), in_dims=(None, bdim))(w, x)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["grad_w", "grad_x", "vjp", "jacrev", "per_sample"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("device", DEVICES)
def test_transform_runs_the_compiled_op_and_matches_the_reference(device, name, kind,
                                                                  monkeypatch):
    op_name, f, x_shape, w_shape, bdim = CASES[name]
    x = signal(x_shape, D, device, away_from_zero=0.05)
    w = signal(w_shape, D, device) * 0.3
    with warnings.catch_warnings():
        # vmap runs the ops one sample at a time and says so: expected here.
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        with ops.use_backend("reference"):
            want = _transform(kind, f, x, w, bdim)
        calls = _spy(monkeypatch, op_name)
        got = _transform(kind, f, x, w, bdim)
    assert calls, "the compiled op's Function did not run under the transform"
    torch.testing.assert_close(got, want, **TOL)


def test_vmap_without_grad_matches_a_loop():
    x, b = signal((5, 3, 4, 6), D), signal((4,), D)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        got = vmap(lambda s: ops.bias_act(s, b, "gelu"))(x)
    torch.testing.assert_close(got, torch.stack([ops.bias_act(s, b, "gelu") for s in x]))


@pytest.mark.parametrize("fused_cls,torch_cls", [(FusedLSTM, nn.LSTM), (FusedGRU, nn.GRU)])
def test_per_sample_gradients_of_a_fused_rnn(fused_cls, torch_cls):
    # Per-sample gradients (as DP-SGD needs them) of a 2-layer bidirectional layer: vmap of
    # grad over the batch against one torch.nn backward per sample. (torch.nn's own layers
    # cannot be vmapped here: torch 2.13 fails inside nn.LSTM.)
    fused = fused_cls(3, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    ref = torch_cls(3, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    ref.load_state_dict(fused.state_dict())
    x, target = signal((5, 7, 3), D), signal((5,), D)
    params = {k: v.detach() for k, v in fused.named_parameters()}

    def loss(p, xs, t):
        out = functional_call(fused, p, (xs.unsqueeze(0),))[0]
        return (out[0, -1].sum() - t) ** 2

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        got = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, target)
    for i in range(x.shape[0]):
        ref.zero_grad()
        ((ref(x[i:i + 1])[0][0, -1].sum() - target[i]) ** 2).backward()
        for k, p in ref.named_parameters():
            torch.testing.assert_close(got[k][i], p.grad, **TOL)


@pytest.mark.parametrize("name", ["bias_act", "lstm"])
def test_second_derivative_raises_a_clear_error(name):
    op_name, f, x_shape, w_shape, _ = CASES[name]
    x = signal(x_shape, D)
    w = (signal(w_shape, D) * 0.3).requires_grad_()
    # First derivatives taken with create_graph=True are still right...
    (g,) = torch.autograd.grad(f(x, w).sin().sum(), w, create_graph=True)
    with ops.use_backend("reference"):
        (want,) = torch.autograd.grad(f(x, w).sin().sum(), w)
    torch.testing.assert_close(g, want, **TOL)
    # ... and differentiating them again says why it cannot, by autograd or by torch.func.
    message = f"lightdl::{op_name} has no second derivative"
    with pytest.raises(RuntimeError, match=message):
        torch.autograd.grad(g.square().sum(), w)
    with pytest.raises(RuntimeError, match=message), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        jacrev(jacrev(lambda w: f(x, w).sin().sum()))(w.detach())
    with ops.use_backend("reference"):  # the way out the message names
        assert hessian(lambda w: f(x, w).sin().sum())(w.detach()).shape == w.shape * 2


def test_forward_mode_raises_a_clear_error():
    x, b = signal((4, 6), D), signal((6,), D)
    with pytest.raises(RuntimeError, match="lightdl::bias_act has no forward-mode derivative"):
        hessian(lambda b: ops.bias_act(x, b, "tanh").sum())(b)


def test_calling_torch_ops_under_a_transform_names_the_python_op():
    x, b = signal((4, 6), D), signal((6,), D)
    with pytest.raises(RuntimeError, match=r"call lightdl\.ops\.bias_act"):
        grad(lambda b: torch.ops.lightdl.bias_act(x, b, "relu").sum())(b)


def test_compiling_a_transform_says_to_run_it_eagerly():
    x, b = signal((4, 6), D), signal((6,), D)
    with pytest.raises(Exception, match="run the transform eagerly"):
        torch.compile(grad(lambda b: ops.bias_act(x, b, "gelu").sum()), fullgraph=True)(b)


def _layers() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    import lightdl.nn as lnn
    from lightdl.models import MLP, CNN1d, RNNClassifier

    return {
        "FusedLinear": (lnn.FusedLinear(5, 4, act="gelu"), (3, 5)),
        "FusedConv1d": (lnn.FusedConv1d(2, 3, 3, padding="same", act="tanh"), (3, 2, 10)),
        "FusedBatchNorm1d": (lnn.FusedBatchNorm1d(2, track_running_stats=False, act="relu",
                                                  pool="max"), (3, 2, 10)),
        "FusedBatchNorm1d-eval": (lnn.FusedBatchNorm1d(2, act="silu", pool="avg").eval(),
                                  (3, 2, 10)),
        "FusedMaxPool1d": (lnn.FusedMaxPool1d(2, act="tanh"), (3, 2, 10)),
        "FusedLSTMCell": (lnn.FusedLSTMCell(3, 4), (3, 3)),
        "FusedGRUCell": (lnn.FusedGRUCell(3, 4), (3, 3)),
        "MLP": (MLP(input_shape=8, num_classes=3), (3, 8)),
        "CNN1d": (CNN1d(input_shape=(1, 32), num_classes=2, norm="batch", pool="max").eval(),
                  (3, 1, 32)),
        "RNNClassifier": (RNNClassifier(input_shape=(10, 2), num_classes=2, cell="gru",
                                        bidirectional=True), (3, 10, 2)),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_layers_and_models_under_grad_and_per_sample_grad(name):
    # What users write: functional_call over a module's parameters (buffers as they are).
    module, shape = _layers()[name]
    module = module.double()
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = dict(module.named_buffers())

    def loss(p, x):
        out = functional_call(module, (p, buffers), (x,))
        return (out[0] if isinstance(out, tuple) else out).sin().sum()

    x = signal(shape, D, away_from_zero=0.05)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        got = grad(loss)(params, x)
        per_sample = vmap(grad(lambda p, s: loss(p, s[None])), in_dims=(None, 0))(params, x)
        with ops.use_backend("reference"):
            want = grad(loss)(params, x)
            want_per_sample = vmap(grad(lambda p, s: loss(p, s[None])),
                                   in_dims=(None, 0))(params, x)
    for k in params:
        torch.testing.assert_close(got[k], want[k], **TOL)
        torch.testing.assert_close(per_sample[k], want_per_sample[k], **TOL)


@pytest.mark.parametrize("fused_cls,torch_cls", [(FusedLSTM, nn.LSTM), (FusedGRU, nn.GRU)])
def test_per_sample_gradients_with_per_sample_lengths(fused_cls, torch_cls):
    # Variable-length series (RR intervals) with DP-SGD: each sample's lengths entry comes in
    # through vmap. Oracle: torch.nn on that sample's sequence cut at its length.
    fused = fused_cls(2, 5, bidirectional=True, batch_first=True).double()
    ref = torch_cls(2, 5, bidirectional=True, batch_first=True).double()
    ref.load_state_dict(fused.state_dict())
    x = signal((4, 7, 2), D)
    lengths = torch.tensor([7, 4, 1, 5])
    params = {k: v.detach() for k, v in fused.named_parameters()}

    def loss(p, xs, n):
        y, state = functional_call(fused, p, (xs[None],), {"lengths": n[None]})
        h = state[0] if isinstance(state, tuple) else state
        return y.sin().sum() + h.sum()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        got = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, lengths)
    for i, n in enumerate(lengths.tolist()):
        ref.zero_grad()
        y, state = ref(x[i:i + 1, :n])
        h = state[0] if isinstance(state, tuple) else state
        (y.sin().sum() + h.sum()).backward()
        for k, p in ref.named_parameters():
            torch.testing.assert_close(got[k][i], p.grad, **TOL)


def test_out_of_range_lengths_under_vmap_still_raise():
    """Checked in Python over the whole batch before any kernel runs: one ValueError, also
    once vmap's fallback warning has been issued (the op's own check raising inside the
    fallback came out as a SystemError then, once without the ValueError at all: CI run of
    session 33)."""
    lstm = FusedLSTM(2, 3).double()
    params = {k: v.detach() for k, v in lstm.named_parameters()}
    x = signal((2, 5, 2), D)

    def loss(p, xs, n):
        return functional_call(lstm, p, (xs[:, None],), {"lengths": n[None]})[0].sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        per_sample(params, x, torch.tensor([5, 4]))  # valid: the fallback warning is issued
        for bad, shown in ((torch.tensor([5, 9]), "[5, 9]"), (torch.tensor([-1, 3]), "[-1, 3]")):
            with pytest.raises(ValueError, match=re.escape(
                    f"`lengths` must lie in [0, seq_len=5], got values in {shown}")):
                per_sample(params, x, bad)
