// Baseline build of the bn_act_pool1d batch-norm loops (SSE2 on x86-64, NEON on arm64).
#define LIGHTDL_ISA isa_default
#include "bn_kernels.h"
