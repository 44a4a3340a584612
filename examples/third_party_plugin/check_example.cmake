# ctest driver for the out-of-tree example: install tfhost, build the example against the installed
# SDK only, and check that the installed tfhost lists the plugin and its fusion.
#   cmake -DTFH_BUILD_DIR=<tfhost build> -DEXAMPLE_DIR=<this folder> -DWORK_DIR=<scratch>
#         [-DCMAKE_GENERATOR=...] -P check_example.cmake
foreach(var TFH_BUILD_DIR EXAMPLE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_example.cmake: -D${var}=... is required")
  endif()
endforeach()
set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_output "${out}${err}" PARENT_SCOPE)
endfunction()

run("cmake --install" "${CMAKE_COMMAND}" --install "${TFH_BUILD_DIR}" --prefix "${prefix}")
foreach(f bin/tfhost include/tfhost/abi.h lib/cmake/tfhost/tfhostConfig.cmake
          lib/cmake/tfhost/tfhostPlugin.cmake lib/cmake/tfhost/exports.map)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "the install lacks ${f}")
  endif()
endforeach()

# Configure with nothing of the source tree in sight: only the installed prefix.
run("configuring the example" "${CMAKE_COMMAND}" -S "${EXAMPLE_DIR}" -B "${build}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
run("building the example" "${CMAKE_COMMAND}" --build "${build}")
set(lib "${build}/libexample_simplify.so")
if(NOT EXISTS "${lib}")
  message(FATAL_ERROR "the example build did not produce ${lib}")
endif()

# The version script leaves exactly one exported function.
find_program(NM nm)
if(NM)
  run("nm" "${NM}" -D --defined-only "${lib}")
  string(REGEX MATCHALL "[^\n]* T [^\n]*" exported "${run_output}")
  if(NOT exported MATCHES "tfh_plugin_init" OR exported MATCHES ";")
    message(FATAL_ERROR "the plugin must export only tfh_plugin_init; nm says:\n${run_output}")
  endif()
endif()

run("tfhost plugins" "${CMAKE_COMMAND}" -E env "TFHOST_PLUGIN_PATH=${build}"
    "${prefix}/bin/tfhost" plugins)
foreach(want "example_simplify" "example.fold_neutral_ops")
  string(FIND "${run_output}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "'tfhost plugins' does not list ${want}:\n${run_output}")
  endif()
endforeach()
# The preset runs: Add(x, 0) and Mul(1, .) fold away, the bias Add stays. The model is kept as
# protobuf text and encoded/decoded with protoc against libonnx-dev's onnx.proto.
find_program(PROTOC protoc REQUIRED)
find_path(ONNX_PROTO_DIR onnx/onnx.proto PATHS /usr/include /usr/local/include REQUIRED)
function(protoc mode in out)
  execute_process(COMMAND "${PROTOC}" "-I${ONNX_PROTO_DIR}" --${mode}=onnx.ModelProto
                          onnx/onnx.proto
                  INPUT_FILE "${in}" OUTPUT_FILE "${out}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "protoc --${mode} ${in} failed: ${err}")
  endif()
endfunction()
protoc(encode "${EXAMPLE_DIR}/neutral_ops.txtpb" "${WORK_DIR}/neutral_ops.onnx")
run("tfhost optimize" "${CMAKE_COMMAND}" -E env "TFHOST_PLUGIN_PATH=${build}"
    "${prefix}/bin/tfhost" optimize --input "${WORK_DIR}/neutral_ops.onnx"
    --output "${WORK_DIR}/optimized.onnx" --model_type example)
protoc(decode "${WORK_DIR}/optimized.onnx" "${WORK_DIR}/optimized.txtpb")
file(READ "${WORK_DIR}/optimized.txtpb" optimized)
string(REGEX MATCHALL "op_type: \"[A-Za-z]+\"" ops "${optimized}")
if(NOT ops STREQUAL "op_type: \"Add\"" OR NOT optimized MATCHES "output: \"z\"")
  message(FATAL_ERROR "expected one Add producing z after 'optimize --model_type example', got:\n"
                      "${optimized}")
endif()
message(STATUS "example plugin built out of tree, listed and run by the installed tfhost")
