// tfhost SDK, C++ layer: collect-then-commit rewriting.
//
// A Rewriter matches its rules at every node (graph order), keeps the matches that overlap no
// earlier match and that their action accepts, and only then edits the graph: per match, the
// matched nodes are removed and the action's new nodes added; afterwards constants that only the
// removed nodes used are dropped, the com.microsoft (or any new) domain is imported at version 1,
// and the graph is sorted topologically.
//
//   size_t n = tfh::rewrite(g, gelu, tfh::ReplaceWith("com.microsoft", "Gelu", {"x"}));
//
//   tfh::Rewriter rw(g);                       // several rules, tried in order at each node
//   rw.add(torch_form, tfh::ReplaceWith("com.microsoft", "FastGelu", {"x"}));
//   rw.add(tf_form, [](const tfh::Match& m, tfh::Edit& e) {
//     e.add_node("com.microsoft", "BiasGelu", {m["x"], m["bias"]}, {e.root_output(0)});
//     return true;                              // false declines this match
//   });
//   size_t n = rw.run();
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tfhost/graph.hpp"
#include "tfhost/pattern.hpp"

namespace tfh {

// An input of a new node: an existing value, a value by name (made earlier in the same edit, or
// any value of the graph at commit time), or omitted (default-constructed).
class ValueRef {
 public:
  ValueRef() = default;
  ValueRef(ValueView v) : v_(v), omitted_(!v) {}  // NOLINT: implicit on purpose
  ValueRef(std::string name) : name_(std::move(name)), omitted_(false) {}  // NOLINT
  ValueRef(const char* name) : ValueRef(std::string(name)) {}              // NOLINT
  bool omitted() const { return omitted_; }
  ValueView view() const { return v_; }
  const std::string& name() const { return name_; }

 private:
  ValueView v_;
  std::string name_;
  bool omitted_ = true;
};

// An attribute of a new node. Lists: Attr::ints / Attr::floats (a braced list of numbers would
// be ambiguous between the two).
class Attr {
 public:
  Attr(std::string name, int64_t v) : name_(std::move(name)), kind_(kInt), i_(v) {}
  Attr(std::string name, int v) : Attr(std::move(name), int64_t{v}) {}
  Attr(std::string name, float v) : name_(std::move(name)), kind_(kFloat), f_(v) {}
  Attr(std::string name, double v) : Attr(std::move(name), static_cast<float>(v)) {}
  Attr(std::string name, std::string v)
      : name_(std::move(name)), kind_(kString), s_(std::move(v)) {}
  Attr(std::string name, const char* v) : Attr(std::move(name), std::string(v)) {}
  Attr(std::string name, std::vector<int64_t> v)
      : name_(std::move(name)), kind_(kInts), ints_(std::move(v)) {}
  Attr(std::string name, std::vector<float> v)
      : name_(std::move(name)), kind_(kFloats), floats_(std::move(v)) {}
  static Attr ints(std::string name, std::vector<int64_t> v) {
    return Attr(std::move(name), std::move(v));
  }
  static Attr floats(std::string name, std::vector<float> v) {
    return Attr(std::move(name), std::move(v));
  }

  const std::string& name() const { return name_; }
  void apply(NodeView n) const {
    switch (kind_) {
      case kInt:
        n.set_attr(name_, i_);
        break;
      case kFloat:
        n.set_attr(name_, f_);
        break;
      case kString:
        n.set_attr(name_, std::string_view(s_));
        break;
      case kInts:
        n.set_attr(name_, ints_);
        break;
      case kFloats:
        n.set_attr(name_, floats_);
        break;
    }
  }

 private:
  enum Kind { kInt, kFloat, kString, kInts, kFloats };
  std::string name_;
  Kind kind_;
  int64_t i_ = 0;
  float f_ = 0;
  std::string s_;
  std::vector<int64_t> ints_;
  std::vector<float> floats_;
};

// What one match becomes. Starts as "remove every matched node"; the action adds nodes,
// initializers, and may keep matched nodes. Nothing touches the graph until commit.
class Edit {
 public:
  struct NewNode {
    std::string domain, op_type, name;  // name "" = generated
    std::vector<ValueRef> inputs;
    std::vector<std::string> outputs;  // "" = omitted optional output
    std::vector<Attr> attrs;
  };

  Edit(GraphView g, const Match& m) : g_(g), m_(m) {}
  const Match& match() const { return m_; }

  // Adds a node. Its outputs are new names (new_name) or names of values the removed nodes
  // produced (typically the root's, so consumers and graph outputs keep their names).
  NewNode& add_node(std::string domain, std::string op_type, std::vector<ValueRef> inputs,
                    std::vector<std::string> outputs, std::vector<Attr> attrs = {}) {
    nodes_.push_back(NewNode{std::move(domain), std::move(op_type), "", std::move(inputs),
                             std::move(outputs), std::move(attrs)});
    return nodes_.back();
  }
  // Adds an initializer at commit; returns its name, usable as a ValueRef.
  std::string add_initializer(const std::string& prefix, Tensor t) {
    std::string name = new_name(prefix);
    initializers_.emplace_back(name, std::move(t));
    return name;
  }
  // A value name not used in the graph (for intermediate outputs of added nodes).
  std::string new_name(const std::string& prefix) const { return g_.unique_name(prefix); }
  // The name of the root's output i ("" when omitted): the usual outputs of a replacement.
  std::string root_output(size_t i = 0) const {
    ValueView v = m_.root().output(i);
    return v ? std::string(v.name()) : std::string();
  }
  // Leaves a matched node in the graph (with whatever it needs from the match).
  void keep(NodeView n) { keep_.push_back(n); }

 private:
  friend class Rewriter;
  GraphView g_;
  const Match& m_;
  std::vector<NewNode> nodes_;
  std::vector<std::pair<std::string, Tensor>> initializers_;
  std::vector<NodeView> keep_;
};

// Builds the edit for a match; returns false to decline it (its nodes stay free for later ones).
using Action = std::function<bool(const Match&, Edit&)>;

// Replaces the match with one node domain.op_type. `inputs` are capture names ("" = omitted);
// `outputs` are capture names whose values the new node produces (default: the root's outputs,
// so graph outputs keep their names); `attrs` are set on the new node.
inline Action ReplaceWith(std::string domain, std::string op_type, std::vector<std::string> inputs,
                          std::vector<std::string> outputs = {}, std::vector<Attr> attrs = {}) {
  return [=](const Match& m, Edit& e) {
    std::vector<ValueRef> ins;
    for (const std::string& name : inputs)
      ins.push_back(name.empty() ? ValueRef() : ValueRef(m[name]));
    std::vector<std::string> outs;
    if (outputs.empty()) {
      for (size_t i = 0; i < m.root().num_outputs(); ++i) outs.push_back(e.root_output(i));
    } else {
      for (const std::string& name : outputs) outs.emplace_back(m[name].name());
    }
    e.add_node(domain, op_type, std::move(ins), std::move(outs), attrs);
    return true;
  };
}

class Rewriter {
 public:
  explicit Rewriter(GraphView g) : g_(g) {}

  // Adds a rule; at each node the rules are tried in the order added, the first accepted wins.
  Rewriter& add(Pattern pattern, Action action) {
    std::vector<std::string> anchors = pattern.root_op_types();
    rules_.push_back(Rule{std::move(pattern), std::move(action), std::move(anchors)});
    return *this;
  }

  // Collects every non-overlapping accepted match, then commits them all. Returns how many.
  size_t run() {
    std::vector<Pending> pending = collect();
    std::vector<ValueView> consts;
    for (Pending& p : pending) {
      commit(p);
      consts.insert(consts.end(), p.match.consts_.begin(), p.match.consts_.end());
    }
    drop_dead_constants(consts);
    if (!pending.empty()) g_.topological_sort();
    return pending.size();
  }

 private:
  struct Rule {
    Pattern pattern;
    Action action;
    std::vector<std::string> anchors;
  };
  struct Pending {
    Match match;
    std::vector<NodeView> remove;
    std::vector<Edit::NewNode> nodes;
    std::vector<std::pair<std::string, Tensor>> initializers;
  };

  std::unordered_set<TfhNode*> removed_;  // by this run's commits so far

  std::vector<Pending> collect() {
    std::vector<Pending> pending;
    std::unordered_set<TfhNode*> claimed, read_by_earlier;
    for (NodeView n : g_.nodes()) {
      if (claimed.count(n.handle())) continue;
      for (const Rule& rule : rules_) {
        if (!rule.anchors.empty() &&
            std::find(rule.anchors.begin(), rule.anchors.end(), n.op_type()) == rule.anchors.end())
          continue;
        std::optional<Match> m = rule.pattern.match(g_, n);
        if (!m) continue;
        bool overlaps = false;
        for (NodeView mn : m->nodes()) overlaps = overlaps || claimed.count(mn.handle());
        if (overlaps) continue;
        Edit e(g_, *m);
        if (!rule.action(*m, e)) continue;
        Pending p{*m, removal_set(*m, e.keep_, e.nodes_), std::move(e.nodes_),
                  std::move(e.initializers_)};
        // An outside node this edit removes (a doomed Shape chain) may be neither matched by an
        // earlier edit nor read by an earlier edit's new nodes (two edits may both doom one).
        bool taken = false;
        for (NodeView rn : p.remove)
          taken = taken || (!m->is_matched(rn) && (claimed.count(rn.handle()) ||
                                                   read_by_earlier.count(rn.handle())));
        if (taken) continue;
        validate(p);
        for (NodeView mn : m->nodes()) claimed.insert(mn.handle());
        for (const Edit::NewNode& nn : p.nodes)
          for (const ValueRef& in : nn.inputs) {
            if (in.omitted()) continue;
            const ValueView v = in.view() ? in.view() : g_.find(in.name());
            if (v && v.producer()) read_by_earlier.insert(v.producer().handle());
          }
        pending.push_back(std::move(p));
        break;
      }
    }
    return pending;
  }

  // What the edit removes: the matched nodes minus those kept, plus the outside nodes that only
  // fed removed ones (the Shape/Gather/Concat chains that compute a matched Reshape's target from
  // a matched value: "doomed", they would be dead anyway and must not dangle). Kept: may_escape
  // nodes whose outputs are used outside (by a node that is neither removed nor doomed) unless the
  // new nodes produce those values themselves (they take them over, as SkipLayerNormalization's
  // sum output does), nodes the action keeps, and every matched producer a kept node still reads.
  std::vector<NodeView> removal_set(const Match& m, std::vector<NodeView> keep,
                                    const std::vector<Edit::NewNode>& added) const {
    std::unordered_set<std::string> taken_over;
    for (const Edit::NewNode& nn : added)
      for (const std::string& o : nn.outputs)
        if (!o.empty()) taken_over.insert(o);
    // What the new nodes read must keep its producer: never doomed.
    std::unordered_set<TfhNode*> read;
    for (const Edit::NewNode& nn : added)
      for (const ValueRef& in : nn.inputs) {
        if (in.omitted()) continue;
        const ValueView v = in.view() ? in.view() : g_.find(in.name());
        const NodeView p = v ? v.producer() : NodeView();
        if (p) read.insert(p.handle());
      }
    const std::vector<NodeView>& nodes = m.nodes();
    const std::vector<NodeView> action_keeps = keep;
    std::unordered_set<TfhNode*> removed, doomed;
    for (size_t round = 0;; ++round) {
      removed.clear();
      for (NodeView n : nodes)
        if (std::find(keep.begin(), keep.end(), n) == keep.end()) removed.insert(n.handle());
      doomed = doomed_consumers(m, removed, read);
      std::vector<NodeView> next = action_keeps;
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (!m.may_escape_[i] || nodes[i] == m.root()) continue;
        for (ValueView out : nodes[i].outputs()) {
          if (!out || taken_over.count(std::string(out.name()))) continue;
          bool outside = out.is_graph_output();
          for (const Use& u : out.consumers())
            outside = outside || (!removed.count(u.node.handle()) && !doomed.count(u.node.handle()));
          if (outside && std::find(next.begin(), next.end(), nodes[i]) == next.end())
            next.push_back(nodes[i]);
        }
      }
      for (size_t i = 0; i < next.size(); ++i)  // grows while we walk it
        for (ValueView in : next[i].inputs()) {
          NodeView p = in ? in.producer() : NodeView();
          if (p && m.is_matched(p) && std::find(next.begin(), next.end(), p) == next.end())
            next.push_back(p);
        }
      // keep only grows (so removed and doomed only shrink): this settles
      if (next.size() == keep.size() || round > nodes.size()) break;
      keep = std::move(next);
    }
    std::vector<NodeView> remove;
    for (NodeView n : nodes)
      if (removed.count(n.handle())) remove.push_back(n);
    for (TfhNode* d : doomed) remove.push_back(NodeView(d));
    return remove;
  }

  // Outside nodes all of whose outputs feed only `removed` or other doomed nodes (and no graph
  // output), found from the matched nodes' outputs forward.
  static std::unordered_set<TfhNode*> doomed_consumers(const Match& m,
                                                       const std::unordered_set<TfhNode*>& removed,
                                                       const std::unordered_set<TfhNode*>& read) {
    std::unordered_set<TfhNode*> doomed, alive = read;
    std::function<bool(NodeView, int)> dies = [&](NodeView n, int depth) -> bool {
      if (removed.count(n.handle()) || doomed.count(n.handle())) return true;
      if (alive.count(n.handle()) || m.is_matched(n) || depth > 16) return false;
      for (ValueView out : n.outputs()) {
        if (!out) continue;
        if (out.is_graph_output()) {
          alive.insert(n.handle());
          return false;
        }
        for (const Use& u : out.consumers())
          if (!dies(u.node, depth + 1)) {
            alive.insert(n.handle());
            return false;
          }
      }
      doomed.insert(n.handle());
      return true;
    };
    for (NodeView mn : m.nodes()) {
      if (!removed.count(mn.handle())) continue;
      for (ValueView out : mn.outputs())
        if (out)
          for (const Use& u : out.consumers())
            if (!m.is_matched(u.node)) dies(u.node, 0);
    }
    return doomed;
  }

  // Rejects an edit that would leave a dangling input or define a name twice, before any commit:
  // each new node reads only values that exist or that an earlier new node (or initializer) of
  // the edit makes, and every removed value still read outside the edit is made again.
  void validate(const Pending& p) const {
    auto removed = [&](NodeView n) {
      return std::find(p.remove.begin(), p.remove.end(), n) != p.remove.end();
    };
    auto fail = [&](TfhErrorCode code, const std::string& what) {
      sdk::fail(code, "rewrite at node '" + std::string(p.match.root().name()) + "': " + what);
    };
    std::unordered_set<std::string> made;
    for (const auto& init : p.initializers) made.insert(init.first);
    for (const Edit::NewNode& nn : p.nodes) {
      for (const ValueRef& in : nn.inputs) {
        if (in.omitted()) continue;
        ValueView v = in.view() ? in.view() : g_.find(in.name());
        std::string name = in.view() ? std::string(v.name()) : in.name();
        if (made.count(name)) continue;
        if (!v) fail(TFH_NOT_FOUND, "input '" + name + "' of the new " + nn.op_type +
                                        " does not exist (or is made only by a later new node)");
        NodeView prod = v.producer();
        if (prod && removed(prod))
          fail(TFH_INVALID_GRAPH, "input '" + name + "' of the new " + nn.op_type +
                                      " is produced by a node the rewrite removes");
      }
      for (const std::string& o : nn.outputs) {
        if (o.empty()) continue;
        ValueView v = g_.find(o);
        NodeView prod = v ? v.producer() : NodeView();
        bool defined = prod ? !removed(prod) : v && (v.is_graph_input() || v.constant());
        if (defined || made.count(o))
          fail(TFH_INVALID_GRAPH, "output '" + o + "' of the new " + nn.op_type +
                                      " is already defined (outside the replaced nodes or "
                                      "earlier in this edit)");
        made.insert(o);
      }
    }
    for (NodeView n : p.remove)
      for (ValueView out : n.outputs()) {
        if (!out || made.count(std::string(out.name()))) continue;
        bool read_outside = out.is_graph_output();
        for (const Use& u : out.consumers()) read_outside = read_outside || !removed(u.node);
        if (read_outside)
          fail(TFH_INVALID_GRAPH, "'" + std::string(out.name()) + "' (of " +
                                      std::string(n.op_type()) +
                                      " that the rewrite removes) is still read, and no new node "
                                      "makes it");
      }
  }

  void commit(Pending& p) {
    for (NodeView n : p.remove)
      if (removed_.insert(n.handle()).second) g_.remove_node(n);
    for (auto& init : p.initializers) g_.add_initializer(init.first, std::move(init.second));
    for (const Edit::NewNode& nn : p.nodes) {
      std::vector<ValueView> ins;
      for (const ValueRef& in : nn.inputs)
        ins.push_back(in.omitted() ? ValueView() : in.view() ? in.view() : g_.find(in.name()));
      NodeView node = g_.add_node(nn.op_type, nn.domain, ins, nn.outputs, nn.name);
      for (const Attr& a : nn.attrs) a.apply(node);
      if (!same_domain(nn.domain, "") && g_.opset(nn.domain) < 0) g_.set_opset(nn.domain, 1);
    }
  }

  // Constants matched by Const patterns that nothing reads any more: their Constant node or
  // initializer goes (graph inputs and outputs are never touched).
  void drop_dead_constants(const std::vector<ValueView>& consts) {
    std::unordered_set<TfhValue*> seen;
    for (ValueView v : consts) {
      if (!seen.insert(v.handle()).second) continue;
      if (v.num_consumers() != 0 || v.is_graph_output() || v.is_graph_input()) continue;
      NodeView p = v.producer();
      if (p) {
        bool unused = p.is("Constant");
        for (ValueView o : p.outputs())
          unused = unused && (!o || (o.num_consumers() == 0 && !o.is_graph_output()));
        if (unused) g_.remove_node(p);
      } else if (v.constant()) {
        g_.remove_initializer(v);
      }
    }
  }

  GraphView g_;
  std::vector<Rule> rules_;
};

// Runs one rule over the graph; returns the number of matches committed.
inline size_t rewrite(GraphView g, const Pattern& pattern, const Action& action) {
  return Rewriter(g).add(pattern, action).run();
}

}  // namespace tfh
