// kernels/cuda/tensor_kernels.cu compiled as C++ for the CPU emulator (cuda_emu.h, force-included).
#include "kernels/cuda/tensor_kernels.cu"
