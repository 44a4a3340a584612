// tfhost_emu: the tfhost binary over the CPU emulator (its CUDA device is tests/cuda_emu), for
// the tests that run `tfhost ... --use_gpu` (generate, perf with CUDA graphs and IO binding).
// host/cli/main.cc is compiled into it with its main renamed; this one puts the emulated plugins
// (TFH_EMU_PLUGIN_DIR: the bert plugin with its CUDA kernel emulated) first on the plugin path,
// so the build's own bert plugin, built for a real GPU, is refused as a second copy.
#include <cstdlib>
#include <string>

int tfhost_main(int argc, char** argv);

int main(int argc, char** argv) {
  std::string path = TFH_EMU_PLUGIN_DIR;
  if (const char* old = std::getenv("TFHOST_PLUGIN_PATH"); old && *old) path += std::string(":") + old;
  setenv("TFHOST_PLUGIN_PATH", path.c_str(), 1);
  return tfhost_main(argc, argv);
}
