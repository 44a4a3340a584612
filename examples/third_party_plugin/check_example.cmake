# ctest driver for the out-of-tree example, the path a third party takes:
#   1. install tfhost into a fresh prefix OUTSIDE the build tree (a tfhost installed inside it
#      counts as running from the build tree and looks in the build's plugin folder, not its own);
#   2. configure and build the example against that prefix alone (find_package(tfhost));
#   3. `cmake --install` the example into the installed tfhost's plugin folder;
#   4. run the installed tfhost without TFHOST_PLUGIN_PATH: `plugins` lists the example from that
#      folder, `optimize --model_type example` fuses the bundled tiny BERT's Gelu (fused-operator
#      statistics) and folds the neutral ops of neutral_ops.txtpb;
#   5. run the original and the optimized BERT in ONNX Runtime (tools/ort/run.js): same outputs.
#
#   cmake -DTFH_BUILD_DIR=<tfhost build> -DEXAMPLE_DIR=<this folder> -DWORK_DIR=<scratch>
#         -P check_example.cmake
# WORK_DIR keeps the example's build and the models it wrote, for inspection; the prefix is a
# temporary folder, removed at the end (also on failure).
foreach(var TFH_BUILD_DIR EXAMPLE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_example.cmake: -D${var}=... is required")
  endif()
endforeach()
get_filename_component(source_dir "${EXAMPLE_DIR}/../.." ABSOLUTE)
get_filename_component(build_dir "${TFH_BUILD_DIR}" ABSOLUTE)
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(tmp "$ENV{TMPDIR}")
if(NOT tmp)
  set(tmp "/tmp")
endif()
execute_process(COMMAND mktemp -d "${tmp}/tfhost-example.XXXXXX" OUTPUT_VARIABLE prefix
                RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT IS_DIRECTORY "${prefix}")
  message(FATAL_ERROR "cannot make a temporary install prefix in ${tmp}")
endif()
file(REAL_PATH "${prefix}" prefix)
string(FIND "${prefix}/" "${build_dir}/" inside)
if(inside EQUAL 0)
  file(REMOVE_RECURSE "${prefix}")
  message(FATAL_ERROR "the install prefix ${prefix} lies inside the build tree ${build_dir}; set "
                      "TMPDIR elsewhere")
endif()

function(fail msg)
  file(REMOVE_RECURSE "${prefix}")
  message(FATAL_ERROR "${msg}")
endfunction()

# Runs a command; stops the test when it fails. Its stdout and stderr land in run_out, run_err.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    fail("${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
  set(run_err "${err}" PARENT_SCOPE)
endfunction()

function(expect_in text what)
  foreach(want IN LISTS ARGN)
    string(FIND "${text}" "${want}" at)
    if(at EQUAL -1)
      fail("${what} lacks '${want}':\n${text}")
    endif()
  endforeach()
endfunction()

# The installed tfhost, as a user runs it: no TFHOST_PLUGIN_PATH to find the example elsewhere.
set(tfhost "${CMAKE_COMMAND}" -E env --unset=TFHOST_PLUGIN_PATH "${prefix}/bin/tfhost")

# ---- 1. install tfhost -------------------------------------------------------------------------
run("cmake --install" "${CMAKE_COMMAND}" --install "${build_dir}" --prefix "${prefix}")
foreach(f bin/tfhost include/tfhost/abi.h lib/cmake/tfhost/tfhostConfig.cmake
          lib/cmake/tfhost/tfhostPlugin.cmake lib/cmake/tfhost/exports.map)
  if(NOT EXISTS "${prefix}/${f}")
    fail("the install lacks ${f}")
  endif()
endforeach()

# ---- 2. build the example against the install only ---------------------------------------------
run("configuring the example" "${CMAKE_COMMAND}" -S "${EXAMPLE_DIR}" -B "${build}"
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
file(STRINGS "${build}/CMakeCache.txt" found REGEX "^tfhost_DIR:")
string(REGEX REPLACE "^[^=]*=" "" found "${found}")
file(REAL_PATH "${found}" found)
string(FIND "${found}" "${prefix}/" at)
if(NOT at EQUAL 0)
  fail("find_package(tfhost) found ${found}, not the install in ${prefix}")
endif()
run("building the example" "${CMAKE_COMMAND}" --build "${build}")
set(lib "${build}/libexample_simplify.so")
if(NOT EXISTS "${lib}")
  fail("the example build did not produce ${lib}")
endif()

# The version script leaves exactly one exported function.
find_program(NM nm)
if(NM)
  run("nm" "${NM}" -D --defined-only "${lib}")
  string(REGEX MATCHALL "[^\n]* T [^\n]*" exported "${run_out}")
  if(NOT exported MATCHES "tfh_plugin_init" OR exported MATCHES ";")
    fail("the plugin must export only tfh_plugin_init; nm says:\n${run_out}")
  endif()
endif()

# ---- 3. install it where the installed tfhost looks ----------------------------------------------
run("installing the example" "${CMAKE_COMMAND}" --install "${build}")
file(GLOB_RECURSE installed "${prefix}/*/libexample_simplify.so")
if(NOT installed MATCHES "/tfhost/plugins/libexample_simplify.so$")
  fail("cmake --install did not put the example into the installed tfhost's plugin folder "
       "(found: '${installed}')")
endif()

# ---- 4. the installed tfhost finds and runs it ---------------------------------------------------
run("tfhost plugins" ${tfhost} plugins)
expect_in("${run_out}" "'tfhost plugins'" "example_simplify" "example.fold_neutral_ops"
          "example.gelu" "file: ${installed}")
if(NOT run_err STREQUAL "")
  fail("'tfhost plugins' warned:\n${run_err}")
endif()

set(bert "${source_dir}/models/bert_tiny_opset14/model.onnx")
set(bert_gelu "${WORK_DIR}/bert_gelu.onnx")
run("tfhost optimize (BERT)" ${tfhost} optimize --input "${bert}" --output "${bert_gelu}"
    --model_type example)
# The bundled BERT has two layers, each with one erf Gelu.
expect_in("${run_out}" "'tfhost optimize --model_type example' on ${bert}"
          "example.gelu: 2 changed" "Fused Gelu: 2")

# The model is kept as protobuf text and encoded/decoded with protoc against libonnx-dev's
# onnx.proto: Add(x, 0) and Mul(1, .) fold away, the bias Add stays.
find_program(PROTOC protoc)
find_path(ONNX_PROTO_DIR onnx/onnx.proto PATHS /usr/include /usr/local/include)
if(NOT PROTOC OR NOT ONNX_PROTO_DIR)
  fail("protoc and onnx/onnx.proto (libonnx-dev) are needed: run scripts/setup.sh")
endif()
function(protoc mode in out)
  execute_process(COMMAND "${PROTOC}" "-I${ONNX_PROTO_DIR}" --${mode}=onnx.ModelProto
                          onnx/onnx.proto
                  INPUT_FILE "${in}" OUTPUT_FILE "${out}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    fail("protoc --${mode} ${in} failed: ${err}")
  endif()
endfunction()
protoc(encode "${EXAMPLE_DIR}/neutral_ops.txtpb" "${WORK_DIR}/neutral_ops.onnx")
run("tfhost optimize (neutral ops)" ${tfhost} optimize --input "${WORK_DIR}/neutral_ops.onnx"
    --output "${WORK_DIR}/optimized.onnx" --model_type example)
protoc(decode "${WORK_DIR}/optimized.onnx" "${WORK_DIR}/optimized.txtpb")
file(READ "${WORK_DIR}/optimized.txtpb" optimized)
string(REGEX MATCHALL "op_type: \"[A-Za-z]+\"" ops "${optimized}")
if(NOT ops STREQUAL "op_type: \"Add\"" OR NOT optimized MATCHES "output: \"z\"")
  fail("expected one Add producing z after 'optimize --model_type example', got:\n${optimized}")
endif()

# ---- 5. ONNX Runtime computes the same outputs from both models ----------------------------------
find_program(NODE node)
if(NOT NODE OR NOT IS_DIRECTORY "${source_dir}/tools/ort/node_modules/onnxruntime-node")
  fail("ONNX Runtime reference is not installed (node, tools/ort/node_modules): run "
       "scripts/setup.sh")
endif()
set(ort "${WORK_DIR}/ort")
run("making inputs" "${NODE}" "${EXAMPLE_DIR}/ort_compare.js" inputs "${ort}")
run("ONNX Runtime on ${bert}" "${NODE}" "${source_dir}/tools/ort/run.js" "${bert}"
    "${ort}/inputs.json" "${ort}/before")
run("ONNX Runtime on ${bert_gelu}" "${NODE}" "${source_dir}/tools/ort/run.js" "${bert_gelu}"
    "${ort}/inputs.json" "${ort}/after")
# com.microsoft.Gelu computes the same erf formula; only float rounding may differ.
run("comparing outputs" "${NODE}" "${EXAMPLE_DIR}/ort_compare.js" compare "${ort}/before"
    "${ort}/after" 1e-4)
message(STATUS "ONNX Runtime, original vs optimized: ${run_out}")

file(REMOVE_RECURSE "${prefix}")
message(STATUS "example plugin built out of tree, installed into the installed tfhost's plugin "
               "folder, listed, run, and its output checked in ONNX Runtime")
