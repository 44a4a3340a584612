// tfhost generate --model M --prompt "IDS" --max_new_tokens N: greedy decoding with tfhost's
// runtime, feeding each step's present key/values back as the next step's past — the smoke test
// of a decoder model with past state, fused or not (both must produce the same tokens).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <sstream>

#include "host/cli/common.h"
#include "host/runtime/session.h"
#include "host/runtime/tensor_io.h"
#include "host/util/error.h"
#include "tfhost/core.hpp"

namespace tfh::cli {
namespace {

const char* const kAbout =
    "Greedy decoding with tfhost's runtime: runs the prompt, then one step per new token, each\n"
    "feeding the previous step's present key/values back as past. Works on GPT-2 exports in\n"
    "onnxruntime convert_to_onnx's layout (past_i [2, B, N, P, d]), Hugging Face's (past_key_values\n"
    ".i.key/value [B, N, P, d]) and without past (the whole sequence is run each step). Inputs\n"
    "input_ids, position_ids and attention_mask are filled as generate() does (no padding: every\n"
    "row gets the prompt). Prints the new token ids of each row, the prompt's time and the\n"
    "median time of the steps after it. The tokens are picked inside the model: generate appends\n"
    "a Gather of the logits' last position and an ArgMax over the vocabulary to the loaded graph\n"
    "(the file is not changed), so only the token ids leave the step.\n"
    "--use_gpu runs it on the GPU with the key/value cache kept there (IO binding: each step's\n"
    "presents are the next step's pasts without a copy to the host; only the token ids come\n"
    "back).\n"
    "A model from `optimize --enable_shared_kv_cache` (input past_sequence_length) gets one\n"
    "buffer per layer of prompt + max_new_tokens rows, updated in place (the buffers are\n"
    "donated back each step: no copy of the cache), and a mask of that fixed width, so every\n"
    "step after the prompt has the same shapes: with --cuda_graph one CUDA graph replays them all.";

bool is_float(int32_t t) {
  return t == TFH_TYPE_FLOAT || t == TFH_TYPE_FLOAT16 || t == TFH_TYPE_DOUBLE ||
         t == TFH_TYPE_BFLOAT16;
}

// A [rows, cols] tensor of `type` (an integer or float input) holding `v`.
std::unique_ptr<runtime::HostTensor> matrix(int32_t type, int64_t rows, int64_t cols,
                                            const std::vector<int64_t>& v,
                                            const std::string& name) {
  auto t = runtime::make_tensor(static_cast<TfhDataType>(type), {rows, cols});
  auto* p = static_cast<unsigned char*>(const_cast<void*>(t->data));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (type) {
      case TFH_TYPE_INT64: reinterpret_cast<int64_t*>(p)[i] = v[i]; break;
      case TFH_TYPE_INT32: reinterpret_cast<int32_t*>(p)[i] = static_cast<int32_t>(v[i]); break;
      case TFH_TYPE_FLOAT: reinterpret_cast<float*>(p)[i] = static_cast<float>(v[i]); break;
      case TFH_TYPE_FLOAT16:
        reinterpret_cast<uint16_t*>(p)[i] = to_float16(static_cast<float>(v[i])).bits;
        break;
      default:
        TFH_THROW("input '", name, "': element type ", type, " is not supported by generate");
    }
  }
  return t;
}

void set_int_attr(ir::Node* n, const char* name, int64_t v) {
  onnx::AttributeProto& a = n->set_attr(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
}

// x[:, -1] of x [batch, sequence, ...]: Gather(x, scalar -1, axis 1).
ir::Value* last_position(ir::Graph& g, ir::Value* x) {
  auto index = std::make_unique<onnx::TensorProto>();
  index->set_name(g.unique_name("tfh_generate_last_position"));
  index->set_data_type(onnx::TensorProto::INT64);
  index->add_int64_data(-1);  // a scalar: the axis goes
  ir::Value* last = g.add_initializer(std::make_unique<ir::Tensor>(std::move(index)));
  ir::Value* out = g.add_value(g.unique_name(x->name() + "_last"));
  set_int_attr(g.add_node(g.unique_name("tfh_generate_gather"), "Gather", "", {x, last}, {out}),
               "axis", 1);
  return out;
}

// The LM head under the logits: logits = MatMul(h, W), possibly through Casts/Identities that
// nothing else reads (and that are no graph outputs), with W a 2-D initializer and h of rank 3
// ([batch, sequence, hidden]). Returns the MatMul and the values from its output to the logits,
// or nullptr.
ir::Node* lm_head(ir::Value* logits, std::vector<ir::Value*>& chain) {
  chain = {logits};
  if (!logits->consumers().empty()) return nullptr;
  for (ir::Value* v = logits;;) {
    ir::Node* p = v->producer();
    if (!p || !p->domain().empty() || p->inputs().empty() || !p->inputs()[0]) return nullptr;
    const std::vector<ir::Value*>& in = p->inputs();
    if (p->op_type() == "MatMul")
      return in.size() == 2 && in[1] && in[1]->initializer() && in[1]->rank() == 2 &&
                     in[0]->rank() == 3
                 ? p
                 : nullptr;
    if ((p->op_type() != "Cast" && p->op_type() != "Identity") ||
        in[0]->consumers().size() != 1 || in[0]->is_graph_output())
      return nullptr;
    v = in[0];
    chain.push_back(v);
  }
}

// Greedy decoding picks the tokens inside the model: ArgMax over the vocabulary of the logits'
// last position, in place of the logits as the first graph output: [batch] int64. On the GPU the
// pick is kernels of the step (of its CUDA graph) and only the batch's token ids come back, not
// batch x vocabulary logits. Where the logits come from an LM head MatMul (lm_head), the last
// position is taken from its input, so the prompt's step multiplies one row per sequence by the
// [hidden, vocabulary] weight instead of all of them (a prompt of 128 tokens: 128 times fewer
// logits); elsewhere, from the logits. Shapes are inferred before and after.
struct TokenPick {
  std::string logits;   // the first output's name
  std::string lm_head;  // the MatMul the last position goes through, or empty
};
TokenPick pick_tokens_in_model(ir::Model& model, const std::string& path,
                               const ir::ShapeHooks* hooks) {
  model.infer_shapes(hooks);
  ir::Graph& g = model.graph();
  TFH_CHECK(!g.outputs().empty(), path, ": no outputs");
  ir::Value* logits = g.outputs()[0];
  // The logits as generate reads them: [batch, sequence, vocabulary], the sequence as input_ids'
  // (where the shapes say; a dimension known on both sides must agree).
  TFH_CHECK(std::count(g.outputs().begin(), g.outputs().end(), logits) == 1 &&
                !logits->is_graph_input(),
            path, ": the first output '", logits->name(), "' is also an input or another output: ",
            "generate expects the logits [batch, sequence, vocabulary] there");
  TFH_CHECK(logits->rank() == -1 || logits->rank() == 3, path, ": the first output '",
            logits->name(), "' has rank ", logits->rank(),
            ": generate expects the logits [batch, sequence, vocabulary] there");
  const ir::Value* ids = g.find("input_ids");
  if (ids && ids->rank() == 2 && logits->rank() == 3) {
    const auto& a = ids->info().type().tensor_type().shape().dim(1);
    const auto& b = logits->info().type().tensor_type().shape().dim(1);
    TFH_CHECK(!a.has_dim_value() || !b.has_dim_value() || a.dim_value() == b.dim_value(), path,
              ": the logits '", logits->name(), "' have ", b.dim_value(), " on axis 1, input_ids ",
              a.dim_value(), ": generate expects the logits [batch, sequence, vocabulary]");
  }
  std::vector<ir::Value*> chain;
  ir::Value* last_logits = logits;
  TokenPick pick{logits->name(), {}};
  if (ir::Node* head = lm_head(logits, chain)) {
    pick.lm_head = head->name();
    g.set_input(head, 0, last_position(g, head->inputs()[0]));
    // Their shapes lose the sequence axis: inferred again below.
    for (ir::Value* v : chain)
      v->mutable_info().mutable_type()->mutable_tensor_type()->clear_shape();
  } else {
    last_logits = last_position(g, logits);
  }
  ir::Value* tokens = g.add_value(g.unique_name("tfh_generate_next_tokens"));
  ir::Node* argmax = g.add_node(g.unique_name("tfh_generate_argmax"), "ArgMax", "", {last_logits},
                                {tokens});
  set_int_attr(argmax, "axis", -1);
  set_int_attr(argmax, "keepdims", 0);
  g.set_graph_output(0, tokens);
  g.topological_sort();  // the Gather before the LM head's MatMul
  model.infer_shapes(hooks);
  return pick;
}

}  // namespace

int generate_command(const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions local;
  bool help = false;
  std::string model_path, prompt;
  int64_t batch = 1, new_tokens = 8;
  int threads = 0;
  bool use_gpu = false, cuda_graph = false;
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("model,m", po::value<std::string>(&model_path)->value_name("PATH"), "the ONNX model (required)")
      ("prompt", po::value<std::string>(&prompt)->value_name("IDS"),
       "the prompt's token ids, separated by spaces or commas (required)")
      ("max_new_tokens,n", po::value<int64_t>(&new_tokens)->default_value(8), "tokens to generate")
      ("batch_size,b", po::value<int64_t>(&batch)->default_value(1), "rows (each gets the prompt)")
      ("threads,t", po::value<int>(&threads)->default_value(0), "CPU threads (0: all cores)")
      ("use_gpu", po::bool_switch(&use_gpu), "run on the GPU, the key/value cache kept there (CUDA build and GPU needed)")
      ("cuda_graph", po::bool_switch(&cuda_graph),
       "with --use_gpu: replay steps of the same shapes as CUDA graphs (a shared key/value "
       "buffer model has one shape for every step after the prompt)");
  // clang-format on
  opts.add(global_options(local, help));
  parse_args("generate", args, opts, {});
  const GlobalOptions g = merge(global, local);
  if (help) {
    print_help(std::cout, "tfhost generate --model PATH --prompt IDS [--max_new_tokens N]", kAbout,
               opts);
    return 0;
  }
  if (model_path.empty()) throw UsageError("generate", "missing --model");
  std::vector<int64_t> ids;
  {
    std::string s = prompt;
    std::replace(s.begin(), s.end(), ',', ' ');
    std::istringstream in(s);
    std::string word;
    while (in >> word) {
      size_t used = 0;
      int64_t v = 0;
      try {
        v = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || v < 0)
        throw UsageError("generate", "--prompt: '" + word + "' is not a token id");
      ids.push_back(v);
    }
  }
  if (ids.empty()) throw UsageError("generate", "missing --prompt (token ids)");
  if (batch <= 0 || new_tokens <= 0 || threads < 0)
    throw UsageError("generate", "--batch_size and --max_new_tokens must be > 0, --threads >= 0");

  if (cuda_graph && !use_gpu) throw UsageError("generate", "--cuda_graph needs --use_gpu");
  if (use_gpu) pipeline::check_device(pipeline::Device::Cuda, "--use_gpu", "leave out --use_gpu");
  auto registry = make_registry(g);
  const runtime::KernelRegistry kernels(*registry);
  auto model = ir::Model::load(model_path);
  const TokenPick pick = pick_tokens_in_model(*model, model_path, &registry->shape_hooks());
  const std::string& logits_name = pick.logits;
  if (!pick.lm_head.empty())
    std::cerr << "generate: the tokens are picked in the model from the last position, taken "
              << "before the LM head '" << pick.lm_head << "' (one row per sequence through it)\n";
  runtime::SessionOptions so;
  so.threads = threads;
  so.release_consumed_constants = true;
  so.device = use_gpu ? TFH_DEVICE_CUDA : TFH_DEVICE_CPU;
  // Graphs replay steps of one shape: only a shared key/value buffer model has them.
  const ir::Value* length_value = model->graph().find("past_sequence_length");
  const bool shared_buffers = length_value && length_value->is_graph_input();
  if (cuda_graph && !shared_buffers)
    std::cerr << "generate: note: " << model_path << " has no shared key/value buffers (input "
              << "past_sequence_length): its steps change shape every time, no CUDA graph could "
              << "replay one, so --cuda_graph is off (optimize --enable_shared_kv_cache makes "
              << "such a model)\n";
  so.cuda_graph = cuda_graph && shared_buffers;
  runtime::Session session(*model, kernels, so);

  // The roles of the inputs, and which output feeds which past input (in order).
  const ir::Value *ids_in = nullptr, *pos_in = nullptr, *mask_in = nullptr, *length_in = nullptr;
  std::vector<const ir::Value*> past_in;
  for (const ir::Value* v : session.inputs()) {
    const std::string& n = v->name();
    if (n == "input_ids") ids_in = v;
    else if (n == "position_ids") pos_in = v;
    else if (n == "attention_mask") mask_in = v;
    else if (n == "past_sequence_length") length_in = v;
    else if (n.rfind("past", 0) == 0 && is_float(v->elem_type())) past_in.push_back(v);
    else TFH_THROW(model_path, ": input '", n, "' is not input_ids, position_ids, attention_mask, "
                   "past_sequence_length or a past tensor: generate does not know what to feed it");
  }
  // A shared key/value buffer (gpt2.shared_kv_cache): past_sequence_length says how many of its
  // rows hold tokens; it has room for the whole generation.
  const int64_t max_length = length_in ? static_cast<int64_t>(ids.size()) + new_tokens : 0;
  TFH_CHECK(!length_in || length_in->elem_type() == TFH_TYPE_INT32, model_path,
            ": past_sequence_length must be int32");
  TFH_CHECK(!length_in || !past_in.empty(), model_path,
            ": past_sequence_length without past tensors");
  TFH_CHECK(ids_in, model_path, ": no input named input_ids");
  const auto& outs = session.outputs();
  TFH_CHECK(!outs.empty(), model_path, ": no outputs");
  TFH_CHECK(outs.size() == past_in.size() + 1, model_path, ": ", outs.size() - 1,
            " outputs after the logits for ", past_in.size(),
            " past inputs: the presents must pair with the pasts, in order");
  // Past tensors start empty: their length axis (second to last) is 0 (a shared buffer's:
  // max_length rows, zeros), batch where symbolic.
  std::vector<std::unique_ptr<runtime::HostTensor>> past;
  for (const ir::Value* v : past_in) {
    const auto& shape = v->info().type().tensor_type().shape();
    std::vector<int64_t> dims;
    for (int k = 0; k < shape.dim_size(); ++k) {
      const auto& d = shape.dim(k);
      const bool length_axis = k == shape.dim_size() - 2;
      dims.push_back(length_axis ? max_length : d.has_dim_value() ? d.dim_value() : batch);
    }
    past.push_back(runtime::make_tensor(static_cast<TfhDataType>(v->elem_type()), dims));
    std::memset(const_cast<void*>(past.back()->data), 0, past.back()->nbytes);
  }

  // On the GPU: the last step's presents, left on the device to be the next step's pasts.
  std::vector<runtime::DeviceTensor> past_on_device;

  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(batch), ids);
  const int64_t prompt_len = static_cast<int64_t>(ids.size());
  using Clock = std::chrono::steady_clock;
  std::vector<double> step_ms, copy_ms;  // the model's step; the GPU's token ids to the host
  for (int64_t step = 0; step < new_tokens; ++step) {
    // With past: the prompt first, then one token per step; without: the whole sequence.
    const int64_t total = prompt_len + step;
    const int64_t start = past_in.empty() || step == 0 ? 0 : total - 1;
    const int64_t len = total - start;
    // The mask: over past + new, or a shared buffer's fixed width (rows after the tokens 0).
    const int64_t width = max_length ? max_length : total;
    std::vector<int64_t> tok, pos, mask(static_cast<size_t>(batch * width), 1);
    for (int64_t r = 0; r < batch; ++r)
      std::fill(mask.begin() + r * width + total, mask.begin() + (r + 1) * width, 0);
    for (int64_t r = 0; r < batch; ++r)
      for (int64_t c = start; c < total; ++c) {
        tok.push_back(rows[r][c]);
        pos.push_back(c);
      }
    std::vector<std::unique_ptr<runtime::HostTensor>> owned;
    std::vector<std::pair<std::string, const runtime::HostTensor*>> feeds;
    owned.push_back(matrix(ids_in->elem_type(), batch, len, tok, "input_ids"));
    feeds.emplace_back("input_ids", owned.back().get());
    if (pos_in) {
      owned.push_back(matrix(pos_in->elem_type(), batch, len, pos, "position_ids"));
      feeds.emplace_back("position_ids", owned.back().get());
    }
    if (mask_in) {
      owned.push_back(matrix(mask_in->elem_type(), batch, width, mask, "attention_mask"));
      feeds.emplace_back("attention_mask", owned.back().get());
    }
    if (length_in) {
      owned.push_back(runtime::make_tensor(TFH_TYPE_INT32, {1}));
      *static_cast<int32_t*>(const_cast<void*>(owned.back()->data)) = static_cast<int32_t>(start);
      feeds.emplace_back("past_sequence_length", owned.back().get());
    }
    for (size_t i = 0; i < past_in.size(); ++i) feeds.emplace_back(past_in[i]->name(), past[i].get());
    // Timed: the model's step, the tokens' pick included (on the GPU until its work is done),
    // then, on the GPU, copying the token ids to the host on its own.
    const auto t0 = Clock::now();
    std::vector<std::unique_ptr<runtime::HostTensor>> results;
    if (use_gpu) {
      std::vector<runtime::Feed> f;
      for (const auto& [name, t] : feeds) {
        const auto it = std::find_if(past_in.begin(), past_in.end(),
                                     [&](const ir::Value* v) { return v->name() == name; });
        const size_t i = static_cast<size_t>(it - past_in.begin());
        // A shared buffer is donated: the step writes its new rows in place and hands it back.
        if (it != past_in.end() && !past_on_device.empty())
          f.push_back(runtime::Feed{name, nullptr, &past_on_device[i], length_in != nullptr});
        else
          f.push_back(runtime::Feed{name, t, nullptr});
      }
      auto out = session.run_device(f);
      session.synchronize();
      step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      const auto t_copy = Clock::now();
      results.push_back(session.to_host(out[0]));
      copy_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t_copy).count());
      past_on_device.assign(std::make_move_iterator(out.begin() + 1),
                            std::make_move_iterator(out.end()));
    } else {
      // A shared buffer is donated here too: its bytes move into the present, updated in place.
      std::vector<runtime::Feed> f;
      for (const auto& [name, t] : feeds) {
        const bool buffer = length_in && std::any_of(past_in.begin(), past_in.end(),
                                                     [&](const ir::Value* v) { return v->name() == name; });
        f.push_back(runtime::Feed{name, t, nullptr, buffer});
      }
      results = session.run_feeds(f);
      step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    // The model picked each row's token (pick_tokens_in_model): [batch] int64.
    const runtime::HostTensor& picked = *results[0];
    TFH_CHECK(picked.dims.size() == 1 && picked.dims[0] == batch && picked.type == TFH_TYPE_INT64,
              model_path, ": the arg-max of '", logits_name, "' is ",
              runtime::describe_tensor(picked), ", expected [", batch,
              "] int64: is the first output the logits [batch, sequence, vocabulary]?");
    for (int64_t r = 0; r < batch; ++r)
      rows[r].push_back(static_cast<const int64_t*>(picked.data)[r]);
    if (!use_gpu)
      for (size_t i = 0; i < past_in.size(); ++i) past[i] = std::move(results[i + 1]);
  }
  for (int64_t r = 0; r < batch; ++r) {
    std::cout << "row " << r << ":";
    for (int64_t k = prompt_len; k < static_cast<int64_t>(rows[r].size()); ++k)
      std::cout << " " << rows[r][k];
    std::cout << "\n";
  }
  // The steps after the prompt: their median (the first ones also plan, upload or capture a
  // graph) and mean; on the GPU, the mean copy of the token ids.
  std::vector<double> rest(step_ms.begin() + 1, step_ms.end());
  std::ostringstream line;
  line << std::fixed << std::setprecision(3) << "generate: prompt " << prompt_len << " tokens in "
       << step_ms[0] << " ms";
  if (!rest.empty()) {
    double sum = 0, copy = 0;
    for (double x : rest) sum += x;
    for (double x : copy_ms) copy += x;
    std::sort(rest.begin(), rest.end());
    const size_t n = rest.size();
    const double median = n % 2 ? rest[n / 2] : (rest[n / 2 - 1] + rest[n / 2]) / 2;
    line << ", then " << n << " steps: " << median << " ms each (median; mean " << sum / n
         << "; the tokens picked in the model";
    if (!copy_ms.empty())
      line << ", their ids copied back in " << copy / static_cast<double>(copy_ms.size()) << " ms";
    line << ")";
  }
  if (past_in.empty()) line << " (no past: the whole sequence each step)";
  if (length_in) line << " (shared key/value buffers of " << max_length << " rows)";
  // Nothing should cross between CPU and GPU inside a step (the tokens' pick included).
  if (use_gpu)
    line << "; values copied between CPU and GPU mid-step: " << session.device_traffic().copies;
  if (so.cuda_graph) {
    const runtime::GraphStats st = session.graph_stats();
    line << "; CUDA graphs: " << st.captured << " captured, " << st.replays << " replays";
    if (st.captured) line << " (" << st.nodes << " GPU operations a step)";
    if (!st.refused.empty()) line << " (" << st.refusal_text() << ")";
  }
  std::cerr << line.str() << "\n";
  return 0;
}

}  // namespace tfh::cli
