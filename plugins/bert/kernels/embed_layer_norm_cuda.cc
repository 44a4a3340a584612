// bert.cuda.EmbedLayerNormalization: the kernel descriptor for the launcher in
// embed_layer_norm_cuda.cu. Shapes are checked here, on the host, as the CPU kernel checks them;
// ids are only read on the device.
#include <tfhost/kernel.hpp>

#include <vector>

#include "kernels/embed_layer_norm_cuda.h"

namespace bert::cuda {
namespace {

std::vector<int64_t> dims(const tfh::TensorView& t) {
  auto d = t.dims();
  return std::vector<int64_t>(d.begin(), d.end());
}

struct EmbedLayerNorm {
  float eps;
  explicit EmbedLayerNorm(tfh::NodeView n) : eps(n.attr_float("epsilon", 1e-12f)) {
    // Refused at plan time (the runtime then runs the node on the CPU): tables of other types.
    // (so are ids of two types, a mask other than int32: the CPU kernel reads any integers).
    auto type = [&](size_t i) {
      return n.num_inputs() > i && n.input(i) ? n.input(i).elem_type() : TFH_TYPE_UNDEFINED;
    };
    const TfhDataType t = type(2);
    if (t != TFH_TYPE_UNDEFINED && t != TFH_TYPE_FLOAT && t != TFH_TYPE_FLOAT16 &&
        t != TFH_TYPE_BFLOAT16)
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: tables are not float/float16/bfloat16");
    for (size_t i : {1, 8})
      if (type(i) != TFH_TYPE_UNDEFINED && type(0) != TFH_TYPE_UNDEFINED && type(i) != type(0))
        tfh::sdk::fail("EmbedLayerNormalization on CUDA: ids of different types");
    if (type(7) != TFH_TYPE_UNDEFINED && type(7) != TFH_TYPE_INT32)
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: the mask is not int32");
  }
  void compute(tfh::KernelContext& ctx, void* stream) {
    tfh::TensorView ids = ctx.required(0), seg = ctx.input(1), wemb = ctx.required(2),
                    pemb = ctx.required(3), semb = ctx.input(4), gamma = ctx.required(5),
                    beta = ctx.input(6), mask = ctx.input(7), pos = ctx.input(8);
    const std::vector<int64_t> di = dims(ids);
    if (di.size() != 2) tfh::sdk::fail("EmbedLayerNormalization on CUDA: input_ids must be [batch, sequence]");
    const int64_t B = di[0], S = di[1];
    const std::vector<int64_t> dw = dims(wemb), dp = dims(pemb);
    if (dw.size() != 2 || dp.size() != 2 || dp[1] != dw[1])
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: word and position tables must be 2-D with one width");
    const int64_t H = dw[1];
    EmbedArgs a;
    a.type = wemb.dtype();
    a.id_type = ids.dtype();
    if (pemb.dtype() != a.type || gamma.dtype() != a.type || (beta && beta.dtype() != a.type) ||
        (semb && semb.dtype() != a.type))
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: tables, gamma and beta must share a type");
    if (static_cast<int64_t>(gamma.size()) != H || (beta && static_cast<int64_t>(beta.size()) != H))
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: gamma/beta must have the hidden size");
    if (seg && (dims(seg) != di || seg.dtype() != a.id_type))
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: segment_ids must match input_ids");
    if (seg && !semb) tfh::sdk::fail("EmbedLayerNormalization on CUDA: segment_ids without a segment table");
    if (semb && (semb.rank() != 2 || semb.dims()[1] != H))
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: the segment table must be [rows, hidden]");
    if (mask && (dims(mask) != di || mask.dtype() != TFH_TYPE_INT32))
      tfh::sdk::fail("EmbedLayerNormalization on CUDA: mask must be int32 with input_ids' shape");
    if (pos) {
      const std::vector<int64_t> dpi = dims(pos);
      a.position_broadcast = dpi.size() == 2 && dpi[0] == 1 && dpi[1] == S && B != 1;
      if ((dpi != di && !a.position_broadcast) || pos.dtype() != a.id_type)
        tfh::sdk::fail("EmbedLayerNormalization on CUDA: position_ids must be [batch, sequence] or [1, sequence] of input_ids' type");
    }
    a.input_ids = ids.raw();
    a.segment_ids = seg ? seg.raw() : nullptr;
    a.position_ids = pos ? pos.raw() : nullptr;
    a.word = wemb.raw();
    a.position = pemb.raw();
    a.segment = semb ? semb.raw() : nullptr;  // without segment ids: row 0, as on the CPU
    a.gamma = gamma.raw();
    a.beta = beta ? beta.raw() : nullptr;
    a.mask = mask ? static_cast<const int32_t*>(mask.raw()) : nullptr;
    a.batch = B, a.seq = S, a.hidden = H;
    a.word_rows = dw[0], a.position_rows = dp[0], a.segment_rows = semb ? semb.dims()[0] : 0;
    a.epsilon = eps;
    a.out = ctx.output(0, a.type, std::vector<int64_t>{B, S, H}).raw();
    if (ctx.num_outputs() > 1 && ctx.output_used(1))
      a.mask_index = static_cast<int32_t*>(ctx.output(1, TFH_TYPE_INT32, std::vector<int64_t>{B}).raw());
    if (ctx.num_outputs() > 2 && ctx.output_used(2))
      a.sum = ctx.output(2, a.type, std::vector<int64_t>{B, S, H}).raw();
    const std::string err = embed_layer_norm(a, stream);
    if (!err.empty()) tfh::sdk::fail(err);
  }
};

}  // namespace

// Above tfhost's own (priority 0) so the plugin's kernel is the one a CUDA session picks.
const TfhKernelDesc kEmbedLayerNormCuda =
    TFH_KERNEL_DESC(EmbedLayerNorm, "bert.cuda.EmbedLayerNormalization", "com.microsoft",
                    "EmbedLayerNormalization", 1, 0, TFH_DEVICE_CUDA, "", 1);

}  // namespace bert::cuda
