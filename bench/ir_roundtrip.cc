// tfh_bench_ir MODEL OUT [--external]: load and save a model, print one JSON line with the load
// and save time, the peak resident memory and the model's size. Peak RSS close to the model size
// (not twice it) shows weights are moved, not copied.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "host/ir/graph.h"
#include "host/util/error.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model file plus the external data it references.
uintmax_t model_bytes(const std::string& path, const tfh::ir::Model& m) {
  namespace fs = std::filesystem;
  uintmax_t total = fs::file_size(path);
  for (const auto* v : m.graph().initializers())
    if (v->initializer()->is_external()) total += v->initializer()->nbytes();
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  bool external = argc == 4 && std::strcmp(argv[3], "--external") == 0;
  if (argc != 3 && !external) {
    std::fprintf(stderr, "usage: %s MODEL OUT [--external]\n", argv[0]);
    return 2;
  }
  try {
    auto t0 = std::chrono::steady_clock::now();
    auto model = tfh::ir::Model::load(argv[1]);
    double load_s = seconds_since(t0);
    tfh::ir::SaveOptions opts;
    opts.use_external_data = external;
    t0 = std::chrono::steady_clock::now();
    model->save(argv[2], opts);
    double save_s = seconds_since(t0);
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"model\": \"%s\", \"model_bytes\": %ju, \"nodes\": %zu, \"external\": %s, "
        "\"load_s\": %.6f, \"save_s\": %.6f, \"peak_rss_mb\": %.1f}\n",
        argv[1], model_bytes(argv[1], *model), model->graph().num_nodes(),
        external ? "true" : "false", load_s, save_s, ru.ru_maxrss / 1024.0);
    return 0;
  } catch (const tfh::Error& e) {
    std::fprintf(stderr, "tfh_bench_ir: error: %s\n", e.what());
    return 1;
  }
}
