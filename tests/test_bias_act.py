"""activation and bias_act: native kernels against the PyTorch reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lightdl
from lightdl.ops import ACTIVATIONS, FORWARD_ONLY, activation, bias_act
from lightdl.ops._backend import _C
from tests.helpers import DEVICES, TOL, signal

pytestmark = pytest.mark.skipif(_C is None, reason="compiled extension not built")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [(64, 33), (5, 7, 129), (3, 4, 5, 6), (2, 3, 40000)]  # rows, planes, 4-D, long planes


def _reference_grads(x, bias, act, alpha, grad):
    """Reference output and gradients (bias may be None), computed by PyTorch in float64 from
    the same inputs and rounded once to their dtype: the accuracy our kernels promise. (PyTorch's
    own float32/half backward of sigmoid and tanh works from the rounded output, where 1 - y*y
    cancels to 0; ours does not, so the float64 truth is the fair oracle.)"""
    dtype = x.dtype
    if dtype != torch.float64:
        x, grad = x.double(), grad.double()
        bias = None if bias is None else bias.double()
        y, gx, gb = _reference_grads(x, bias, act, alpha, grad)
        return y.to(dtype), gx.to(dtype), None if gb is None else gb.to(dtype)
    x = x.detach().requires_grad_()
    b = None if bias is None else bias.detach().requires_grad_()
    with lightdl.ops.use_backend("reference"):
        y = activation(x, act, alpha) if b is None else bias_act(x, b, act, alpha)
    if y.requires_grad:
        y.backward(grad)
    gx = x.grad if x.grad is not None else torch.zeros_like(x)
    gb = None if b is None else (b.grad if b.grad is not None else torch.zeros_like(b))
    return y.detach(), gx, gb


def _native_grads(x, bias, act, alpha, grad):
    x = x.detach().requires_grad_()
    b = None if bias is None else bias.detach().requires_grad_()
    y = activation(x, act, alpha) if b is None else bias_act(x, b, act, alpha)
    y.backward(grad)
    return y.detach(), x.grad, None if b is None else b.grad


def _assert_grad_close(actual, expected, grad, dtype):
    # act'(x) carries an absolute error of a few eps (e.g. the 1 + erf(x) of gelu's derivative
    # cancels for x << 0, in PyTorch's kernels too), which the incoming gradient scales.
    tol = TOL[dtype]
    err = (actual.double() - expected.double()).abs()
    bound = tol["rtol"] * expected.double().abs() + tol["atol"] * (1 + grad.double().abs())
    assert (err <= bound).all(), f"max err {err.max().item()} ({(err > bound).sum()} elements)"


def _assert_bias_grad_close(actual, expected, gx, dtype, grad):
    # A sum over many elements: each term may carry the error _assert_grad_close allows, so
    # compare against the summed bounds of the terms, not against the (cancelling) sum. This is
    # loose for float32 over long planes; the float64 cases (same kernel templates, tolerance
    # 1e-10) are the ones that catch a dropped or doubled element in the reduction.
    dims = [d for d in range(gx.dim()) if d != 1]
    tol = TOL[dtype]
    bound = 4 * (tol["rtol"] * gx.double().abs().sum(dims)
                 + tol["atol"] * (1 + grad.double().abs()).sum(dims)) + 1e-12
    err = (actual.double() - expected.double()).abs()
    assert (err <= bound).all(), f"max err {err.max().item()}, bound {bound.min().item()}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_matches_reference(act, dtype, device):
    x = signal((37, 129), dtype, device)
    grad = signal(x.shape, dtype, device)
    alpha = 0.2 if act == "leaky_relu" else 0.01
    y, gx, _ = _native_grads(x, None, act, alpha, grad)
    ry, rgx, _ = _reference_grads(x, None, act, alpha, grad)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y, ry, **TOL[dtype])
    _assert_grad_close(gx, rgx, grad, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bias_act_matches_reference(shape, act, dtype, device):
    x = signal(shape, dtype, device)
    bias = signal((shape[1],), dtype, device)
    grad = signal(shape, dtype, device)
    y, gx, gb = _native_grads(x, bias, act, 0.01, grad)
    ry, rgx, rgb = _reference_grads(x, bias, act, 0.01, grad)
    torch.testing.assert_close(y, ry, **TOL[dtype])
    _assert_grad_close(gx, rgx, grad, dtype)
    assert gb.dtype == dtype and gb.shape == bias.shape
    _assert_bias_grad_close(gb, rgb, rgx, dtype, grad)


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "tanh", "sigmoid", "silu"])
def test_float32_accuracy_against_float64(act):
    """The vectorised exp/erf/tanh of csrc/fastmath.h, checked over a wide range of inputs
    against the float64 truth (not against another float32 approximation)."""
    x = torch.cat([torch.linspace(-30, 30, 200001), torch.logspace(-8, 1, 20001),
                   -torch.logspace(-8, 1, 20001)])
    y = activation(x, act).double()
    truth = lightdl.ops.activation_reference(x.double(), act)
    err = (y - truth).abs()
    # A few ulp of the result, or of x where the result cancels (gelu's 1 + erf(x) for x << 0):
    # PyTorch's own float32 kernels err as much (measured: gelu 1.0e-6, silu 1.3e-6 absolute
    # over this range; ours 0.9e-6 and 1.3e-6).
    assert (err <= 1e-6 * truth.abs() + 4e-7 * x.double().abs().clamp(min=1)).all(), (
        f"max err {err.max().item()} at x={x[err.argmax()].item()}"
    )
    x_req = x.double().requires_grad_()
    lightdl.ops.activation_reference(x_req, act).sum().backward()
    g = torch.ops.lightdl.activation_backward(torch.ones_like(x), x, act, 0.01).double()
    gerr = (g - x_req.grad).abs()
    assert (gerr <= 2e-6 * x_req.grad.abs() + 4e-7).all(), f"max grad err {gerr.max().item()}"


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a not in FORWARD_ONLY])
def test_gradcheck_float64(act):
    # Away from 0 so finite differences never straddle the kink of relu/leaky_relu.
    x = signal((6, 5, 7), torch.float64, away_from_zero=0.05).clamp(-8, 8).requires_grad_()
    b = (torch.rand(5, dtype=torch.float64) * 0.02).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, b: bias_act(x, b, act, 0.1), (x, b))
    assert torch.autograd.gradcheck(lambda x: activation(x, act, 0.1), (x,))


@pytest.mark.parametrize("act", FORWARD_ONLY)
def test_forward_only_acts_have_zero_gradient(act):
    x = signal((4, 9)).requires_grad_()
    b = torch.randn(9, requires_grad=True)
    bias_act(x, b, act).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(b.grad, torch.zeros_like(b))
    y = activation(torch.tensor([-2.0, -0.0, 0.0, 3.0]), act)
    expected = [0.0, 1.0, 1.0, 1.0] if act == "step" else [-1.0, 0.0, 0.0, 1.0]
    assert y.tolist() == expected


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ["relu", "gelu", "leaky_relu", "step"])
def test_opcheck(act, device):
    x = signal((4, 6, 5), device=device, away_from_zero=0.05).requires_grad_()
    b = torch.randn(6, device=device, requires_grad=True)
    g = torch.randn(4, 6, 5, device=device)
    torch.library.opcheck(torch.ops.lightdl.bias_act.default, (x, b, act, 0.01))
    torch.library.opcheck(torch.ops.lightdl.activation.default, (x, act, 0.01))
    torch.library.opcheck(torch.ops.lightdl.bias_act_backward.default, (g, x.detach(), b.detach(), act, 0.01))
    torch.library.opcheck(torch.ops.lightdl.activation_backward.default, (g, x.detach(), act, 0.01))


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    base = signal((8, 40, 30), device=device)
    x = base.transpose(1, 2)[:, ::2]  # (8, 15, 40), strided both ways
    assert not x.is_contiguous()
    bias = signal((30,), device=device)[::2]
    grad = signal((8, 15, 40), device=device).transpose(0, 2).contiguous().transpose(0, 2)
    for act in ("gelu", "leaky_relu"):
        y, gx, gb = _native_grads(x, bias, act, 0.01, grad)
        ry, rgx, rgb = _reference_grads(x, bias, act, 0.01, grad)
        torch.testing.assert_close(y, ry, **TOL[torch.float32])
        _assert_grad_close(gx, rgx, grad, torch.float32)
        _assert_bias_grad_close(gb, rgb, rgx, torch.float32, grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 7), (3, 5, 0)], ids=str)
def test_empty_batch(shape, device):
    x = torch.randn(shape, device=device, requires_grad=True)
    b = torch.randn(shape[1], device=device, requires_grad=True)
    y = bias_act(x, b, "gelu")
    assert y.shape == shape
    y.sum().backward()
    assert x.grad.shape == shape
    assert torch.equal(b.grad, torch.zeros_like(b))
    assert activation(torch.empty(0, device=device), "tanh").shape == (0,)


def test_bad_inputs_name_the_argument():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match=r"`bias` must have shape \(6,\)"):
        bias_act(x, torch.randn(5), "relu")
    with pytest.raises(ValueError, match=r"`bias` must have shape \(6,\)"):
        bias_act(x, torch.randn(2, 3), "relu")
    with pytest.raises(TypeError, match="`bias` dtype torch.float64 differs from `x`"):
        bias_act(x, torch.randn(6, dtype=torch.float64), "relu")
    with pytest.raises(ValueError, match="`bias` is on meta but `x` is on cpu"):
        bias_act(x, torch.randn(6, device="meta"), "relu")
    with pytest.raises(TypeError, match="`x` must be float32, float64"):
        bias_act(torch.ones(4, 6, dtype=torch.int64), torch.randn(6), "relu")
    with pytest.raises(ValueError, match="`x` must have at least 2 dims"):
        bias_act(torch.randn(6), torch.randn(6), "relu")
    with pytest.raises(ValueError, match="act must be one of identity, relu"):
        activation(x, "swish")
    with pytest.raises(TypeError, match="`bias` must be a torch.Tensor"):
        bias_act(x, [0.0] * 6, "relu")
    with pytest.raises(TypeError, match="`alpha` must be a number"):
        activation(x, "leaky_relu", alpha="0.1")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("act,alpha", [("sigmoid", 0.01), ("tanh", 0.01), ("relu", 0.01),
                                       ("leaky_relu", 0.2), ("leaky_relu", 0.0)])
def test_backward_from_output(act, alpha, dtype, device):
    """Backward from the saved output y, which autograd uses for sigmoid/tanh in float32 and
    float64 (half types keep the input, their rounded output is too coarse) and for relu and
    leaky_relu (slope >= 0) in every dtype."""
    x = signal((6, 9, 300), dtype, device)
    b = signal((9,), dtype, device)
    g = signal(x.shape, dtype, device)
    y = torch.ops.lightdl.bias_act(x, b, act, alpha)
    gx, gb = torch.ops.lightdl.bias_act_backward(g, y, b, act, alpha, True)
    _, rgx, rgb = _reference_grads(x, b, act, alpha, g)
    _assert_grad_close(gx, rgx, g, dtype)
    _assert_bias_grad_close(gb, rgb, rgx, dtype, g)
    gx2 = torch.ops.lightdl.activation_backward(g, y, act, alpha, True)
    torch.testing.assert_close(gx2, gx, rtol=0, atol=0)
    torch.library.opcheck(torch.ops.lightdl.bias_act_backward.default, (g, y, b, act, alpha, True))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_relu_grad_from_half_output(act, dtype, device):
    """relu/leaky_relu save their output in half types too; act' read from it is exact."""
    x = signal((4, 7, 50), dtype, device).requires_grad_()
    b = signal((7,), dtype, device).requires_grad_()
    g = signal(x.shape, dtype, device)
    gx, gb = torch.autograd.grad(bias_act(x, b, act, 0.1), (x, b), g)
    _, rgx, rgb = _reference_grads(x.detach(), b.detach(), act, 0.1, g)
    _assert_grad_close(gx, rgx, g, dtype)
    _assert_bias_grad_close(gb, rgb, rgx, dtype, g)


def test_backward_from_output_only_where_output_determines_grad():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="x_is_output=True is only supported for act='sigmoid'"):
        torch.ops.lightdl.bias_act_backward(x, x, torch.randn(6), "gelu", 0.01, True)
    with pytest.raises(ValueError, match="needs alpha >= 0 for act='leaky_relu'"):
        torch.ops.lightdl.activation_backward(x, x, "leaky_relu", -0.1, True)


def test_direct_op_calls_are_checked_in_cpp():
    """torch.ops.lightdl.* bypass the Python checks; the C++ ones must still refuse."""
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="`bias` must have shape"):
        torch.ops.lightdl.bias_act(x, torch.randn(5), "relu", 0.01)
    with pytest.raises(ValueError, match="unknown activation act='nope'"):
        torch.ops.lightdl.activation(x, "nope", 0.01)
    with pytest.raises(TypeError, match="`x` must be float32"):
        torch.ops.lightdl.activation(x.int(), "relu", 0.01)
    with pytest.raises(ValueError, match="`grad` shape"):
        torch.ops.lightdl.activation_backward(torch.randn(3), x, "relu", 0.01)


def test_results_do_not_depend_on_thread_count():
    x, b = signal((3, 8, 70001)), signal((8,))
    g = signal(x.shape)
    rows, rb, rg = signal((5000, 64)), signal((64,)), signal((5000, 64))
    before = torch.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(torch.ops.lightdl.bias_act_backward(g, x, b, "gelu", 0.01)
                       + torch.ops.lightdl.bias_act_backward(rg, rows, rb, "silu", 0.01))
    finally:
        torch.set_num_threads(before)
    for a, c in zip(*out, strict=True):
        assert torch.equal(a, c)


def test_compile_fullgraph_matches_eager():
    def f(x, b):
        return activation(bias_act(x, b, "gelu"), "tanh").sum(dim=1)

    x = signal((8, 16, 20)).requires_grad_()
    b = torch.randn(16, requires_grad=True)
    compiled = torch.compile(f, fullgraph=True)
    y = compiled(x, b)
    y.sum().backward()
    gx, gb = x.grad.clone(), b.grad.clone()
    x.grad = b.grad = None
    y_eager = f(x, b)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gb, b.grad)


def test_cpu_autocast_bfloat16():
    x = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = bias_act(x, b, "gelu")  # cast like the linear it follows
        z = activation(x, "gelu")  # elementwise: input dtype, like torch's activations
        with lightdl.ops.use_backend("reference"):
            ry = bias_act(x, b, "gelu")
    assert y.dtype == torch.bfloat16 and z.dtype == torch.float32 and ry.dtype == torch.bfloat16
    torch.testing.assert_close(y, ry, **TOL[torch.bfloat16])
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and b.grad.dtype == torch.float32


def test_reference_backend_switch():
    x, b = signal((4, 8)), signal((8,))
    assert lightdl.ops.get_backend() == "native"
    with lightdl.ops.use_backend("reference"):
        assert lightdl.ops.get_backend() == "reference"
        ref = bias_act(x, b, "silu")
    assert lightdl.ops.get_backend() == "native"
    torch.testing.assert_close(bias_act(x, b, "silu"), ref, **TOL[torch.float32])
    lightdl.ops.use_backend("reference")
    try:
        assert lightdl.ops.get_backend() == "reference"
    finally:
        lightdl.ops.use_backend("native")
    with pytest.raises(ValueError, match="must be one of"):
        lightdl.ops.use_backend("fast")


# The autouse seed fixture runs once per test, not per example; each example then draws
# fresh values from the seeded generator, which is what we want.
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dims=st.lists(st.integers(0, 9), min_size=2, max_size=4),
    act=st.sampled_from(ACTIVATIONS),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    transpose=st.booleans(),
)
def test_random_shapes_and_layouts(dims, act, dtype, transpose):
    """Shape fuzzing: any rank >= 2, any size including 0, contiguous or transposed."""
    x = signal(tuple(dims), dtype)
    if transpose and x.dim() > 2:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)  # same values, permuted strides
    b = signal((dims[1],), dtype)
    g = signal(tuple(dims), dtype)
    y, gx, gb = _native_grads(x, b, act, 0.05, g)
    ry, rgx, rgb = _reference_grads(x, b, act, 0.05, g)
    torch.testing.assert_close(y, ry, **TOL[dtype])
    _assert_grad_close(gx, rgx, g, dtype)
    _assert_bias_grad_close(gb, rgb, rgx, dtype, g)
