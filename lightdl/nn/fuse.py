"""`fuse(model)`: a copy of a plain PyTorch model running on lightdl's fused layers."""

from __future__ import annotations

import copy

from torch import nn

from lightdl.nn.linear import FusedLinear

# torch.nn activation modules that a fused layer can take into its epilogue.
_ACTS: dict[type, str] = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SiLU: "silu"}


def _act_of(module: nn.Module) -> tuple[str, float] | None:
    """(act, alpha) when `module` is an activation a fused layer can absorb, else None."""
    if type(module) in _ACTS:
        return _ACTS[type(module)], 0.01
    if type(module) is nn.LeakyReLU:
        return "leaky_relu", float(module.negative_slope)
    if type(module) is nn.GELU:
        return ("gelu_tanh" if module.approximate == "tanh" else "gelu"), 0.01
    return None


def _fused_classes() -> dict[type, type]:
    import lightdl.nn as lnn

    pairs = {nn.Linear: FusedLinear}
    for torch_cls, name in ((nn.Conv1d, "FusedConv1d"), (nn.LSTM, "FusedLSTM"), (nn.GRU, "FusedGRU"),
                            (nn.LSTMCell, "FusedLSTMCell"), (nn.GRUCell, "FusedGRUCell")):
        cls = getattr(lnn, name, None)
        if cls is not None:
            pairs[torch_cls] = cls
    return pairs


def _swap(layer: nn.Module, fused_cls: type, act: tuple[str, float] | None) -> nn.Module:
    """The fused twin of `layer` with the same constructor arguments and weights."""
    p = next(layer.parameters(), None)
    kw: dict = {"device": p.device, "dtype": p.dtype} if p is not None else {}
    if isinstance(layer, nn.Linear):
        new = fused_cls(layer.in_features, layer.out_features, bias=layer.bias is not None, **kw)
    elif isinstance(layer, nn.Conv1d):
        new = fused_cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                        layer.padding, layer.dilation, layer.groups, layer.bias is not None,
                        layer.padding_mode, **kw)
    elif isinstance(layer, (nn.LSTM, nn.GRU)):
        if getattr(layer, "proj_size", 0):
            return layer  # not supported by the fused layer: keep torch's
        new = fused_cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                        bias=layer.bias, batch_first=layer.batch_first, dropout=layer.dropout,
                        bidirectional=layer.bidirectional, **kw)
    else:  # LSTMCell / GRUCell
        new = fused_cls(layer.input_size, layer.hidden_size, bias=layer.bias, **kw)
    new.load_state_dict(layer.state_dict())
    new.train(layer.training)
    if act is not None:
        new.act, new.alpha = act
    return new


def fuse(model: nn.Module, fold_activations: bool = True) -> nn.Module:
    """A copy of `model` with nn.Linear, nn.Conv1d, nn.LSTM, nn.GRU (and their cells)
    replaced by lightdl's fused layers, weights copied; the outputs are equal.

    In an nn.Sequential, an activation right after a Linear or Conv1d (ReLU, LeakyReLU,
    Sigmoid, Tanh, GELU, SiLU) moves into the layer's fused epilogue and its slot becomes
    nn.Identity (so indices and state_dict keys do not change). Layers elsewhere are swapped
    one for one. `model` itself is not modified.
    """
    model = copy.deepcopy(model)
    pairs = _fused_classes()

    def visit(module: nn.Module) -> None:
        names = list(module._modules)
        for i, name in enumerate(names):
            child = module._modules[name]
            if child is None:
                continue
            fused_cls = pairs.get(type(child))
            if fused_cls is None:
                visit(child)
                continue
            act = None
            if (fold_activations and isinstance(module, nn.Sequential)
                    and isinstance(child, (nn.Linear, nn.Conv1d)) and i + 1 < len(names)):
                act = _act_of(module._modules[names[i + 1]])
                if act is not None:
                    module._modules[names[i + 1]] = nn.Identity()
            module._modules[name] = _swap(child, fused_cls, act)

    if type(model) in pairs:
        return _swap(model, pairs[type(model)], None)
    visit(model)
    return model


def fused_layers(model: nn.Module) -> list[str]:
    """Names of the modules of `model` that are lightdl fused layers (for reports)."""
    fused = set(_fused_classes().values())
    return [n for n, m in model.named_modules() if type(m) in fused]
