"""Fine-tuning: start from another run, head replaced, frozen backbone unchanged, backbone
joining later at a lower learning rate, incompatible checkpoints rejected."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from lightdl.cli import main
from lightdl.data import DigitsDataModule
from lightdl.models import MLP, CNN2d
from lightdl.training import Classifier

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _save(task: Classifier, path: Path) -> Path:
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_train_batches=2, limit_val_batches=1, default_root_dir=path.parent)
    trainer.fit(task, DigitsDataModule(batch_size=32, digits=[0, 1, 2, 3, 4]))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pre")
    return _save(Classifier(CNN2d((1, 8, 8), 5, channels=[4, 8], hidden=[16])), d / "pre.ckpt")


def test_head_replaced_backbone_loaded(pretrained):
    ckpt = torch.load(pretrained, weights_only=False)["state_dict"]  # our own file
    task = Classifier(CNN2d((1, 8, 8), 3, channels=[4, 8], hidden=[16]), init_from=str(pretrained))
    assert task.pretrained["head"] == "replaced"
    sd = task.model.state_dict()
    for k, v in sd.items():
        if k.startswith("head."):
            assert v.shape != ckpt["model." + k].shape or k.endswith("bias")
        else:
            torch.testing.assert_close(v, ckpt["model." + k])
    same = Classifier(CNN2d((1, 8, 8), 5, channels=[4, 8], hidden=[16]), init_from=str(pretrained))
    assert same.pretrained["head"] == "loaded"
    fresh = Classifier(CNN2d((1, 8, 8), 5, channels=[4, 8], hidden=[16]), init_from=str(pretrained),
                       backbone=["blocks"], reinit_head=True)
    assert fresh.pretrained["head"] == "replaced"
    assert not torch.equal(fresh.model.hidden[0].linear.weight, ckpt["model.hidden.0.linear.weight"])


def test_incompatible_checkpoint_is_a_clear_error(pretrained):
    with pytest.raises(ValueError, match="not compatible with this one in its backbone.*blocks"):
        Classifier(CNN2d((1, 8, 8), 5, channels=[6, 8], hidden=[16]), init_from=str(pretrained))
    with pytest.raises(ValueError, match="not compatible"):
        Classifier(MLP(64, 5), init_from=str(pretrained))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Classifier(MLP(64, 5), init_from="nowhere.ckpt")
    with pytest.raises(ValueError, match="children"):
        Classifier(MLP(64, 5), backbone=["trunk"], freeze="backbone")


def test_frozen_backbone_does_not_change_then_unfreezes_at_lower_lr(pretrained, tmp_path):
    task = Classifier(CNN2d((1, 8, 8), 5, channels=[4, 8], hidden=[16]), init_from=str(pretrained),
                      freeze="backbone", unfreeze_after=2, backbone_lr_ratio=0.25,
                      optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    seen = {}

    class Watch(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            sd = pl_module.model.state_dict()
            seen[trainer.current_epoch] = (
                all(torch.equal(sd[k], before[k]) for k in sd if not k.startswith("head.")),
                not torch.equal(sd["head.linear.weight"], before["head.linear.weight"]),
                [g["lr"] for g in trainer.optimizers[0].param_groups])

    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_train_batches=3, limit_val_batches=1, default_root_dir=tmp_path,
                        callbacks=[Watch()])
    trainer.fit(task, DigitsDataModule(batch_size=32, digits=[5, 6, 7, 8, 9]))
    assert seen[0][:2] == (True, True) and seen[1][:2] == (True, True)
    assert seen[2][0] is False  # the backbone trains from epoch 2
    assert seen[2][2] == pytest.approx([0.1, 0.025])


def test_finetune_configs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs", "2", *QUIET]
    assert main(["fit", "--config", str(CONFIGS / "digits_cnn_0to4.yaml"), *short]) == 0
    assert main(["fit", "--config", str(CONFIGS / "digits_cnn_finetune.yaml"), *short]) == 0
    out = json.loads(next(tmp_path.glob("runs/digits_cnn_finetune/*/test_metrics.json")).read_text())
    assert 0 <= out["test/acc"] <= 1
    assert main(["fit", "--config", str(CONFIGS / "digits_vae.yaml"),
                 "--trainer.fast_dev_run", "true", *QUIET]) == 0
