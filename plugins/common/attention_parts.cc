// Pieces of the attention fusions shared by the family plugins: the additive-mask sources,
// heads from a Reshape target, transpose permutations.
#include <cmath>

#include "common_fusions.h"

namespace plugin_common {

bool has_perm(const tfh::NodeView& t, std::vector<int64_t> perm) {
  return t.attr_ints("perm", {}) == perm;
}

// The graph input `inverted` = Sub(1, Cast?(Expand?(Unsqueeze(Unsqueeze(mask))))) is made of.
tfh::ValueView inverted_mask_source(const tfh::ValueView& inverted) {
  const tfh::NodeView sub = inverted.producer();
  if (!sub || !sub.is("Sub")) return tfh::ValueView();
  const tfh::TensorView one = sub.input(0).constant();
  if (!one || one.uniform_value() != 1.0) return tfh::ValueView();
  tfh::NodeView n = sub.input(1).producer();
  if (n && n.is("Cast")) n = n.input(0).producer();
  if (n && n.is("Expand")) n = n.input(0).producer();  // the sdpa form's [B, 1, S, S]
  tfh::ValueView raw;
  int unsqueezes = 0;
  while (n && n.is("Unsqueeze")) {
    raw = n.input(0);
    ++unsqueezes;
    n = raw.producer();
  }
  // GPT-2 views its mask as [batch, -1] first, and int32 inputs are cast to int64 before that
  for (int i = 0; i < 2 && raw && !raw.is_graph_input() && raw.producer(); ++i)
    if (raw.producer().is("Reshape") || raw.producer().is("Cast")) raw = raw.producer().input(0);
  if (unsqueezes != 2 || !raw || !raw.is_graph_input()) return tfh::ValueView();
  return raw;
}

// Additive masks: Mul(inverted, filter) (transformers' get_extended_attention_mask), or
// Where(Cast(inverted, bool), filter, inverted) (masked_fill in _prepare_4d_attention_mask_for_sdpa).
std::optional<MaskSource> mask_source(const tfh::ValueView& mask) {
  const tfh::NodeView n = mask.producer();
  if (n && n.is("Mul")) {
    for (int side = 0; side < 2; ++side) {
      const tfh::TensorView filter = n.input(1 - side).constant();
      if (!filter || filter.size() != 1) continue;
      if (const tfh::ValueView raw = inverted_mask_source(n.input(side)))
        return MaskSource{raw, *filter.at(0)};
    }
  }
  if (n && n.is("Where")) {
    const tfh::TensorView filter = n.input(1).constant();
    tfh::NodeView cond = n.input(0).producer();
    while (cond && cond.is("Cast") && cond.input(0).name() != n.input(2).name())
      cond = cond.input(0).producer();
    if (!filter || filter.size() != 1 || !cond || !cond.is("Cast")) return std::nullopt;
    if (const tfh::ValueView raw = inverted_mask_source(n.input(2)))
      return MaskSource{raw, *filter.at(0)};
  }
  return std::nullopt;
}

// torch 2.x exports F.scaled_dot_product_attention's default scale as
// Sqrt(Div(1, Sqrt(Cast(Slice(Shape(q), -1))))) on each of q and K^T: sqrt(1/sqrt(head size)).
// Returns that factor, or a constant's value.
std::optional<double> sdpa_factor(const tfh::ValueView& s, int64_t head_size) {
  if (const tfh::TensorView c = s.constant())
    return c.size() == 1 ? c.at(0) : std::nullopt;
  const tfh::NodeView sqrt = s.producer();
  const tfh::NodeView div = sqrt && sqrt.is("Sqrt") ? sqrt.input(0).producer() : tfh::NodeView();
  if (!div || !div.is("Div")) return std::nullopt;
  const tfh::TensorView one = div.input(0).constant();
  tfh::NodeView n = div.input(1).producer();
  if (!one || one.uniform_value() != 1.0 || !n || !n.is("Sqrt")) return std::nullopt;
  n = n.input(0).producer();
  if (n && n.is("Cast")) n = n.input(0).producer();
  if (!n || !(n.is("Slice") || n.is("Gather"))) return std::nullopt;
  const tfh::TensorView at = n.input(1).constant();  // Slice starts / Gather index: -1 or 3
  if (!at || at.size() != 1 || !(at.at(0) == -1.0 || at.at(0) == 3.0)) return std::nullopt;
  const tfh::NodeView shape = n.input(0).producer();
  if (!shape || !shape.is("Shape")) return std::nullopt;
  return std::sqrt(1.0 / std::sqrt(static_cast<double>(head_size)));
}

// Heads and head size from the Q Reshape's target shape: Concat(.., .., N, d) or a constant.
std::optional<std::pair<int64_t, int64_t>> heads(const tfh::NodeView& reshape) {
  const tfh::ValueView shape = reshape.input(1);
  if (const tfh::TensorView c = shape.constant()) {
    if (c.size() != 4) return std::nullopt;
    return std::make_pair(static_cast<int64_t>(*c.at(2)), static_cast<int64_t>(*c.at(3)));
  }
  const tfh::NodeView cat = shape.producer();
  if (!cat || !cat.is("Concat") || cat.num_inputs() != 4) return std::nullopt;
  const tfh::TensorView n = cat.input(2).constant(), d = cat.input(3).constant();
  if (!n || !d || n.size() != 1 || d.size() != 1) return std::nullopt;
  return std::make_pair(static_cast<int64_t>(*n.at(0)), static_cast<int64_t>(*d.at(0)));
}

}  // namespace plugin_common
