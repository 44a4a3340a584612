#include "support/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace tfh::test {

std::string source_path(const std::string& rel) { return std::string(TFH_SOURCE_DIR) + "/" + rel; }
std::string binary_path(const std::string& rel) { return std::string(TFH_BINARY_DIR) + "/" + rel; }

TempDir::TempDir() {
  const std::string root = binary_path("test_tmp");
  ::mkdir(root.c_str(), 0755);
  std::string tmpl = root + "/t.XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed under " + root);
  path_ = tmpl;
}

static void remove_tree(const std::string& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(p.c_str(), 0755);  // tests make folders read-only to provoke write errors
    for (const auto& n : list_dir(p)) remove_tree(p + "/" + n);
    ::rmdir(p.c_str());
  } else {
    ::unlink(p.c_str());
  }
}

TempDir::~TempDir() { remove_tree(path_); }

static std::string drain(int fd) {
  std::string s;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return s;
}

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env) {
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  posix_spawn_file_actions_addclose(&fa, err_pipe[0]);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);

  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const auto& kv : extra_env) {
    const std::string key = kv.substr(0, kv.find('=') + 1);
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](const std::string& s) { return s.rfind(key, 0) == 0; }),
              env.end());
    env.push_back(kv);
  }
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  CommandResult r;
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    r.err = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  std::thread err_reader([&] { r.err = drain(err_pipe[0]); });
  r.out = drain(out_pipe[0]);
  err_reader.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("short write to " + path);
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

onnx::ModelProto read_model_proto(const std::string& path) {
  onnx::ModelProto m;
  if (!m.ParseFromString(read_file(path))) throw std::runtime_error("not an ONNX model: " + path);
  return m;
}

void write_model_proto(const onnx::ModelProto& m, const std::string& path) {
  std::string s;
  if (!m.SerializeToString(&s)) throw std::runtime_error("cannot serialize " + path);
  write_file(path, s);
}

std::string copy_test_data_sets(const std::string& src, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(src))
    if (entry.is_directory()) fs::copy(entry.path(), dir + "/" + entry.path().filename().string());
  return dir;
}

std::vector<onnx::TensorProto> read_test_data(const std::string& dir, const std::string& prefix) {
  std::vector<onnx::TensorProto> out;
  for (int i = 0;; ++i) {
    const std::string p = dir + "/" + prefix + "_" + std::to_string(i) + ".pb";
    if (!file_exists(p)) break;
    onnx::TensorProto t;
    if (!t.ParseFromString(read_file(p))) throw std::runtime_error("bad TensorProto: " + p);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<SavedInput> saved_inputs(const std::string& dir) {
  // inputs.json: [{"name":..,"type":..,"dims":[..],"file":..}, ...] (written by tfhost perf)
  const std::string json = read_file(dir + "/inputs.json");
  std::vector<SavedInput> v;
  size_t pos = 0;
  auto field = [&](const char* key, size_t from) {
    const size_t k = json.find(std::string("\"") + key + "\":", from);
    return k == std::string::npos ? k : k + std::strlen(key) + 3;
  };
  while ((pos = field("name", pos)) != std::string::npos) {
    SavedInput in;
    in.name = json.substr(pos + 1, json.find('"', pos + 1) - pos - 1);
    const size_t t = field("type", pos);
    in.type = json.substr(t + 1, json.find('"', t + 1) - t - 1);
    size_t d = field("dims", pos) + 1;
    while (json[d] != ']') {
      size_t used = 0;
      in.dims.push_back(std::stoll(json.substr(d), &used));
      d += used;
      if (json[d] == ',') ++d;
    }
    const size_t f = field("file", pos);
    const std::string bytes = read_file(dir + "/" + json.substr(f + 1, json.find('"', f + 1) - f - 1));
    const size_t width = in.type == "int64" ? 8 : 4;
    for (size_t i = 0; i + width <= bytes.size(); i += width) {
      if (in.type == "int64") { int64_t x; std::memcpy(&x, bytes.data() + i, 8); in.values.push_back(x); }
      else if (in.type == "int32") { int32_t x; std::memcpy(&x, bytes.data() + i, 4); in.values.push_back(x); }
      else { float x; std::memcpy(&x, bytes.data() + i, 4); in.values.push_back(static_cast<int64_t>(x)); }
    }
    v.push_back(std::move(in));
    pos = f;
  }
  return v;
}


}  // namespace tfh::test
