"""Shared test set-up: fresh random data each run (seed printed in the header, reproducible
with LIGHTDL_TEST_SEED=<seed>), dtype tolerances, and the CUDA skip."""

from __future__ import annotations

import os
import random
import zlib

import pytest
import torch

from tests.helpers import HAS_CUDA

# Float32 results are compared with float64 references and with torch.nn on the same device.
# cuDNN runs float32 convolutions and RNNs in TF32 (10-bit mantissa) by default on Ampere and
# later GPUs, far outside float32 tolerances: the tests ask for full float32 throughout.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False

_SEED = int(os.environ.get("LIGHTDL_TEST_SEED", random.SystemRandom().randrange(2**31)))

def pytest_report_header(config: pytest.Config) -> str:
    return f"lightdl test seed: LIGHTDL_TEST_SEED={_SEED}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed(request: pytest.FixtureRequest) -> int:
    """A per-test seed derived from the run's seed: fresh each run, reproducible on demand."""
    seed = (_SEED + zlib.crc32(request.node.nodeid.encode())) % 2**31
    torch.manual_seed(seed)
    random.seed(seed)
    return seed
