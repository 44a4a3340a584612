// The built-in core plugin: generic passes (core.*) registered through the same descriptor table
// a .so plugin returns, so the registry, YAML validation and `tfhost plugins` treat them alike.
#pragma once

#include "tfhost/abi.h"

namespace tfh::passes {

// Static data; core passes are implemented inside the host and may use ir:: directly.
const TfhPluginInfo* core_plugin_info();

}  // namespace tfh::passes
