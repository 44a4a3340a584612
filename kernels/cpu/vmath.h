// Branch-free float math that GCC vectorises (AVX2/AVX-512) inside plain loops, for the
// element-wise hot spots: exp (Softmax, Sigmoid), erf (GELU), tanh.
#pragma once

#include <cstdint>
#include <cstring>

namespace tfh::kernels::cpu {

// exp(x): range reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6 polynomial; about 2 ulp.
// Inputs are clamped to [-87.3, 88.3]: tiny results bottom out near 1e-38, huge ones near 2e38.
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  // floor(v + 0.5) rather than roundf: it maps to one vector instruction (roundps/vrndscaleps).
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // p * 2^n by adding n to the exponent field (bit casts, not memcpy: these vectorise).
  // (unsigned arithmetic: shifting a negative int is undefined before C++20)
  const uint32_t bits = __builtin_bit_cast(uint32_t, p) +
                        (static_cast<uint32_t>(static_cast<int32_t>(n)) << 23);
  return __builtin_bit_cast(float, bits);
}

// erf(x), Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7) on |x|, sign restored.
inline float fast_erf(float x) {
  const float ax = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  float y = 1.0f - p * t * fast_exp(-ax * ax);
  // Near 0 the series keeps the relative error small: erf(x) = 2/sqrt(pi) (x - x^3/3 + x^5/10).
  const float x2 = ax * ax;
  const float small = 1.1283791671f * ax * (1.0f - x2 * (1.0f / 3.0f) + x2 * x2 * 0.1f);
  y = ax < 1e-2f ? small : y;
  return x < 0 ? -y : y;
}

// tanh(x) = 1 - 2 / (exp(2x) + 1), with tanh(x) ~ x for tiny |x| to keep relative accuracy.
inline float fast_tanh(float x) {
  const float e = fast_exp(2.0f * x);
  const float y = 1.0f - 2.0f / (e + 1.0f);
  const float ax = x < 0 ? -x : x;
  return ax < 1e-4f ? x : y;
}

// y = FastGelu(x + b) over n values, the tanh approximation 0.5 v (1 + tanh(sqrt(2/pi) (v +
// 0.044715 v^3))); b is n values or NULL. y may be x (in place).
inline void fast_gelu_row(const float* x, const float* b, float* y, int64_t n) {
  constexpr float kA = 0.7978845608028654f, kB = 0.035677408136300125f;
  if (b) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i] + b[i];
      y[i] = 0.5f * v * (1.f + fast_tanh(v * (kA + kB * v * v)));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.f + fast_tanh(v * (kA + kB * v * v)));
    }
  }
}

}  // namespace tfh::kernels::cpu
