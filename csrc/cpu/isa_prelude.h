// The standard headers the ISA kernel files use, included *before* their `#pragma GCC target`.
// GCC 13's libstdc++ marks std::allocator members always_inline. Parsed under the pragma they
// carry the AVX target, while the implicitly defined container destructors are compiled for
// the default target and then cannot inline them ("target specific option mismatch").
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "aligned_vec.h"
