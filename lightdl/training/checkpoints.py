"""Reading checkpoints with errors people can act on."""

from __future__ import annotations

from pathlib import Path

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


def check_checkpoint_fits(path: str | Path, module: nn.Module) -> dict:
    """`read_checkpoint`, then check that its weights fit `module` (same names, shapes)."""
    ckpt = read_checkpoint(path)
    check_state_dict(module.state_dict(), ckpt["state_dict"], f"checkpoint {str(path)!r}")
    return ckpt
