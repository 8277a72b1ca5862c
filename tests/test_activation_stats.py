"""ActivationStats: which modules it watches, its statistics against a direct computation,
and inside real fits (dead units forced, fused and torch.nn variants agreeing)."""

from __future__ import annotations

import json
from functools import partial

import lightning as L
import pytest
import torch

from lightdl.data import DigitsDataModule
from lightdl.models import MLP, CNN1d, RNNClassifier
from lightdl.training import ActivationStats, Classifier, RunArtifacts
from lightdl.training.activation_stats import LayerStats, activation_points

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False)


@pytest.mark.parametrize("fused", [True, False])
def test_points_are_the_activations_of_each_layer(fused):
    mlp = MLP(64, 10, hidden=[16, 8], act="tanh", fused=fused)
    points = activation_points(mlp)
    assert [(p.name, p.act, p.features_last) for p in points] == [
        ("hidden.0", "tanh", True), ("hidden.1", "tanh", True)]  # not the head (identity)
    x = torch.randn(5, 64)
    seen = {}
    hooks = [p.module.register_forward_hook(
        lambda m, i, o, n=p.name: seen.__setitem__(n, o)) for p in points]
    mlp(x)
    for h in hooks:
        h.remove()
    # What the hook sees is after the activation: tanh of the layer's linear map.
    lin = mlp.hidden[0].linear
    want = torch.tanh(torch.nn.functional.linear(x, lin.weight, lin.bias))
    torch.testing.assert_close(seen["hidden.0"], want)

    cnn = CNN1d(1, 2, fused=fused)
    acts = [(p.act, p.features_last) for p in activation_points(cnn)]
    assert acts == [("relu", False)] * len(cnn.blocks), acts


def test_a_recurrent_model_has_nothing_to_watch(tmp_path):
    assert activation_points(RNNClassifier(1, 2, hidden_size=4)) == []
    cb = ActivationStats()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                        default_root_dir=tmp_path, **QUIET)
    with pytest.warns(UserWarning, match="no activation layers"):
        cb.on_fit_start(trainer, Classifier(RNNClassifier(1, 2, hidden_size=4), num_classes=2))


def direct(ys: list[torch.Tensor], act: str, unit_dim: int) -> dict[str, float]:
    """The statistics computed in float64 from the whole tensors, the textbook way."""
    flat = torch.cat([y.double().flatten() for y in ys])
    out = {"mean": flat.mean().item(), "std": flat.std(unbiased=False).item()}
    if act in ("relu", "leaky_relu"):
        out["flat"] = (flat <= 0).double().mean().item()
    elif act == "sigmoid":
        out["flat"] = (flat * (1 - flat) < 0.05 / 4).double().mean().item()
    elif act == "tanh":
        out["flat"] = (1 - flat**2 < 0.05).double().mean().item()
    if act == "relu":
        per_unit = torch.cat([y.movedim(unit_dim, -1).reshape(-1, y.shape[unit_dim])
                              for y in ys])
        out["dead"] = (per_unit <= 0).all(0).double().mean().item()
    return out


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
@pytest.mark.parametrize("features_last", [True, False])
def test_layer_stats_match_a_direct_computation(act, features_last):
    f = {"relu": torch.relu, "leaky_relu": torch.nn.functional.leaky_relu,
         "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu}[act]
    unit_dim = 2 if features_last else 1
    ys = []
    for b in (6, 3):
        pre = 3 * torch.randn(b, 7, 9) + 0.5
        pre.select(unit_dim, 2).fill_(-50.0)  # one unit always off: a dead ReLU
        ys.append(f(pre))
    stats = LayerStats(act, 0.01, features_last)
    for y in ys:
        stats.add(y)
    stats.add(ys[0][:0])  # an empty batch adds nothing
    got, want = stats.summary(), direct(ys, act, unit_dim)
    assert got["act"] == act and set(got) - {"act"} == set(want), (got, want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    if act == "relu":
        assert got["dead"] >= 1 / ys[0].shape[unit_dim]
    if act in ("sigmoid", "tanh", "relu"):
        assert 0 < got["flat"] < 1  # neither bound: the test would pass for a constant


def test_the_histogram_sample_covers_every_unit():
    # 64 units, a stride of 2 would keep only the even ones
    y = torch.arange(64.0).repeat(64, 1)
    stats = LayerStats("identity", sample_size=2048)
    stats.add(y)
    assert set(stats.values().tolist()) == set(range(64))


def fit(model: MLP, callbacks: list, epochs: int, root) -> Classifier:
    L.seed_everything(0)
    task = Classifier(model, num_classes=10, optimizer=partial(torch.optim.Adam, lr=0.003))
    trainer = L.Trainer(max_epochs=epochs, callbacks=callbacks, default_root_dir=root,
                        limit_train_batches=6, limit_val_batches=2, **QUIET)
    trainer.fit(task, DigitsDataModule(batch_size=32, flatten=True))
    return task


def test_in_a_fit_dead_units_are_found_and_both_variants_agree(tmp_path):
    inits = {}
    for fused in (True, False):
        torch.manual_seed(0)
        model = MLP(64, 10, hidden=[32, 16], act="relu", fused=fused)
        with torch.no_grad():  # 4 units can never turn on: dead, and no gradient revives them
            model.hidden[0].linear.bias[:4] = -1e4
        stats, artifacts = ActivationStats(batches=2), RunArtifacts()
        root = tmp_path / str(fused)
        fit(model, [stats, artifacts], 3, root)
        assert [h["epoch"] for h in stats.history] == [0, 1, 2]
        last = artifacts.history[-1]
        assert {"act_flat/hidden.0", "act_dead/hidden.0", "act_dead/hidden.1"} <= set(last)
        assert last["act_dead/hidden.0"] >= 4 / 32 and last["act_flat/hidden.0"] >= 4 / 32
        assert all(not p.module._forward_hooks for p in activation_points(model))
        data = json.loads((root / "activation_stats.json").read_text())
        assert list(data["init"]) == ["hidden.0", "hidden.1"]
        assert len(data["epochs"]) == 3
        assert (root / "activation_stats.png").is_file()
        inits[fused] = data["init"]
    # The same seed gives both variants the same weights and first batch.
    for name, s in inits[True].items():
        for k in ("mean", "std", "flat", "dead"):
            assert s[k] == pytest.approx(inits[False][name][k], abs=1e-5), (name, k)


def test_state_survives_a_checkpoint_and_bad_arguments_are_refused(tmp_path):
    stats = ActivationStats(batches=1)
    fit(MLP(64, 10, hidden=[8], act="sigmoid"), [stats], 1, tmp_path)
    again = ActivationStats()
    again.load_state_dict(stats.state_dict())
    assert again.history == stats.history and again.init["layers"] == stats.init["layers"]
    assert set(again.last_values) == {"hidden.0"}
    with pytest.raises(ValueError, match="batches must be >= 1"):
        ActivationStats(batches=0)
