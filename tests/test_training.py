"""LightningModules on real Trainers: losses, metrics, optimisers and schedulers, the
perceptron rule, many-to-many outputs, bf16-mixed with the fused ops, exact resumption."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightdl import nn as lnn
from lightdl.data import DigitsDataModule, LogicGatesDataModule
from lightdl.models import MLP, Perceptron, RNNClassifier
from lightdl.training import Classifier, PerceptronTask, Regressor
from lightdl.training.losses import classification_loss, regression_loss


def trainer(tmp_path, **kw) -> L.Trainer:
    args = dict(max_epochs=3, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False,
                default_root_dir=tmp_path)
    args.update(kw)
    return L.Trainer(**args)


def test_losses_match_torch():
    logits, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    ce = classification_loss("cross_entropy", 4, label_smoothing=0.1)
    torch.testing.assert_close(ce(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1))
    bce = classification_loss("bce", 4)
    torch.testing.assert_close(bce(logits, y), F.binary_cross_entropy_with_logits(
        logits, F.one_hot(y, 4).float()))
    one = classification_loss("bce", 1)
    yb = torch.randint(0, 2, (6,))
    torch.testing.assert_close(one(logits[:, :1], yb),
                               F.binary_cross_entropy_with_logits(logits[:, 0], yb.float()))
    p, t = torch.randn(9), torch.randn(9) * 3
    torch.testing.assert_close(regression_loss("smooth_l1", beta=0.5)(p, t),
                               F.smooth_l1_loss(p, t, beta=0.5))
    torch.testing.assert_close(regression_loss("l1")(p, t), (p - t).abs().mean())
    torch.testing.assert_close(regression_loss("mse")(p, t), ((p - t) ** 2).mean())
    with pytest.raises(ValueError, match="loss must be one of"):
        classification_loss("hinge", 2)
    with pytest.raises(ValueError, match="beta"):
        regression_loss("smooth_l1", beta=0)
    with pytest.raises(ValueError, match="class_weights"):
        classification_loss("cross_entropy", 3, class_weights=[1.0, 2.0])


@pytest.mark.parametrize(
    "optimizer, scheduler",
    [
        (functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True),
         functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)),
        (functools.partial(torch.optim.RMSprop, lr=0.01),
         functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=3)),
        (functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.01),
         functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0)),
    ],
)
def test_classifier_learns_with_each_optimizer_and_scheduler(tmp_path, optimizer, scheduler):
    dm = LogicGatesDataModule(gate="xor", repeats=25, batch_size=8)
    task = Classifier(MLP(2, 2, hidden=[8], act="tanh", init="xavier_uniform"),
                      num_classes=2, optimizer=optimizer, scheduler=scheduler)
    t = trainer(tmp_path, max_epochs=3)
    t.fit(task, dm)
    m = t.callback_metrics
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "val/auroc", "lr"):
        assert key in m, key
    if isinstance(scheduler.func, type) and scheduler.func is torch.optim.lr_scheduler.StepLR:
        assert float(m["lr"]) == pytest.approx(0.1 * 0.5**2)
    t.test(task, dm, verbose=False)
    assert task.test_confusion.shape == (2, 2) and int(task.test_confusion.sum()) == 100


def test_epoch_values_are_sample_weighted_means_seen_by_callbacks(tmp_path):
    # 37 validation rows in batches of 8 (the last one has 5): val/loss must be the mean over
    # the 37 samples, not over the 5 batch means, and val/acc the accuracy over all rows;
    # a callback's on_validation_epoch_end (run before the module's) must already see both.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(37, 4, generator=g), torch.randint(0, 3, (37,), generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=8)
    val = DataLoader(TensorDataset(x, y), batch_size=8)
    task = Classifier(MLP(4, 3, hidden=[5]), num_classes=3,
                      optimizer=functools.partial(torch.optim.SGD, lr=0.0))
    seen = []

    class Watch(L.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                seen.append({k: float(trainer.callback_metrics[k]) for k in ("val/loss", "val/acc")})

    t = trainer(tmp_path, max_epochs=2, callbacks=[Watch()])
    t.fit(task, train, val)
    with torch.no_grad():
        logits = task.model(x)
    loss = F.cross_entropy(logits, y).item()
    acc = (logits.argmax(1) == y).float().mean().item()
    assert len(seen) == 2
    for row in seen:
        assert row["val/loss"] == pytest.approx(loss, rel=1e-5)
        assert row["val/acc"] == pytest.approx(acc, rel=1e-6)
    # lr = 0: the weights never change, so the training epoch's mean equals it too.
    assert float(t.callback_metrics["train/loss"]) == pytest.approx(loss, rel=1e-5)


def test_classifier_reaches_high_accuracy_on_digits(tmp_path):
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=64, flatten=True)
    task = Classifier(MLP(64, 10, hidden=[64]),
                      optimizer=functools.partial(torch.optim.Adam, lr=3e-3))
    t = trainer(tmp_path, max_epochs=8)
    t.fit(task, dm)
    t.test(task, dm, verbose=False)
    assert float(t.callback_metrics["test/acc"]) > 0.9


def test_bce_single_logit_and_metrics(tmp_path):
    dm = LogicGatesDataModule(gate="or", repeats=10, batch_size=8)
    task = Classifier(MLP(2, 1, hidden=[]), loss="bce",  # logistic regression
                      optimizer=functools.partial(torch.optim.Adam, lr=0.2))
    assert task.num_classes == 2  # one logit, two classes for the metrics
    t = trainer(tmp_path, max_epochs=20)
    t.fit(task, dm)
    assert float(t.callback_metrics["val/acc"]) == 1.0


def test_many_to_many_with_lengths(tmp_path):
    torch.manual_seed(0)
    n, length = 64, 12
    x = torch.randn(n, 1, length)
    lengths = torch.randint(3, length + 1, (n,))
    y = (x[:, 0].cumsum(-1) > 0).long()  # per-step target: sign of the running sum
    ds = TensorDataset(x, lengths, y)
    task = Classifier(RNNClassifier(1, 2, hidden_size=16, output="sequence"),
                      optimizer=functools.partial(torch.optim.Adam, lr=0.02))
    loader = DataLoader(ds, batch_size=16)
    loss, probs, labels = task._step(next(iter(loader)))
    assert probs.shape == (int(lengths[:16].sum()), 2) and labels.shape == probs.shape[:1]
    t = trainer(tmp_path, max_epochs=15)
    t.fit(task, loader, loader)
    assert float(t.callback_metrics["val/acc"]) > 0.85


def test_regressor_learns_a_linear_map(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    task = Regressor(MLP(3, 1, hidden=[]), loss="smooth_l1", beta=0.5,
                     optimizer=functools.partial(torch.optim.Adam, lr=0.05))
    t = trainer(tmp_path, max_epochs=20)
    t.fit(task, loader, DataLoader(TensorDataset(x, y), batch_size=64))
    m = t.callback_metrics
    assert float(m["val/mae"]) < 0.05 and float(m["val/r2"]) > 0.99


def test_perceptron_task_learns_and_not_xor(tmp_path):
    for gate, expect in (("and", 1.0), ("or", 1.0), ("xor", None)):
        dm = LogicGatesDataModule(gate=gate, repeats=5, batch_size=4)
        task = PerceptronTask(Perceptron(2), lr=0.1)
        t = trainer(tmp_path, max_epochs=15)
        t.fit(task, dm)
        acc = float(t.callback_metrics["val/acc"])
        if expect:
            assert acc == expect and float(t.callback_metrics["train/errors"]) == 0
        else:
            assert acc <= 0.75 and float(t.callback_metrics["train/errors"]) > 0
        assert t.global_step == 15 * 5  # the no-op optimizer step counts every batch
    with pytest.raises(TypeError, match="Perceptron"):
        PerceptronTask(MLP(2, 2))


def test_bf16_mixed_runs_the_fused_kernels_in_bfloat16(tmp_path):
    dm = DigitsDataModule(batch_size=64, flatten=True)
    model = MLP(64, 10, hidden=[32])
    seen = []
    for m in model.modules():
        if isinstance(m, lnn.FusedLinear):
            m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    task = Classifier(model, optimizer=functools.partial(torch.optim.Adam, lr=3e-3))
    t = trainer(tmp_path, max_epochs=4, precision="bf16-mixed")
    t.fit(task, dm)
    assert seen and set(seen) == {torch.bfloat16}
    assert float(t.callback_metrics["val/acc"]) > 0.8


def test_checkpoint_from_another_model_is_a_clear_error(tmp_path):
    a = Classifier(MLP(4, 2, hidden=[8]))
    b = Classifier(MLP(4, 3, hidden=[8]))
    with pytest.raises(ValueError, match="does not match this model.*different shapes"):
        b.on_load_checkpoint({"state_dict": a.state_dict()})
