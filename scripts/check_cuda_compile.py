"""Compile every CUDA source of lightdl (csrc/**/*.cu) with nvcc, without a GPU.

Why this exists: CI machines (and most development machines) have no GPU and often a CPU-only
torch, so `pip install -e .` never builds csrc/cuda and the CUDA kernels would only be
compiled, for the first time, on a GPU box. This script compiles each .cu file to an object
file for every requested architecture (sm_80 and sm_90 by default) against the installed torch
headers, with the flags setup.py uses, and fails on any compiler error. It needs nvcc and the
torch headers only: no GPU, no CUDA build of torch, no linking.

Usage:
    python scripts/check_cuda_compile.py [FILE.cu ...] [--arch 80 90] [-j N] [--keep DIR]
                                         [--allow-missing-nvcc]

(Files go before --arch, which takes every value that follows it.)

Exit status: 0 when every file compiled (or nvcc is absent and --allow-missing-nvcc was
given), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

# Kept in step with the nvcc flags of setup.py; C++20 as torch.utils.cpp_extension uses.
BASE_FLAGS = [
    "-std=c++20",
    "-O3",
    "--expt-relaxed-constexpr",
    "-DC10_USING_CUSTOM_GENERATED_MACROS",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-DLIGHTDL_WITH_CUDA",
    "-DTORCH_EXTENSION_NAME=_C",
    "-Xcompiler",
    "-Wall",
]


@dataclass
class Result:
    source: Path
    arch: str
    ok: bool
    seconds: float
    output: str


def find_nvcc() -> str | None:
    """nvcc from $CUDA_HOME/bin, then $PATH."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home:
            candidate = Path(home) / "bin" / "nvcc"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("nvcc")


def include_flags() -> list[str]:
    from torch.utils.cpp_extension import include_paths

    dirs = [*include_paths(), sysconfig.get_paths()["include"], str(CSRC)]
    return [f"-I{d}" for d in dirs]


def compile_one(nvcc: str, source: Path, arch: str, out_dir: Path, includes: list[str]) -> Result:
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    obj = out_dir / f"{str(rel).replace(os.sep, '_')}.sm_{arch}.o"
    cmd = [
        nvcc,
        "-c",
        str(source),
        "-o",
        str(obj),
        *BASE_FLAGS,
        *includes,
        "-gencode",
        f"arch=compute_{arch},code=sm_{arch}",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - start
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        output = f"$ {' '.join(cmd)}\n{output}"
    return Result(source, arch, proc.returncode == 0, seconds, output)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compile csrc/**/*.cu with nvcc for the given GPU architectures (no GPU needed)."
    )
    parser.add_argument(
        "files", nargs="*", type=Path, help="CUDA sources to check (default: csrc/**/*.cu)"
    )
    parser.add_argument(
        "--arch",
        nargs="+",
        default=["80", "90"],
        help="compute capabilities without the dot, e.g. 80 90 (default: 80 90)",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, help="parallel nvcc processes (default: 1)"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="write the object files to this directory"
    )
    parser.add_argument(
        "--allow-missing-nvcc",
        action="store_true",
        help="exit 0 with a message when nvcc is not installed (instead of failing)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    archs = [a.replace(".", "").removeprefix("sm_") for a in args.arch]
    for a in archs:
        if not a.isdigit():
            print(f"error: bad --arch value {a!r}; expected e.g. 80 or 90", file=sys.stderr)
            return 1

    nvcc = find_nvcc()
    if nvcc is None:
        if args.allow_missing_nvcc:
            print("SKIPPED: nvcc not found (set CUDA_HOME or put nvcc on PATH); no CUDA check done")
            return 0
        print(
            "error: nvcc not found (set CUDA_HOME or put nvcc on PATH); "
            "pass --allow-missing-nvcc to skip this check on machines without CUDA",
            file=sys.stderr,
        )
        return 1

    sources = [p.resolve() for p in args.files] or sorted(CSRC.rglob("*.cu"))
    if not sources:
        print(f"error: no .cu files under {CSRC}", file=sys.stderr)
        return 1
    missing = [s for s in sources if not s.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1

    includes = include_flags()
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    version_line = version.strip().splitlines()[-1] if version.strip() else "unknown version"
    jobs = max(1, args.jobs)
    print(
        f"nvcc: {nvcc} ({version_line}); {len(sources)} file(s) x sm_{', sm_'.join(archs)}; "
        f"{jobs} job(s)",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="lightdl-nvcc-") as tmp:
        out_dir = args.keep if args.keep is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        tasks = [(src, arch) for src in sources for arch in archs]
        start = time.monotonic()
        results: list[Result] = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(compile_one, nvcc, src, arch, out_dir, includes) for src, arch in tasks
            ]
            for fut in futures:
                r = fut.result()
                results.append(r)
                rel = r.source.relative_to(ROOT) if r.source.is_relative_to(ROOT) else r.source
                status = "ok" if r.ok else "FAILED"
                print(
                    f"[{len(results)}/{len(tasks)}] {rel} sm_{r.arch}: {status} "
                    f"({r.seconds:.1f} s)",
                    flush=True,
                )
                if r.output:
                    stream = sys.stdout if r.ok else sys.stderr
                    print(r.output, file=stream, flush=True)
        wall = time.monotonic() - start

    failed = [r for r in results if not r.ok]
    print(
        f"summary: {len(results) - len(failed)}/{len(results)} compiled, {len(failed)} failed, "
        f"{wall:.1f} s wall" + (f"; objects in {args.keep}" if args.keep is not None else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
