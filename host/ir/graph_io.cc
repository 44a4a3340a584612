// Moving the main graph's contents out of a GraphProto at load, and lending them back for save.
// Nothing is copied: protos are released from their RepeatedPtrFields and re-added by pointer.
#include <algorithm>

#include "host/ir/graph.h"
#include "host/ir/subgraph.h"
#include "host/util/error.h"

namespace tfh::ir {
namespace {

// Releases every element, keeping their order (ReleaseLast hands them out back to front).
template <typename T>
std::vector<std::unique_ptr<T>> take_all(google::protobuf::RepeatedPtrField<T>* field) {
  std::vector<std::unique_ptr<T>> out(field->size());
  for (size_t i = out.size(); i-- > 0;) out[i].reset(field->ReleaseLast());
  return out;
}

// Takes the pointers back without deleting them: their owners are the Graph's objects.
template <typename T>
void unlend_all(google::protobuf::RepeatedPtrField<T>* field) {
  while (!field->empty()) (void)field->ReleaseLast();
}

}  // namespace

void Graph::take_from(onnx::GraphProto& g, const std::string& path,
                      const TensorFactory& make_tensor) {
  name_ = g.name();
  for (auto& vi : take_all(g.mutable_input())) {
    TFH_CHECK(!vi->name().empty(), path, ": graph input #", inputs_.size() + 1, " has no name");
    Value* v = get_or_add_value(vi->name());
    if (v->is_graph_input_) redefined_.push_back(v->name_);
    if (!v->info_) v->info_ = std::move(vi);
    v->is_graph_input_ = true;
    inputs_.push_back(v);
  }
  for (auto& proto : take_all(g.mutable_initializer())) {
    TFH_CHECK(!proto->name().empty(), path, ": initializer #", initializers_.size() + 1,
              " has no name");
    Value* v = get_or_add_value(proto->name());
    auto tensor = make_tensor(std::move(proto));
    if (v->initializer_) {  // repeated initializer: the last one wins, like a repeated definition
      redefined_.push_back(v->name_);
      initializers_.erase(std::find(initializers_.begin(), initializers_.end(), v));
    }
    v->initializer_ = std::move(tensor);
    initializers_.push_back(v);
  }
  for (const auto& sp : g.sparse_initializer())
    if (!sp.values().name().empty())
      get_or_add_value(sp.values().name())->is_sparse_initializer_ = true;
  for (auto& np : take_all(g.mutable_node())) add_loaded_node(std::move(np));
  for (auto& vi : take_all(g.mutable_output())) {
    TFH_CHECK(!vi->name().empty(), path, ": graph output #", outputs_.size() + 1, " has no name");
    Value* v = get_or_add_value(vi->name());
    // A graph input passed straight through keeps both declarations (they may differ in doc_string
    // or shape); a value listed twice as an output keeps its first one.
    if (!v->info_) v->info_ = std::move(vi);
    else if (v->is_graph_input_ && !v->is_graph_output_) v->output_info_ = std::move(vi);
    v->is_graph_output_ = true;
    outputs_.push_back(v);
  }
  auto infos = take_all(g.mutable_value_info());
  for (size_t i = 0; i < infos.size(); ++i) {
    Value* v = find(infos[i]->name());
    if (v && !v->info_) {
      v->info_ = std::move(infos[i]);
      v->in_value_info_ = true;
      v->value_info_index_ = i;
    } else {
      extra_value_info_.emplace_back(i, std::move(infos[i]));
    }
  }
  check_defined(path);
}

void Graph::add_loaded_node(std::unique_ptr<onnx::NodeProto> np) {
  auto node = std::make_unique<Node>();
  Node* n = node.get();
  n->name_ = np->name();
  n->op_type_ = np->op_type();
  n->domain_ = np->domain();
  n->doc_string_ = np->doc_string();
  for (auto& a : take_all(np->mutable_attribute())) n->attrs_.push_back(std::move(*a));
  for (const auto& in : np->input())
    n->inputs_.push_back(in.empty() ? nullptr : get_or_add_value(in));
  for (const auto& out : np->output()) {
    Value* v = out.empty() ? nullptr : get_or_add_value(out);
    if (v && is_defined(v)) redefined_.push_back(out);
    if (v) {
      v->producer_ = n;  // the last definition wins
      v->producer_output_ = n->outputs_.size();
    }
    n->outputs_.push_back(v);
  }
  np->clear_input();
  np->clear_output();
  n->proto_ = std::move(np);
  nodes_.push_back(std::move(node));
  n->pos_ = std::prev(nodes_.end());
  for (size_t i = 0; i < n->inputs_.size(); ++i)
    if (n->inputs_[i]) add_use(n->inputs_[i], n, i);
  set_implicit_inputs(n);
}

void Graph::lend_to(onnx::GraphProto& g) {
  for (const auto& n : nodes_) {
    onnx::NodeProto* p = n->proto_.get();
    // Set only what changed, so an absent field stays absent (byte-exact round trip).
    if (p->name() != n->name_) p->set_name(n->name_);
    if (p->op_type() != n->op_type_) p->set_op_type(n->op_type_);
    if (p->domain() != n->domain_) p->set_domain(n->domain_);
    if (p->doc_string() != n->doc_string_) p->set_doc_string(n->doc_string_);
    for (const Value* v : n->inputs_) p->add_input(v ? v->name_ : std::string());
    for (const Value* v : n->outputs_) p->add_output(v ? v->name_ : std::string());
    for (auto& a : n->attrs_) p->add_attribute()->Swap(&a);
    g.mutable_node()->AddAllocated(p);
  }
  for (Value* v : initializers_) g.mutable_initializer()->AddAllocated(&v->initializer_->proto());
  auto info_of = [&](Value* v) {
    if (v->info_) return v->info_.get();
    lent_infos_.push_back(std::make_unique<onnx::ValueInfoProto>());
    lent_infos_.back()->set_name(v->name_);
    return lent_infos_.back().get();
  };
  for (Value* v : inputs_) g.mutable_input()->AddAllocated(info_of(v));
  for (Value* v : outputs_)
    g.mutable_output()->AddAllocated(v->output_info_ ? v->output_info_.get() : info_of(v));
  for (onnx::ValueInfoProto* vi : value_info_to_save()) g.mutable_value_info()->AddAllocated(vi);
}

// The loaded value_info entries still meaningful, in their order, then entries gained since (node
// order). An entry is dropped when its value was removed or no longer takes part in the graph.
std::vector<onnx::ValueInfoProto*> Graph::value_info_to_save() const {
  auto wanted = [](const Value* v) {
    bool live = v->producer_ || !v->consumers_.empty() || v->initializer_;
    return v->in_value_info_ && v->info_ && live && !v->is_graph_input_ && !v->is_graph_output_;
  };
  std::vector<std::pair<size_t, onnx::ValueInfoProto*>> loaded;
  for (const auto& [i, vi] : extra_value_info_) loaded.emplace_back(i, vi.get());
  for (const auto& [name, v] : values_)
    if (v->value_info_index_ != SIZE_MAX && wanted(v.get()))
      loaded.emplace_back(v->value_info_index_, v->info_.get());
  std::sort(loaded.begin(), loaded.end());
  std::vector<onnx::ValueInfoProto*> out;
  for (const auto& e : loaded) out.push_back(e.second);
  auto add_new = [&](const Value* v) {
    if (v && v->value_info_index_ == SIZE_MAX && wanted(v)) out.push_back(v->info_.get());
  };
  for (const auto& n : nodes_)
    for (const Value* v : n->outputs_) add_new(v);
  for (const Value* v : initializers_)
    if (!v->producer_) add_new(v);
  return out;
}

void Graph::take_back(onnx::GraphProto& g) {
  auto lent = static_cast<size_t>(g.node_size());
  auto it = nodes_.begin();
  for (size_t k = 0; k < lent; ++k, ++it) {
    Node* n = it->get();
    onnx::NodeProto* p = n->proto_.get();
    for (size_t a = 0; a < n->attrs_.size() && a < static_cast<size_t>(p->attribute_size()); ++a)
      n->attrs_[a].Swap(p->mutable_attribute(static_cast<int>(a)));
    p->clear_attribute();
    p->clear_input();
    p->clear_output();
  }
  unlend_all(g.mutable_node());
  unlend_all(g.mutable_initializer());
  unlend_all(g.mutable_input());
  unlend_all(g.mutable_output());
  unlend_all(g.mutable_value_info());
  lent_infos_.clear();
}

}  // namespace tfh::ir
