// std::vector with 64-byte aligned storage, for the ISA kernels' vector-typed scratch (32- and
// 64-byte accumulators). The ISA files parse <vector> before their `#pragma GCC target`
// (isa_prelude.h), and there GCC takes alignof of a 32-byte vector type as 16: std::allocator
// handed out 16-byte aligned arrays that the AVX code then read with aligned moves (a
// segfault). A fixed alignment does not depend on where the template is parsed, so this header
// too is parsed before the pragma (one base-target copy of it for every ISA file).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace lightdl::cpu {

template <typename T>
struct AlignedAllocator {
  static constexpr std::size_t kAlign = 64;  // a cache line; the widest (AVX-512) register
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kAlign)));
  }
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete(p, std::align_val_t(kAlign));
  }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const noexcept { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace lightdl::cpu
