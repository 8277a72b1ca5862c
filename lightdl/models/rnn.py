"""Recurrent classifier: stacked (bi)LSTM or GRU over a series, many-to-one or many-to-many."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lightdl.models._layers import LinearAct, recurrent
from lightdl.models._shape import as_shape
from lightdl.models.init import init_weights

OUTPUTS = ("last", "mean", "sequence")


class RNNClassifier(nn.Module):
    """Input (B, C, L) (the data modules' layout) [+ lengths (B,)] ->
    logits (B, num_classes) for output "last"/"mean" (many-to-one), or (B, L, num_classes)
    for output "sequence" (many-to-many: one prediction per time step; steps past a
    sequence's length are zero).

    Args:
        input_shape: channels (features per step), or (C, L).
        num_classes: output size.
        cell: "lstm" or "gru"; hidden_size, num_layers, bidirectional as in nn.LSTM.
        dropout: between stacked layers and before the head.
        output: "last" (final hidden state of the top layer; both directions concatenated
            when bidirectional), "mean" (mean of the top layer's outputs over valid steps) or
            "sequence".
        init: default, or xavier_* / kaiming_* (input weights Xavier, recurrent weights
            orthogonal, biases zero for any non-default choice).
        fused: lightdl's FusedLSTM/FusedGRU or nn.LSTM/nn.GRU (same parameters).
    """

    def __init__(self, input_shape: int | Sequence[int | None] = 1, num_classes: int = 2,
                 cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, output: str = "last",
                 init: str = "default", fused: bool = True) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"RNNClassifier: output must be one of {OUTPUTS}, got {output!r}")
        self.input_shape = as_shape(input_shape, "RNNClassifier")
        self.num_classes = num_classes
        self.output = output
        self.rnn = recurrent(cell, self.input_shape[0], hidden_size, num_layers, bidirectional,
                             dropout, fused)
        self.dropout = nn.Dropout(dropout)
        width = hidden_size * (2 if bidirectional else 1)
        self.head = LinearAct(width, num_classes, act="identity", fused=fused)
        init_weights(self, init, "tanh")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 2:  # (B, L): univariate without its channel dim
            x = x.unsqueeze(1)
        seq = x.transpose(1, 2)  # (B, L, C), batch first
        total = seq.shape[1]
        if lengths is not None:
            packed = pack_padded_sequence(seq, lengths.cpu().clamp(min=1), batch_first=True,
                                          enforce_sorted=False)
            out, h = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
        else:
            out, h = self.rnn(seq)
        if self.output == "sequence":
            return self.head(self.dropout(out))
        if self.output == "mean":
            if lengths is None:
                feat = out.mean(1)
            else:
                feat = out.sum(1) / lengths.to(out.device).clamp(min=1)[:, None].to(out.dtype)
        else:
            h_n = h[0] if isinstance(h, tuple) else h  # (layers * dirs, B, H)
            feat = torch.cat([h_n[-2], h_n[-1]], 1) if self.rnn.bidirectional else h_n[-1]
        return self.head(self.dropout(feat))
