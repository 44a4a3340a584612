// The kernels' array conversions (F16C when built for x86-64-v3) agree with the SDK's scalar
// float16/bfloat16 conversions on every bit pattern and on rounding ties.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/common.h"

namespace {

#ifndef __F16C__
#error "built without F16C: the kernels' vector path would go untested"
#endif

using tfh::BFloat16;
using tfh::Float16;

TEST(HalfArrays, WidenMatchesScalarOnEveryFloat16) {
  std::vector<Float16> h(65536);
  for (uint32_t i = 0; i < 65536; ++i) h[i].bits = static_cast<uint16_t>(i);
  std::vector<float> f(h.size());
  tfh::kernels::cpu::widen(h.data(), f.data(), static_cast<int64_t>(h.size()));
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = tfh::to_float(h[i]);
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(f[i])) << i;
    else
      EXPECT_EQ(f[i], want) << i;
  }
}

TEST(HalfArrays, NarrowRoundsLikeToFloat16) {
  std::vector<float> f;
  for (uint32_t i = 0; i < 65536; ++i) {  // every float16 value, and the ties around it
    const float x = tfh::to_float(Float16{static_cast<uint16_t>(i)});
    if (std::isnan(x)) continue;
    f.push_back(x);
    f.push_back(std::nextafter(x, 1e30f));
    f.push_back(std::nextafter(x, -1e30f));
  }
  for (float x : {1.00048828125f, 1.00146484375f, 65519.f, 65520.f, 1e-8f, 3e-8f, 1e9f})
    f.push_back(x), f.push_back(-x);
  std::vector<Float16> h(f.size());
  tfh::kernels::cpu::narrow(f.data(), h.data(), static_cast<int64_t>(f.size()));
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(h[i].bits, tfh::to_float16(f[i]).bits) << f[i];
  std::vector<BFloat16> b(f.size());
  tfh::kernels::cpu::narrow(f.data(), b.data(), static_cast<int64_t>(f.size()));
  std::vector<float> back(f.size());
  tfh::kernels::cpu::widen(b.data(), back.data(), static_cast<int64_t>(b.size()));
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(back[i], tfh::to_float(tfh::to_bfloat16(f[i])));
}

}  // namespace
