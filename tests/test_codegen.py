"""The compiled CPU kernels as the compiler emitted them: the step GEMM's tiles must keep their
accumulators in registers.

A GEMM tile holds R x Q vectors of partial sums across its whole k loop. If the compiler keeps
them on the stack instead, every FMA reads and writes memory and the tile runs at a fraction
of its speed while every result stays correct, so no numeric test notices. That happened once
(a change to the tile's epilogue made GCC 13 spill the AVX2 tiles' sums: the AVX2 LSTM/GRU
layers took 1.2-2.1x longer), hence this check on the built extension's machine code.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from lightdl.ops import _backend

pytestmark = pytest.mark.skipif(
    _backend._C is None or not shutil.which("objdump") or not shutil.which("nm"),
    reason="needs the compiled extension and binutils (objdump, nm)")


def _symbols(so: str, pattern: re.Pattern) -> list[tuple[str, int, int]]:
    """(demangled name, address, size) of the defined functions whose name matches."""
    out = subprocess.run(["nm", "-C", "-S", "--defined-only", so], check=True,
                         capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "tTwW" and pattern.search(parts[3]):
            found.append((parts[3], int(parts[0], 16), int(parts[1], 16)))
    return found


def _fmas(so: str, start: int, size: int) -> tuple[int, int]:
    """(FMAs, FMAs with an operand on the stack) in [start, start + size)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}",
                          f"--stop-address={start + size}", so], check=True,
                         capture_output=True, text=True).stdout
    fmas = [line for line in out.splitlines() if re.search(r"\tvfn?m(add|sub)\w*ps", line)]
    return len(fmas), sum("(%rsp)" in line for line in fmas)


def test_step_gemm_tiles_keep_their_sums_in_registers():
    so = _backend._C.__file__
    tiles = _symbols(so, re.compile(r"step_gemm_kernel::tile<"))
    assert tiles, f"no step GEMM tile functions found in {so}"
    spilled = []
    for name, start, size in tiles:
        total, on_stack = _fmas(so, start, size)
        assert total > 0, f"{name}: no FMA instructions found"
        if on_stack:
            short = name.replace("(anonymous namespace)::", "").split("(")[0]
            spilled.append(f"{short}: {on_stack} of {total} FMAs read the stack")
    assert not spilled, "\n".join(spilled)
