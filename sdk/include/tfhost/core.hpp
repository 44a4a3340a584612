// tfhost SDK, C++ layer: the host pointer, errors and small utilities every other header uses.
//
// Header-only C++17 over abi.h, compiled into each plugin (fine with -fvisibility=hidden). Inside
// plugin code errors are exceptions (tfh::sdk::Error); the trampolines in plugin.hpp turn every
// exception into a TfhStatus*, so nothing C++ ever crosses the ABI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "tfhost/abi.h"

namespace tfh {
namespace sdk {

// The host table this plugin was initialised with (tfh_plugin_init stores it; tests call
// set_host(tfh::plugin::host_api())). A constant-initialised slot: no static initialiser runs.
inline const TfhHostApi*& host_slot() noexcept {
  static const TfhHostApi* host = nullptr;
  return host;
}
inline void set_host(const TfhHostApi* host) noexcept { host_slot() = host; }

// The plugin's name, used as the tag of log lines (set by TFH_PLUGIN from the info table).
inline const char*& plugin_name_slot() noexcept {
  static const char* name = "plugin";
  return name;
}

// The exception plugin code throws; the trampoline returns it as a status with `code()`.
class Error : public std::runtime_error {
 public:
  Error(TfhErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  explicit Error(const std::string& msg) : Error(TFH_FAIL, msg) {}
  TfhErrorCode code() const noexcept { return code_; }

 private:
  TfhErrorCode code_;
};

[[noreturn]] inline void fail(TfhErrorCode code, const std::string& msg) { throw Error(code, msg); }
[[noreturn]] inline void fail(const std::string& msg) { throw Error(TFH_INVALID_ARGUMENT, msg); }

// A status for the host from a code and message (NULL only for TFH_OK).
inline TfhStatus* make_status(TfhErrorCode code, const char* msg) noexcept {
  const TfhHostApi* h = host_slot();
  if (!h) {  // cannot happen after tfh_plugin_init; there is no other way to report it
    std::fputs("tfhost plugin: error raised before tfh_plugin_init\n", stderr);
    std::abort();
  }
  return h->status_create(code, msg);
}

// Converts the exception being handled into a status. Call only inside a catch block.
inline TfhStatus* status_from_current_exception() noexcept {
  try {
    throw;
  } catch (const Error& e) {
    return make_status(e.code() == TFH_OK ? TFH_FAIL : e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return make_status(TFH_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return make_status(TFH_RUNTIME_EXCEPTION, e.what());
  } catch (...) {
    return make_status(TFH_RUNTIME_EXCEPTION, "unknown exception in plugin");
  }
}

}  // namespace sdk

// The host table; throws sdk::Error when the SDK is used before tfh_plugin_init.
inline const TfhHostApi& host() {
  const TfhHostApi* h = sdk::host_slot();
  if (!h) throw sdk::Error(TFH_FAIL, "tfhost SDK used before tfh_plugin_init");
  return *h;
}

// Throws sdk::Error carrying the status's code and message (and releases it) when `s` is an error.
inline void check(TfhStatus* s) {
  if (!s) return;
  const TfhHostApi& h = host();
  TfhErrorCode code = h.status_code(s);
  std::string msg = h.status_message(s);
  h.status_release(s);
  throw sdk::Error(code, msg);
}

// Owns a TfhStatus* (e.g. one returned by a host call made directly); releases it when done.
class Status {
 public:
  Status() = default;
  explicit Status(TfhStatus* s) noexcept : s_(s) {}
  Status(Status&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Status& operator=(Status&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~Status() { reset(); }
  bool ok() const noexcept { return s_ == nullptr; }
  explicit operator bool() const noexcept { return ok(); }
  TfhErrorCode code() const { return s_ ? host().status_code(s_) : TFH_OK; }
  std::string message() const { return s_ ? host().status_message(s_) : std::string(); }
  TfhStatus* release() noexcept { return std::exchange(s_, nullptr); }  // hand to the host
  void throw_if_error() { check(release()); }

 private:
  void reset() noexcept {
    if (s_ && sdk::host_slot()) sdk::host_slot()->status_release(s_);
    s_ = nullptr;
  }
  TfhStatus* s_ = nullptr;
};

// Logs through the host (tagged with the plugin's name); the host filters by verbosity.
inline void log(TfhLogLevel level, const std::string& msg) {
  if (const TfhHostApi* h = sdk::host_slot()) h->log(level, sdk::plugin_name_slot(), msg.c_str());
}

// A read-only view of contiguous elements (std::span is C++20).
template <typename T>
class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, size_t size) : data_(data), size_(size) {}
  constexpr T* data() const { return data_; }
  constexpr size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](size_t i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

// 16-bit floating point storage types (bit patterns), convertible to float.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

inline float to_float(Float16 h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;  // zero
  } else {        // subnormal: normalise
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    bits = sign | ((112u - static_cast<uint32_t>(e)) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float to_float(BFloat16 b) {
  uint32_t bits = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// float -> float16, round to nearest even (subnormals kept, overflow to inf, NaN stays NaN).
inline Float16 to_float16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t man = x & 0x7fffffu;
  if (exp == 0xff) return Float16{static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0))};
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return Float16{static_cast<uint16_t>(sign | 0x7c00u)};
  if (e <= 0) {
    if (e < -10) return Float16{static_cast<uint16_t>(sign)};
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return Float16{static_cast<uint16_t>(sign | half)};
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // round to nearest even
  return Float16{static_cast<uint16_t>(half)};
}
// float -> bfloat16: the upper half of the float, rounded to nearest even; NaN stays NaN.
inline BFloat16 to_bfloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return BFloat16{0x7fc0};
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return BFloat16{static_cast<uint16_t>(bits >> 16)};
}

// The TfhDataType of a C++ element type (TFH_TYPE_UNDEFINED for anything else).
template <typename T>
constexpr TfhDataType data_type_of() {
  if constexpr (std::is_same_v<T, float>)
    return TFH_TYPE_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return TFH_TYPE_DOUBLE;
  else if constexpr (std::is_same_v<T, int8_t>)
    return TFH_TYPE_INT8;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return TFH_TYPE_UINT8;
  else if constexpr (std::is_same_v<T, int16_t>)
    return TFH_TYPE_INT16;
  else if constexpr (std::is_same_v<T, uint16_t>)
    return TFH_TYPE_UINT16;
  else if constexpr (std::is_same_v<T, int32_t>)
    return TFH_TYPE_INT32;
  else if constexpr (std::is_same_v<T, uint32_t>)
    return TFH_TYPE_UINT32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return TFH_TYPE_INT64;
  else if constexpr (std::is_same_v<T, uint64_t>)
    return TFH_TYPE_UINT64;
  else if constexpr (std::is_same_v<T, bool>)
    return TFH_TYPE_BOOL;
  else if constexpr (std::is_same_v<T, Float16>)
    return TFH_TYPE_FLOAT16;
  else if constexpr (std::is_same_v<T, BFloat16>)
    return TFH_TYPE_BFLOAT16;
  else
    return TFH_TYPE_UNDEFINED;
}

// A short name for a data type, for messages ("float", "int64", "float16", ...).
inline const char* data_type_name(TfhDataType t) {
  static const char* const names[] = {
      "undefined",      "float",      "uint8",          "int8",       "uint16",   "int16",
      "int32",          "int64",      "string",         "bool",       "float16",  "double",
      "uint32",         "uint64",     "complex64",      "complex128", "bfloat16", "float8e4m3fn",
      "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "uint4",      "int4"};
  return t >= 0 && t < static_cast<TfhDataType>(sizeof names / sizeof names[0]) ? names[t]
                                                                                : "unknown";
}

}  // namespace tfh

// Wrap the body of any function the host calls: `TFH_PLUGIN_TRY { ...; return nullptr; }
// TFH_PLUGIN_CATCH`. Every exception becomes a TfhStatus* (the ORT API_IMPL_BEGIN/END idea).
#define TFH_PLUGIN_TRY try
#define TFH_PLUGIN_CATCH                                \
  catch (...) {                                         \
    return ::tfh::sdk::status_from_current_exception(); \
  }
