// gpt2.attention: GPT-2's causal self-attention block as one com.microsoft.Attention
// (unidirectional = 1), or MultiHeadAttention where past keys and values are separate tensors.
//
//   qkv = Add(MatMul(x, W[H, 3H]), b)            (after gpt2.gemm_reshape)
//   q, k, v = Transpose(Reshape(Split(qkv)[i], [B, S, N, d]), 0213)
//   k_all = Concat(past_k, k), v_all = Concat(past_v, v)        (past: Squeeze(Split(past_i)),
//                                                                or a graph input per tensor)
//   s = Div(MatMul(q, Transpose(k_all, 0132)), sqrt(d))
//   s = Where(causal, s, fill)                    causal: Slice of the lower-triangular buffer
//   y = Reshape(Transpose(MatMul(Softmax(s [+ additive mask]), v_all), 0213), [B, S, H])
//
// becomes
//   convert_to_onnx layout (past_i [2, B, N, P, d], present_i = Concat(Unsqueeze(k_all),
//   Unsqueeze(v_all))): y, present_i = Attention(x, W, b, mask, past_i)
//   Hugging Face layout (past_key_values.i.key/value, present.i.key/value = k_all, v_all):
//   y, k_all, v_all = MultiHeadAttention(q', k', v', b, mask, -, past_k, past_v), with
//   q', k', v' = Split(MatMul(x, W))
//   no past: y = Attention(x, W, b[, mask])
// The mask is the raw 2-D attention_mask (int32), its filter value kept. Heads come from the Q
// Reshape's target unless --num_heads is given.
#include <cmath>
#include <map>

#include "fusions/fusions.h"

namespace gpt2 {
namespace {

using plugin_common::has_perm;

// The causal condition: Cast(bool)? of Slices of a constant lower-triangular [.., M, M] buffer
// (GPT-2's registered `bias`), sliced right-aligned to the keys.
bool lower_triangular(const tfh::TensorView& t) {
  if (!t || t.rank() < 2) return false;
  const int64_t rows = t.dims()[t.rank() - 2], cols = t.dims()[t.rank() - 1];
  if (rows != cols || static_cast<int64_t>(t.size()) != rows * cols) return false;
  if (t.dtype() == TFH_TYPE_BOOL || t.dtype() == TFH_TYPE_UINT8) {  // the usual: read bytes
    const auto* b = static_cast<const uint8_t*>(t.raw());
    if (!b) return false;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if ((b[r * cols + c] != 0) != (c <= r)) return false;
    return true;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      if ((t.at(static_cast<size_t>(r * cols + c)).value_or(-1) != 0) != (c <= r)) return false;
  return true;
}

// (The buffer is 1024 x 1024 in GPT-2: each one is checked once per run, not per match attempt.)
bool causal_buffer(const tfh::ValueView& cond, std::map<const void*, bool>& checked) {
  tfh::ValueView v = cond;
  for (int i = 0; i < 6 && v && !v.constant(); ++i) {
    const tfh::NodeView n = v.producer();
    if (!n || !(n.is("Cast") || n.is("Slice"))) return false;
    v = n.input(0);
  }
  const tfh::TensorView t = v ? v.constant() : tfh::TensorView();
  if (!t) return false;
  const auto [it, fresh] = checked.emplace(t.handle(), false);
  if (fresh) it->second = lower_triangular(t);
  return it->second;
}

// The divisor: sqrt(d) as a constant, or computed from a shape the way GPT-2 writes
// value.size(-1) ** 0.5: Pow(Cast(Squeeze?(Slice|Gather(Shape(..)))), 0.5), possibly plus a
// zero ConstantOfShape (torch.full). Returns the divisor.
std::optional<double> divisor(const tfh::ValueView& s, int64_t head_size) {
  if (const tfh::TensorView c = s.constant()) return c.size() == 1 ? c.at(0) : std::nullopt;
  tfh::NodeView n = s.producer();
  if (n && n.is("Add")) {  // torch.full([], x) + pow: one side a ConstantOfShape of zeros
    for (int side = 0; side < 2; ++side) {
      const tfh::NodeView z = n.input(side).producer();
      if (z && z.is("ConstantOfShape")) {
        const tfh::TensorView fill = z.attr_tensor("value");
        if (fill && fill.uniform_value() != 0.0) return std::nullopt;
        n = n.input(1 - side).producer();
        break;
      }
    }
  }
  if (!n || !(n.is("Pow") || n.is("Sqrt"))) return std::nullopt;
  if (n.is("Pow")) {
    const tfh::TensorView e = n.input(1).constant();
    if (!e || e.uniform_value() != 0.5) return std::nullopt;
  }
  n = n.input(0).producer();
  while (n && (n.is("Cast") || n.is("Squeeze"))) n = n.input(0).producer();
  if (!n || !(n.is("Slice") || n.is("Gather"))) return std::nullopt;
  const tfh::TensorView at = n.input(1).constant();
  const tfh::NodeView shape = n.input(0).producer();
  if (!at || at.size() != 1 || !(at.at(0) == -1.0 || at.at(0) == 3.0) || !shape ||
      !shape.is("Shape"))
    return std::nullopt;
  return std::sqrt(static_cast<double>(head_size));
}

}  // namespace

size_t fuse_attention(tfh::GraphView g, const tfh::ParamsView& p) {
  using namespace tfh;
  const int64_t want_heads = p.get_int("num_heads"), want_hidden = p.get_int("hidden_size");
  const bool opset13 = g.opset("") >= 13;
  const auto x = Any("x");
  const auto qkv = Op("Add", {Op("MatMul", {x, Const().as("w")}), Const().as("b")}).commutative();
  // Split's sizes: an input from opset 13, an attribute before. Its outputs also feed the Shape
  // nodes of the Reshape targets: it may escape (those die with the Reshapes).
  auto split = [&](size_t i) {
    return OneOf(Op("Split", {qkv, Const()}).output(i).may_escape(),
                 Op("Split", {qkv}).output(i).may_escape());
  };
  auto head = [&](size_t i, const char* reshape, const char* transpose) {
    return Op("Transpose", {Op("Reshape", {split(i), Any()}).as(reshape)})
        .as(transpose)
        .may_escape();
  };
  const auto q = head(0, "reshape_q", "tq"), k = head(1, "reshape_k", "tk"),
             v = head(2, "reshape_v", "tv");
  // past: Squeeze(Split(past)[i]) or Gather(past, i) (convert_to_onnx), or a graph input (HF).
  auto past_part = [&](size_t i) {
    return OneOf(Op("Squeeze", {Op("Split", {Any("past"), Const()}).output(i), Const()}),
                 Op("Squeeze", {Op("Split", {Any("past")}).output(i)}),
                 Op("Gather", {Any("past"), Const(static_cast<double>(i))}));
  };
  // k_all / v_all feed the present outputs and the Shape nodes of the scale and causal slice.
  const auto k_all = OneOf(Op("Concat", {past_part(0), k}).as("k_all").may_escape(),
                           Op("Concat", {Any("past_k"), k}).as("k_all").may_escape(), k);
  const auto v_all = OneOf(Op("Concat", {past_part(1), v}).as("v_all").may_escape(),
                           Op("Concat", {Any("past_v"), v}).as("v_all").may_escape(), v);
  // Without past the exporter merges K's two Transposes into one (perm 0231).
  const auto k_t = OneOf(Op("Transpose", {k_all}).as("tk_all"),
                         Op("Transpose", {Op("Reshape", {split(1), Any()}).may_escape()})
                             .as("tk_direct"));  // K's 0213 view feeds the causal slice's Shape
  const auto scores = Op("MatMul", {q, k_t});
  const auto scaled = Op("Div", {scores, Any("divisor")});
  const auto causal =
      Op("Where", {Any("causal"), OneOf(Op("Cast", {scaled}), scaled), Const().as("fill")});
  const auto masked = OneOf(Op("Add", {causal, Any("mask")}).commutative(), causal);
  const auto probs = Op("Softmax", {masked}).as("softmax");
  const auto ctx = Op("MatMul", {OneOf(Op("Cast", {probs}), probs), v_all});
  const auto block =
      Op("Reshape", {Op("Transpose", {ctx}).as("tctx").may_escape(), Any()});

  auto heads_of = [want_heads](const Match& m) -> std::optional<std::pair<int64_t, int64_t>> {
    const int64_t h = m.constant("w").dims()[1] / 3;
    if (want_heads > 0) {
      if (h % want_heads) return std::nullopt;
      return std::make_pair(want_heads, h / want_heads);
    }
    return plugin_common::heads(m.node("reshape_q"));
  };
  std::map<const void*, bool> causal_checked;
  auto ok = [heads_of, want_hidden, &causal_checked](const Match& m) {
    const TensorView w = m.constant("w"), b = m.constant("b");
    if (w.rank() != 2 || w.dtype() != TFH_TYPE_FLOAT || w.dims()[1] % 3 || b.rank() != 1 ||
        b.dims()[0] != w.dims()[1])
      return false;
    const int64_t h = w.dims()[1] / 3;
    if (want_hidden > 0 && h != want_hidden) return false;
    const auto nd = heads_of(m);
    if (!nd || nd->first * nd->second != h) return false;
    for (const char* t : {"tq", "tk", "tv", "tctx"})
      if (m.has(t) && !has_perm(m.node(t), {0, 2, 1, 3})) return false;
    if (m.has("tk_all") && !has_perm(m.node("tk_all"), {0, 1, 3, 2})) return false;
    if (m.has("tk_direct") && !has_perm(m.node("tk_direct"), {0, 2, 3, 1})) return false;
    for (const char* c : {"k_all", "v_all"})
      if (m.has(c)) {
        const int64_t axis = m.node(c).attr_int("axis", 0);
        if (axis != -2 && axis != 2) return false;
      }
    if (m.has("k_all") != m.has("v_all") || m.has("past_k") != m.has("past_v")) return false;
    if (m.has("past_k") && !(m["past_k"].is_graph_input() && m["past_v"].is_graph_input()))
      return false;
    if (m.has("past") && !m["past"].is_graph_input()) return false;
    const int64_t axis = m.node("softmax").attr_int("axis", -1);
    if (axis != -1 && axis != 3) return false;
    const auto d = divisor(m["divisor"], nd->second);
    if (!d || std::fabs(*d - std::sqrt(static_cast<double>(nd->second))) > 1e-3 * *d) return false;
    if (!causal_buffer(m["causal"], causal_checked) || m.constant("fill").size() != 1)
      return false;
    if (m.has("mask")) {
      const auto mask = plugin_common::mask_source(m["mask"]);
      const double fill = *m.constant("fill").at(0);
      // Attention masks future and padded keys with one filter value: both must agree.
      if (!mask || std::fabs(mask->filter - fill) > 1e-3 * std::fabs(fill)) return false;
    }
    return true;
  };
  // The convert_to_onnx layout's present_i = Concat(Unsqueeze(k_all, 0), Unsqueeze(v_all, 0)):
  // the Attention produces it under the same name, once that Concat is gone (see below).
  auto present_of = [](const Match& m) -> NodeView {
    if (!m.has("k_all")) return NodeView();
    for (const Use& u : m["k_all"].consumers()) {
      if (!u.node.is("Unsqueeze")) continue;
      for (const Use& c : u.node.output(0).consumers())
        if (c.node.is("Concat") && c.node.num_inputs() == 2 && c.input == 0 &&
            c.node.attr_int("axis", -1) == 0) {
          const NodeView other = c.node.input(1).producer();
          if (other && other.is("Unsqueeze") && other.input(0).name() == m["v_all"].name())
            return c.node;
        }
    }
    return NodeView();
  };

  // Pass 1 (no change): which matched blocks have a present Concat to take over; those Concats
  // go, and the Attention defines their values (graph outputs keep their names).
  std::map<std::string, std::string> present_by_k_all;
  std::vector<NodeView> presents;
  {
    Rewriter probe(g);
    probe.add(block.where(ok), [&](const Match& m, Edit&) {
      if (m.has("past"))
        if (const NodeView pc = present_of(m)) {
          present_by_k_all[std::string(m["k_all"].name())] = std::string(pc.output(0).name());
          presents.push_back(pc);
        }
      return false;
    });
    probe.run();
  }
  for (const NodeView& pc : presents) g.remove_node(pc);

  Rewriter rw(g);
  rw.add(block.where(ok), [&](const Match& m, Edit& e) {
    const auto [n_heads, head_size] = *heads_of(m);
    const int64_t h = n_heads * head_size;
    std::vector<Attr> attrs{Attr("num_heads", n_heads), Attr("unidirectional", int64_t{1})};
    ValueRef mask;
    if (m.has("mask")) {
      const auto src = *plugin_common::mask_source(m["mask"]);
      attrs.emplace_back("mask_filter_value", src.filter);
      mask = plugin_common::as_int32(e, src.raw);
    }
    if (m.has("past_k")) {
      // MultiHeadAttention: Q, K, V projected apart (one MatMul, split), bias added inside.
      const std::string proj = e.new_name("mha_qkv"), q_in = e.new_name("mha_q"),
                        k_in = e.new_name("mha_k"), v_in = e.new_name("mha_v");
      e.add_node("", "MatMul", {m["x"], m["w"]}, {proj});
      if (opset13) {  // the sizes: an input from opset 13, an attribute before
        const std::string sizes =
            e.add_initializer("mha_split", Tensor::from<int64_t>({3}, {h, h, h}));
        e.add_node("", "Split", {ValueRef(proj), ValueRef(sizes)}, {q_in, k_in, v_in},
                   {Attr("axis", int64_t{-1})});
      } else {
        e.add_node("", "Split", {ValueRef(proj)}, {q_in, k_in, v_in},
                   {Attr("axis", int64_t{-1}), Attr::ints("split", {h, h, h})});
      }
      e.add_node("com.microsoft", "MultiHeadAttention",
                 {ValueRef(q_in), ValueRef(k_in), ValueRef(v_in), m["b"], mask, ValueRef(),
                  m["past_k"], m["past_v"]},
                 {e.root_output(0), std::string(m["k_all"].name()), std::string(m["v_all"].name())},
                 attrs);
      return true;
    }
    std::vector<ValueRef> ins{m["x"], m["w"], m["b"], mask};
    std::vector<std::string> outs{e.root_output(0)};
    if (m.has("past")) {
      ins.push_back(m["past"]);
      // present: the removed Concat's name when the block had one, else a fresh value.
      const auto it = present_by_k_all.find(std::string(m["k_all"].name()));
      outs.push_back(it != present_by_k_all.end() ? it->second : e.new_name("present"));
    }
    while (!ins.empty() && ins.back().omitted()) ins.pop_back();
    e.add_node("com.microsoft", "Attention", ins, outs, attrs);
    return true;
  });
  const size_t n = rw.run();
  plugin_common::merge_duplicate_mask_ops(g);
  return n;
}

}  // namespace gpt2
