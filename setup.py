"""Builds lightdl._C, the compiled kernels, with torch.utils.cpp_extension and ninja.

- Installed torch has CUDA and nvcc is found: a CUDAExtension with csrc/cpu and csrc/cuda.
- Otherwise: a CppExtension with csrc/cpu only.
- LIGHTDL_NO_EXT=1: no extension at all (lightdl then runs its pure-PyTorch reference ops).
- LIGHTDL_FORCE_CUDA=1: build the CUDA sources even when torch.cuda.is_available() is False
  (e.g. building on a GPU-less machine for a GPU one); TORCH_CUDA_ARCH_LIST picks the archs.

Install torch first, then `pip install --no-build-isolation -e .` (an isolated build would
download a second torch).
"""

from __future__ import annotations

import glob
import os
import shutil

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern: str) -> list[str]:
    # Relative paths: setuptools refuses absolute ones in an editable build.
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def _want_cuda(torch_cuda_version: str | None) -> bool:
    if os.environ.get("LIGHTDL_FORCE_CUDA") == "1":
        return True
    if torch_cuda_version is None:  # CPU build of torch: no CUDA runtime to link against
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME is not None and shutil.which(os.path.join(CUDA_HOME, "bin", "nvcc")) is not None


def _extensions() -> tuple[list, dict]:
    if os.environ.get("LIGHTDL_NO_EXT") == "1":
        return [], {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    cxx = ["-O3", "-fopenmp"]
    # Vectorisation without -march=native: csrc/cpu/isa_*.cpp compile the inner loops for
    # SSE2, AVX2 and AVX-512 and pick one at run time.
    cxx += ["-fno-math-errno", "-fno-trapping-math"]
    sources = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc")]
    link = ["-fopenmp"]
    if _want_cuda(torch.version.cuda):
        nvcc = [
            "-O3",
            "--expt-relaxed-constexpr",
            "-U__CUDA_NO_HALF_OPERATORS__",
            "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
        ]
        ext = CUDAExtension(
            "lightdl._C",
            sources + _sources("csrc/cuda/*.cu"),
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx + ["-DLIGHTDL_WITH_CUDA"], "nvcc": nvcc},
            extra_link_args=link,
        )
    else:
        ext = CppExtension(
            "lightdl._C",
            sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
        )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
