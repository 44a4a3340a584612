#include "host/cli/sweep.h"

#include <unistd.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "host/runtime/inputs.h"
#include "host/util/error.h"

namespace tfh::cli {

std::vector<SweepRow> sweep(const plugin::Registry& registry,
                            const plugin::InputGenEntry& generator,
                            const std::vector<std::pair<std::string, ir::Model*>>& models,
                            const SweepSpec& spec, std::ostream* progress) {
  const runtime::KernelRegistry kernels(registry);
  runtime::SessionOptions so;
  so.threads = spec.threads;
  so.device = spec.device;
  so.cuda_graph = spec.cuda_graph;
  so.release_consumed_constants = true;
  std::vector<std::unique_ptr<runtime::Session>> sessions;
  for (const auto& m : models)
    sessions.push_back(std::make_unique<runtime::Session>(*m.second, kernels, so));
  const size_t total = spec.batch.size() * spec.sequence.size() * spec.past.size() * models.size();
  const bool tty = progress && isatty(STDERR_FILENO);
  size_t done = 0;
  std::vector<SweepRow> rows;
  for (int64_t b : spec.batch)
    for (int64_t s : spec.sequence)
      for (int64_t p : spec.past) {
        runtime::InputRequest req;
        req.batch = b;
        req.sequence = s;
        req.past = p;
        req.seed = spec.seed;
        const auto inputs = runtime::make_inputs(registry, generator, *models[0].second, req);
        const auto feeds = runtime::feeds_of(inputs);
        double base_mean = 0;
        for (size_t k = 0; k < models.size(); ++k) {
          std::vector<std::unique_ptr<runtime::HostTensor>> held;
          const auto f = k == 0 ? feeds : runtime::feeds_for(*models[k].second, feeds, held);
          SweepRow row;
          row.model = models[k].first;
          row.batch = b;
          row.sequence = s;
          row.past = p;
          row.latency = runtime::time_runs(*sessions[k], f, spec.warmup, spec.iterations);
          row.throughput = row.latency.mean > 0 ? b * 1000.0 / row.latency.mean : 0;
          if (k == 0) base_mean = row.latency.mean;
          row.speedup = row.latency.mean > 0 ? base_mean / row.latency.mean : 0;
          rows.push_back(row);
          ++done;
          if (progress) {
            std::ostringstream line;
            line << "benchmark [" << done << "/" << total << "] " << row.model << " batch " << b
                 << " sequence " << s << " past " << p << ": " << std::fixed
                 << std::setprecision(2) << row.latency.mean << " ms";
            const runtime::DeviceTraffic t = sessions[k]->device_traffic();
            if (t.copies)  // (only a CUDA session copies mid-run)
              line << " (" << t.copies << " values copied between CPU and GPU per run; first: "
                   << t.first << ")";
            if (tty) {
              const int width = 24, filled = static_cast<int>(width * done / total);
              *progress << "\r[" << std::string(filled, '#') << std::string(width - filled, '.')
                        << "] " << line.str() << "\033[K" << (done == total ? "\n" : "")
                        << std::flush;
            } else {
              *progress << line.str() << "\n";
            }
          }
        }
      }
  return rows;
}

void print_markdown(const std::vector<SweepRow>& rows, std::ostream& os) {
  os << "| model | batch_size | sequence_length | past_sequence_length | latency_mean (ms) | "
        "latency_p50 | latency_p90 | latency_p95 | latency_p99 | throughput (samples/s) | "
        "speedup |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n";
  os << std::fixed;
  for (const SweepRow& r : rows)
    os << "| " << r.model << " | " << r.batch << " | " << r.sequence << " | " << r.past << " | "
       << std::setprecision(2) << r.latency.mean << " | " << r.latency.p50 << " | "
       << r.latency.p90 << " | " << r.latency.p95 << " | " << r.latency.p99 << " | "
       << std::setprecision(1) << r.throughput << " | " << std::setprecision(2) << r.speedup
       << " |\n";
  os << std::defaultfloat;
}

void write_csv(const std::vector<SweepRow>& rows, const std::string& path) {
  std::ofstream f(path);
  f << "model,batch_size,sequence_length,past_sequence_length,latency_mean_ms,latency_p50_ms,"
       "latency_p75_ms,latency_p90_ms,latency_p95_ms,latency_p99_ms,throughput,speedup\n";
  f << std::fixed << std::setprecision(4);
  for (const SweepRow& r : rows)
    f << r.model << "," << r.batch << "," << r.sequence << "," << r.past << "," << r.latency.mean
      << "," << r.latency.p50 << "," << r.latency.p75 << "," << r.latency.p90 << ","
      << r.latency.p95 << "," << r.latency.p99 << "," << r.throughput << "," << r.speedup << "\n";
  TFH_CHECK(f.good(), path, ": cannot write");
}

void write_json(const std::vector<SweepRow>& rows, const std::string& path) {
  std::ofstream f(path);
  f << std::fixed << std::setprecision(4) << "[\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const SweepRow& r = rows[i];
    f << "  {\"model\": \"" << r.model << "\", \"batch_size\": " << r.batch
      << ", \"sequence_length\": " << r.sequence << ", \"past_sequence_length\": " << r.past
      << ", \"latency_mean_ms\": " << r.latency.mean << ", \"latency_p50_ms\": " << r.latency.p50
      << ", \"latency_p75_ms\": " << r.latency.p75 << ", \"latency_p90_ms\": " << r.latency.p90
      << ", \"latency_p95_ms\": " << r.latency.p95 << ", \"latency_p99_ms\": " << r.latency.p99
      << ", \"samples\": " << r.latency.samples << ", \"throughput\": " << r.throughput
      << ", \"speedup\": " << r.speedup << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  f << "]\n";
  TFH_CHECK(f.good(), path, ": cannot write");
}

}  // namespace tfh::cli
