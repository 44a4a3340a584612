// kernels/cuda/transformer_kernels.cu compiled as C++ for the CPU emulator (cuda_emu.h, force-included).
#include "kernels/cuda/transformer_kernels.cu"
