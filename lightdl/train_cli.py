"""`lightdl fit | validate | test | predict`: Lightning's LightningCLI, set up for lightdl.

Every run is a YAML file in configs/ (`--config`), and every Trainer option is reachable
from it or the command line (`--trainer.devices 2 --trainer.strategy ddp`,
`--trainer.precision bf16-mixed`, loggers, callbacks). What lightdl adds:

- the data module's `num_classes`, `input_shape` and `class_names` flow into the model and
  the task (no need to repeat them in the config);
- a run directory per run, `<save_dir>/<config name>/version_N/`, with checkpoints (best and
  last), metrics.csv, the resolved config.yaml, learning_curves.png and, after testing,
  confusion_matrix.png and test_metrics.json;
- `fit` ends by testing the best checkpoint and printing a summary table;
- `--ckpt_path last` resumes the latest run of that config where it stopped;
- checkpoints are checked before use (missing, corrupt, or from another model: one clear
  error).
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only

from lightdl.config_errors import condense, is_jsonargparse_tree
from lightdl.training._task import drop_unknown_args
from lightdl.training.callbacks import PredictionWriter, RunArtifacts
from lightdl.training.checkpoints import check_checkpoint_fits, read_checkpoint

DEFAULT_RUN_NAME = "lightdl"

# Lightning 2.6 trips over its own deprecation in torch's pytree on every run: not actionable.
warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
# main() passes args on purpose when called from Python (tests, notebooks).
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")

TRAINER_DEFAULTS: dict[str, Any] = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": "runs", "name": DEFAULT_RUN_NAME},
    },
    "max_epochs": 10,
    "log_every_n_steps": 10,
}


class LightdlCLI(LightningCLI):
    """LightningCLI with lightdl's links, run directory, checkpoint checks and summary."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self._started = time.perf_counter()
        super().__init__(
            model_class=None,
            datamodule_class=None,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=SaveConfigCallback,
            save_config_kwargs={"overwrite": True},
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=0,
            # Errors come back as exceptions, condensed to one line by main().
            parser_kwargs={"prog": "lightdl", "default_env": False, "exit_on_error": False},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/loss",
            "checkpoint.mode": "min",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-epoch{epoch:02d}",
            "checkpoint.auto_insert_metric_name": False,
        })
        parser.add_lightning_class_args(RunArtifacts, "artifacts")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        # The data module knows the classes and the sample shape; models and tasks that take
        # these arguments get them (a target a class does not have is skipped).
        for src, dst in (
            ("data.num_classes", "model.init_args.num_classes"),
            ("data.class_names", "model.init_args.class_names"),
            ("data.num_classes", "model.init_args.model.init_args.num_classes"),
            ("data.input_shape", "model.init_args.model.init_args.input_shape"),
        ):
            parser.link_arguments(src, dst, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads the hyperparameters of --ckpt_path right after parsing; check the
        # file first so a corrupt or truncated one is one clear error, not an unpickling trace.
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if path and path not in ("best", "last", "hpc", "registry"):
            read_checkpoint(path)
            # ... and then merges them into the config, the model's config among them (kept for
            # load_task): the config's own model is put back before instantiation, so that a
            # checkpoint of another model is reported as one, not as the data's shapes not
            # fitting the checkpoint's model.
            model = self.config[sub].get("model")
            init = model.get("init_args") if hasattr(model, "get") else None
            self._config_model = copy.deepcopy(init.get("model")) if init is not None else None

    # -- run directory and resumption ------------------------------------------------
    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        logger = cfg.get("trainer", {}).get("logger")
        first = logger[0] if isinstance(logger, list) and logger else logger
        init = _init_args(first)
        if init is not None and init.get("name") == DEFAULT_RUN_NAME and cfg.get("config"):
            init["name"] = Path(str(cfg["config"][0])).stem  # runs/<config name>/version_N
        if self.subcommand == "fit" and cfg.get("ckpt_path") == "last" and init is not None:
            cfg["ckpt_path"], init["version"] = _latest_run(init.get("save_dir", "runs"),
                                                            init.get("name", DEFAULT_RUN_NAME))
        _drop_unknown_kwargs(cfg.get("model"))
        if getattr(self, "_config_model", None) is not None:
            cfg["model"]["init_args"]["model"] = self._config_model

    def _check_ckpt(self) -> None:
        path = self.config_init[self.subcommand].get("ckpt_path")
        if path and path not in ("best", "last", "hpc", "registry"):
            check_checkpoint_fits(path, self.model)

    def before_fit(self) -> None:
        self._check_ckpt()

    def before_validate(self) -> None:
        self._check_ckpt()

    def before_test(self) -> None:
        self._check_ckpt()

    def before_predict(self) -> None:
        self._check_ckpt()

    def after_fit(self) -> None:
        trainer = self.trainer
        if trainer.interrupted:
            return
        ckpt = trainer.checkpoint_callback
        best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
        # Rank 0's view on every rank: ranks that disagree on the path take different code
        # paths in trainer.test and wait for each other forever.
        best = trainer.strategy.broadcast(best, src=0)
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)
        self._summary(best)

    @rank_zero_only
    def _summary(self, best: str | None) -> None:
        trainer = self.trainer
        artifacts = next((c for c in trainer.callbacks if isinstance(c, RunArtifacts)), None)
        history = artifacts.history if artifacts else []
        test = artifacts.test_metrics if artifacts else {}
        ckpt = trainer.checkpoint_callback
        best_row = next((h for h in history if best and ckpt and ckpt.monitor in h
                         and abs(h[ckpt.monitor] - float(ckpt.best_model_score)) < 1e-12), None)
        names = sorted({k.split("/", 1)[1] for k in test} | {
            k.split("/", 1)[1] for k in (best_row or {}) if k.startswith("val/")})
        d = artifacts.dir if artifacts and artifacts.dir else Path(trainer.default_root_dir)
        lines = [
            "",
            f"lightdl fit: {type(self.model.model).__name__ if hasattr(self.model, 'model') else type(self.model).__name__}"
            f" finished {trainer.current_epoch} epoch(s) in {_duration(time.perf_counter() - self._started)}",
            f"  run directory    {d}",
            f"  best checkpoint  {best or '(none: nothing was monitored)'}"
            + (f"  (epoch {int(best_row['epoch'])})" if best_row else ""),
            "",
            f"  {'metric':<10} {'val (best)':>12} {'test':>12}",
        ]
        for n in names:
            v = best_row.get(f"val/{n}") if best_row else None
            t = test.get(f"test/{n}")
            lines.append(f"  {n:<10} {_num(v):>12} {_num(t):>12}")
        plots = sorted(p.name for p in d.glob("*.png"))  # the task's own plots too
        if plots:
            tables = ["metrics.csv"] + sorted(p.name for p in d.glob("*.json"))
            lines.append(f"\n  plots: {', '.join(plots)}; metrics: {', '.join(tables)}")
        print("\n".join(lines), flush=True)

    def after_predict(self) -> None:
        writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionWriter)), None)
        if writer is not None and writer.path is not None:
            rank_zero_only(print)(f"lightdl predict: wrote {writer.path}")


def _init_args(logger: Any) -> dict | None:
    if isinstance(logger, dict) or hasattr(logger, "get"):
        init = logger.get("init_args")
        return init if init is not None and hasattr(init, "get") else None
    return None


def _drop_unknown_kwargs(model_cfg: Any) -> None:
    """Checkpoints hand a task's hyperparameters back as keyword arguments (`dict_kwargs`):
    drop those its class does not take (checkpoints written before tasks filtered their
    hyperparameters hold the linked data.num_classes for a VAETask too)."""
    kwargs = model_cfg.get("dict_kwargs") if hasattr(model_cfg, "get") else None
    if kwargs and model_cfg.get("class_path"):
        drop_unknown_args(str(model_cfg["class_path"]), kwargs)


def _latest_run(save_dir: str, name: str) -> tuple[str, str]:
    """(path of last.ckpt, version folder) of the newest run that has one."""
    root = Path(save_dir) / name
    runs = sorted((p for p in root.glob("version_*") if (p / "checkpoints" / "last.ckpt").is_file()),
                  key=lambda p: int(p.name.split("_")[-1]) if p.name.split("_")[-1].isdigit() else -1)
    if not runs:
        raise FileNotFoundError(f"--ckpt_path last: no run to resume, {root}/version_*/checkpoints/"
                                "last.ckpt does not exist")
    return str(runs[-1] / "checkpoints" / "last.ckpt"), runs[-1].name


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m {s:02d}s" if m else f"{seconds:.1f}s"


def main(args: list[str]) -> int:
    """Run a training subcommand; a bad config raises ValueError with one readable line."""
    from jsonargparse import ArgumentError

    try:
        # From the console script, LightningCLI reads sys.argv itself (it warns if given both).
        LightdlCLI(args=None if args == sys.argv[1:] else args)
    except ArgumentError as exc:
        raise ValueError(condense(str(exc))) from None
    except (ValueError, TypeError) as exc:  # a constructor's own error, wrapped by jsonargparse
        if is_jsonargparse_tree(str(exc)):
            raise type(exc)(condense(str(exc))) from None
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
