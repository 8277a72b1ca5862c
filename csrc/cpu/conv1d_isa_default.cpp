// Baseline build of the direct conv1d inner loops (SSE2 on x86-64, NEON on arm64).
#define LIGHTDL_ISA isa_default
#include "conv1d_kernels.h"
