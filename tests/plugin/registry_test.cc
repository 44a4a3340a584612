// Registry: the built-in core plugin, contributions of a loaded plugin, duplicates, load_all,
// unload order, run_pass.
#include "host/plugin/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>

#include <boost/filesystem.hpp>

#include "host/plugin/host_api.h"
#include "host/util/error.h"
#include "plugin/plugin_test_util.h"

namespace tfh::plugin {
namespace {
namespace fs = boost::filesystem;
using testing::fixture;
using testing::ShutdownLog;
using test::TempDir;

std::string subdir(const TempDir& tmp, const std::string& name) {
  fs::create_directories(tmp / name);
  return tmp / name;
}

std::vector<std::string> plugin_names(const Registry& r) {
  std::vector<std::string> out;
  for (const auto& l : r.plugins()) out.push_back(l->name());
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// y = Relu(Identity(x)): two nodes, one graph input.
std::unique_ptr<ir::Model> two_node_model() {
  auto m = std::make_unique<ir::Model>();
  m->set_opset("", 13);
  ir::Graph& g = m->graph();
  ir::Value* x = g.add_value("x");
  g.add_graph_input(x);
  ir::Value* t = g.add_value("t");
  ir::Value* y = g.add_value("y");
  g.add_node("id", "Identity", "", {x}, {t});
  g.add_node("relu", "Relu", "", {t}, {y});
  g.add_graph_output(y);
  return m;
}

Params defaults(const PassEntry& pass) {
  return Params::resolve(pass.params, std::map<std::string, std::string>{}, pass.name, "test");
}

TEST(Registry, RegistersTheCorePlugin) {
  Registry r;
  EXPECT_EQ(plugin_names(r), std::vector<std::string>{"core"});
  const PassEntry* p = r.find_pass("core.remove_identity");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->plugin, "core");
  EXPECT_EQ(p->kind, PassKind::Fusion);
  ASSERT_EQ(p->params.size(), 1u);
  EXPECT_EQ(p->params[0].name, "dropout");
  EXPECT_EQ(p->params[0].type, TFH_PARAM_BOOL);
  EXPECT_EQ(p->params[0].default_yaml.value_or("?"), "true");
  for (const char* name : {"core.eliminate_dead_nodes", "core.remove_unused_initializers",
                           "core.repair_duplicate_definitions", "core.topological_sort",
                           "core.cleanup"})
    EXPECT_NE(r.find_pass(name), nullptr) << name;
  const ModelTypeEntry* core = r.find_model_type("core");
  ASSERT_NE(core, nullptr);
  EXPECT_EQ(core->passes,
            (std::vector<std::string>{"core.repair_duplicate_definitions", "core.remove_identity",
                                      "core.eliminate_dead_nodes",
                                      "core.remove_unused_initializers", "core.topological_sort"}));
  for (const auto& name : core->passes) EXPECT_NE(r.find_pass(name), nullptr) << name;
}

TEST(Registry, AddsEveryContributionOfAPlugin) {
  Registry r;
  r.load("fixture_good", {TFH_FIXTURE_PLUGIN_DIR});
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
  const PassEntry* fusion = r.find_pass("fixture.count_nodes");
  ASSERT_NE(fusion, nullptr);
  EXPECT_EQ(fusion->plugin, "fixture_good");
  EXPECT_EQ(fusion->description, "counts nodes, changes nothing");
  EXPECT_EQ(fusion->kind, PassKind::Fusion);
  ASSERT_EQ(fusion->params.size(), 1u);
  EXPECT_EQ(fusion->params[0].name, "scale");
  EXPECT_EQ(fusion->params[0].type, TFH_PARAM_INT);
  EXPECT_EQ(fusion->params[0].default_yaml.value_or("?"), "1");
  const PassEntry* converter = r.find_pass("fixture.count_inputs");
  ASSERT_NE(converter, nullptr);
  EXPECT_EQ(converter->kind, PassKind::Converter);
  const ModelTypeEntry* mt = r.find_model_type("fixture_model");
  ASSERT_NE(mt, nullptr);
  EXPECT_EQ(mt->passes, (std::vector<std::string>{"core.remove_identity", "fixture.count_nodes"}));
  EXPECT_NE(r.shape_hooks().find("com.example", "FixtureOp"), nullptr);
  ASSERT_EQ(r.ops().size(), 1u);
  EXPECT_EQ(r.ops()[0].domain, "com.example");
  EXPECT_EQ(r.ops()[0].op_type, "FixtureOp");
  EXPECT_EQ(r.ops()[0].plugin, "fixture_good");
}

TEST(Registry, ADuplicatePassNameIsAnErrorNamingBothPlugins) {
  ShutdownLog log;
  Registry r;
  r.load(fixture("fixture_good"), {});
  const std::string dup = fixture("fixture_dup");
  EXPECT_EQ(error_of([&] { r.load(dup, {}); }),
            dup + ": pass 'fixture.count_nodes' of plugin 'fixture_dup' is already registered by "
                  "plugin 'fixture_good'");
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
  EXPECT_EQ(r.find_pass("fixture.count_nodes")->plugin, "fixture_good");
  EXPECT_EQ(log.read(), "fixture_dup\n");  // the rejected plugin was shut down and unloaded
}

TEST(Registry, TheSamePluginNameFromAnotherFileIsAnError) {
  TempDir tmp;
  const std::string copy = tmp / "libfixture_good_copy.so";
  fs::copy_file(fixture("fixture_good"), copy);
  Registry r;
  r.load(fixture("fixture_good"), {});
  EXPECT_EQ(error_of([&] { r.load(copy, {}); }),
            copy + ": plugin 'fixture_good' is already loaded from " + fixture("fixture_good"));
}

TEST(Registry, LoadingTheSameFileTwiceIsANoOp) {
  Registry r;
  r.load(fixture("fixture_good"), {});
  r.load("fixture_good", {TFH_FIXTURE_PLUGIN_DIR});
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
}

TEST(Registry, AnUnknownPluginNameIsAnError) {
  Registry r;
  EXPECT_EQ(error_of([&] { r.load("no_such_plugin", {"/nonexistent"}); }),
            "plugin 'no_such_plugin' not found (searched: /nonexistent)");
}

TEST(Registry, UnloadsInReverseLoadOrder) {
  ShutdownLog log;
  {
    Registry r;
    r.load(fixture("fixture_good"), {});
    r.load(fixture("fixture_throws"), {});
    r.load(fixture("fixture_no_shutdown"), {});
    EXPECT_EQ(log.read(), "");
  }
  EXPECT_EQ(log.read(), "fixture_throws\nfixture_good\n");
}

TEST(Registry, LoadAllRefusesNonPluginsAndLoadsEachFileOnce) {
  TempDir tmp;
  const std::string dir = subdir(tmp, "plugins");
  fs::create_symlink(fixture("fixture_good"), dir + "/libfixture_good.so");
  fs::create_symlink(fixture("fixture_good"), dir + "/libalias_of_good.so");  // same real file
  fs::create_symlink(fixture("fixture_not_a_plugin"), dir + "/libfixture_not_a_plugin.so");
  test::write_file(dir + "/libgarbage.so", "not an ELF file\n");
  test::write_file(dir + "/README.txt", "ignored\n");
  fs::create_symlink(dir + "/missing.so", dir + "/libdangling.so");
  Registry r;
  r.load_all({dir, "/nonexistent", dir});
  r.load_all({dir});  // a second search warns about nothing new
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
  ASSERT_EQ(r.refused().size(), 2u);
  EXPECT_EQ(r.refused()[0].path, dir + "/libfixture_not_a_plugin.so");
  EXPECT_EQ(r.refused()[0].reason, "not a tfhost plugin (no symbol tfh_plugin_init)");
  EXPECT_EQ(r.refused()[1].path, dir + "/libgarbage.so");
  EXPECT_EQ(r.refused()[1].reason.rfind("cannot be loaded: ", 0), 0u) << r.refused()[1].reason;
  ASSERT_EQ(r.warnings().size(), 2u);
  EXPECT_EQ(r.warnings()[0], dir + "/libfixture_not_a_plugin.so: skipped: not a tfhost plugin (no "
                                   "symbol tfh_plugin_init)");
  EXPECT_EQ(r.warnings()[1].rfind(dir + "/libgarbage.so: skipped: cannot be loaded: ", 0), 0u)
      << r.warnings()[1];
}

TEST(Registry, LoadAllKeepsTheFirstPluginOfAName) {
  TempDir tmp;
  const std::string first = subdir(tmp, "first"), second = subdir(tmp, "second");
  fs::create_symlink(fixture("fixture_good"), first + "/libfixture_good.so");
  fs::copy_file(fixture("fixture_good"), second + "/libfixture_good_v2.so");
  Registry r;
  r.load_all({first, second});
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
  EXPECT_EQ(r.plugins()[1]->path(), first + "/libfixture_good.so");
  ASSERT_EQ(r.warnings().size(), 1u);
  EXPECT_EQ(r.warnings()[0], second + "/libfixture_good_v2.so: plugin 'fixture_good' is shadowed by " +
                                 first + "/libfixture_good.so");
}

// A stale plugin in a search folder must not make every command fail: it is refused, the
// others load. Asked for by name, the same file is an error.
TEST(Registry, LoadAllRefusesAPluginThatFailsItsChecksAndGoesOn) {
  ShutdownLog log;
  TempDir tmp;
  const std::string dir = subdir(tmp, "plugins");
  const std::string future = dir + "/libfixture_future_abi.so";
  fs::create_symlink(fixture("fixture_future_abi"), future);
  fs::create_symlink(fixture("fixture_init_fails"), dir + "/libfixture_init_fails.so");
  fs::create_symlink(fixture("fixture_good"), dir + "/libfixture_good.so");
  fs::create_symlink(fixture("fixture_dup"), dir + "/libzz_dup.so");  // a pass name clash
  Registry r;
  r.load_all({dir});
  EXPECT_EQ(plugin_names(r), (std::vector<std::string>{"core", "fixture_good"}));
  ASSERT_EQ(r.refused().size(), 3u);
  EXPECT_EQ(r.refused()[0].path, future);
  EXPECT_EQ(r.refused()[0].reason.rfind("plugin 'fixture_future_abi' was built for tfhost plugin "
                                        "ABI ", 0), 0u) << r.refused()[0].reason;
  EXPECT_EQ(r.refused()[1].reason,
            "plugin initialisation failed: fixture_init_fails: needs a device it lacks");
  EXPECT_EQ(r.refused()[2].reason,
            "pass 'fixture.count_nodes' of plugin 'fixture_dup' is already registered by plugin "
            "'fixture_good'");
  ASSERT_EQ(r.warnings().size(), 3u);
  EXPECT_EQ(r.warnings()[0], future + ": skipped: " + r.refused()[0].reason);
  EXPECT_EQ(log.read(), "fixture_future_abi\nfixture_dup\n");  // refused ones were shut down

  Registry explicit_load;
  const std::string msg = error_of([&] { explicit_load.load("fixture_future_abi", {dir}); });
  EXPECT_EQ(msg.rfind(future + ": plugin 'fixture_future_abi' was built for tfhost plugin ABI ", 0),
            0u) << msg;
  EXPECT_TRUE(explicit_load.refused().empty());
}

TEST(Registry, RunsAPluginPassWithItsParameters) {
  Registry r;
  r.load(fixture("fixture_good"), {});
  auto m = two_node_model();
  const PassEntry& pass = *r.find_pass("fixture.count_nodes");
  EXPECT_EQ(r.run_pass(pass, *m, defaults(pass)), 2u);
  const Params scaled = Params::resolve(pass.params, std::map<std::string, std::string>{{"scale", "3"}}, pass.name, "test");
  EXPECT_EQ(r.run_pass(pass, *m, scaled), 6u);
  const PassEntry& conv = *r.find_pass("fixture.count_inputs");
  EXPECT_EQ(r.run_pass(conv, *m, defaults(conv)), 1u);
}

// x[2,3] -> com.example.FixtureOp -> t -> Relu -> y: typed only through fixture_good's hook.
std::unique_ptr<ir::Model> fixture_op_model() {
  auto m = std::make_unique<ir::Model>();
  m->set_opset("", 13);
  m->set_opset("com.example", 1);
  ir::Graph& g = m->graph();
  ir::Value* x = g.add_value("x");
  auto* tt = x->mutable_info().mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_value(2);
  tt->mutable_shape()->add_dim()->set_dim_value(3);
  g.add_graph_input(x);
  ir::Value* t = g.add_value("t");
  ir::Value* y = g.add_value("y");
  g.add_node("fx", "FixtureOp", "com.example", {x}, {t});
  g.add_node("relu", "Relu", "", {t}, {y});
  g.add_graph_output(y);
  return m;
}

std::string type_of(const ir::Graph& g, const std::string& name) {
  const ir::Value* v = g.find(name);
  if (!v || !v->has_info() || !v->info().type().tensor_type().has_shape()) return "?";
  const auto& t = v->info().type().tensor_type();
  std::string s = std::to_string(t.elem_type()) + ":";
  for (const auto& d : t.shape().dim()) s += std::to_string(d.dim_value()) + ",";
  return s;
}

TEST(Registry, ShapeInferencePassTypesContribOpsThroughTheirOwnersHooks) {
  Registry r;
  const PassEntry& pass = *r.find_pass("core.shape_inference");
  auto untyped = fixture_op_model();
  r.run_pass(pass, *untyped, defaults(pass));  // no hook for FixtureOp: t and y stay unknown
  EXPECT_EQ(type_of(untyped->graph(), "t"), "?");
  EXPECT_EQ(type_of(untyped->graph(), "y"), "?");

  r.load(fixture("fixture_good"), {});
  auto m = fixture_op_model();
  EXPECT_EQ(r.run_pass(*r.find_pass("core.shape_inference"), *m, defaults(pass)), 2u);
  EXPECT_EQ(type_of(m->graph(), "t"), "1:2,3,");
  EXPECT_EQ(type_of(m->graph(), "y"), "1:2,3,");  // Relu typed by ONNX from the hook's result
  EXPECT_EQ(active_shape_hooks(), nullptr);       // scoped to the pass
}

TEST(Registry, APassErrorNamesThePassAndThePlugin) {
  Registry r;
  r.load(fixture("fixture_throws"), {});
  auto m = two_node_model();
  const PassEntry& pass = *r.find_pass("fixture.boom");
  EXPECT_EQ(error_of([&] { r.run_pass(pass, *m, defaults(pass)); }),
            "pass 'fixture.boom' (plugin 'fixture_throws') failed: boom");
  EXPECT_EQ(m->graph().num_nodes(), 2u);
}

TEST(Registry, ExceptionsInAnSdkPluginArriveAsStatuses) {
  Registry r;
  r.load(fixture("fixture_throws_cpp"), {});
  auto m = two_node_model();
  auto run = [&](const char* name) {
    const PassEntry& pass = *r.find_pass(name);
    return error_of([&] { r.run_pass(pass, *m, defaults(pass)); });
  };
  EXPECT_EQ(run("fixture.throws_sdk_error"),
            "pass 'fixture.throws_sdk_error' (plugin 'fixture_throws_cpp') failed: kaboom");
  EXPECT_EQ(run("fixture.throws_std"),
            "pass 'fixture.throws_std' (plugin 'fixture_throws_cpp') failed: std boom");
  EXPECT_EQ(run("fixture.throws_other"),
            "pass 'fixture.throws_other' (plugin 'fixture_throws_cpp') failed: unknown exception "
            "in plugin");
}

TEST(Registry, RunsABuiltInPass) {
  Registry r;
  auto m = two_node_model();
  const PassEntry& pass = *r.find_pass("core.remove_identity");
  EXPECT_EQ(r.run_pass(pass, *m, defaults(pass)), 1u);
  EXPECT_EQ(m->graph().num_nodes(), 1u);
  m->graph().validate();
}

// A pass that reads graph_node(1) through the host table first thing (no scan from index 0),
// as a plugin may: it sees the node index the host keeps for the graph.
std::string g_probe_seen;
TfhStatus* probe_node_1(TfhGraph* g, const TfhParams*, size_t* n_changed) {
  const TfhGraphApi* api = host_api()->graph;
  const TfhNode* n = api->graph_node(g, 1);
  g_probe_seen = n ? api->node_name(n) : "(null)";
  *n_changed = 0;
  return nullptr;
}
const TfhFusionDesc kProbe = {sizeof(TfhFusionDesc), "test.probe_node_1", "", "0", nullptr,
                              nullptr, 0, nullptr, probe_node_1};

TEST(Registry, APassSeesTheGraphAsTheLastPassLeftIt) {
  Registry r;
  PassEntry probe;
  probe.name = kProbe.name;
  probe.plugin = "test";
  probe.fusion = &kProbe;
  // x -> a -> b -> c -> d -> y, listed a, c, b, d: a sort moves only the middle two, so the node
  // count and the first and last node stay the same.
  auto m = std::make_unique<ir::Model>();
  m->set_opset("", 13);
  ir::Graph& g = m->graph();
  ir::Value* x = g.add_value("x");
  g.add_graph_input(x);
  ir::Value* ta = g.add_value("ta");
  ir::Value* tb = g.add_value("tb");
  ir::Value* tc = g.add_value("tc");
  ir::Value* y = g.add_value("y");
  g.add_node("a", "Relu", "", {x}, {ta});
  g.add_node("c", "Relu", "", {tb}, {tc});
  g.add_node("b", "Relu", "", {ta}, {tb});
  g.add_node("d", "Relu", "", {tc}, {y});
  g.add_graph_output(y);

  r.run_pass(probe, *m, defaults(probe));
  EXPECT_EQ(g_probe_seen, "c");
  // A built-in edits the IR directly, outside the host table.
  const PassEntry& sort = *r.find_pass("core.topological_sort");
  r.run_pass(sort, *m, defaults(sort));
  ASSERT_EQ(g.nodes().size(), 4u);
  EXPECT_EQ((*std::next(g.nodes().begin()))->name(), "b");
  r.run_pass(probe, *m, defaults(probe));
  EXPECT_EQ(g_probe_seen, "b") << "a node index cached before the sort outlived it";
}

}  // namespace
}  // namespace tfh::plugin
