"""L1Penalty (L1 weight regularisation) and GradientNorms (vanishing/exploding gradients):
the gradient each adds or measures against autograd, then inside real fits."""

from __future__ import annotations

import csv
from functools import partial

import lightning as L
import pytest
import torch

from lightdl.data import DigitsDataModule
from lightdl.models import MLP
from lightdl.training import Classifier, GradientNorms, L1Penalty, RunArtifacts

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False)


def task_and_batch(seed: int) -> tuple[Classifier, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    task = Classifier(MLP(16, 3, hidden=[8, 8], act="tanh"), num_classes=3)
    return task, (torch.randn(10, 16), torch.randint(0, 3, (10,)))


def grads(task: Classifier, batch, extra=None) -> dict[str, torch.Tensor]:
    task.zero_grad()
    loss = task._step(batch)[0]
    (loss + (extra(task) if extra else 0)).backward()
    return {n: p.grad.clone() for n, p in task.named_parameters()}


@pytest.mark.parametrize("include_biases", [False, True])
def test_l1_adds_the_gradient_of_the_penalty(include_biases):
    task, batch = task_and_batch(int(torch.randint(0, 2**31, ())))
    strength = 0.01

    def penalty(t: Classifier) -> torch.Tensor:
        return strength * sum(p.abs().sum() for p in t.parameters()
                              if include_biases or p.dim() >= 2)

    want = grads(task, batch, penalty)
    grads(task, batch)
    L1Penalty(strength, include_biases).on_before_optimizer_step(None, task, None)
    for n, p in task.named_parameters():
        torch.testing.assert_close(p.grad, want[n], msg=n)
    plain = grads(task, batch)
    assert not torch.allclose(want["model.hidden.0.linear.weight"],
                              plain["model.hidden.0.linear.weight"])
    assert torch.equal(want["model.hidden.0.linear.bias"],
                       plain["model.hidden.0.linear.bias"]) is not include_biases


def test_l1_rejects_a_negative_strength():
    with pytest.raises(ValueError, match="strength must be >= 0"):
        L1Penalty(-1.0)


def fit(callbacks, epochs: int, model: MLP, lr: float = 0.002, optimizer=torch.optim.Adam,
        root=None) -> tuple[L.Trainer, Classifier]:
    L.seed_everything(0)
    dm = DigitsDataModule(batch_size=64, flatten=True)
    task = Classifier(model, num_classes=10, optimizer=partial(optimizer, lr=lr))
    trainer = L.Trainer(max_epochs=epochs, callbacks=callbacks, default_root_dir=root, **QUIET)
    trainer.fit(task, dm)
    return trainer, task


def test_l1_drives_weights_to_zero_and_logs_it(tmp_path):
    shares = {}
    for strength in (0.0, 1e-3):
        artifacts = RunArtifacts()
        fit([L1Penalty(strength), artifacts], 6, MLP(64, 10, hidden=[64]), root=tmp_path)
        last = artifacts.history[-1]
        assert {"train/l1_penalty", "train/small_weights"} <= set(last), last
        shares[strength] = last["train/small_weights"]
        assert (last["train/l1_penalty"] > 0) is (strength > 0)
    # Measured 0.003 without and 0.20 with (digits_mlp, 15 epochs); 6 epochs of a smaller MLP
    # here.
    assert shares[1e-3] > 5 * shares[0.0] + 0.02, shares


def test_gradient_norms_are_the_gradients_norms():
    task, batch = task_and_batch(int(torch.randint(0, 2**31, ())))
    want = grads(task, batch)
    cb = GradientNorms()
    cb.on_before_optimizer_step(None, task, None)
    assert set(cb._sums) == {n for n, p in task.named_parameters() if p.dim() >= 2}
    for n, v in cb._sums.items():
        torch.testing.assert_close(v, want[n].norm())


def test_gradient_norms_show_vanishing_gradients(tmp_path):
    """8 sigmoid layers, SGD (configs/digits_mlp_deep.yaml, shorter): the first layer's
    gradient is orders of magnitude below the head's; with ReLU and He init it is not."""
    ratios = {}
    for act, init in (("sigmoid", "xavier_uniform"), ("relu", "kaiming_uniform")):
        norms = GradientNorms()
        artifacts = RunArtifacts()
        model = MLP(64, 10, hidden=[64] * 8, act=act, init=init)
        trainer, _ = fit([norms, artifacts], 2, model, lr=0.02,
                         optimizer=partial(torch.optim.SGD, momentum=0.9), root=tmp_path)
        last = norms.history[-1]
        assert len([k for k in last if k.startswith("grad_norm/")]) == 9
        ratios[act] = last["grad_norm/hidden.0.linear.weight"] / last["grad_norm/head.linear.weight"]
        # Logged like the tasks' metrics: RunArtifacts' rows (metrics.csv) have them.
        assert "grad_norm/hidden.0.linear.weight" in artifacts.history[-1]
        assert (tmp_path / "gradient_norms.png").is_file()
        assert norms.state_dict()["history"] == norms.history
    assert ratios["sigmoid"] < 1e-3 and ratios["relu"] > 1e-2, ratios


def test_cli_deep_mlp_config_writes_gradient_norms_and_activation_stats(tmp_path, monkeypatch):
    from pathlib import Path

    from lightdl.cli import main

    config = Path(__file__).resolve().parent.parent / "configs" / "digits_mlp_deep.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(config), "--trainer.max_epochs", "1",
                 "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false"]) == 0
    d = tmp_path / "runs" / "digits_mlp_deep" / "version_0"
    assert (d / "gradient_norms.png").is_file() and (d / "activation_stats.png").is_file()
    with open(d / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert {"grad_norm/hidden.0.linear.weight", "act_flat/hidden.7"} <= set(header)
