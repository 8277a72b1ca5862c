"""Models: shapes, fused vs torch.nn equality (outputs and gradients), state-dict
interchange, initialisation, variable lengths, errors."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lightdl.models import MLP, CNN1d, CNN2d, Perceptron, RNNClassifier, init_weights
from tests.helpers import signal


def _pair(cls, **kw):
    """The fused and the torch.nn variant of one model with the same weights."""
    fused = cls(**kw, fused=True)
    plain = cls(**kw, fused=False)
    assert list(fused.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fused.state_dict())
    return fused, plain


def _random_cases():
    r = random.Random(torch.initial_seed())
    acts = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu"]
    yield MLP, dict(input_shape=r.randint(1, 40), num_classes=r.randint(1, 7),
                    hidden=[r.randint(1, 50) for _ in range(r.randint(0, 3))],
                    act=r.choice(acts)), (r.randint(1, 9),)
    length = r.randint(20, 90)
    yield CNN1d, dict(input_shape=(r.randint(1, 4), length), num_classes=r.randint(2, 5),
                      channels=[r.randint(2, 12) for _ in range(2)], kernel_sizes=[r.choice([3, 5, 7, 8]), 3],
                      act=r.choice(acts), norm=r.choice(["batch", "none"]),
                      pool=r.choice(["max", "avg", "none"]), padding=r.choice(["same", "valid"])), ()
    yield CNN1d, dict(input_shape=1, num_classes=3, preset="fcn", channels=[8, 16, 8]), ()
    yield CNN2d, dict(input_shape=(1, 8, 8), num_classes=10, channels=[4, 8], hidden=[16],
                      act=r.choice(acts), norm=r.choice(["batch", "none"])), ()
    yield RNNClassifier, dict(input_shape=r.randint(1, 4), num_classes=r.randint(2, 4),
                              cell=r.choice(["lstm", "gru"]), hidden_size=r.randint(1, 24),
                              num_layers=r.randint(1, 2), bidirectional=r.random() < 0.5,
                              output=r.choice(["last", "mean", "sequence"])), ()


def _input(cls, kw, extra):
    shape = kw.get("input_shape")
    if cls is MLP:
        return signal((extra[0], shape), torch.float64)
    if cls is CNN2d:
        return signal((5, *shape), torch.float64)
    channels = shape[0] if isinstance(shape, tuple) else shape
    length = shape[1] if isinstance(shape, tuple) else 40
    return signal((6, channels, length), torch.float64)


@pytest.mark.parametrize("case", range(5))
def test_fused_and_unfused_compute_the_same_function(case):
    cls, kw, extra = list(_random_cases())[case]
    fused, plain = _pair(cls, **kw)
    fused.double().train()
    plain.double().train()
    x = _input(cls, kw, extra)
    xf, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(1)
    yf = fused(xf)
    torch.manual_seed(1)
    yp = plain(xp)
    torch.testing.assert_close(yf, yp, rtol=1e-10, atol=1e-12)
    w = torch.randn_like(yf)
    (yf * w).sum().backward()
    (yp * w).sum().backward()
    torch.testing.assert_close(xf.grad, xp.grad, rtol=1e-9, atol=1e-11)
    for (name, pf), pp in zip(fused.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(pf.grad, pp.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_fused_models_use_lightdl_layers():
    from lightdl import nn as lnn

    kinds = {type(m) for m in MLP(8, 3, fused=True).modules()}
    assert lnn.FusedLinear in kinds and nn.ReLU not in kinds
    assert lnn.FusedLinear not in {type(m) for m in MLP(8, 3, fused=False).modules()}


def test_state_dict_of_a_torch_model_loads_into_the_fused_model():
    plain = CNN1d(2, 4, fused=False).eval()
    fused = CNN1d(2, 4, fused=True).eval()
    fused.load_state_dict(plain.state_dict())
    x = signal((3, 2, 50))
    torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-6)


def test_output_shapes():
    assert MLP((1, 8, 8), 10)(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert CNN1d((1, 60), 2)(torch.randn(4, 1, 60)).shape == (4, 2)
    assert CNN1d(1, 2)(torch.randn(4, 60)).shape == (4, 2)  # channel dim added
    assert CNN2d((1, 28, 28), 10, channels=[6, 16], kernel_size=5)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert RNNClassifier(3, 5, output="sequence")(torch.randn(2, 3, 7)).shape == (2, 7, 5)
    assert RNNClassifier(3, 5, bidirectional=True)(torch.randn(2, 3, 7)).shape == (2, 5)
    assert Perceptron(2)(torch.randn(4, 2)).shape == (4,)
    assert MLP(4, 2)(torch.randn(0, 4)).shape == (0, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("output", ["last", "mean", "sequence"])
def test_rnn_lengths_ignore_the_padding(cell, output):
    """A padded series with its length gives what the series alone gives."""
    model = RNNClassifier(2, 3, cell=cell, hidden_size=8, num_layers=2, bidirectional=True,
                          output=output).double().eval()
    lengths = torch.tensor([9, 4, 6])
    x = signal((3, 2, 9), torch.float64)
    for i, n in enumerate(lengths.tolist()):
        x[i, :, n:] = torch.randn(2, 9 - n, dtype=torch.float64) * 100  # junk, not zeros
    out = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i : i + 1, :, :n])
        if output == "sequence":
            torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-9, atol=1e-10)
        else:
            torch.testing.assert_close(out[i], alone[0], rtol=1e-9, atol=1e-10)


def test_cnn1d_lengths_pool_only_valid_steps():
    model = CNN1d(1, 2, channels=[4], kernel_sizes=[3], norm="none", pool="none").double().eval()
    x = signal((2, 1, 30), torch.float64)
    full = model(x, torch.tensor([30, 30]))
    torch.testing.assert_close(full, model(x))  # all valid: plain global pooling
    short = model(x, torch.tensor([30, 10]))
    assert not torch.allclose(short[1], full[1])
    torch.testing.assert_close(short[0], full[0])


def test_init_schemes():
    for scheme in ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
        m = MLP(32, 4, hidden=[64], init=scheme)
        assert all(float(layer.linear.bias.detach().abs().sum()) == 0 for layer in m.hidden)
    torch.manual_seed(0)
    a = MLP(32, 4, hidden=[64], init="default").hidden[0].linear.weight.std()
    torch.manual_seed(0)
    b = MLP(32, 4, hidden=[64], init="kaiming_normal").hidden[0].linear.weight.std()
    assert abs(float(b) - (2 / 32) ** 0.5) < 0.05 and abs(float(a) - float(b)) > 0.05
    rnn = RNNClassifier(3, 2, hidden_size=16, init="xavier_uniform")
    w_hh = rnn.rnn.weight_hh_l0.detach()  # (4H, H), orthogonal: orthonormal columns
    torch.testing.assert_close(w_hh.t() @ w_hh, torch.eye(16), rtol=0, atol=1e-5)
    assert float(rnn.rnn.bias_ih_l0.detach().abs().sum()) == 0
    with pytest.raises(ValueError, match="init must be one of"):
        init_weights(MLP(2, 2), "he")


def test_perceptron_rule_learns_and_or_but_not_xor():
    x = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    targets = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}
    for gate, t in targets.items():
        for act in ("step", "sign"):
            p = Perceptron(2, act=act)
            y = torch.tensor(t)
            errors = [p.rosenblatt_step(x, y, lr=0.1) for _ in range(50)]
            correct = int((p.predict_class(x) == y).sum())
            if gate == "xor":
                assert correct <= 3 and min(errors) > 0, (act, errors)
            else:
                assert correct == 4 and errors[-1] == 0, (gate, act, errors)


def test_perceptron_textbook_weights():
    p = Perceptron(2, fused=False)
    with torch.no_grad():
        p.weight.copy_(torch.tensor([[0.5, 0.5]]))
        p.bias.fill_(-0.8)
    x = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    assert p(x).tolist() == [0, 0, 0, 1]  # AND
    with torch.no_grad():
        p.bias.fill_(-0.3)
    assert p(x).tolist() == [0, 1, 1, 1]  # OR


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: MLP(4, 2, dropout=1.5), "dropout"),
        (lambda: MLP((1, None), 2), "variable length"),
        (lambda: CNN1d(1, 2, preset="resnet"), "preset"),
        (lambda: CNN1d(1, 2, channels=[4, 8], kernel_sizes=[3]), "same, non-zero number"),
        (lambda: CNN1d(1, 2, strides=[1, 2]), "one value per block"),
        (lambda: CNN1d(1, 2, pool="median"), "pool"),
        (lambda: CNN2d((8, 8), 2), r"\(C, H, W\)"),
        (lambda: CNN2d((1, 8, 8), 2, kernel_size=4), "odd"),
        (lambda: RNNClassifier(1, 2, cell="rnn"), "lstm' or 'gru"),
        (lambda: RNNClassifier(1, 2, output="first"), "output"),
        (lambda: Perceptron(2, num_classes=3), "2 classes"),
        (lambda: Perceptron(2, act="relu"), "step"),
        (lambda: MLP(0, 2), "input_shape"),
    ],
)
def test_bad_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_packed_sequence_matches_lengths_in_torch_reference():
    """RNNClassifier(fused=False) with lengths equals running nn.LSTM on the packed batch."""
    model = RNNClassifier(2, 3, hidden_size=5, fused=False).double().eval()
    x = signal((3, 2, 8), torch.float64)
    lengths = torch.tensor([8, 3, 5])
    packed = pack_padded_sequence(x.transpose(1, 2), lengths, batch_first=True, enforce_sorted=False)
    _, (h, _) = model.rnn(packed)
    torch.testing.assert_close(model(x, lengths), model.head(h[-1]))
