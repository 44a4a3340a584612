#include "host/pipeline/config.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "host/pipeline/suggest.h"
#include "host/util/error.h"

namespace tfh::pipeline {
namespace {

namespace fs = std::filesystem;

// ---- --set overrides -------------------------------------------------------------------------

struct Override {
  std::string key;    // canonical dotted path ("pipeline.1.with.x")
  std::string label;  // "--set pipeline.1.with.x=true", for messages
};

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : key) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

bool parse_index(const std::string& s, size_t* out) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  *out = std::stoul(s);
  return true;
}

void part_append(std::string& key, const std::string& part) {
  key += (key.empty() ? "" : ".") + part;
}

// One step of a --set key into a list: an existing entry, or the next one (which appends).
YAML::Node descend_list(YAML::Node& list, const std::string& part, const YAML::Node* value,
                        const std::string& label, const std::string& at, std::string& canonical) {
  size_t idx = 0;
  TFH_CHECK(parse_index(part, &idx), label, ": ", at, " is a list and '", part,
            "' is not an index (0-based)");
  TFH_CHECK(idx <= list.size(), label, ": index ", idx, " is out of range (", at, " has ",
            list.size(), " entries)");
  if (idx == list.size()) list.push_back(YAML::Node(YAML::NodeType::Map));
  if (value) list[idx] = *value;
  part_append(canonical, std::to_string(idx));
  YAML::Node next;
  next.reset(list[idx]);
  return next;
}

// One step of a --set key into a map, creating the key (as a map, unless it is the last one).
YAML::Node descend_map(YAML::Node& map, const std::string& part, const YAML::Node* value,
                       const std::string& label, const std::string& at, std::string& canonical) {
  if (map.IsNull()) map = YAML::Node(YAML::NodeType::Map);  // `verify:` with no value
  TFH_CHECK(map.IsMap(), label, ": ", at, " is a single value, not a map");
  if (value)
    map[part] = *value;
  else if (!map[part] || map[part].IsNull())
    map[part] = YAML::Node(YAML::NodeType::Map);
  part_append(canonical, part);
  YAML::Node next;
  next.reset(map[part]);
  return next;
}

// Writes one "a.b.1.c=value" into `root`; returns the canonical key ("pipeline.1.with.x").
std::string apply_override(YAML::Node& root, const std::string& text) {
  const std::string label = "--set " + text;
  const auto eq = text.find('=');
  TFH_CHECK(eq != std::string::npos && eq > 0, label, ": expected key=value (for example ",
            "--set model.path=model.onnx)");
  const std::string key = text.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    TFH_THROW(label, ": the value is not valid YAML: ", e.msg);
  }
  const auto parts = split_key(key);
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  YAML::Node cur;  // a handle into the tree: moved with reset(), since `=` would overwrite
  cur.reset(root);
  std::string canonical;
  for (size_t i = 0; i < parts.size(); ++i) {
    TFH_CHECK(!parts[i].empty(), label, ": empty name in key '", key, "'");
    const YAML::Node* last = i + 1 == parts.size() ? &value : nullptr;
    const std::string at = canonical.empty() ? "the config" : "'" + canonical + "'";
    YAML::Node next = cur.IsSequence() ? descend_list(cur, parts[i], last, label, at, canonical)
                                       : descend_map(cur, parts[i], last, label, at, canonical);
    cur.reset(next);
  }
  return canonical;
}

// ---- reading values with locations -----------------------------------------------------------

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// "a map", "a list", "nothing" or the scalar itself, for "got ..." in messages.
std::string describe(const YAML::Node& n) {
  if (!n || n.IsNull()) return "nothing";
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  return "'" + n.Scalar() + "'";
}

class Reader {
 public:
  Reader(std::string file, std::string base_dir, std::vector<Override> overrides)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), overrides_(std::move(overrides)) {}

  // The value at `path` came from the last --set that wrote it or an enclosing key; otherwise
  // from the file, at the node's mark (0-based in yaml-cpp, 1-based in messages).
  Where where(const YAML::Node& n, const std::string& path) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it)
      if (path == it->key || path.rfind(it->key + ".", 0) == 0) return it->label;
    const YAML::Mark m = n ? n.Mark() : YAML::Mark();
    // A node without a place in the file was made by a --set that wrote something inside it
    // (`--set verify.samples=3` creates `verify`).
    if (!path.empty() && m.is_null())
      for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it)
        if (it->key.rfind(path + ".", 0) == 0) return it->label;
    std::ostringstream os;
    os << file_ << ":" << (m.line < 0 ? 1 : m.line + 1) << ":" << (m.column < 0 ? 1 : m.column + 1);
    return os.str();
  }

  // For a map handed on whole (a `with:`), also name any --set that changed something inside it.
  Where where_with_inner(const YAML::Node& n, const std::string& path) const {
    Where w = where(n, path);
    if (w.rfind("--set", 0) == 0) return w;
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it)
      if (it->key.rfind(path + ".", 0) == 0) return w + " (" + it->label + ")";
    return w;
  }

  [[noreturn]] void fail(const YAML::Node& n, const std::string& path,
                         const std::string& msg) const {
    TFH_THROW(where(n, path), ": ", msg);
  }

  // Checks that `n` is a map whose keys are all in `valid` (each at most once).
  void check_keys(const YAML::Node& n, const std::string& path,
                  const std::vector<std::string>& valid) const {
    const std::string what = path.empty() ? "the config" : "'" + path + "'";
    if (!n.IsMap())
      fail(n, path,
           what + " expects a map with keys " + join_names(valid) + ", got " + describe(n));
    std::map<std::string, int> seen;
    for (const auto& kv : n) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : describe(kv.first);
      const std::string kpath = join_path(path, key);
      bool known = false;
      for (const auto& v : valid) known = known || v == key;
      if (!known) {
        const std::string in = path.empty() ? "" : " in '" + path + "'";
        fail(kv.first, kpath,
             "unknown key '" + key + "'" + in + " (valid: " + join_names(valid) + ")" +
                 did_you_mean(key, valid));
      }
      if (seen[key]++) fail(kv.first, kpath, "key '" + key + "' is given twice");
    }
  }

  void require(const YAML::Node& map, const std::string& path, const std::string& key) const {
    if (map[key] && !map[key].IsNull()) return;
    const std::string kpath = join_path(path, key);
    if (map[key]) fail(map[key], kpath, "'" + kpath + "' has no value");
    const std::string in = path.empty() ? "" : " in '" + path + "'";
    fail(map, path, "missing key '" + key + "'" + in);
  }

  std::string str(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar() || n.Scalar().empty())
      fail(n, path, "'" + path + "' expects a string, got " + describe(n));
    return n.Scalar();
  }

  int64_t integer(const YAML::Node& n, const std::string& path, int64_t min) const {
    int64_t v = 0;
    bool ok = n.IsScalar();
    if (ok) {
      try {
        v = n.as<int64_t>();
      } catch (const YAML::Exception&) {
        ok = false;
      }
    }
    if (!ok || v < min)
      fail(n, path,
           "'" + path + "' expects an integer >= " + std::to_string(min) + ", got " + describe(n));
    return v;
  }

  double number(const YAML::Node& n, const std::string& path) const {
    try {
      if (n.IsScalar()) {
        const double v = n.as<double>();
        if (v >= 0) return v;
      }
    } catch (const YAML::Exception&) {
    }
    fail(n, path, "'" + path + "' expects a number >= 0, got " + describe(n));
  }

  bool boolean(const YAML::Node& n, const std::string& path) const {
    try {
      if (n.IsScalar()) return n.as<bool>();
    } catch (const YAML::Exception&) {
    }
    fail(n, path, "'" + path + "' expects true or false, got " + describe(n));
  }

  // One value or a list of them.
  std::vector<int64_t> int_list(const YAML::Node& n, const std::string& path, int64_t min) const {
    if (!n.IsSequence()) return {integer(n, path, min)};
    std::vector<int64_t> out;
    for (size_t i = 0; i < n.size(); ++i)
      out.push_back(integer(n[i], join_path(path, std::to_string(i)), min));
    if (out.empty()) fail(n, path, "'" + path + "' expects at least one value");
    return out;
  }

  std::vector<PathEntry> str_list(const YAML::Node& n, const std::string& path) const {
    if (!n.IsSequence()) return {{str(n, path), where(n, path)}};
    std::vector<PathEntry> out;
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string p = join_path(path, std::to_string(i));
      out.push_back({str(n[i], p), where(n[i], p)});
    }
    return out;
  }

  // A path from the file is relative to the file's folder; one typed on the command line
  // (--set output=out/x.onnx) is relative to the working directory, as a shell user expects.
  std::string path(const YAML::Node& n, const std::string& key) const {
    return resolve_path(base_for(n, key), str(n, key));
  }
  std::string base_for(const YAML::Node& n, const std::string& key) const {
    return where(n, key).rfind("--set", 0) == 0 ? std::string() : base_dir_;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_, base_dir_;
  std::vector<Override> overrides_;
};

// A present, non-null key.
bool has(const YAML::Node& map, const std::string& key) { return map[key] && !map[key].IsNull(); }

// ---- sections ---------------------------------------------------------------------------------

void read_model(const Reader& r, const YAML::Node& n, ModelSection& m) {
  r.check_keys(n, "model", {"path", "family", "num_heads", "hidden_size"});
  r.require(n, "model", "path");
  m.where = r.where(n, "model");
  m.path = r.path(n["path"], "model.path");
  m.path_where = r.where(n["path"], "model.path");
  if (has(n, "family")) {
    m.family = r.str(n["family"], "model.family");
    m.family_where = r.where(n["family"], "model.family");
  }
  if (has(n, "num_heads")) m.num_heads = r.integer(n["num_heads"], "model.num_heads", 0);
  if (has(n, "hidden_size")) m.hidden_size = r.integer(n["hidden_size"], "model.hidden_size", 0);
}

Device read_device(const Reader& r, const YAML::Node& n) {
  const std::vector<std::string> choices{"cpu", "cuda", "auto"};
  const std::string s = n.IsScalar() ? n.Scalar() : "";
  if (s == "cpu") return Device::Cpu;
  if (s == "cuda") return Device::Cuda;
  if (s == "auto") return Device::Auto;
  r.fail(n, "device",
         "'device' expects one of " + join_names(choices) + ", got " + describe(n) +
             did_you_mean(s, choices));
}

// As plugin::find_plugin decides: "dir/libx.so" and "libx.so" are files, "x" is a plugin name.
bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() > 3 && s.compare(s.size() - 3, 3, ".so") == 0);
}

void read_plugins(const Reader& r, const YAML::Node& n, const std::string& base_dir,
                  PluginsSection& p) {
  r.check_keys(n, "plugins", {"search", "load"});
  auto base_of = [&](const PathEntry& e) {  // --set paths: relative to the working directory
    return e.where.rfind("--set", 0) == 0 ? std::string() : base_dir;
  };
  if (has(n, "search")) {
    p.search = r.str_list(n["search"], "plugins.search");
    for (auto& e : p.search) e.value = resolve_path(base_of(e), e.value);
  }
  if (has(n, "load")) {
    p.load = r.str_list(n["load"], "plugins.load");
    for (auto& e : p.load)  // a bare name is looked up in the search path; a path is a file
      if (looks_like_path(e.value)) e.value = resolve_path(base_of(e), e.value);
  }
}

Step read_step(const Reader& r, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap())
    r.fail(
        n, path,
        "'" + path + "' expects a step '{pass: NAME}', '{preset: FAMILY}' or '{opt_level: N}', got " +
            describe(n));
  Step s;
  const bool is_pass = n["pass"].IsDefined(), is_preset = n["preset"].IsDefined(),
             is_level = n["opt_level"].IsDefined();
  if (int(is_pass) + int(is_preset) + int(is_level) != 1)
    r.fail(n, path, "'" + path + "' must have exactly one of 'pass', 'preset' or 'opt_level'");
  if (is_level) {
    r.check_keys(n, path, {"opt_level"});
    s.kind = Step::Kind::OptLevel;
    s.name = r.str(n["opt_level"], path + ".opt_level");
    s.where = s.with_where = r.where(n["opt_level"], path + ".opt_level");
    if (s.name != "0" && s.name != "1" && s.name != "2" && s.name != "99")
      r.fail(n["opt_level"], path + ".opt_level",
             "'" + path + ".opt_level' must be 0, 1, 2 or 99, got '" + s.name + "'");
    s.with = YAML::Node(YAML::NodeType::Map);
    return s;
  }
  if (is_preset) {
    r.check_keys(n, path, {"preset"});
    s.kind = Step::Kind::Preset;
    s.name = r.str(n["preset"], path + ".preset");
    s.where = s.with_where = r.where(n["preset"], path + ".preset");
    s.with = YAML::Node(YAML::NodeType::Map);
    return s;
  }
  r.check_keys(n, path, {"pass", "with"});
  s.name = r.str(n["pass"], path + ".pass");
  s.where = r.where(n["pass"], path + ".pass");
  s.with_where = s.where;
  s.with = YAML::Node(YAML::NodeType::Map);
  if (has(n, "with")) {
    const YAML::Node& w = n["with"];
    if (!w.IsMap())
      r.fail(w, path + ".with",
             "'" + path + ".with' expects a map of parameters, got " + describe(w));
    s.with = w;
    s.with_where = r.where_with_inner(w, path + ".with");
  }
  return s;
}

std::vector<Step> read_pipeline(const Reader& r, const YAML::Node& n) {
  if (!n.IsSequence())
    r.fail(n, "pipeline",
           "'pipeline' expects an ordered list of steps (- pass: NAME or - preset: "
           "FAMILY), got " +
               describe(n));
  std::vector<Step> steps;
  for (size_t i = 0; i < n.size(); ++i)
    steps.push_back(read_step(r, n[i], "pipeline." + std::to_string(i)));
  return steps;
}

void read_tolerance(const Reader& r, const YAML::Node& n, VerifySection& v) {
  if (!n.IsMap()) {
    v.tolerance_fp32 = v.tolerance_fp16 = r.number(n, "verify.tolerance");
    return;
  }
  r.check_keys(n, "verify.tolerance", {"fp32", "fp16"});
  if (has(n, "fp32")) v.tolerance_fp32 = r.number(n["fp32"], "verify.tolerance.fp32");
  if (has(n, "fp16")) v.tolerance_fp16 = r.number(n["fp16"], "verify.tolerance.fp16");
}

VerifySection read_verify(const Reader& r, const YAML::Node& n) {
  r.check_keys(n, "verify", {"inputs", "with", "samples", "seed", "tolerance"});
  VerifySection v;
  v.where = r.where(n, "verify");
  v.inputs_where = v.with_where = v.where;
  v.with = YAML::Node(YAML::NodeType::Map);
  if (has(n, "inputs")) {
    v.inputs = r.str(n["inputs"], "verify.inputs");
    v.inputs_where = r.where(n["inputs"], "verify.inputs");
  }
  if (has(n, "with")) {
    if (!n["with"].IsMap())
      r.fail(n["with"], "verify.with", "'verify.with' expects a map, got " + describe(n["with"]));
    v.with = n["with"];
    v.with_where = r.where_with_inner(n["with"], "verify.with");
  }
  if (has(n, "samples")) v.samples = r.integer(n["samples"], "verify.samples", 1);
  if (has(n, "seed")) v.seed = static_cast<uint64_t>(r.integer(n["seed"], "verify.seed", 0));
  if (has(n, "tolerance")) read_tolerance(r, n["tolerance"], v);
  return v;
}

BenchmarkSection read_benchmark(const Reader& r, const YAML::Node& n) {
  r.check_keys(n, "benchmark", {"batch", "sequence", "past", "warmup", "iterations", "cuda_graph"});
  BenchmarkSection b;
  b.where = r.where(n, "benchmark");
  if (has(n, "batch")) b.batch = r.int_list(n["batch"], "benchmark.batch", 1);
  if (has(n, "sequence")) b.sequence = r.int_list(n["sequence"], "benchmark.sequence", 1);
  if (has(n, "past")) b.past = r.int_list(n["past"], "benchmark.past", 0);
  if (has(n, "warmup")) b.warmup = r.integer(n["warmup"], "benchmark.warmup", 0);
  if (has(n, "iterations")) b.iterations = r.integer(n["iterations"], "benchmark.iterations", 1);
  if (has(n, "cuda_graph")) b.cuda_graph = r.boolean(n["cuda_graph"], "benchmark.cuda_graph");
  return b;
}

Config read_config(const Reader& r, const YAML::Node& root, const std::string& base_dir) {
  Config c;
  c.file = r.file();
  c.base_dir = base_dir;
  if (!root || root.IsNull())
    TFH_THROW(r.file(),
              ": the config is empty (it needs at least 'model', 'output' and "
              "'pipeline')");
  r.check_keys(root, "",
               {"version", "model", "output", "device", "plugins", "pipeline", "verify",
                "benchmark", "save"});
  if (has(root, "version")) {
    c.version = r.integer(root["version"], "version", 1);
    if (c.version != 1)
      r.fail(root["version"], "version",
             "config version " + std::to_string(c.version) +
                 " is not supported (this tfhost reads version 1)");
  }
  for (const char* key : {"model", "output", "pipeline"}) r.require(root, "", key);
  read_model(r, root["model"], c.model);
  c.output = r.path(root["output"], "output");
  c.output_where = r.where(root["output"], "output");
  if (has(root, "device")) {
    c.device = read_device(r, root["device"]);
    c.device_where = r.where(root["device"], "device");
  }
  if (has(root, "plugins")) read_plugins(r, root["plugins"], base_dir, c.plugins);
  c.steps = read_pipeline(r, root["pipeline"]);
  if (has(root, "verify")) c.verify = read_verify(r, root["verify"]);
  if (has(root, "benchmark")) c.benchmark = read_benchmark(r, root["benchmark"]);
  if (has(root, "save")) {
    r.check_keys(root["save"], "save", {"use_external_data_format"});
    if (has(root["save"], "use_external_data_format"))
      c.save.use_external_data_format =
          r.boolean(root["save"]["use_external_data_format"], "save.use_external_data_format");
  }
  return c;
}

}  // namespace

const char* device_name(Device d) {
  switch (d) {
    case Device::Cpu:
      return "cpu";
    case Device::Cuda:
      return "cuda";
    case Device::Auto:
      return "auto";
  }
  return "?";
}

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  fs::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
  return (fs::path(base_dir) / p).lexically_normal().string();
}

Config parse_config(const std::string& text, const std::string& file, const std::string& base_dir,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    TFH_THROW(file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg);
  }
  std::vector<Override> applied;
  for (const auto& o : overrides) applied.push_back({apply_override(root, o), "--set " + o});
  return read_config(Reader(file, base_dir, applied), root, base_dir);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  TFH_CHECK(fs::exists(path, ec), path, ": config file not found");
  TFH_CHECK(!fs::is_directory(path, ec), path, ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  TFH_CHECK(in, path, ": cannot read the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, fs::path(path).parent_path().string(), overrides);
}

}  // namespace tfh::pipeline
