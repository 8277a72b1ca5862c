"""Compile every CUDA source of lightdl (csrc/**/*.cu) with nvcc, without a GPU.

Why this exists: CI machines (and most development machines) have no GPU and often a CPU-only
torch, so `pip install -e .` never builds csrc/cuda and the CUDA kernels would only be
compiled, for the first time, on a GPU box. This script compiles each .cu file to an object
file for every requested architecture (sm_80 and sm_90 by default) against the installed torch
headers, with the flags setup.py uses, and fails on any compiler error. It needs nvcc and the
torch headers only: no GPU, no CUDA build of torch, no linking.

The CUDA build also compiles the host sources (csrc/*.cpp) differently: with
-DLIGHTDL_WITH_CUDA, which turns on their calls into the CUDA kernels. Those are compiled here
too (host compiler, no optimisation: only errors matter), and their objects checked against
the .cu objects with `nm`: every lightdl function the host code calls on the CUDA side must be
defined by a .cu file with the same signature, and every lightdl function a .cu file calls must
exist (in the host objects, or in the built CPU extension where one is found). That is the
link the GPU machine would do, short of the CUDA libraries.

Usage:
    python scripts/check_cuda_compile.py [FILE.cu ...] [--arch 80 90] [-j N] [--keep DIR]
                                         [--no-host] [--allow-missing-nvcc]
(Named files: those only, no host sources.)

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
    obj: Path


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
    return Result(source, arch, proc.returncode == 0, seconds, output, obj)


def compile_host(source: Path, out_dir: Path, includes: list[str]) -> Result:
    """A host source as the CUDA build compiles it (-DLIGHTDL_WITH_CUDA), without -O3: only
    its errors and its symbols are wanted."""
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    obj = out_dir / f"{str(rel).replace(os.sep, '_')}.host.o"
    cxx = os.environ.get("CXX", "c++")
    cmd = [cxx, "-c", str(source), "-o", str(obj), "-std=c++20", "-O0", "-fopenmp",
           "-DLIGHTDL_WITH_CUDA", "-DTORCH_EXTENSION_NAME=_C", "-Wall", *includes]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        output = f"$ {' '.join(cmd)}\n{output}"
    return Result(source, "host", proc.returncode == 0, time.monotonic() - start, output, obj)


# Mangled names in namespace lightdl (functions, const member functions).
_OURS = ("_ZN7lightdl", "_ZNK7lightdl")


def _symbols(path: Path, dynamic: bool = False) -> tuple[set[str], set[str]]:
    """(defined, undefined) lightdl symbols of an object file or shared library."""
    cmd = ["nm", "-P", *(["-D"] if dynamic else []), str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(_OURS):
            continue
        (undefined if parts[1] in "Uw" else defined).add(parts[0])
    return defined, undefined


def _demangle(names: list[str]) -> list[str]:
    proc = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return proc.stdout.splitlines() if proc.returncode == 0 else names


def check_symbols(host: list[Path], device: list[Path]) -> list[str]:
    """Demangled lightdl symbols that the objects reference and nothing defines (see the
    module docstring). Without the built CPU extension only the host -> CUDA direction is
    checked (the .cu files' calls into csrc/cpu cannot be resolved then)."""
    defined: set[str] = set()
    needed_by_host: set[str] = set()
    needed_by_device: set[str] = set()
    for obj in host:
        d, u = _symbols(obj)
        defined |= d
        needed_by_host |= u
    device_defined: set[str] = set()
    for obj in device:
        d, u = _symbols(obj)
        device_defined |= d
        needed_by_device |= u
    built = sorted((ROOT / "lightdl").glob("_C*.so"))
    cuda_side = {s for s in needed_by_host if s.startswith("_ZN7lightdl4cuda")}
    missing = cuda_side - device_defined
    if built:
        library, _ = _symbols(built[0], dynamic=True)
        missing |= needed_by_device - defined - device_defined - library
    return sorted(_demangle(sorted(missing)))


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
        "--no-host", action="store_true",
        help="skip the host sources (csrc/*.cpp with -DLIGHTDL_WITH_CUDA) and the symbol check",
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
        hosts = [] if args.no_host or args.files else sorted(CSRC.glob("*.cpp"))
        start = time.monotonic()
        results: list[Result] = []
        total = len(tasks) + len(hosts)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(compile_one, nvcc, src, arch, out_dir, includes) for src, arch in tasks
            ] + [pool.submit(compile_host, src, out_dir, includes) for src in hosts]
            for fut in futures:
                r = fut.result()
                results.append(r)
                rel = r.source.relative_to(ROOT) if r.source.is_relative_to(ROOT) else r.source
                status = "ok" if r.ok else "FAILED"
                target = "host (-DLIGHTDL_WITH_CUDA)" if r.arch == "host" else f"sm_{r.arch}"
                print(f"[{len(results)}/{total}] {rel} {target}: {status} ({r.seconds:.1f} s)",
                      flush=True)
                if r.output:
                    stream = sys.stdout if r.ok else sys.stderr
                    print(r.output, file=stream, flush=True)
        wall = time.monotonic() - start
        failed = [r for r in results if not r.ok]
        unresolved: list[str] = []
        if hosts and not failed:
            # This run's objects only: a --keep folder may hold older ones.
            host_objs = [r.obj for r in results if r.arch == "host"]
            for arch in archs:
                missing = check_symbols(host_objs, [r.obj for r in results if r.arch == arch])
                for name in missing:
                    print(f"unresolved for sm_{arch}: {name}", file=sys.stderr)
                unresolved += missing
            print(f"symbols: {'ok' if not unresolved else f'{len(unresolved)} unresolved'} "
                  "(host calls into the .cu objects and theirs into lightdl)")

    print(
        f"summary: {len(results) - len(failed)}/{len(results)} compiled, {len(failed)} failed, "
        f"{wall:.1f} s wall" + (f"; objects in {args.keep}" if args.keep is not None else "")
    )
    return 1 if failed or unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
