# tfh_add_plugin(<name> SOURCES <src>... [OUTPUT_DIRECTORY <dir>])
#
# Builds lib<name>.so as a tfhost plugin: compiled against the SDK headers only, every symbol hidden
# except tfh_plugin_init (version script), no undefined symbols left to the host.
# Used in-tree and, after `find_package(tfhost)`, by out-of-tree plugins.
include_guard(GLOBAL)
set(_TFH_PLUGIN_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(tfh_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "tfh_add_plugin(${name}): no SOURCES given")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE tfhost::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED TFH_PLUGIN_BUILD_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${TFH_PLUGIN_BUILD_DIR}")
  endif()
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    set(_map "${_TFH_PLUGIN_CMAKE_DIR}/../exports.map")
    if(NOT EXISTS "${_map}")
      set(_map "${_TFH_PLUGIN_CMAKE_DIR}/exports.map")
    endif()
    target_link_options(${name} PRIVATE "LINKER:--version-script=${_map}" "LINKER:--no-undefined")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS "${_map}")
  endif()
endfunction()
