"""Reading checkpoints with errors people can act on, and loading a trained task from one."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from lightdl.training._task import check_state_dict


def read_checkpoint(path: str | Path) -> dict:
    """Load a Lightning checkpoint on the CPU, or raise one clear error: missing file,
    unreadable (corrupt or truncated) file, or a file that is not a Lightning checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, zip and EOF errors all mean the same to a user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {str(p)!r} cannot be read; the file is corrupt or "
                         f"truncated ({type(exc).__name__}: {reason[:160]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{str(p)!r} is not a Lightning checkpoint (it has no 'state_dict')")
    return ckpt


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (`runs/X` or `runs/X/version_N`): its newest run's
    best checkpoint, else its last.ckpt."""
    p = Path(path)
    if p.is_file() or not p.is_dir():
        return p
    versions = [p] if (p / "checkpoints").is_dir() else sorted(
        (v for v in p.glob("version_*") if (v / "checkpoints").is_dir()),
        key=lambda v: int(v.name.split("_")[-1]) if v.name.split("_")[-1].isdigit() else -1)
    for v in reversed(versions):
        best = sorted((v / "checkpoints").glob("best-*.ckpt"))
        if best:
            return best[-1]
        if (v / "checkpoints" / "last.ckpt").is_file():
            return v / "checkpoints" / "last.ckpt"
    raise FileNotFoundError(f"no checkpoint under {str(p)!r} (a run folder holds "
                            "checkpoints/best-*.ckpt or checkpoints/last.ckpt)")


def check_checkpoint_fits(path: str | Path, module: nn.Module) -> dict:
    """`read_checkpoint`, then check that its weights fit `module` (same names, shapes)."""
    ckpt = read_checkpoint(path)
    check_state_dict(module.state_dict(), ckpt["state_dict"], f"checkpoint {str(path)!r}")
    return ckpt


def load_task(path: str | Path, map_location: str | torch.device = "cpu") -> L.LightningModule:
    """The task `lightdl fit` trained, rebuilt from its checkpoint, in eval mode: `path` is a
    checkpoint, or a run folder (`runs/X/version_N`, or `runs/X` for its newest run) whose
    best checkpoint (else last.ckpt) is taken. The model is `task.model`, an ordinary
    nn.Module; `task(x)` gives its output (logits for a Classifier).

    The checkpoint holds the model's config (class, arguments, the sizes taken from the
    data), so neither the config file nor the data is needed. Load only checkpoints you
    trust: reading one runs the code it names. For a task built in Python
    with a model object, build the model again and call
    `Classifier.load_from_checkpoint(path, model=model)`.
    """
    ckpt_path = resolve_checkpoint(path)
    hparams = read_checkpoint(ckpt_path).get("hyper_parameters") or {}
    model = hparams.get("model")
    if not (isinstance(model, dict) and model.get("class_path")) or "_class_path" not in hparams:
        raise ValueError(
            f"checkpoint {str(ckpt_path)!r} does not say how to build its model (it was not "
            "written by `lightdl fit`, or by a lightdl older than load_task): build the model "
            "and load it with <Task>.load_from_checkpoint(path, model=model)")
    _import_modules(hparams["_class_path"], model["class_path"])
    task = L.LightningModule.load_from_checkpoint(ckpt_path, map_location=map_location)
    return task.eval()


def load_datamodule(path: str | Path) -> L.LightningDataModule:
    """The data module of the run that wrote the checkpoint at `path` (a checkpoint or a
    run folder, as for `load_task`), with the same arguments; `setup()` rebuilds its splits
    and normalisation from the same seed."""
    ckpt_path = resolve_checkpoint(path)
    hparams = read_checkpoint(ckpt_path).get("datamodule_hyper_parameters") or {}
    if "_class_path" not in hparams:
        raise ValueError(f"checkpoint {str(ckpt_path)!r} holds no data module configuration "
                         "(it was not written by `lightdl fit`)")
    _import_modules(hparams["_class_path"])
    return L.LightningDataModule.load_from_checkpoint(ckpt_path)


def _import_modules(*class_paths: str) -> None:
    """Import the modules defining the checkpoint's classes: Lightning instantiates only
    classes already imported (a guard against checkpoints naming arbitrary code; reading a
    checkpoint unpickles it anyway, so load only checkpoints you trust)."""
    import importlib

    for path in class_paths:
        module = str(path).rpartition(".")[0]
        if module:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ValueError(f"the checkpoint's class {path!r} cannot be imported: "
                                 f"{exc}") from None
