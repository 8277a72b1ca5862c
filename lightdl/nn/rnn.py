"""`FusedLSTM`, `FusedGRU`, `FusedLSTMCell`, `FusedGRUCell`: drop-in torch.nn recurrent layers
running lightdl's fused LSTM/GRU ops (the whole time loop in C++/CUDA).

They are built by torch.nn's own base classes (nn.RNNBase in "LSTM"/"GRU" mode, nn.LSTMCell,
nn.GRUCell), so the constructor, parameter names (weight_ih_l0, weight_hh_l0, bias_ih_l0,
bias_hh_l0, ..._reverse), initialisation and state_dict keys are torch.nn's: a checkpoint moves
between the two in both directions. Only `forward` differs. (FusedLSTM/FusedGRU derive from
nn.RNNBase rather than nn.LSTM/nn.GRU because torch.compile refuses to trace instances of the
latter.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lightdl.ops.rnn import Lengths, _as_lengths, gru, gru_cell, lstm, lstm_cell

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _reverse_index(lengths: torch.Tensor | None, T: int, B: int, device) -> torch.Tensor | None:
    """Row index into a (T*B, F) view that reverses each sequence within its own length (rows
    past a sequence's end stay in place); None without lengths (a plain flip)."""
    if lengths is None:
        return None
    t = torch.arange(T)[:, None]
    src = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return (src * B + torch.arange(B)[None, :]).reshape(-1).to(device)


def _reverse(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    if index is None:
        return x.flip(0)
    T, B = x.shape[:2]
    return x.reshape(T * B, -1).index_select(0, index).view(T, B, -1)


class _FusedRNNBase:
    """The forward shared by FusedLSTM and FusedGRU (mixed into the nn.LSTM/nn.GRU subclass)."""

    _num_states: int  # 2 (h, c) for the LSTM, 1 for the GRU

    def _check_supported(self) -> None:
        if getattr(self, "proj_size", 0):
            raise ValueError(f"{type(self).__name__}: proj_size={self.proj_size} is not "
                             "supported (use torch.nn.LSTM for projections)")

    def _layer(self, x, states, layer: int, reverse: bool, lengths):
        sfx = f"_l{layer}" + ("_reverse" if reverse else "")
        w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        if self._num_states == 2:
            y, h, c = lstm(x, states[0], states[1], w_ih, w_hh, b_ih, b_hh, lengths)
            return y, (h, c)
        y, h = gru(x, states[0], w_ih, w_hh, b_ih, b_hh, lengths)
        return y, (h,)

    def _initial_states(self, hx, B: int, x: torch.Tensor, unbatched: bool) -> list[torch.Tensor]:
        name = type(self).__name__
        LD = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            return [x.new_zeros((LD, B, self.hidden_size)) for _ in range(self._num_states)]
        hs = list(hx) if self._num_states == 2 and isinstance(hx, (tuple, list)) else [hx]
        if len(hs) != self._num_states or not all(isinstance(h, torch.Tensor) for h in hs):
            raise TypeError(f"{name}: hx must be " + ("a tuple (h0, c0)" if self._num_states == 2
                                                      else "a tensor h0"))
        want = (LD, self.hidden_size) if unbatched else (LD, B, self.hidden_size)
        for i, h in enumerate(hs):
            if tuple(h.shape) != want:
                raise ValueError(f"{name}: hx[{i}] must have shape {want}, got {tuple(h.shape)}")
        return [h[:, None] if unbatched else h for h in hs]

    def _run(self, input, hx, lengths):
        name = type(self).__name__
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError(f"{name}: pass either a PackedSequence or lengths=, not both")
            x, lengths = pad_packed_sequence(input)  # (T, B, I), original batch order
        else:
            if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
                raise ValueError(f"{name}: input must be a 3-D (or unbatched 2-D) tensor or a "
                                 f"PackedSequence, got {getattr(input, 'shape', type(input))}")
            unbatched = input.dim() == 2
            x = input[:, None] if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[-1]} features, expected "
                             f"input_size={self.input_size}")
        T, B = x.shape[0], x.shape[1]
        lengths = _as_lengths(lengths, name, B, T)
        states = self._initial_states(hx, B, x, unbatched)
        D = 2 if self.bidirectional else 1
        rev_index = _reverse_index(lengths, T, B, x.device) if D == 2 else None
        finals: list[list[torch.Tensor]] = [[] for _ in range(self._num_states)]
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = layer * D + d
                s = [st[idx] for st in states]
                inp = _reverse(layer_input, rev_index) if d else layer_input
                y, new = self._layer(inp, s, layer, bool(d), lengths)
                outs.append(_reverse(y, rev_index) if d else y)
                for f, v in zip(finals, new, strict=True):
                    f.append(v)
            layer_input = outs[0] if D == 1 else torch.cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        y = layer_input
        final = [torch.stack(f) for f in finals]
        if packed:
            sorted_y = y if input.sorted_indices is None else y.index_select(1, input.sorted_indices)
            data = pack_padded_sequence(sorted_y, lengths[input.sorted_indices.cpu()]
                                        if input.sorted_indices is not None else lengths).data
            y = PackedSequence(data, input.batch_sizes, input.sorted_indices,
                               input.unsorted_indices)
        elif unbatched:
            y, final = y[:, 0], [f[:, 0] for f in final]
        elif self.batch_first:
            y = y.transpose(0, 1)
        return y, final


class FusedLSTM(_FusedRNNBase, nn.RNNBase):
    """nn.LSTM on lightdl's fused LSTM op. Same arguments as nn.LSTM except proj_size (must be 0).

    forward(input, hx=None, lengths=None) -> (output, (h_n, c_n)):
        input: (T, B, I) ((B, T, I) with batch_first), unbatched (T, I), or a PackedSequence
            (then output is a PackedSequence too, as nn.LSTM's).
        hx: (h0, c0), each (num_layers * num_directions, B, H), or None for zeros.
        lengths: B sequence lengths (tensor or list, any order); steps past a sequence's end
            leave its state unchanged and output zeros (as nn.LSTM on a PackedSequence), and the
            reverse direction starts at each sequence's own last step.
    """

    _num_states = 2

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__("LSTM", *args, **kwargs)
        self._check_supported()

    def forward(self, input: torch.Tensor | PackedSequence,
                hx: tuple[torch.Tensor, torch.Tensor] | None = None, lengths: Lengths = None
                ) -> tuple[torch.Tensor | PackedSequence, tuple[torch.Tensor, torch.Tensor]]:
        y, (h, c) = self._run(input, hx, lengths)
        return y, (h, c)


class FusedGRU(_FusedRNNBase, nn.RNNBase):
    """nn.GRU on lightdl's fused GRU op; arguments and forward as FusedLSTM with a single state:
    forward(input, hx=None, lengths=None) -> (output, h_n)."""

    _num_states = 1

    def __init__(self, *args: object, **kwargs: object) -> None:
        if "proj_size" in kwargs:  # as nn.GRU
            raise ValueError("FusedGRU: proj_size is not an argument of GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input: torch.Tensor | PackedSequence, hx: torch.Tensor | None = None,
                lengths: Lengths = None) -> tuple[torch.Tensor | PackedSequence, torch.Tensor]:
        y, (h,) = self._run(input, hx, lengths)
        return y, h


class FusedLSTMCell(nn.LSTMCell):
    """nn.LSTMCell on lightdl's fused LSTM step: input (B, I) or (I,), hx (h, c) or None ->
    (h', c')."""

    def forward(self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = (None, None) if hx is None else hx
        return lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class FusedGRUCell(nn.GRUCell):
    """nn.GRUCell on lightdl's fused GRU step: input (B, I) or (I,), hx (B, H) or None -> h'."""

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> torch.Tensor:
        return gru_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
