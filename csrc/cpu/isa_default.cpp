// Baseline build of the CPU inner loops (SSE2 on x86-64, NEON on arm64).
#define LIGHTDL_ISA isa_default
#include "bias_act_kernels.h"
