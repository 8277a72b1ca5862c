// Baseline build of the act_pool1d inner loops (SSE2 on x86-64, NEON on arm64).
#define LIGHTDL_ISA isa_default
#include "act_pool_kernels.h"
