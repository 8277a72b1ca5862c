"""`lightdl fit|validate|test|predict` end to end in temporary directories: every config,
the accuracy the course promises, run directories, resumption, DDP, bf16, loggers, and
the errors people meet (bad config, corrupt or foreign checkpoint)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightdl.cli import main
from lightdl.data import DigitsDataModule

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def cfg(name: str) -> str:
    return str(CONFIGS / f"{name}.yaml")


def run(args: list[str]) -> int:
    return main([*args, *QUIET])


def write_ucr(root: Path, name: str = "Toy") -> None:
    """A small two-class .ts pair: sines vs. squares with noise."""
    gen = torch.Generator().manual_seed(0)

    def body(n: int) -> str:
        rows = []
        for i in range(n):
            t = torch.linspace(0, 6.28, 40)
            s = torch.sin(t) if i % 2 == 0 else torch.sign(torch.sin(t))
            s = s + 0.1 * torch.randn(40, generator=gen)
            rows.append(",".join(f"{v:.4f}" for v in s.tolist()) + f":{'ab'[i % 2]}")
        return "\n".join(rows) + "\n"

    head = (f"@problemName {name}\n@timeStamps false\n@univariate true\n@equalLength true\n"
            "@seriesLength 40\n@classLabel true a b\n@data\n")
    (root / name).mkdir(parents=True)
    (root / name / f"{name}_TRAIN.ts").write_text(head + body(40))
    (root / name / f"{name}_TEST.ts").write_text(head + body(20))


ALL_CONFIGS = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def test_every_config_is_tested():
    assert {"af_mlp", "af_cnn", "af_lstm", "gait_cnn", "gait_lstm", "digits_mlp", "digits_cnn",
            "gates_perceptron", "gates_mlp", "ucr_fcn", "digits_vae", "af_generator"
            } <= set(ALL_CONFIGS)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_config_runs_fast_dev_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = []
    if name == "ucr_fcn":
        write_ucr(tmp_path / "data")
        extra = ["--data.init_args.root", "data", "--data.init_args.name", "Toy"]
    if name == "digits_cnn_finetune":  # its init_from run is made in test_finetune.py
        extra = ["--model.init_args.init_from", "null"]
    if name.startswith(("af_", "gait_")):  # fewer synthetic records: the shape is what counts
        key = "n_records" if name.startswith("af_") else "subjects_per_class"
        extra = [f"--data.init_args.{key}", "12"]
    assert run(["fit", "--config", cfg(name), "--trainer.fast_dev_run", "true", *extra]) == 0
    assert not (tmp_path / "runs").exists()  # fast_dev_run writes nothing, like Lightning


def test_digits_cnn_full_run_and_the_other_subcommands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("digits_cnn")]) == 0
    out = capsys.readouterr().out
    d = tmp_path / "runs" / "digits_cnn" / "version_0"
    assert "run directory    runs/digits_cnn/version_0" in out and "test" in out
    for f in ("metrics.csv", "config.yaml", "learning_curves.png", "confusion_matrix.png",
              "test_metrics.json", "checkpoints/last.ckpt"):
        assert (d / f).is_file(), f
    best = list((d / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1
    metrics = json.loads((d / "test_metrics.json").read_text())
    assert metrics["test/acc"] >= 0.95, metrics
    # The resolved config re-runs as is.
    assert "class_path: lightdl.models.CNN2d" in (d / "config.yaml").read_text()

    for sub in ("validate", "test"):
        assert run([sub, "--config", cfg("digits_cnn"), "--ckpt_path", str(best[0])]) == 0
    assert run(["predict", "--config", cfg("digits_cnn"), "--ckpt_path", str(best[0])]) == 0
    assert "predictions.csv" in capsys.readouterr().out
    preds = sorted((tmp_path / "runs" / "digits_cnn").glob("version_*/predictions.csv"))
    lines = preds[-1].read_text().splitlines()
    dm = DigitsDataModule()
    dm.setup()
    assert lines[0].startswith("index,pred,target,p_0") and len(lines) == 1 + len(dm.test_dataset)

    # A checkpoint of another model, a corrupt one, a truncated one: one clear line each.
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(best[0].read_bytes()[:2000])
    for path, message in ((best[0], "does not match this model"), (bad, "corrupt"),
                          (trunc, "corrupt"), (tmp_path / "none.ckpt", "does not exist")):
        capsys.readouterr()
        assert run(["test", "--config", cfg("digits_mlp"), "--ckpt_path", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lightdl: error:") and message in err[0], err


def test_predict_from_a_task_without_num_classes(tmp_path, monkeypatch, capsys):
    """Lightning stores the linked data.num_classes in every task's hyperparameters, also
    in a VAETask's, which takes no such argument: predict from its checkpoint used to fail
    with "unexpected keyword argument 'num_classes'", then on its vector predictions. Tasks
    now drop it when saving; checkpoints written before still predict."""
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("digits_vae"), "--trainer.max_epochs", "1"]) == 0
    ckpt = tmp_path / "runs" / "digits_vae" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert "num_classes" not in state["hyper_parameters"]
    old = tmp_path / "old.ckpt"  # as lightdl wrote it before
    state["hyper_parameters"]["num_classes"] = 10
    torch.save(state, old)
    dm = DigitsDataModule()
    dm.setup()
    for path in (ckpt, old):
        assert run(["predict", "--config", cfg("digits_vae"), "--ckpt_path", str(path)]) == 0
        csv = sorted((tmp_path / "runs" / "digits_vae").glob("version_*/predictions.csv"))[-1]
        lines = csv.read_text().splitlines()
        assert lines[0] == "index,pred_0,pred_1,target" and len(lines) == 1 + len(dm.test_dataset)


def test_gates_mlp_learns_xor_and_the_perceptron_cannot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("gates_mlp")]) == 0
    acc = json.loads(next(tmp_path.glob("runs/gates_mlp/*/test_metrics.json")).read_text())
    assert acc["test/acc"] == 1.0
    for gate in ("xor", "and", "or"):
        assert run(["fit", "--config", cfg("gates_perceptron"), "--data.init_args.gate", gate]) == 0
    results = [json.loads(p.read_text())["test/acc"]
               for p in sorted(tmp_path.glob("runs/gates_perceptron/version_*/test_metrics.json"))]
    assert results[0] <= 0.75 and results[1:] == [1.0, 1.0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.init_args.model.init_args.hiden", "[8]"],
         "unknown config key 'model.init_args.model.init_args.hiden' (lightdl.models.MLP"),
        (["--model.init_args.model.init_args.dropout", "lots"],
         "config key 'model.init_args.model.init_args.dropout' (lightdl.models.MLP): expected float"),
        (["--trainer.max_epochs", "many"], "config key 'trainer.max_epochs': expected int"),
        (["--data.init_args.gate", "nand"], "gate must be one of"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("gates_mlp"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bad_key_in_a_yaml_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = Path(cfg("gates_mlp")).read_text().replace("act: tanh", "activation: tanh")
    (tmp_path / "bad.yaml").write_text(text)
    assert run(["fit", "--config", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'model.init_args.model.init_args.activation'" in err


def test_loggers_csv_tensorboard_and_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    loggers = tmp_path / "loggers.yaml"
    loggers.write_text(
        "trainer:\n  max_epochs: 2\n  logger:\n"
        "    - class_path: lightning.pytorch.loggers.CSVLogger\n"
        "      init_args: {save_dir: runs, name: xor}\n"
        "    - class_path: lightning.pytorch.loggers.TensorBoardLogger\n"
        "      init_args: {save_dir: runs, name: xor_tb}\n"
        "    - class_path: lightning.pytorch.loggers.WandbLogger\n"
        "      init_args: {save_dir: runs, project: lightdl-test, offline: true}\n")
    assert run(["fit", "--config", cfg("gates_mlp"), "--config", str(loggers)]) == 0
    assert (tmp_path / "runs/xor/version_0/metrics.csv").is_file()
    assert list((tmp_path / "runs/xor_tb").rglob("events.out.tfevents.*"))
    assert list((tmp_path / "runs/wandb").glob("offline-run-*"))


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_killed_mid_epoch_and_resumed_ends_with_the_same_weights(tmp_path, monkeypatch):
    """digits_mlp with dropout, 2 epochs of 20 batches, a checkpoint every 4 steps; one run is
    SIGKILLed at step 26 (mid-epoch 2, last checkpoint at step 24) and resumed with
    --ckpt_path last. Its final weights equal the uninterrupted run's bit for bit."""
    monkeypatch.chdir(tmp_path)
    common = ["--config", cfg("digits_mlp"), "--trainer.max_epochs", "2",
              "--trainer.deterministic", "true", "--checkpoint.every_n_train_steps", "4",
              "--model.init_args.model.init_args.dropout", "0.3"]
    assert run(["fit", *common, "--trainer.logger.init_args.save_dir", "straight"]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-m", "lightdl.cli", "fit", *common, *QUIET,
         "--trainer.callbacks+=tests.callbacks.KillAtStep", "--trainer.callbacks.step", "26"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    last = tmp_path / "runs/digits_mlp/version_0/checkpoints/last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 24
    assert run(["fit", *common, "--ckpt_path", "last"]) == 0
    assert not (tmp_path / "runs/digits_mlp/version_1").exists()  # resumed into the same run
    straight = tmp_path / "straight/digits_mlp/version_0/checkpoints/last.ckpt"
    for ckpt in (straight, last):
        assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 40
    a, b = _weights(straight), _weights(last)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_without_a_previous_run_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("gates_mlp"), "--ckpt_path", "last"]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_ddp_two_processes_on_cpu_train_and_agree(tmp_path):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "lightdl.cli", "fit", "--config", cfg("gates_mlp"), *QUIET,
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--trainer.max_epochs", "3",
         "--trainer.callbacks+=tests.callbacks.RankChecksum", "--trainer.callbacks.path", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world_size"] == 2
    # 100 samples, batch 16: each rank gets 50 (DistributedSampler) = 4 steps per epoch.
    assert result["global_step"] == 3 * 4
    w0, w1 = result["weights"]
    assert w0 == w1
    assert "lightdl fit: MLP finished 3 epoch(s)" in proc.stdout


def test_sync_batchnorm_with_fused_batchnorm_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = run(["fit", "--config", cfg("af_cnn"), *QUIET, "--trainer.accelerator", "cpu",
                    "--trainer.devices", "1", "--trainer.strategy", "ddp",
                    "--trainer.sync_batchnorm", "true", "--trainer.max_epochs", "1"])
    finally:  # the DDP strategy initialised a process group: later tests must not see it
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert code == 2
    assert "sync_batchnorm=True would turn the model's FusedBatchNorm1d" in capsys.readouterr().err


def test_bf16_mixed_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(["fit", "--config", cfg("digits_mlp"), "--trainer.precision", "bf16-mixed",
                "--trainer.max_epochs", "3"]) == 0
    acc = json.loads(next(tmp_path.glob("runs/digits_mlp/*/test_metrics.json")).read_text())
    assert acc["test/acc"] > 0.85
