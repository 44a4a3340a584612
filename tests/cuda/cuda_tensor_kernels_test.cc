// tfhost's general tensor kernels on CUDA (kernels/cuda: add_bias, broadcasting binary arithmetic,
// unary math, strided copies, Where, row reductions, Gather, Cast, and the key/value cache
// writers) against its CPU kernels for the same op, one-node models run through the CPU runtime on
// the same inputs; where the CPU cannot take the types (1- and 8-byte elements, out-of-range
// indices) or the op has no ONNX counterpart, against a reference computed here from the rules
// cuda_kernels.h documents. Every output buffer is poisoned first, so an element a kernel leaves
// unwritten fails. Skipped without a GPU; also built into tfh_cuda_emu_tests (tests/cuda_emu).
#include <cstring>
#include <limits>
#include <sstream>

#include "cuda/kernel_test_util.h"

namespace tfh::kernels::cuda {
namespace {

using namespace kernel_test;

// ---- helpers ------------------------------------------------------------------------------------

std::string shape_str(const Shape& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// The largest |got - want| / max(1, |want|): absolute below 1, relative above (NaN fails).
float max_rel_diff(const Floats& got, const Floats& want) {
  EXPECT_EQ(got.size(), want.size());
  float m = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const float d = std::fabs(got[i] - want[i]) / std::max(1.f, std::fabs(want[i]));
    if (std::isnan(d)) return d;  // NaN fails (and must not be overwritten by a later element)
    if (d > m) m = d;
  }
  return m;
}

// NumPy broadcasting of two shapes.
Shape broadcast(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t k = 0; k < out.size(); ++k) {
    const int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1,
                  db = k < b.size() ? b[b.size() - 1 - k] : 1;
    out[out.size() - 1 - k] = da == 1 ? db : da;
  }
  return out;
}
// An input's element strides at the output's rank: 0 where it broadcasts.
Shape strides_in(const Shape& in, const Shape& out) {
  Shape s(out.size(), 0);
  int64_t st = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    const size_t i = in.size() - 1 - k;
    s[out.size() - 1 - k] = in[i] == 1 ? 0 : st;
    st *= in[i];
  }
  return s;
}
Shape contiguous(const Shape& d) { return strides_in(d, d); }
// The element offset of output element i through `strides`.
int64_t offset_of(int64_t i, const Shape& dims, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = dims.size(); d-- > 0;) {
    off += (i % dims[d]) * strides[d];
    i /= dims[d];
  }
  return off;
}

std::function<void(onnx::NodeProto*)> int_attr(const std::string& name, int64_t v) {
  return [name, v](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  };
}
std::function<void(onnx::NodeProto*)> ints_attr(const std::string& name, std::vector<int64_t> v) {
  return [name, v](onnx::NodeProto* n) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  };
}

// Random integers as floats (exact), for the int32 cases fed to the CPU.
Floats random_ints(int64_t n, std::mt19937& rng, int lo, int hi) {
  std::uniform_int_distribution<int> u(lo, hi);
  Floats v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(u(rng));
  return v;
}
template <typename T>
std::vector<T> random_words(int64_t n, std::mt19937_64& rng) {
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = static_cast<T>(rng());
  return v;
}
Floats from_i32(const std::vector<int32_t>& v) { return Floats(v.begin(), v.end()); }

size_t elem_bytes(int elem) { return elem == F16 || elem == BF16 ? 2 : 4; }

// A device buffer of `elem` (F32, F16, BF16 or I32) elements: from float values, or n of them
// with 0xff bytes (NaN for floats); read back as floats.
struct Buf {
  int elem;
  size_t n;
  DevRaw raw;
  static std::vector<unsigned char> bytes_of(const Floats& v, int elem) {
    std::vector<unsigned char> b(v.size() * elem_bytes(elem));
    for (size_t i = 0; i < v.size(); ++i) {
      if (elem == F16 || elem == BF16) {
        const uint16_t h = bits16(v[i], elem);
        std::memcpy(&b[2 * i], &h, 2);
      } else if (elem == I32) {
        const int32_t k = static_cast<int32_t>(v[i]);
        std::memcpy(&b[4 * i], &k, 4);
      } else {
        std::memcpy(&b[4 * i], &v[i], 4);
      }
    }
    return b;
  }
  Buf(const Floats& v, int e) : elem(e), n(v.size()), raw(bytes_of(v, e)) {}
  Buf(size_t count, int e) : elem(e), n(count), raw(count * elem_bytes(e), 0xff) {}
  void* get() const { return raw.get(); }
  Floats read() const {
    Floats out(n);
    if (elem == F16 || elem == BF16) {
      const auto h = raw.read<uint16_t>();
      for (size_t i = 0; i < n; ++i) out[i] = from_bits16(h[i], elem);
    } else if (elem == I32) {
      return from_i32(raw.read<int32_t>());
    } else {
      return raw.read<float>();
    }
    return out;
  }
};
std::string elem_name(int elem) { return elem == I32 ? "int32" : name_of(elem); }

// ---- add_bias -----------------------------------------------------------------------------------

TEST_F(CudaKernels, AddBiasAgainstCpu) {
  for (int elem : {F32, F16, BF16})
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
             {16, 768}, {3, 33}, {1, 1}, {5, 1000}})
      for (bool with_residual : {false, true}) {
        SCOPED_TRACE(name_of(elem) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                     (with_residual ? " + residual" : ""));
        std::mt19937 rng(static_cast<unsigned>(rows * 5 + cols));
        const Floats x = stored(random_floats(rows * cols, rng, -3.f, 3.f), elem),
                     bias = stored(random_floats(cols, rng), elem),
                     res = stored(random_floats(rows * cols, rng, -3.f, 3.f), elem);
        Floats want;
        if (!with_residual) {
          want = cpu_node("Add", "", 13, {{"x", {rows, cols}, x, elem}, {"b", {cols}, bias, elem}},
                          {"y"})[0];
        } else {
          // The kernel adds in float and rounds once: the CPU's two Adds in float32 on the same
          // (stored) values, rounded as the type stores them.
          const Floats xb = cpu_node("Add", "", 13,
                                     {{"x", {rows, cols}, x, F32}, {"b", {cols}, bias, F32}}, {"y"})[0];
          want = stored(cpu_node("Add", "", 13,
                                 {{"a", {rows, cols}, xb, F32}, {"r", {rows, cols}, res, F32}},
                                 {"y"})[0],
                        elem);
        }
        Dev dx(x, elem), db(bias, elem), dr(res, elem);
        Buf dy(x.size(), elem);
        add_bias(type_of(elem), dx.get(), db.get(), with_residual ? dr.get() : nullptr, dy.get(),
                 rows, cols, nullptr);
        EXPECT_LT(max_rel_diff(dy.read(), want), by_precision(elem, 1e-5f, 1e-2f));
      }
}

// ---- binary -------------------------------------------------------------------------------------

TEST_F(CudaKernels, BinaryBroadcastAgainstCpu) {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4}, {2, 3, 4}},     // same shape: the dense loop
      {{33, 65}, {33, 65}},       // same, past a block
      {{2, 3, 4}, {4}},           // a row broadcast
      {{4}, {2, 3, 4}},           // the other way round
      {{2, 1, 4}, {3, 1}},        // both broadcast
      {{4, 1, 3, 1}, {1, 5, 1, 2}},
      {{2, 3}, {}},               // scalars
      {{}, {7}},
      {{}, {}},
      {{1, 1}, {1}},
      {{5, 1, 300}, {5, 2, 1}},
  };
  const std::vector<std::pair<const char*, BinaryOp>> ops = {
      {"Add", BinaryOp::Add}, {"Sub", BinaryOp::Sub}, {"Mul", BinaryOp::Mul},
      {"Div", BinaryOp::Div}, {"Pow", BinaryOp::Pow}};
  for (int elem : {F32, F16, BF16})
    for (const auto& [sa, sb] : shapes)
      for (const auto& [name, op] : ops) {
        SCOPED_TRACE(std::string(name) + " " + name_of(elem) + " " + shape_str(sa) + " " +
                     shape_str(sb));
        std::mt19937 rng(static_cast<unsigned>(count(sa) * 13 + count(sb) + sa.size()));
        const std::string o = name;
        Floats a, b;
        if (o == "Pow") {  // positive bases; exponents with the special cases 2 and 0.5 among them
          a = random_floats(count(sa), rng, 0.1f, 2.f);
          b = random_floats(count(sb), rng, -2.f, 3.f);
          for (size_t i = 0; i < b.size(); ++i)
            if (i % 3 == 1) b[i] = i % 2 ? 2.f : 0.5f;
        } else {
          a = random_floats(count(sa), rng, -2.f, 2.f);
          b = random_floats(count(sb), rng, 0.5f, 2.f);  // divisors away from zero
          for (size_t i = 0; i < b.size(); i += 2) b[i] = -b[i];
        }
        a = stored(a, elem), b = stored(b, elem);
        const auto want = cpu_node(name, "", 13, {{"a", sa, a, elem}, {"b", sb, b, elem}}, {"y"});
        const Shape out = broadcast(sa, sb);
        Broadcast bc;
        bc.rank = static_cast<int>(out.size());
        const Shape as = strides_in(sa, out), bs = strides_in(sb, out);
        for (int d = 0; d < bc.rank; ++d)
          bc.dims[d] = out[d], bc.a_strides[d] = as[d], bc.b_strides[d] = bs[d];
        Dev da(a, elem), db(b, elem);
        Buf dy(static_cast<size_t>(count(out)), elem);
        binary(type_of(elem), op, da.get(), db.get(), dy.get(), bc, nullptr);
        EXPECT_LT(max_rel_diff(dy.read(), want[0]), by_precision(elem, 1e-5f, 1e-2f));
      }
  // Pow by a scalar exponent 2, 0.5 and 3 (the CPU's fast paths).
  for (int elem : {F32, F16, BF16})
    for (float e : {2.f, 0.5f, 3.f}) {
      SCOPED_TRACE("Pow " + name_of(elem) + " by scalar " + std::to_string(e));
      std::mt19937 rng(7);
      const Floats a = stored(random_floats(100, rng, 0.f, 3.f), elem), b = {e};
      const auto want = cpu_node("Pow", "", 13, {{"a", {4, 25}, a, elem}, {"b", {}, b, elem}}, {"y"});
      Broadcast bc;
      bc.rank = 2, bc.dims[0] = 4, bc.dims[1] = 25, bc.a_strides[0] = 25, bc.a_strides[1] = 1;
      Dev da(a, elem), db(b, elem);
      Buf dy(a.size(), elem);
      binary(type_of(elem), BinaryOp::Pow, da.get(), db.get(), dy.get(), bc, nullptr);
      EXPECT_LT(max_rel_diff(dy.read(), want[0]), by_precision(elem, 1e-5f, 1e-2f));
    }
}

// ---- unary --------------------------------------------------------------------------------------

TEST_F(CudaKernels, UnaryAgainstCpu) {
  struct Op {
    const char* name;
    UnaryOp op;
    float lo, hi;  // inputs inside the op's domain
    bool either_sign = false;  // Reciprocal: |x| in [lo, hi], either sign
  };
  const std::vector<Op> ops = {
      {"Tanh", UnaryOp::Tanh, -4.f, 4.f},       {"Relu", UnaryOp::Relu, -2.f, 2.f},
      {"Sigmoid", UnaryOp::Sigmoid, -8.f, 8.f}, {"Erf", UnaryOp::Erf, -3.f, 3.f},
      {"Sqrt", UnaryOp::Sqrt, 0.f, 4.f},        {"Exp", UnaryOp::Exp, -4.f, 4.f},
      {"Log", UnaryOp::Log, 0.01f, 4.f},        {"Neg", UnaryOp::Neg, -2.f, 2.f},
      {"Abs", UnaryOp::Abs, -2.f, 2.f},         {"Reciprocal", UnaryOp::Reciprocal, 0.1f, 2.f, true}};
  for (int elem : {F32, F16, BF16})
    for (const Shape& shape : {Shape{1}, Shape{3, 33}, Shape{5, 1000}})
      for (const Op& op : ops) {
        SCOPED_TRACE(std::string(op.name) + " " + name_of(elem) + " " + shape_str(shape));
        std::mt19937 rng(static_cast<unsigned>(count(shape)));
        Floats x = random_floats(count(shape), rng, op.lo, op.hi);
        if (op.either_sign)
          for (size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];
        x = stored(x, elem);
        const auto want = cpu_node(op.name, "", 13, {{"x", shape, x, elem}}, {"y"});
        Dev dx(x, elem);
        Buf dy(x.size(), elem);
        unary(type_of(elem), op.op, dx.get(), dy.get(), count(shape), nullptr);
        EXPECT_LT(max_rel_diff(dy.read(), want[0]), by_precision(elem, 1e-5f, 1e-2f));
      }
}

// ---- strided_copy -------------------------------------------------------------------------------

// Transpose of `dims` by `perm` as a strided copy: the output's dims and the input's strides.
StridedCopy transpose_copy(const Shape& dims, const Shape& perm) {
  StridedCopy c;
  c.rank = static_cast<int>(dims.size());
  Shape out(dims.size());
  const Shape in_st = contiguous(dims);
  for (size_t i = 0; i < perm.size(); ++i) out[i] = dims[perm[i]];
  const Shape out_st = contiguous(out);
  for (size_t i = 0; i < perm.size(); ++i) {
    c.dims[i] = out[i];
    c.src_strides[i] = in_st[perm[i]];
    c.dst_strides[i] = out_st[i];
  }
  return c;
}

const std::vector<std::pair<Shape, Shape>> kTransposes = {
    {{2, 3, 4, 5}, {0, 2, 1, 3}},  // heads to the front and back
    {{2, 3, 4, 5}, {0, 2, 3, 1}},
    {{7, 33}, {1, 0}},
    {{3, 1, 5}, {2, 0, 1}},
    {{2, 2, 1, 3, 2, 1, 2, 2}, {7, 6, 5, 4, 3, 2, 1, 0}},  // rank 8
    {{9}, {0}},
};

TEST_F(CudaKernels, StridedCopyTransposeAgainstCpu) {
  for (int elem : {F32, F16, I32})
    for (const auto& [dims, perm] : kTransposes) {
      SCOPED_TRACE(elem_name(elem) + " " + shape_str(dims) + " perm " + shape_str(perm));
      std::mt19937 rng(static_cast<unsigned>(count(dims) + perm[0]));
      const Floats x = elem == I32 ? random_ints(count(dims), rng, -1000000, 1000000)
                                   : stored(random_floats(count(dims), rng), elem);
      const auto want = cpu_node("Transpose", "", 13, {{"x", dims, x, elem}}, {"y"},
                                 ints_attr("perm", perm));
      Buf dx(x, elem), dy(x.size(), elem);
      strided_copy(elem_bytes(elem), dx.get(), dy.get(), transpose_copy(dims, perm), nullptr);
      EXPECT_EQ(max_diff(dy.read(), want[0]), 0.f);  // a copy: exact
    }
}

// 1- and 8-byte elements (which the CPU runtime is not fed here): the transpose of the raw words.
template <typename Word>
void transpose_words_case(const Shape& dims, const Shape& perm) {
  SCOPED_TRACE(std::to_string(sizeof(Word)) + "-byte " + shape_str(dims) + " perm " + shape_str(perm));
  std::mt19937_64 rng(static_cast<uint64_t>(count(dims) * 3 + sizeof(Word)));
  const auto x = random_words<Word>(count(dims), rng);
  const StridedCopy c = transpose_copy(dims, perm);
  Shape out(dims.size()), src(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) out[i] = c.dims[i], src[i] = c.src_strides[i];
  std::vector<Word> want(x.size());
  for (int64_t i = 0; i < count(out); ++i) want[i] = x[offset_of(i, out, src)];
  DevRaw dx(x), dy(x.size() * sizeof(Word), 0xff);
  strided_copy(sizeof(Word), dx.get(), dy.get(), c, nullptr);
  const auto got = dy.read<Word>();
  int64_t wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) wrong += got[i] != want[i];
  EXPECT_EQ(wrong, 0) << "elements differ of " << want.size();
}

TEST_F(CudaKernels, StridedCopyOneAndEightByteWords) {
  for (const auto& [dims, perm] : kTransposes) {
    transpose_words_case<uint8_t>(dims, perm);
    transpose_words_case<uint64_t>(dims, perm);
  }
}

// Concat's inputs (a destination offset and strides), Expand (source strides 0) and a strided
// Slice (a source offset and a step).
TEST_F(CudaKernels, StridedCopyConcatExpandSliceAgainstCpu) {
  for (int elem : {F32, F16, BF16}) {
    SCOPED_TRACE(name_of(elem));
    std::mt19937 rng(11);
    const Shape d0 = {2, 3, 4}, d1 = {2, 5, 4}, out = {2, 8, 4};
    const Floats x0 = stored(random_floats(count(d0), rng), elem),
                 x1 = stored(random_floats(count(d1), rng), elem);
    const auto want = cpu_node("Concat", "", 13, {{"a", d0, x0, elem}, {"b", d1, x1, elem}},
                               {"y"}, int_attr("axis", 1));
    Dev dx0(x0, elem), dx1(x1, elem);
    Buf dy(static_cast<size_t>(count(out)), elem);
    int64_t at = 0;
    for (const auto& [dims, dev] : {std::pair<Shape, const Dev*>{d0, &dx0}, {d1, &dx1}}) {
      StridedCopy c;
      c.rank = 3;
      const Shape src = contiguous(dims), dst = contiguous(out);
      for (int d = 0; d < 3; ++d)
        c.dims[d] = dims[d], c.src_strides[d] = src[d], c.dst_strides[d] = dst[d];
      c.dst_offset = at * dst[1];
      at += dims[1];
      strided_copy(elem_bytes(elem), dev->get(), dy.get(), c, nullptr);
    }
    EXPECT_EQ(max_diff(dy.read(), want[0]), 0.f) << "Concat";

    const Shape xd = {3, 1}, ed = {2, 3, 4};
    const Floats x = stored(random_floats(3, rng), elem);
    const auto want_e = cpu_node("Expand", "", 13,
                                 {{"x", xd, x, elem}, {"shape", {3}, {2, 3, 4}, I64}}, {"y"});
    StridedCopy c;
    c.rank = 3;
    const Shape src = strides_in(xd, ed), dst = contiguous(ed);
    for (int d = 0; d < 3; ++d) c.dims[d] = ed[d], c.src_strides[d] = src[d], c.dst_strides[d] = dst[d];
    Dev dx(x, elem);
    Buf de(static_cast<size_t>(count(ed)), elem);
    strided_copy(elem_bytes(elem), dx.get(), de.get(), c, nullptr);
    EXPECT_EQ(max_diff(de.read(), want_e[0]), 0.f) << "Expand";

    // x[:, 1:6:2, :] of [2, 6, 5].
    const Shape sd = {2, 6, 5}, so = {2, 3, 5};
    const Floats xs = stored(random_floats(count(sd), rng), elem);
    const auto want_s = cpu_node("Slice", "", 13,
                                 {{"x", sd, xs, elem}, {"starts", {1}, {1}, I64},
                                  {"ends", {1}, {6}, I64}, {"axes", {1}, {1}, I64},
                                  {"steps", {1}, {2}, I64}},
                                 {"y"});
    StridedCopy sc;
    sc.rank = 3;
    const Shape xst = contiguous(sd), ost = contiguous(so);
    for (int d = 0; d < 3; ++d)
      sc.dims[d] = so[d], sc.src_strides[d] = xst[d] * (d == 1 ? 2 : 1), sc.dst_strides[d] = ost[d];
    sc.src_offset = xst[1];
    Dev dxs(xs, elem);
    Buf ds(static_cast<size_t>(count(so)), elem);
    strided_copy(elem_bytes(elem), dxs.get(), ds.get(), sc, nullptr);
    EXPECT_EQ(max_diff(ds.read(), want_s[0]), 0.f) << "Slice";
  }
}

// ---- where --------------------------------------------------------------------------------------

struct WhereShapes {
  Shape c, x, y;
};
const std::vector<WhereShapes> kWhereShapes = {
    {{3, 1}, {2, 3, 4}, {4}},        // a broadcast condition
    {{2, 3, 4}, {}, {2, 1, 4}},      // a scalar x
    {{4}, {2, 1, 1}, {1, 3, 1}},     // all three broadcast
    {{}, {5}, {5}},                  // a scalar condition
    {{1, 300}, {4, 300}, {4, 1}},
    {{2, 3}, {2, 3}, {2, 3}},
};

WhereBroadcast where_broadcast(const WhereShapes& s, Shape* out_dims) {
  const Shape out = broadcast(broadcast(s.c, s.x), s.y);
  const Shape cs = strides_in(s.c, out), xs = strides_in(s.x, out), ys = strides_in(s.y, out);
  WhereBroadcast bc;
  bc.rank = static_cast<int>(out.size());
  for (int d = 0; d < bc.rank; ++d)
    bc.dims[d] = out[d], bc.c_strides[d] = cs[d], bc.x_strides[d] = xs[d], bc.y_strides[d] = ys[d];
  *out_dims = out;
  return bc;
}

Floats random_bools(int64_t n, std::mt19937& rng) {
  Floats v(static_cast<size_t>(n));
  for (float& b : v) b = static_cast<float>(rng() & 1u);
  return v;
}
std::vector<uint8_t> bool_bytes(const Floats& v) { return std::vector<uint8_t>(v.begin(), v.end()); }

TEST_F(CudaKernels, WhereBroadcastAgainstCpu) {
  for (int elem : {F32, F16, I32})
    for (const WhereShapes& s : kWhereShapes) {
      SCOPED_TRACE(elem_name(elem) + " cond " + shape_str(s.c) + " x " + shape_str(s.x) + " y " +
                   shape_str(s.y));
      std::mt19937 rng(static_cast<unsigned>(count(s.c) * 7 + count(s.x) * 3 + count(s.y)));
      const Floats c = random_bools(count(s.c), rng);
      auto values = [&](int64_t n) {
        return elem == I32 ? random_ints(n, rng, -100000, 100000)
                           : stored(random_floats(n, rng), elem);
      };
      const Floats x = values(count(s.x)), y = values(count(s.y));
      const auto want = cpu_node(
          "Where", "", 16, {{"c", s.c, c, BOOL}, {"x", s.x, x, elem}, {"y", s.y, y, elem}}, {"out"});
      Shape out;
      const WhereBroadcast bc = where_broadcast(s, &out);
      DevRaw dc(bool_bytes(c));
      Buf dx(x, elem), dy(y, elem), dout(static_cast<size_t>(count(out)), elem);
      where(elem_bytes(elem), static_cast<const bool*>(dc.get()), dx.get(), dy.get(), dout.get(), bc,
            nullptr);
      EXPECT_EQ(max_diff(dout.read(), want[0]), 0.f);  // a selection: exact
    }
}

template <typename Word>
void where_words_case(const WhereShapes& s) {
  SCOPED_TRACE(std::to_string(sizeof(Word)) + "-byte cond " + shape_str(s.c) + " x " +
               shape_str(s.x) + " y " + shape_str(s.y));
  std::mt19937 rng(static_cast<unsigned>(count(s.c) + count(s.x)));
  std::mt19937_64 rng64(sizeof(Word));
  const auto c = bool_bytes(random_bools(count(s.c), rng));
  const auto x = random_words<Word>(count(s.x), rng64), y = random_words<Word>(count(s.y), rng64);
  Shape out;
  const WhereBroadcast bc = where_broadcast(s, &out);
  const Shape cs(bc.c_strides, bc.c_strides + bc.rank), xs(bc.x_strides, bc.x_strides + bc.rank),
      ys(bc.y_strides, bc.y_strides + bc.rank);
  std::vector<Word> want(static_cast<size_t>(count(out)));
  for (int64_t i = 0; i < count(out); ++i)
    want[i] = c[offset_of(i, out, cs)] ? x[offset_of(i, out, xs)] : y[offset_of(i, out, ys)];
  DevRaw dc(c), dx(x), dy(y), dout(want.size() * sizeof(Word), 0xff);
  where(sizeof(Word), static_cast<const bool*>(dc.get()), dx.get(), dy.get(), dout.get(), bc, nullptr);
  const auto got = dout.read<Word>();
  int64_t wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) wrong += got[i] != want[i];
  EXPECT_EQ(wrong, 0) << "elements differ of " << want.size();
}

TEST_F(CudaKernels, WhereOneAndEightByteWords) {
  for (const WhereShapes& s : kWhereShapes) {
    where_words_case<uint8_t>(s);
    where_words_case<uint64_t>(s);
  }
}

// ---- reduce_rows --------------------------------------------------------------------------------

const std::vector<std::pair<int64_t, int64_t>> kReduceShapes = {
    {3, 33}, {1, 1}, {5, 1000}, {4, 257}, {2, 31}, {6, 256}};

TEST_F(CudaKernels, ReduceRowsAgainstCpu) {
  for (int elem : {F32, F16, BF16})
    for (auto [rows, cols] : kReduceShapes)
      for (bool mean : {false, true}) {
        SCOPED_TRACE(std::string(mean ? "ReduceMean " : "ReduceSum ") + name_of(elem) + " " +
                     std::to_string(rows) + "x" + std::to_string(cols));
        std::mt19937 rng(static_cast<unsigned>(rows * 17 + cols));
        const Floats x = stored(random_floats(rows * cols, rng), elem);
        // Opset 11's ReduceSum and 13's ReduceMean take the axes as an attribute.
        const auto want = cpu_node(mean ? "ReduceMean" : "ReduceSum", "", mean ? 13 : 11,
                                   {{"x", {rows, cols}, x, elem}}, {"y"}, [](onnx::NodeProto* n) {
                                     ints_attr("axes", {-1})(n);
                                     int_attr("keepdims", 0)(n);
                                   });
        Dev dx(x, elem);
        Buf dy(static_cast<size_t>(rows), elem);
        reduce_rows(type_of(elem), mean, dx.get(), dy.get(), rows, cols, nullptr);
        const Floats got = dy.read();
        ASSERT_EQ(got.size(), want[0].size());
        for (int64_t r = 0; r < rows; ++r) {
          // Summed in another order: float32 within a few ulps of the row's magnitudes.
          float mag = 0;
          for (int64_t c = 0; c < cols; ++c) mag += std::fabs(x[r * cols + c]);
          if (mean) mag /= static_cast<float>(cols);
          const float tol = elem == F32 ? 1e-5f + 1e-6f * mag
                                        : by_precision(elem, 0.f, 1e-2f) *
                                              std::max(1.f, std::fabs(want[0][r]));
          EXPECT_NEAR(got[r], want[0][r], tol) << "row " << r;
        }
      }
}

// int32 and int64 (against the documented rule: summed in int64, a mean divides as integers,
// truncating toward zero).
template <typename T>
void reduce_ints_case(TfhDataType t, bool mean) {
  SCOPED_TRACE(std::string(mean ? "mean " : "sum ") + (sizeof(T) == 4 ? "int32" : "int64"));
  const T big = sizeof(T) == 4 ? T(2000000000) : T(4000000000000000000LL);
  // Rows (zero-padded to one width): partial sums past int32's range whose total fits, negative
  // sums (the mean truncates toward zero), values past int32's range for int64; no sum leaves
  // int64's range.
  std::vector<std::vector<T>> rows = {{big, big, T(-big), T(-big + 5)},
                                      {-7, 2, -3, 1},
                                      {big, big, T(-big), T(-big), -3},
                                      {5, 6, 7, 8, 9, 10, 11}};
  // int32's mean of a row whose sum passes int32's range (a sum in int32 would wrap).
  if (mean && sizeof(T) == 4) rows.push_back({big, big, big, big, big, big, big});
  size_t cols = 0;
  for (const auto& row : rows) cols = std::max(cols, row.size());
  std::vector<T> x, want;
  for (auto row : rows) {
    row.resize(cols, 0);
    int64_t acc = 0;
    for (T v : row) {
      x.push_back(v);
      acc += v;  // exact in int64
    }
    want.push_back(static_cast<T>(mean ? acc / static_cast<int64_t>(cols) : acc));
  }
  DevRaw dx(x), dy(want.size() * sizeof(T), 0xff);
  reduce_rows(t, mean, dx.get(), dy.get(), static_cast<int64_t>(rows.size()),
              static_cast<int64_t>(cols), nullptr);
  EXPECT_EQ(dy.read<T>(), want);

  // Rows past a block: 600 columns of random values (the total inside T's range).
  SCOPED_TRACE("600 columns");
  const int64_t wide = 600, range = sizeof(T) == 4 ? 3000000 : 1000000000000000LL;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> u(-range, range);
  std::vector<T> xw(3 * wide), want_w(3);
  for (T& v : xw) v = static_cast<T>(u(rng));
  for (int64_t r = 0; r < 3; ++r) {
    int64_t acc = 0;
    for (int64_t c = 0; c < wide; ++c) acc += xw[r * wide + c];
    want_w[r] = static_cast<T>(mean ? acc / wide : acc);
  }
  DevRaw dxw(xw), dyw(want_w.size() * sizeof(T), 0xff);
  reduce_rows(t, mean, dxw.get(), dyw.get(), 3, wide, nullptr);
  EXPECT_EQ(dyw.read<T>(), want_w);
}

TEST_F(CudaKernels, ReduceRowsIntegers) {
  for (bool mean : {false, true}) {
    reduce_ints_case<int32_t>(TFH_TYPE_INT32, mean);
    reduce_ints_case<int64_t>(TFH_TYPE_INT64, mean);
  }
}

// ---- arg_extreme (ArgMax / ArgMin) -------------------------------------------------------------

struct ArgCase {
  Shape x;
  int64_t axis;
};
// A decoding step's logits (batch 3, GPT-2's vocabulary), the axis first, in the middle and last,
// lines shorter than a warp and longer than a block.
const std::vector<ArgCase> kArgCases = {
    {{3, 50257}, 1}, {{2, 5, 7}, 1}, {{6, 257}, 0}, {{4, 33}, -1}, {{1, 1}, 1}, {{2, 3, 1000}, 2}};

TEST_F(CudaKernels, ArgMaxArgMinAgainstCpu) {
  for (int elem : {F32, F16, BF16, I32})
    for (const ArgCase& c : kArgCases)
      for (bool max : {true, false})
        for (int64_t last : {0, 1})
          for (bool ties : {false, true}) {
            SCOPED_TRACE(std::string(max ? "ArgMax " : "ArgMin ") + elem_name(elem) + " " +
                         shape_str(c.x) + " axis " + std::to_string(c.axis) +
                         (last ? " select_last_index" : "") + (ties ? " with ties" : ""));
            int64_t n = 1;
            for (int64_t d : c.x) n *= d;
            std::mt19937 rng(static_cast<unsigned>(n * 7 + c.axis));
            // Ties: a few distinct values, so that most lines hold their extreme several times.
            const Floats x = ties || elem == I32 ? random_ints(n, rng, -3, ties ? 3 : 100000)
                                                 : stored(random_floats(n, rng), elem);
            const auto want = cpu_node(max ? "ArgMax" : "ArgMin", "", 13,
                                       {{"x", c.x, x, elem}}, {"y"}, [&](onnx::NodeProto* nd) {
                                         int_attr("axis", c.axis)(nd);
                                         int_attr("keepdims", 0)(nd);
                                         int_attr("select_last_index", last)(nd);
                                       });
            const int64_t r = static_cast<int64_t>(c.x.size());
            const int64_t ax = c.axis < 0 ? c.axis + r : c.axis;
            int64_t outer = 1, inner = 1;
            for (int64_t d = 0; d < ax; ++d) outer *= c.x[d];
            for (int64_t d = ax + 1; d < r; ++d) inner *= c.x[d];
            const TfhDataType t = elem == I32 ? TFH_TYPE_INT32 : type_of(elem);
            Buf dx(x, elem);
            DevRaw dy(static_cast<size_t>(outer * inner) * 8, 0xff);
            arg_extreme(t, max, last != 0, dx.get(), static_cast<int64_t*>(dy.get()), outer,
                        c.x[ax], inner, nullptr);
            const std::vector<int64_t> got = dy.read<int64_t>();
            ASSERT_EQ(want.size(), 1u);
            ASSERT_EQ(got.size(), want[0].size());
            for (size_t i = 0; i < got.size(); ++i)
              EXPECT_EQ(got[i], static_cast<int64_t>(want[0][i])) << "output " << i;
          }
}

// int64 data (values past int32's range) and NaNs, against the documented rule: a NaN is the
// extreme (NumPy's: the first NaN's index), for ArgMax and ArgMin alike.
TEST_F(CudaKernels, ArgMaxInt64AndNaN) {
  const int64_t big = 5000000000LL;
  const std::vector<int64_t> xi = {big, -big, big + 1, 7, -big - 1, 7};  // 2 lines of 3
  DevRaw dxi(xi), dyi(4 * 8, 0xff);
  arg_extreme(TFH_TYPE_INT64, true, false, dxi.get(), static_cast<int64_t*>(dyi.get()), 2, 3, 1,
              nullptr);
  arg_extreme(TFH_TYPE_INT64, false, false, dxi.get(), static_cast<int64_t*>(dyi.get()) + 2, 2, 3,
              1, nullptr);
  EXPECT_EQ(dyi.read<int64_t>(), (std::vector<int64_t>{2, 0, 1, 1}));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Floats xf = {nan, 1.f, nan, 3.f, nan, nan, -2.f, nan, -1.f, nan, nan, nan};  // 4 lines
  for (int elem : {F32, F16, BF16}) {
    SCOPED_TRACE(name_of(elem));
    Buf dx(xf, elem);
    DevRaw dy(4 * 8, 0xff);
    for (bool max : {true, false}) {
      arg_extreme(type_of(elem), max, false, dx.get(), static_cast<int64_t*>(dy.get()), 4, 3, 1,
                  nullptr);
      EXPECT_EQ(dy.read<int64_t>(), (std::vector<int64_t>{0, 1, 1, 0})) << (max ? "max" : "min");
      arg_extreme(type_of(elem), max, true, dx.get(), static_cast<int64_t*>(dy.get()), 4, 3, 1,
                  nullptr);
      EXPECT_EQ(dy.read<int64_t>(), (std::vector<int64_t>{2, 2, 1, 2})) << "select_last_index";
    }
  }
}

// ---- gather -------------------------------------------------------------------------------------

struct GatherCase {
  Shape x;
  int64_t axis;
  Shape idx_dims;
  std::vector<int64_t> idx;  // inside [-dim, dim)
};
const std::vector<GatherCase> kGathers = {
    {{4, 5, 6}, 0, {2, 2}, {3, -1, 0, -4}},
    {{4, 5, 6}, 1, {3}, {-5, 4, 2}},
    {{4, 5, 6}, 2, {4}, {5, -6, 0, 0}},
    {{50, 64}, 0, {37}, {}},  // an embedding lookup: random ids, filled in below
    {{3}, 0, {}, {-2}},       // a scalar index
};

void gather_dims(const GatherCase& g, int64_t* outer, int64_t* dim, int64_t* inner) {
  *outer = 1, *inner = 1, *dim = g.x[g.axis];
  for (int64_t i = 0; i < g.axis; ++i) *outer *= g.x[i];
  for (size_t i = g.axis + 1; i < g.x.size(); ++i) *inner *= g.x[i];
}

TEST_F(CudaKernels, GatherAgainstCpu) {
  for (int elem : {F32, F16, I32})
    for (GatherCase g : kGathers)
      for (int idx_elem : {I32, I64}) {
        SCOPED_TRACE(elem_name(elem) + " " + shape_str(g.x) + " axis " + std::to_string(g.axis) +
                     (idx_elem == I32 ? " int32" : " int64") + " indices " + shape_str(g.idx_dims));
        std::mt19937 rng(static_cast<unsigned>(count(g.x) + g.axis));
        if (g.idx.empty()) {
          std::uniform_int_distribution<int64_t> u(-g.x[g.axis], g.x[g.axis] - 1);
          for (int64_t i = 0; i < count(g.idx_dims); ++i) g.idx.push_back(u(rng));
        }
        const Floats x = elem == I32 ? random_ints(count(g.x), rng, -1000000, 1000000)
                                     : stored(random_floats(count(g.x), rng), elem);
        const Floats idx(g.idx.begin(), g.idx.end());
        const auto want = cpu_node("Gather", "", 13,
                                   {{"x", g.x, x, elem}, {"i", g.idx_dims, idx, idx_elem}}, {"y"},
                                   int_attr("axis", g.axis));
        int64_t outer, dim, inner;
        gather_dims(g, &outer, &dim, &inner);
        const int64_t n_idx = static_cast<int64_t>(g.idx.size());
        DevRaw di32(std::vector<int32_t>(g.idx.begin(), g.idx.end())), di64(g.idx);
        Buf dx(x, elem), dy(static_cast<size_t>(outer * n_idx * inner), elem);
        gather(elem_bytes(elem), dx.get(), idx_elem == I32 ? TFH_TYPE_INT32 : TFH_TYPE_INT64,
               idx_elem == I32 ? di32.get() : di64.get(), dy.get(), outer, dim, n_idx, inner, nullptr);
        EXPECT_EQ(max_diff(dy.read(), want[0]), 0.f);  // a copy: exact
      }
}

// Out-of-range indices give zeros (documented: the kernel cannot raise the CPU's error), for
// elements of every size; int64 indices past int32's range included (one that truncates to a
// valid int32 index must still give zeros). Reference computed here.
template <typename Word>
void gather_out_of_range_case(TfhDataType idx_type) {
  const bool i64 = idx_type == TFH_TYPE_INT64;
  SCOPED_TRACE(std::to_string(sizeof(Word)) + "-byte, " + (i64 ? "int64" : "int32") + " indices");
  const int64_t outer = 3, dim = 5, inner = 4;
  std::vector<int64_t> idx = {0, 5, -1, -6, 100, -1000, 4, -5, 2};
  if (i64) {
    idx.push_back((int64_t(1) << 32) + 1);
    idx.push_back(-(int64_t(1) << 32) + 2);
  }
  const int64_t n_idx = static_cast<int64_t>(idx.size());
  std::mt19937_64 rng(sizeof(Word) * 2 + i64);
  auto x = random_words<Word>(outer * dim * inner, rng);
  for (Word& w : x)
    if (w == 0) w = 1;  // so a zero in the output can only mean "out of range"
  std::vector<Word> want(static_cast<size_t>(outer * n_idx * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n_idx; ++j)
      for (int64_t r = 0; r < inner; ++r) {
        const int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
        want[(o * n_idx + j) * inner + r] = k >= 0 && k < dim ? x[(o * dim + k) * inner + r] : Word(0);
      }
  DevRaw dx(x), di32(std::vector<int32_t>(idx.begin(), idx.end())), di64(idx),
      dy(want.size() * sizeof(Word), 0xff);
  gather(sizeof(Word), dx.get(), idx_type, i64 ? di64.get() : di32.get(), dy.get(), outer, dim,
         n_idx, inner, nullptr);
  const auto got = dy.read<Word>();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << "element " << i << ", index " << idx[(i / inner) % n_idx];
}

TEST_F(CudaKernels, GatherOutOfRangeGivesZeros) {
  for (TfhDataType t : {TFH_TYPE_INT32, TFH_TYPE_INT64}) {
    gather_out_of_range_case<uint8_t>(t);
    gather_out_of_range_case<uint16_t>(t);
    gather_out_of_range_case<uint32_t>(t);
    gather_out_of_range_case<uint64_t>(t);
  }
}

// ---- cast ---------------------------------------------------------------------------------------

struct CastType {
  TfhDataType t;
  size_t bytes;
  const char* name;
};
const std::vector<CastType> kCastTypes = {
    {TFH_TYPE_FLOAT, 4, "float"},  {TFH_TYPE_FLOAT16, 2, "float16"}, {TFH_TYPE_DOUBLE, 8, "double"},
    {TFH_TYPE_INT32, 4, "int32"},  {TFH_TYPE_INT64, 8, "int64"},     {TFH_TYPE_UINT8, 1, "uint8"},
    {TFH_TYPE_INT8, 1, "int8"},    {TFH_TYPE_BOOL, 1, "bool"},
    {TFH_TYPE_BFLOAT16, 2, "bfloat16"}};

bool is_float_type(TfhDataType t) {
  return t == TFH_TYPE_FLOAT || t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_BFLOAT16 ||
         t == TFH_TYPE_DOUBLE;
}

// One element of type t at p: as a double (floating types) or as an int64 (the others).
double load_float(TfhDataType t, const unsigned char* p) {
  if (t == TFH_TYPE_FLOAT) { float f; std::memcpy(&f, p, 4); return f; }
  if (t == TFH_TYPE_DOUBLE) { double d; std::memcpy(&d, p, 8); return d; }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == TFH_TYPE_BFLOAT16 ? to_float(BFloat16{h}) : to_float(Float16{h});
}
int64_t load_int(TfhDataType t, const unsigned char* p) {
  switch (t) {
    case TFH_TYPE_INT32: { int32_t k; std::memcpy(&k, p, 4); return k; }
    case TFH_TYPE_INT64: { int64_t k; std::memcpy(&k, p, 8); return k; }
    case TFH_TYPE_UINT8: return *p;
    case TFH_TYPE_INT8: return static_cast<int8_t>(*p);
    default: return *p != 0;  // bool
  }
}
// Narrow integers wrap (two's complement), as C++20 defines the conversion.
void store_int(TfhDataType t, int64_t k, unsigned char* p) {
  switch (t) {
    case TFH_TYPE_INT32: { const int32_t v = static_cast<int32_t>(k); std::memcpy(p, &v, 4); break; }
    case TFH_TYPE_INT64: std::memcpy(p, &k, 8); break;
    default: *p = static_cast<unsigned char>(static_cast<uint64_t>(k)); break;  // uint8, int8
  }
}
std::string describe(TfhDataType t, const unsigned char* p) {
  std::ostringstream s;
  s.precision(17);
  if (is_float_type(t)) s << load_float(t, p);
  else s << load_int(t, p);
  return s.str();
}

// The documented conversion of one element: floats to integers truncate toward zero (then wrap
// to narrow types), anything to bool is != 0, integers to float round once, to float16 and
// bfloat16 through float.
void cast_reference(TfhDataType from, TfhDataType to, const unsigned char* in, unsigned char* out) {
  const bool from_float = is_float_type(from);
  if (to == TFH_TYPE_BOOL) {
    *out = from_float ? load_float(from, in) != 0.0 : load_int(from, in) != 0;
  } else if (!is_float_type(to)) {
    store_int(to, from_float ? static_cast<int64_t>(load_float(from, in)) : load_int(from, in), out);
  } else if (to == TFH_TYPE_DOUBLE) {
    const double d = from_float ? load_float(from, in) : static_cast<double>(load_int(from, in));
    std::memcpy(out, &d, 8);
  } else if (to == TFH_TYPE_FLOAT) {
    const float f = from_float ? static_cast<float>(load_float(from, in))
                               : static_cast<float>(load_int(from, in));
    std::memcpy(out, &f, 4);
  } else {  // float16, bfloat16
    const double d = from_float ? load_float(from, in) : static_cast<double>(load_int(from, in));
    const float f = static_cast<float>(d);
    const uint16_t h = to == TFH_TYPE_BFLOAT16 ? to_bfloat16(f).bits : to_float16(f).bits;
    std::memcpy(out, &h, 2);
  }
}

// Inputs of each type: fractions of both signs (truncation), values past the narrow types'
// ranges (wrapping), past float16's, small ones that are != 0, and the types' extremes.
std::vector<unsigned char> cast_inputs(TfhDataType t) {
  std::vector<unsigned char> b;
  auto put = [&](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n);
  };
  const std::vector<double> floats = {
      0, -0.0, 0.4, -0.6, 1.5, -1.5, 2.99, -2.99, 100.7, 127.5, 128.5, -128.5, -129.7, 255.9,
      256.2, 300.7, -300.7, 1000.25, 65504, -65504, 0.1, 1e-3};
  switch (t) {
    case TFH_TYPE_FLOAT: {
      auto v = floats;
      for (double d : {65519.0, 65520.0, 70000.0, -70000.0, 3e9, -3e9, 1e10, 1e-8, 16777217.0,
                       4294967297.0})
        v.push_back(d);
      for (double d : v) { const float f = static_cast<float>(d); put(&f, 4); }
      break;
    }
    case TFH_TYPE_DOUBLE: {
      auto v = floats;
      for (double d : {70000.0, 3e9, -3e9, 1e10, 1e-300, 9007199254740993.0, 1e15 + 0.5,
                       -(1e15 + 0.5), 4294967297.0, 16777217.0})
        v.push_back(d);
      for (double d : v) put(&d, 8);
      break;
    }
    case TFH_TYPE_FLOAT16: {
      auto v = floats;
      v.push_back(6e-8);  // a subnormal
      for (double d : v) { const uint16_t h = to_float16(static_cast<float>(d)).bits; put(&h, 2); }
      break;
    }
    case TFH_TYPE_BFLOAT16: {  // float32's range: values past float16's and int32's too
      auto v = floats;
      for (double d : {70000.0, -70000.0, 3e9, -3e9, 1e10, 1e-8})
        v.push_back(d);
      for (double d : v) { const uint16_t h = to_bfloat16(static_cast<float>(d)).bits; put(&h, 2); }
      break;
    }
    case TFH_TYPE_INT32:
      for (int64_t k : {0LL, 1LL, -1LL, 127LL, 128LL, -128LL, -129LL, 255LL, 256LL, 300LL, -300LL,
                        65504LL, 65519LL, 65520LL, 16777217LL, 2147483647LL, -2147483648LL,
                        123456789LL}) {
        const int32_t v = static_cast<int32_t>(k);
        put(&v, 4);
      }
      break;
    case TFH_TYPE_INT64:
      for (int64_t k : {int64_t(0), int64_t(1), int64_t(-1), int64_t(128), int64_t(-129),
                        int64_t(256), int64_t(2147483648LL), int64_t(-2147483649LL),
                        (int64_t(1) << 40) + 3, (int64_t(1) << 53) + 1, (int64_t(1) << 32) + 1,
                        // to float: rounded once (up); through double it would round to 2^60
                        (int64_t(1) << 60) + (int64_t(1) << 36) + 1,
                        std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()})
        put(&k, 8);
      break;
    case TFH_TYPE_UINT8:
      for (int k : {0, 1, 127, 128, 200, 255}) b.push_back(static_cast<unsigned char>(k));
      break;
    case TFH_TYPE_INT8:
      for (int k : {0, 1, -1, 127, -128, -7}) b.push_back(static_cast<unsigned char>(static_cast<int8_t>(k)));
      break;
    default:  // bool
      for (int k : {0, 1, 1, 0}) b.push_back(static_cast<unsigned char>(k));
  }
  return b;
}

TEST_F(CudaKernels, CastBetweenEveryPairAgainstDocumentedRules) {
  for (const CastType& from : kCastTypes)
    for (const CastType& to : kCastTypes) {
      SCOPED_TRACE(std::string(from.name) + " to " + to.name);
      ASSERT_TRUE(cast_supported(from.t, to.t));
      const auto in = cast_inputs(from.t);
      const size_t n = in.size() / from.bytes;
      std::vector<unsigned char> want(n * to.bytes);
      for (size_t i = 0; i < n; ++i)
        cast_reference(from.t, to.t, &in[i * from.bytes], &want[i * to.bytes]);
      DevRaw dx(in), dy(want.size(), 0xff);
      cast(from.t, to.t, dx.get(), dy.get(), static_cast<int64_t>(n), nullptr);
      const auto got = dy.read<unsigned char>();
      for (size_t i = 0; i < n; ++i)
        EXPECT_TRUE(std::memcmp(&got[i * to.bytes], &want[i * to.bytes], to.bytes) == 0)
            << describe(from.t, &in[i * from.bytes]) << " gave " << describe(to.t, &got[i * to.bytes])
            << ", not " << describe(to.t, &want[i * to.bytes]);
    }
  // Many elements (several blocks): float to int8, each one truncated and wrapped.
  std::mt19937 rng(5);
  const Floats x = random_floats(5000, rng, -1000.f, 1000.f);
  std::vector<int8_t> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = static_cast<int8_t>(static_cast<int64_t>(x[i]));
  DevRaw dx(x), dy(want.size(), 0xff);
  cast(TFH_TYPE_FLOAT, TFH_TYPE_INT8, dx.get(), dy.get(), static_cast<int64_t>(x.size()), nullptr);
  EXPECT_EQ(dy.read<int8_t>(), want);
  EXPECT_FALSE(cast_supported(TFH_TYPE_FLOAT, TFH_TYPE_STRING));
  EXPECT_FALSE(cast_supported(TFH_TYPE_UINT16, TFH_TYPE_FLOAT));
}

// ---- the key/value cache ------------------------------------------------------------------------

// present [2, B, N, P + S, D]: the past's rows, then the new keys/values of qkv [B, S, 3, N, D].
TEST_F(CudaKernels, SplitKvIntoPresentAgainstLayout) {
  struct Case {
    int64_t B, S, N, D, P;
  };
  for (int elem : {F32, F16, BF16})
    for (const Case& c : {Case{2, 3, 2, 5, 0}, Case{2, 3, 2, 5, 4}, Case{1, 1, 3, 4, 7},
                          Case{3, 2, 1, 1, 1}, Case{1, 17, 2, 64, 0}}) {
      SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) + " N" +
                   std::to_string(c.N) + " D" + std::to_string(c.D) + " P" + std::to_string(c.P));
      std::mt19937 rng(static_cast<unsigned>(c.B * 100 + c.S * 10 + c.P));
      const Floats qkv = stored(random_floats(c.B * c.S * 3 * c.N * c.D, rng), elem),
                   past = stored(random_floats(2 * c.B * c.N * c.P * c.D, rng), elem);
      const int64_t T = c.P + c.S;
      Floats want(static_cast<size_t>(2 * c.B * c.N * T * c.D));
      for (int64_t kv = 0; kv < 2; ++kv)
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t n = 0; n < c.N; ++n)
            for (int64_t t = 0; t < T; ++t)
              for (int64_t d = 0; d < c.D; ++d)
                want[(((kv * c.B + b) * c.N + n) * T + t) * c.D + d] =
                    t < c.P ? past[(((kv * c.B + b) * c.N + n) * c.P + t) * c.D + d]
                            : qkv[(((b * c.S + t - c.P) * 3 + 1 + kv) * c.N + n) * c.D + d];
      Dev dqkv(qkv, elem), dpast(past, elem);
      Buf dpresent(want.size(), elem);
      split_kv_into_present(type_of(elem), dqkv.get(), c.P ? dpast.get() : nullptr, dpresent.get(),
                            c.B, c.S, c.P, c.N, c.D, nullptr);
      EXPECT_EQ(max_diff(dpresent.read(), want), 0.f);  // a copy: exact
      EXPECT_EQ(max_diff(dqkv.read(), qkv), 0.f);  // qkv (and Q) left alone
    }
  EXPECT_THROW(split_kv_into_present(TFH_TYPE_FLOAT, nullptr, nullptr, nullptr, 1, 1, 2, 1, 1,
                                     nullptr),
               CudaError);  // a past length without a past
}

// The shared buffer [2, B, N, M, D]: rows [P, P + S) replaced by the new keys/values (P read on
// the device), rows at or past M never written, every other row left as it was.
TEST_F(CudaKernels, AppendKvToCacheAgainstLayout) {
  struct Case {
    int64_t B, S, N, D, M, P;
  };
  for (int elem : {F32, F16, BF16})
    for (const Case& c : {Case{2, 3, 2, 5, 8, 0}, Case{2, 3, 2, 5, 8, 4},
                          Case{2, 3, 2, 5, 8, 6},   // the last new row falls past M
                          Case{2, 3, 2, 5, 8, 8},   // all of them do
                          Case{2, 3, 2, 5, 8, 11},  // the past already past M
                          Case{1, 1, 3, 4, 9, 5},   // a decoding step
                          Case{1, 20, 2, 64, 24, 0}, Case{2, 2, 1, 1, 2, 1}}) {
      SCOPED_TRACE(name_of(elem) + " B" + std::to_string(c.B) + " S" + std::to_string(c.S) + " N" +
                   std::to_string(c.N) + " D" + std::to_string(c.D) + " M" + std::to_string(c.M) +
                   " P" + std::to_string(c.P));
      std::mt19937 rng(static_cast<unsigned>(c.B * 100 + c.S * 10 + c.P + c.M));
      const Floats qkv = stored(random_floats(c.B * c.S * 3 * c.N * c.D, rng), elem),
                   cache = stored(random_floats(2 * c.B * c.N * c.M * c.D, rng, 2.f, 3.f), elem);
      Floats want = cache;
      for (int64_t kv = 0; kv < 2; ++kv)
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t n = 0; n < c.N; ++n)
            for (int64_t t = 0; t < c.S && c.P + t < c.M; ++t)
              for (int64_t d = 0; d < c.D; ++d)
                want[(((kv * c.B + b) * c.N + n) * c.M + c.P + t) * c.D + d] =
                    qkv[(((b * c.S + t) * 3 + 1 + kv) * c.N + n) * c.D + d];
      Dev dqkv(qkv, elem), dcache(cache, elem);
      DevMask past_len(Floats{static_cast<float>(c.P)});
      append_kv_to_cache(type_of(elem), dqkv.get(), dcache.get(), c.B, c.S, c.M, past_len.get(),
                         c.N, c.D, nullptr);
      EXPECT_EQ(max_diff(dcache.read(), want), 0.f);  // exact, untouched rows included
    }
  DevMask past_len(Floats{0.f});
  EXPECT_THROW(append_kv_to_cache(TFH_TYPE_FLOAT, nullptr, nullptr, 1, 1, 1, past_len.get(), 1, 1,
                                  nullptr),
               CudaError);  // no cache
}

}  // namespace
}  // namespace tfh::kernels::cuda
