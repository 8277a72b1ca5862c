"""load_task / load_datamodule: a run `lightdl fit` trained, back in Python from its
checkpoint alone, computing what the fit's closing test measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightdl.cli import main
from lightdl.models import MLP, VAE
from lightdl.training import Classifier, load_datamodule, load_task

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_a_fitted_run_loads_and_reproduces_its_test_accuracy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(CONFIGS / "digits_mlp.yaml"), "--trainer.max_epochs",
                 "2", "--model.init_args.model.init_args.hidden", "[24]", *QUIET]) == 0
    run = tmp_path / "runs" / "digits_mlp" / "version_0"
    want = json.loads((run / "test_metrics.json").read_text())["test/acc"]

    task = load_task(tmp_path / "runs" / "digits_mlp")  # the newest run's best checkpoint
    assert isinstance(task, Classifier) and isinstance(task.model, MLP) and not task.training
    assert task.model.hidden[0].linear.out_features == 24  # the config's size, not MLP's default
    dm = load_datamodule(run)
    assert dm.hparams["flatten"] is True
    dm.setup("test")
    right = total = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            right += int((task(x).argmax(1) == y).sum())
            total += len(y)
    assert right / total == pytest.approx(want, abs=1e-6)


def test_a_vae_run_loads(tmp_path, monkeypatch):
    # Its task takes no num_classes, which the CLI links into every task's config.
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(CONFIGS / "digits_vae.yaml"), "--trainer.max_epochs",
                 "1", *QUIET]) == 0
    task = load_task(next((tmp_path / "runs" / "digits_vae").glob("version_0")))
    assert isinstance(task.model, VAE)
    assert task.model.decode(torch.randn(3, task.model.latent_dim)).shape[0] == 3


def test_what_cannot_be_loaded_says_why(tmp_path):
    import lightning as L

    task = Classifier(MLP(4, 2, hidden=[3]), num_classes=2)  # built in Python, not by the CLI
    assert "model" not in task.hparams  # a model object is not pickled into the hparams
    trainer = L.Trainer(max_epochs=0, logger=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    path = tmp_path / "python.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(ValueError, match="does not say how to build its model"):
        load_task(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        load_task(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task(tmp_path / "none.ckpt")
