"""torch.export of models on lightdl's layers: with the compiled ops in the graph (dynamic batch,
save and load), or, under the reference backend, as plain ATen ops that load without lightdl."""

from __future__ import annotations

import io

import pytest
import torch
from torch.export import Dim

import lightdl.ops as ops
from lightdl.models import CNN1d, RNNClassifier
from lightdl.ops import _backend
from tests.helpers import signal

pytestmark = pytest.mark.skipif(_backend._C is None, reason="compiled kernels unavailable")


def _models() -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    return {
        "cnn1d": (CNN1d(input_shape=(1, 48), num_classes=3, norm="batch", pool="max"), (1, 48)),
        "lstm": (RNNClassifier(input_shape=(20, 2), num_classes=3, num_layers=2,
                               bidirectional=True), (20, 2)),
        "gru": (RNNClassifier(input_shape=(20, 2), num_classes=3, cell="gru"), (20, 2)),
    }


def _lightdl_targets(ep: torch.export.ExportedProgram) -> set[str]:
    return {str(n.target) for n in ep.graph.nodes
            if n.op == "call_function" and str(n.target).startswith("lightdl.")}


@pytest.mark.parametrize("name", ["cnn1d", "lstm", "gru"])
def test_export_keeps_the_compiled_ops_with_a_dynamic_batch(name):
    model, feature_shape = _models()[name]
    model.eval()
    x = signal((4, *feature_shape))
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: Dim("batch", min=1, max=512)},))
    assert _lightdl_targets(ep), "no lightdl op in the exported graph"
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf).module()
    for batch in (1, 7):
        xb = signal((batch, *feature_shape))
        torch.testing.assert_close(loaded(xb), model(xb), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["cnn1d", "lstm"])
def test_export_under_the_reference_backend_is_plain_aten(name):
    model, feature_shape = _models()[name]
    model.eval()
    x = signal((3, *feature_shape))
    with ops.use_backend("reference"):
        ep = torch.export.export(model, (x,))
    assert not _lightdl_targets(ep)
    torch.testing.assert_close(ep.module()(x), model(x), rtol=1e-5, atol=1e-6)
