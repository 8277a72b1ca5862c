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


def _one(v):
    return v[0] if isinstance(v, (tuple, list)) else v


def _swap_pool(pool: nn.Module, act: tuple[str, float] | None) -> nn.Module | None:
    """FusedMaxPool1d / FusedAvgPool1d for `pool` (taking `act` in), or None where the
    fused layer lacks one of its options (dilation, ceil_mode, ...)."""
    from lightdl.nn.pool import FusedAvgPool1d, FusedMaxPool1d

    name, alpha = act if act is not None else ("identity", 0.01)
    k, s, p = _one(pool.kernel_size), _one(pool.stride), _one(pool.padding)
    if type(pool) is nn.MaxPool1d:
        if _one(pool.dilation) != 1 or pool.return_indices or pool.ceil_mode:
            return None
        return FusedMaxPool1d(k, s, p, act=name, alpha=alpha)
    if type(pool) is nn.AvgPool1d and not pool.ceil_mode and pool.count_include_pad:
        return FusedAvgPool1d(k, s, p, act=name, alpha=alpha)
    return None


def _swap_norm(bn: nn.Module, act: tuple[str, float] | None, pool: nn.Module) -> nn.Module | None:
    """FusedBatchNorm1d for BatchNorm1d -> [act] -> pool (same state), or None where the
    pooling has options the fused layers lack."""
    from lightdl.nn.norm import FusedBatchNorm1d

    if _swap_pool(pool, act) is None:
        return None
    name, alpha = act if act is not None else ("identity", 0.01)
    p = next(bn.parameters(), None)
    if p is None:
        p = bn.running_mean
    kw: dict = {"device": p.device, "dtype": p.dtype} if p is not None else {}
    new = FusedBatchNorm1d(bn.num_features, bn.eps, bn.momentum, bn.affine,
                           bn.track_running_stats, act=name,
                           pool="max" if type(pool) is nn.MaxPool1d else "avg",
                           kernel_size=_one(pool.kernel_size), stride=_one(pool.stride),
                           padding=_one(pool.padding), alpha=alpha, **kw)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new


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
    """A copy of `model` with nn.Linear, nn.Conv1d, nn.LSTM, nn.GRU (and their cells),
    nn.MaxPool1d and nn.AvgPool1d replaced by lightdl's fused layers, weights copied; the
    outputs are equal.

    In an nn.Sequential, an activation (ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU) right after
    a Linear or Conv1d moves into the layer's fused epilogue, and one right before a
    MaxPool1d/AvgPool1d into the fused pooling; a BatchNorm1d followed by a pooling (with or
    without an activation between) becomes one FusedBatchNorm1d. The slots emptied become
    nn.Identity (so indices and state_dict keys do not change). Layers elsewhere are swapped
    one for one; pools with options the fused ones lack (dilation, ceil_mode, return_indices,
    count_include_pad=False) are kept. `model` itself is not modified.
    """
    model = copy.deepcopy(model)
    pairs = _fused_classes()

    def visit(module: nn.Module) -> None:
        names = list(module._modules)
        for i, name in enumerate(names):
            child = module._modules[name]
            if child is None:
                continue
            nxt = module._modules[names[i + 1]] if i + 1 < len(names) else None
            if (fold_activations and isinstance(module, nn.Sequential)
                    and type(child) is nn.BatchNorm1d):
                # BatchNorm1d -> [activation] -> pooling: one FusedBatchNorm1d.
                act = _act_of(nxt) if nxt is not None else None
                j = i + 2 if act is not None else i + 1
                pool = module._modules[names[j]] if j < len(names) else None
                if type(pool) in (nn.MaxPool1d, nn.AvgPool1d):
                    norm = _swap_norm(child, act, pool)
                    if norm is not None:
                        module._modules[name] = norm
                        for k in range(i + 1, j + 1):
                            module._modules[names[k]] = nn.Identity()
                        continue
            act = _act_of(child)
            if (fold_activations and isinstance(module, nn.Sequential) and act is not None
                    and type(nxt) in (nn.MaxPool1d, nn.AvgPool1d)):
                pool = _swap_pool(nxt, act)  # the activation moves into the pooling
                if pool is not None:
                    module._modules[names[i + 1]] = pool
                    module._modules[name] = nn.Identity()
                    continue
            if type(child) in (nn.MaxPool1d, nn.AvgPool1d):
                module._modules[name] = _swap_pool(child, None) or child
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
    from lightdl.nn.norm import FusedBatchNorm1d
    from lightdl.nn.pool import FusedAvgPool1d, FusedMaxPool1d

    fused = set(_fused_classes().values()) | {FusedMaxPool1d, FusedAvgPool1d, FusedBatchNorm1d}
    return [n for n, m in model.named_modules() if type(m) in fused]
