// Value, Node and Graph: use-def chains and the edits passes make.
#include "host/ir/graph.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "host/ir/subgraph.h"
#include "host/util/error.h"

namespace tfh::ir {

std::string describe(const Node& n) {
  if (!n.name().empty()) return "node '" + n.name() + "'";
  std::string s = "unnamed " + n.op_type() + " node";
  for (const Value* o : n.outputs())
    if (o) return s + " producing '" + o->name() + "'";
  return s;
}

// ---- Value ------------------------------------------------------------------------------------

const onnx::ValueInfoProto& Value::info() const {
  return info_ ? *info_ : onnx::ValueInfoProto::default_instance();
}

onnx::ValueInfoProto& Value::mutable_info() {
  if (!info_) {
    info_ = std::make_unique<onnx::ValueInfoProto>();
    info_->set_name(name_);
  }
  in_value_info_ = true;  // saved in graph.value_info unless the value is a graph input/output
  return *info_;
}

int32_t Value::elem_type() const {
  if (info_ && info_->type().has_tensor_type() && info_->type().tensor_type().elem_type() != 0)
    return info_->type().tensor_type().elem_type();
  return initializer_ ? initializer_->dtype() : 0;
}

int64_t Value::rank() const {
  if (info_ && info_->type().has_tensor_type() && info_->type().tensor_type().has_shape())
    return info_->type().tensor_type().shape().dim_size();
  return initializer_ ? static_cast<int64_t>(initializer_->dims().size()) : -1;
}

// ---- Node -------------------------------------------------------------------------------------

const onnx::AttributeProto* Node::attr(const std::string& name) const {
  for (const auto& a : attrs_)
    if (a.name() == name) return &a;
  return nullptr;
}

onnx::AttributeProto& Node::set_attr(const std::string& name) {
  for (auto& a : attrs_)
    if (a.name() == name) return a;
  attrs_.emplace_back();
  attrs_.back().set_name(name);
  return attrs_.back();
}

bool Node::remove_attr(const std::string& name) {
  auto it = std::find_if(attrs_.begin(), attrs_.end(),
                         [&](const onnx::AttributeProto& a) { return a.name() == name; });
  if (it == attrs_.end()) return false;
  attrs_.erase(it);
  return true;
}

// ---- Graph: lookups and checks ----------------------------------------------------------------

Graph::Graph() = default;
Graph::~Graph() = default;

Value* Graph::find(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : it->second.get();
}

Value* Graph::check_value(Value* v, const char* what) const {
  TFH_CHECK(v, "graph '", name_, "': ", what, ": null value");
  TFH_CHECK(find(v->name_) == v, "graph '", name_, "': ", what, ": value '", v->name_,
            "' does not belong to this graph");
  return v;
}

Node* Graph::check_node(Node* n) const {
  TFH_CHECK(n, "graph '", name_, "': null node");
  TFH_CHECK(!n->removed_, "graph '", name_, "': ", describe(*n), " was removed");
  return n;
}

bool Graph::is_defined(const Value* v) {
  return v->producer_ || v->is_graph_input_ || v->initializer_ || v->is_sparse_initializer_;
}

void Graph::add_use(Value* v, Node* n, size_t slot) { v->consumers_.emplace_back(n, slot); }

void Graph::drop_use(Value* v, Node* n, size_t slot) {
  auto& c = v->consumers_;
  auto it = std::find(c.begin(), c.end(), std::make_pair(n, slot));
  if (it == c.end()) return;
  *it = c.back();
  c.pop_back();
}

// ---- Graph: values ----------------------------------------------------------------------------

Value* Graph::add_value(const std::string& name) {
  TFH_CHECK(!name.empty(), "graph '", name_, "': a value needs a name");
  TFH_CHECK(!values_.count(name), "graph '", name_, "': value '", name, "' already exists");
  auto v = std::make_unique<Value>();
  v->name_ = name;
  Value* raw = v.get();
  values_.emplace(name, std::move(v));
  return raw;
}

Value* Graph::get_or_add_value(const std::string& name) {
  Value* v = find(name);
  return v ? v : add_value(name);
}

void Graph::rename_value(Value* v, const std::string& name) {
  check_value(v, "rename_value");
  if (v->name_ == name) return;
  TFH_CHECK(!name.empty(), "graph '", name_, "': cannot rename '", v->name_, "' to an empty name");
  TFH_CHECK(!values_.count(name), "graph '", name_, "': cannot rename '", v->name_, "' to '", name,
            "': that name exists");
  TFH_CHECK(!v->is_sparse_initializer_, "graph '", name_, "': cannot rename sparse initializer '",
            v->name_, "'");
  auto handle = values_.extract(v->name_);
  handle.key() = name;
  values_.insert(std::move(handle));
  std::string old = std::move(v->name_);
  v->name_ = name;
  if (v->info_) v->info_->set_name(name);
  if (v->output_info_) v->output_info_->set_name(name);
  if (v->initializer_) v->initializer_->proto().set_name(name);
  for (auto& [n, slot] : v->consumers_) {
    if (slot != Node::kImplicitSlot) continue;
    for (auto& a : n->attrs_)
      if (has_subgraph(a)) rename_outer_scope_name(a, old, name);
  }
}

void Graph::replace_all_uses(Value* from, Value* to) {
  check_value(from, "replace_all_uses");
  check_value(to, "replace_all_uses");
  if (from == to) return;
  auto uses = std::move(from->consumers_);
  from->consumers_.clear();
  for (auto& [n, slot] : uses) {
    if (slot != Node::kImplicitSlot) {
      n->inputs_[slot] = to;
      add_use(to, n, slot);
      continue;
    }
    auto& imp = n->implicit_inputs_;
    imp.erase(std::find(imp.begin(), imp.end(), from));
    if (std::find(imp.begin(), imp.end(), to) == imp.end()) {
      imp.push_back(to);
      add_use(to, n, slot);
    }
    for (auto& a : n->attrs_)
      if (has_subgraph(a)) rename_outer_scope_name(a, from->name_, to->name_);
  }
  if (!from->is_graph_output_) return;
  std::replace(outputs_.begin(), outputs_.end(), from, to);
  from->is_graph_output_ = false;
  to->is_graph_output_ = true;
  // The model's output keeps a declared type: take the old one when the new value has none.
  std::unique_ptr<onnx::ValueInfoProto> declared = std::move(from->output_info_);
  if (!declared && from->info_) declared = std::make_unique<onnx::ValueInfoProto>(*from->info_);
  if (!to->info_ && declared) {
    to->info_ = std::move(declared);
    to->info_->set_name(to->name_);
  }
}

void Graph::remove_value(Value* v) {
  check_value(v, "remove_value");
  TFH_CHECK(!v->producer_ && v->consumers_.empty() && !v->is_graph_input_ && !v->is_graph_output_ &&
                !v->initializer_ && !v->is_sparse_initializer_,
            "graph '", name_, "': cannot remove value '", v->name_,
            "': it is still produced, used, a graph input/output or an initializer");
  values_.erase(v->name_);
}

std::string Graph::unique_name(const std::string& prefix) {
  std::string name = prefix;
  while (name.empty() || values_.count(name) || generated_names_.count(name))
    name = prefix + "_" + std::to_string(name_counter_++);
  generated_names_.insert(name);
  return name;
}

// ---- Graph: initializers and graph inputs/outputs ----------------------------------------------

Value* Graph::add_initializer(std::unique_ptr<Tensor> t) {
  TFH_CHECK(t, "graph '", name_, "': add_initializer: null tensor");
  Value* v = get_or_add_value(t->name());
  TFH_CHECK(!v->initializer_ && !v->producer_ && !v->is_sparse_initializer_, "graph '", name_,
            "': initializer '", v->name_, "': the name is already defined");
  v->initializer_ = std::move(t);
  initializers_.push_back(v);
  return v;
}

void Graph::remove_initializer(Value* v) {
  check_value(v, "remove_initializer");
  TFH_CHECK(v->initializer_, "graph '", name_, "': '", v->name_, "' is not an initializer");
  initializers_.erase(std::find(initializers_.begin(), initializers_.end(), v));
  v->initializer_.reset();
  if (v->consumers_.empty() && !v->producer_ && !v->is_graph_input_ && !v->is_graph_output_)
    values_.erase(v->name_);
}

void Graph::add_graph_input(Value* v) {
  check_value(v, "add_graph_input");
  TFH_CHECK(!v->is_graph_input_, "graph '", name_, "': '", v->name_, "' is already a graph input");
  TFH_CHECK(!v->producer_, "graph '", name_, "': '", v->name_, "' cannot be a graph input: ",
            describe(*v->producer_), " produces it");
  v->is_graph_input_ = true;
  inputs_.push_back(v);
}

void Graph::add_graph_output(Value* v) {
  check_value(v, "add_graph_output");
  TFH_CHECK(!v->is_graph_output_, "graph '", name_, "': '", v->name_,
            "' is already a graph output");
  v->is_graph_output_ = true;
  outputs_.push_back(v);
}

void Graph::set_graph_output(size_t i, Value* v) {
  check_value(v, "set_graph_output");
  TFH_CHECK(i < outputs_.size(), "graph '", name_, "': set_graph_output: index ", i,
            " out of range (", outputs_.size(), " outputs)");
  Value* old = outputs_[i];
  outputs_[i] = v;
  v->is_graph_output_ = true;
  old->is_graph_output_ = std::count(outputs_.begin(), outputs_.end(), old) > 0;
  if (!old->is_graph_output_) old->output_info_.reset();
}

void Graph::remove_graph_input(Value* v) {
  check_value(v, "remove_graph_input");
  inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), v), inputs_.end());
  v->is_graph_input_ = false;
}

void Graph::remove_graph_output(Value* v) {
  check_value(v, "remove_graph_output");
  outputs_.erase(std::remove(outputs_.begin(), outputs_.end(), v), outputs_.end());
  v->is_graph_output_ = false;
  v->output_info_.reset();
}

// ---- Graph: nodes -----------------------------------------------------------------------------

Node* Graph::add_node(const std::string& name, const std::string& op_type,
                      const std::string& domain, const std::vector<Value*>& inputs,
                      const std::vector<Value*>& outputs) {
  for (Value* v : inputs)
    if (v) check_value(v, "add_node");
  for (size_t k = 0; k < outputs.size(); ++k) {
    Value* o = outputs[k];
    if (!o) continue;
    check_value(o, "add_node");
    TFH_CHECK(!o->producer_, "graph '", name_, "': node '", name, "': output '", o->name_,
              "' is already produced by ", describe(*o->producer_));
    TFH_CHECK(!o->is_graph_input_ && !o->initializer_ && !o->is_sparse_initializer_, "graph '",
              name_, "': node '", name, "': output '", o->name_,
              "' is a graph input or initializer");
    TFH_CHECK(std::find(outputs.begin(), outputs.begin() + k, o) == outputs.begin() + k, "graph '",
              name_, "': node '", name, "': output '", o->name_, "' listed twice");
  }
  auto node = std::make_unique<Node>();
  Node* n = node.get();
  n->name_ = name;
  n->op_type_ = op_type;
  n->domain_ = domain;
  n->inputs_ = inputs;
  n->outputs_ = outputs;
  n->proto_ = std::make_unique<onnx::NodeProto>();
  nodes_.push_back(std::move(node));
  n->pos_ = std::prev(nodes_.end());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i]) add_use(inputs[i], n, i);
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (!outputs[k]) continue;
    outputs[k]->producer_ = n;
    outputs[k]->producer_output_ = k;
  }
  return n;
}

// `n` stops producing `v`. For a name defined twice at load, the other definition takes over.
void Graph::drop_producer(Value* v, Node* n) {
  if (!v || v->producer_ != n) return;
  v->producer_ = nullptr;
  if (redefined_.empty()) return;
  for (const auto& other : nodes_) {
    auto& outs = other->outputs_;
    auto it = std::find(outs.begin(), outs.end(), v);
    if (other.get() != n && it != outs.end()) {
      v->producer_ = other.get();
      v->producer_output_ = static_cast<size_t>(it - outs.begin());
    }
  }
}

void Graph::remove_node(Node* n) {
  check_node(n);
  for (size_t i = 0; i < n->inputs_.size(); ++i)
    if (n->inputs_[i]) drop_use(n->inputs_[i], n, i);
  for (Value* v : n->implicit_inputs_) drop_use(v, n, Node::kImplicitSlot);
  for (Value* v : n->outputs_) drop_producer(v, n);
  n->removed_ = true;
  removed_nodes_.push_back(std::move(*n->pos_));
  nodes_.erase(n->pos_);
}

void Graph::set_input(Node* n, size_t i, Value* v) {
  check_node(n);
  if (v) check_value(v, "set_input");
  if (i >= n->inputs_.size()) n->inputs_.resize(i + 1, nullptr);
  if (n->inputs_[i]) drop_use(n->inputs_[i], n, i);
  n->inputs_[i] = v;
  if (v) add_use(v, n, i);
}

void Graph::set_output(Node* n, size_t k, Value* v) {
  check_node(n);
  if (k < n->outputs_.size() && n->outputs_[k] == v) return;
  if (v) {
    check_value(v, "set_output");
    TFH_CHECK(!v->producer_, "graph '", name_, "': ", describe(*n), ": output '", v->name_,
              "' is already produced by ", describe(*v->producer_));
    TFH_CHECK(!v->is_graph_input_ && !v->initializer_ && !v->is_sparse_initializer_, "graph '",
              name_, "': ", describe(*n), ": output '", v->name_,
              "' is a graph input or initializer");
  }
  if (k >= n->outputs_.size()) n->outputs_.resize(k + 1, nullptr);
  drop_producer(n->outputs_[k], n);
  n->outputs_[k] = v;
  if (!v) return;
  v->producer_ = n;
  v->producer_output_ = k;
}

void Graph::set_implicit_inputs(Node* n) {
  for (const auto& a : n->attrs_) {
    if (!has_subgraph(a)) continue;
    for (const auto& name : outer_scope_names(a)) {
      Value* v = get_or_add_value(name);
      auto& imp = n->implicit_inputs_;
      if (std::find(imp.begin(), imp.end(), v) != imp.end()) continue;
      imp.push_back(v);
      add_use(v, n, Node::kImplicitSlot);
    }
  }
}

// ---- Graph: order and invariants --------------------------------------------------------------

std::vector<Node*> Graph::topo_order() const {
  std::vector<Node*> nodes;
  std::unordered_map<const Node*, size_t> index;
  for (const auto& n : nodes_) {
    index.emplace(n.get(), nodes.size());
    nodes.push_back(n.get());
  }
  std::vector<size_t> indegree(nodes.size(), 0);
  std::vector<std::vector<size_t>> succ(nodes.size());
  auto edge = [&](const Value* v, size_t to) {
    if (!v || !v->producer_) return;
    auto it = index.find(v->producer_);
    if (it == index.end()) return;
    succ[it->second].push_back(to);
    ++indegree[to];
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const Value* v : nodes[i]->inputs_) edge(v, i);
    for (const Value* v : nodes[i]->implicit_inputs_) edge(v, i);
  }
  // Always take the earliest ready node: an already sorted graph keeps its order exactly.
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (indegree[i] == 0) ready.push(i);
  std::vector<Node*> order;
  order.reserve(nodes.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(nodes[i]);
    for (size_t s : succ[i])
      if (--indegree[s] == 0) ready.push(s);
  }
  if (order.size() == nodes.size()) return order;

  // Every node left has a predecessor that is also left: walking back must close a cycle.
  auto left_pred = [&](size_t i) {
    for (const auto* list : {&nodes[i]->inputs_, &nodes[i]->implicit_inputs_})
      for (const Value* v : *list)
        if (v && v->producer_ && index.count(v->producer_) && indegree[index[v->producer_]] > 0)
          return index[v->producer_];
    return i;
  };
  size_t cur = std::find_if(indegree.begin(), indegree.end(), [](size_t d) { return d > 0; }) -
               indegree.begin();
  std::vector<bool> seen(nodes.size(), false);
  while (!seen[cur]) {
    seen[cur] = true;
    cur = left_pred(cur);
  }
  std::string cycle = describe(*nodes[cur]);
  for (size_t i = left_pred(cur), steps = 0; i != cur && steps < 8; i = left_pred(i), ++steps)
    cycle += " <- " + describe(*nodes[i]);
  TFH_THROW("graph '", name_, "' has a cycle through ", describe(*nodes[cur]), " (", cycle,
            " <- ...)");
}

void Graph::topological_sort() {
  for (Node* n : topo_order()) nodes_.splice(nodes_.end(), nodes_, n->pos_);
}

void Graph::check_defined(const std::string& where) const {
  for (const auto& n : nodes_) {
    for (const Value* v : n->inputs_)
      TFH_CHECK(!v || is_defined(v), where, ": ", describe(*n), ": input '", v->name_,
                "' is not produced by any node, graph input or initializer");
    for (const Value* v : n->implicit_inputs_)
      TFH_CHECK(is_defined(v), where, ": ", describe(*n), ": subgraph input '", v->name_,
                "' is not produced by any node, graph input or initializer");
  }
  for (const Value* v : outputs_)
    TFH_CHECK(is_defined(v), where, ": graph output '", v->name_,
              "' is not produced by any node, graph input or initializer");
}

void Graph::validate() const {
  check_defined("graph '" + name_ + "'");
  for (const auto& n : nodes_) {
    for (const Value* v : n->outputs_) {
      if (!v) continue;
      TFH_CHECK(v->producer_ == n.get(), "graph '", name_, "': value '", v->name_,
                "' is produced by both ", describe(*n), " and ", describe(*v->producer_));
      TFH_CHECK(!v->is_graph_input_ && !v->initializer_ && !v->is_sparse_initializer_, "graph '",
                name_, "': value '", v->name_, "' is produced by ", describe(*n),
                " and is also a graph input or initializer");
    }
  }
  for (size_t i = 0; i < inputs_.size(); ++i)
    TFH_CHECK(std::find(inputs_.begin(), inputs_.begin() + i, inputs_[i]) == inputs_.begin() + i,
              "graph '", name_, "': graph input '", inputs_[i]->name_, "' is listed twice");
  topo_order();
}

}  // namespace tfh::ir
