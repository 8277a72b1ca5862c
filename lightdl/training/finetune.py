"""Starting a model from another run's checkpoint (transfer learning / fine-tuning).

The backbone (the model's children named in `backbone`, by default all but its `head`) must
match the checkpoint exactly; the rest is loaded when its shapes match and otherwise left
freshly initialised (a new task with another number of classes), or always fresh with
`reinit_head`. Freezing and the later unfreezing with a lower learning rate
are Lightning's BackboneFinetuning callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lightdl.training.checkpoints import read_checkpoint, resolve_checkpoint


def model_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The wrapped model's weights out of a LightningModule checkpoint (keys `model.*`)."""
    sd = ckpt["state_dict"]
    return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}


def backbone_names(model: nn.Module, backbone: Sequence[str] | None) -> list[str]:
    """The model children that form the backbone: `backbone`, or all but `head`."""
    children = [n for n, _ in model.named_children()]
    if backbone is None:
        if "head" not in children:
            raise ValueError(f"{type(model).__name__} has no `head`; name the backbone's "
                             f"children with backbone= (it has {children})")
        return [n for n in children if n != "head"]
    unknown = [n for n in backbone if n not in children]
    if unknown or not backbone:
        raise ValueError(f"backbone {list(backbone)!r}: {type(model).__name__} has the children "
                         f"{children}")
    return list(backbone)


def load_pretrained(model: nn.Module, path: str | Path, backbone: Sequence[str] | None = None,
                    reinit_head: bool | None = None) -> dict[str, str]:
    """Load another run's weights into `model`: the backbone must match the checkpoint exactly
    (ValueError naming the keys otherwise); the rest (the "head") is loaded when all its shapes
    match and `reinit_head` is not True, else it keeps its fresh initialisation.

    Returns {"checkpoint": path, "head": "loaded" | "replaced"}.
    """
    ckpt_path = resolve_checkpoint(path)
    weights = model_weights(read_checkpoint(ckpt_path))
    own = model.state_dict()
    prefixes = tuple(n + "." for n in backbone_names(model, backbone))
    backbone_own = {k for k in own if k.startswith(prefixes)}
    backbone_ckpt = {k for k in weights if k.startswith(prefixes)}
    missing = sorted(backbone_own - backbone_ckpt)
    unexpected = sorted(backbone_ckpt - backbone_own)
    shapes = sorted(f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
                    for k in backbone_own & backbone_ckpt if weights[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"different shapes {', '.join(shapes[:3])}" if shapes else "") if part)
        raise ValueError(f"init_from {str(ckpt_path)!r}: the checkpoint's model is not compatible "
                         f"with this one in its backbone ({detail})")
    head_keys = [k for k in own if k not in backbone_own]
    head_fits = all(k in weights and weights[k].shape == own[k].shape for k in head_keys)
    load = {k: weights[k] for k in backbone_own}
    keep_head = head_fits and not reinit_head
    if keep_head:
        load.update({k: weights[k] for k in head_keys})
    model.load_state_dict({**own, **load})
    return {"checkpoint": str(ckpt_path), "head": "loaded" if keep_head else "replaced"}


class Backbone(nn.Module):
    """A view of a model's backbone children, for BackboneFinetuning (built on demand, not
    registered anywhere, so no parameter is stored twice)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(getattr(model, n) for n in names)
