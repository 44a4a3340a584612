// embed_layer_norm (bert.embed_layer_norm, gpt2.embed_layer_norm): the embeddings block as one
// com.microsoft.EmbedLayerNormalization.
//
//   LayerNormalization(Add(Add(Gather(word, ids), Gather(segment, seg)), Gather(position, pos)))
//   LayerNormalization(Add(Gather(word, ids), Gather(position, pos)))           (no segments)
//
// The word table is the larger of the two inner tables. Position ids that are Slice(arange
// buffer, 0, S) (BERT, DistilBERT) or Expand(Unsqueeze(Range(0, S))) (older DistilBERT) are the
// op's default and are dropped; any other position ids (RoBERTa's, computed from the tokens)
// become its position_ids input. Segment ids that are constant zeros (RoBERTa's buffered
// token_type_ids) are no input: segment row 0 is added to the position table instead. ONNX Runtime's op takes
// int32 ids: int64 ones get a Cast. The mask input is left to the Attention fusion (mask_index,
// output 1, is always declared: ONNX Runtime's type inference requires it).
#include "common_fusions.h"

namespace plugin_common {
namespace {

// Slice(data, starts = 0, ends, axes = 1 (or absent), steps = 1 (or absent)) of a constant
// [1, N] (or [N]) buffer holding 0, 1, ..., N-1: what HF models keep as `position_ids`.
bool default_positions(const tfh::ValueView& pos) {
  const tfh::NodeView s = pos.producer();
  if (!s || !s.is("Slice") || s.num_inputs() < 3) return false;
  const tfh::TensorView buf = s.input(0).constant();
  if (!buf || buf.rank() < 1 || buf.rank() > 2 || (buf.rank() == 2 && buf.dims()[0] != 1))
    return false;
  for (size_t i = 0; i < buf.size(); ++i)
    if (buf.at(i).value_or(-1) != static_cast<double>(i)) return false;
  const tfh::TensorView starts = s.input(1).constant();
  if (!starts || starts.size() != 1 || starts.at(0).value_or(-1) != 0) return false;
  if (s.num_inputs() > 3 && s.input(3)) {
    const tfh::TensorView axes = s.input(3).constant();
    const double last = static_cast<double>(buf.rank() - 1);
    if (!axes || axes.size() != 1 || (axes.at(0) != last && axes.at(0) != -1.0)) return false;
  }
  if (s.num_inputs() > 4 && s.input(4)) {
    const tfh::TensorView steps = s.input(4).constant();
    if (!steps || steps.size() != 1 || steps.at(0).value_or(0) != 1) return false;
  }
  return true;
}

// The constant `v` is a shape-only view of (Expand, Slice, Reshape, (Un)Squeeze, Cast, Identity
// of data input 0), or null.
tfh::TensorView constant_source(tfh::ValueView v) {
  for (int depth = 0; v && depth < 8; ++depth) {
    if (const tfh::TensorView c = v.constant()) return c;
    const tfh::NodeView n = v.producer();
    if (!n || !(n.is("Expand") || n.is("Slice") || n.is("Reshape") || n.is("Unsqueeze") ||
                n.is("Squeeze") || n.is("Cast") || n.is("Identity")))
      return tfh::TensorView();
    v = n.input(0);
  }
  return tfh::TensorView();
}

// Steps through shape-only ops that keep values in order along the last axis.
tfh::NodeView through_views(tfh::NodeView n) {
  while (n && (n.is("Expand") || n.is("Unsqueeze") || n.is("Cast") || n.is("Identity")))
    n = n.input(0).producer();
  return n;
}

// Position ids 0, 1, ..., S-1 on every row, as older DistilBERT code builds them:
// Expand(Unsqueeze(Range(0, S, 1))) with S = Shape(ids)[1], or (static shapes) a constant view.
bool arange_positions(const tfh::ValueView& pos, const tfh::ValueView& ids) {
  if (const tfh::TensorView c = constant_source(pos)) {
    const int64_t n = c.rank() ? c.dims()[c.rank() - 1] : 0;
    if (n <= 0 || ids.rank() != 2 || !ids.dim(1).known() || ids.dim(1).value != n) return false;
    for (size_t i = 0; i < c.size(); ++i)
      if (c.at(i).value_or(-1) != static_cast<double>(static_cast<int64_t>(i) % n)) return false;
    return true;
  }
  const tfh::NodeView range = through_views(pos.producer());
  if (!range || !range.is("Range")) return false;
  const tfh::TensorView start = range.input(0).constant(), delta = range.input(2).constant();
  if (!start || start.uniform_value() != 0.0 || !delta || delta.uniform_value() != 1.0) return false;
  tfh::NodeView limit = range.input(1).producer();
  while (limit && (limit.is("Cast") || limit.is("Squeeze") || limit.is("Unsqueeze")))
    limit = limit.input(0).producer();
  if (!limit || !limit.is("Gather")) return false;
  const tfh::TensorView axis = limit.input(1).constant();
  const tfh::NodeView shape = limit.input(0).producer();
  return axis && axis.uniform_value() == 1.0 && shape && shape.is("Shape") &&
         shape.input(0).name() == ids.name();
}

// Segment ids that are zeros whatever the input (RoBERTa's buffered token_type_ids).
bool zero_segments(const tfh::ValueView& seg) {
  const tfh::TensorView c = constant_source(seg);
  return c && c.uniform_value() == 0.0;
}

bool replace(const tfh::Match& m, tfh::Edit& e, bool with_segment) {
  const tfh::NodeView ln = m.root();
  tfh::ValueView word = m["t1"], ids = m["i1"];
  tfh::ValueView seg_table, seg_ids;
  if (with_segment) {
    seg_table = m["t2"];
    seg_ids = m["i2"];
    if (seg_table.constant().dims()[0] > word.constant().dims()[0]) {
      std::swap(word, seg_table);
      std::swap(ids, seg_ids);
    }
  }
  const tfh::ValueView pos = m["pos"];
  std::vector<tfh::ValueRef> ins(9);
  ins[0] = as_int32(e, ids);
  ins[3] = m["ptable"];
  if (with_segment && zero_segments(seg_ids)) {
    // Every token adds segment row 0: folded into the position table, no segment input.
    const tfh::TensorView pt = m.constant("ptable");
    const auto segments = seg_table.constant().data<float>();  // row 0: the first `hidden`
    const size_t hidden = static_cast<size_t>(pt.dims()[1]);
    std::vector<float> table(pt.data<float>().begin(), pt.data<float>().end());
    for (size_t i = 0; i < table.size(); ++i) table[i] += segments[i % hidden];
    ins[3] = e.add_initializer("position_embeddings_plus_segment0",
                               tfh::Tensor::from<float>({pt.dims()[0], pt.dims()[1]}, table));
  } else if (with_segment) {
    ins[1] = as_int32(e, seg_ids);
    ins[4] = seg_table;
  }
  ins[2] = word;
  ins[5] = m["gamma"];
  if (ln.num_inputs() > 2 && ln.input(2)) ins[6] = ln.input(2);
  if (!default_positions(pos) && !arange_positions(pos, ids)) ins[8] = as_int32(e, pos);
  while (!ins.empty() && ins.back().omitted()) ins.pop_back();
  // ONNX Runtime's schema infers output 1 (mask_index) in any case: it is always named. The sum
  // read elsewhere too (GPT-2's residual stream) becomes output 2, embedding_sum.
  std::vector<std::string> outs{e.root_output(0), e.new_name("embed_mask_index")};
  const tfh::ValueView sum = m["sum"];
  if (sum.is_graph_output() || sum.num_consumers() > 1) outs.emplace_back(sum.name());
  e.add_node("com.microsoft", "EmbedLayerNormalization", ins, outs,
             {tfh::Attr("epsilon", static_cast<double>(ln.attr_float("epsilon", 1e-12f)))});
  return true;
}

bool tables_fit(const tfh::Match& m, bool with_segment) {
  const tfh::NodeView ln = m.root();
  if (ln.attr_int("axis", -1) != -1) return false;
  const int64_t hidden = m.constant("gamma").size();
  std::vector<const char*> tables{"t1", "ptable"};
  if (with_segment) tables.push_back("t2");
  for (const char* t : tables) {
    const tfh::TensorView v = m.constant(t);
    if (!v || v.rank() != 2 || v.dims()[1] != hidden || v.dtype() != TFH_TYPE_FLOAT) return false;
  }
  // Ids must be integers; ids computed from constants (default positions, zero segments) need
  // no inferred type (so this works with --disable_shape_inference too).
  for (const char* i : {"i1", "i2", "pos"}) {
    if (!with_segment && i == std::string("i2")) continue;
    const TfhDataType t = m[i].elem_type();
    if (t == TFH_TYPE_INT64 || t == TFH_TYPE_INT32) continue;
    if (t != TFH_TYPE_UNDEFINED) return false;
    const bool known_values =
        i == std::string("pos") ? default_positions(m[i]) || arange_positions(m[i], m["i1"])
                                : i == std::string("i2") && zero_segments(m[i]);
    if (!known_values) return false;
  }
  return true;
}

}  // namespace

size_t fuse_embed_layer_norm(tfh::GraphView g) {
  using namespace tfh;
  const auto g1 = Op("Gather", {Const().as("t1"), Any("i1")});
  const auto g2 = Op("Gather", {Const().as("t2"), Any("i2")});
  const auto gp = Op("Gather", {Const().as("ptable"), Any("pos")});
  const auto with_seg =
      Op("Add", {Op("Add", {g1, g2}).commutative(), gp}).commutative().may_escape().as("sum");
  const auto without = Op("Add", {g1, gp}).commutative().may_escape().as("sum");
  const auto gamma = Const().as("gamma");
  Rewriter rw(g);
  rw.add(OneOf(Op("LayerNormalization", {with_seg, gamma}),
               Op("LayerNormalization", {with_seg, gamma, Const()}))
             .where([](const Match& m) { return tables_fit(m, true); }),
         [](const Match& m, Edit& e) { return replace(m, e, true); });
  rw.add(OneOf(Op("LayerNormalization", {without, gamma}),
               Op("LayerNormalization", {without, gamma, Const()}))
             .where([](const Match& m) { return tables_fit(m, false); }),
         [](const Match& m, Edit& e) { return replace(m, e, false); });
  const size_t n = rw.run();
  merge_duplicate_mask_ops(g);
  return n;
}

}  // namespace plugin_common
