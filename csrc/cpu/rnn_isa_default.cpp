// Baseline build of the CPU LSTM/GRU row loops (SSE2 on x86-64, NEON on arm64).
#define LIGHTDL_ISA isa_default
#include "rnn_rows_kernels.h"
