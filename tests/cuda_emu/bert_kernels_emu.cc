// The bert plugin's CUDA kernel (plugins/bert/kernels/embed_layer_norm_cuda.cu) compiled as C++
// for the CPU emulator (cuda_emu.h, force-included).
#include "kernels/embed_layer_norm_cuda.cu"
