// The bert plugin's CUDA kernel for com.microsoft.EmbedLayerNormalization: the launcher
// (embed_layer_norm_cuda.cu, nvcc) and the kernel descriptor the plugin registers
// (embed_layer_norm_cuda.cc). Built only when the plugin is built with CUDA (BERT_HAVE_CUDA).
#pragma once

#include <cstdint>
#include <string>

#include <tfhost/abi.h>

namespace bert::cuda {

struct EmbedArgs {
  TfhDataType type = TFH_TYPE_FLOAT;     // of the tables, gamma, beta and the outputs
  TfhDataType id_type = TFH_TYPE_INT32;  // of input_ids, segment_ids and position_ids
  const void* input_ids = nullptr;       // [B, S]
  const void* segment_ids = nullptr;     // [B, S] or null
  const void* position_ids = nullptr;    // [B, S], [1, S] (position_broadcast) or null: 0..S-1
  bool position_broadcast = false;
  const void* word = nullptr;            // [word_rows, H]
  const void* position = nullptr;        // [position_rows, H]
  const void* segment = nullptr;         // [segment_rows, H] or null
  const void* gamma = nullptr;           // [H]
  const void* beta = nullptr;            // [H] or null
  const int32_t* mask = nullptr;         // [B, S] or null
  void* out = nullptr;                   // [B, S, H]
  int32_t* mask_index = nullptr;         // [B] (how many mask values are 1) or null
  void* sum = nullptr;                   // [B, S, H]: the embedding sum before the norm, or null
  int64_t batch = 0, seq = 0, hidden = 0, word_rows = 0, position_rows = 0, segment_rows = 0;
  float epsilon = 1e-12f;
};

// Queues the kernels on `stream` (a cudaStream_t). An id outside its table contributes a row
// of zeros (a kernel cannot raise an error; the CPU kernel names the id). Returns an empty
// string, or CUDA's error.
std::string embed_layer_norm(const EmbedArgs& a, void* stream);

extern const TfhKernelDesc kEmbedLayerNormCuda;

}  // namespace bert::cuda
