// tfhost SDK, C++ layer: patterns over ONNX graphs, in the spirit of TVM's dataflow patterns,
// with ONNX Runtime's fusion safety rules built in.
//
// Example, the Gelu erf fusion:
//   // Div(x, 1.4142) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)  =>  com.microsoft.Gelu(x)
//   auto x = tfh::Any("x");
//   auto erf = tfh::Op("Erf", {tfh::Op("Div", {x, tfh::Const(1.4142).tol(1e-3)})});
//   auto cdf = tfh::Op("Add", {erf, tfh::Const(1.0)}).commutative();
//   auto gelu = tfh::Op("Mul", {tfh::Op("Mul", {x, cdf}).commutative(), tfh::Const(0.5)})
//                   .commutative();
//   n_fused = tfh::rewrite(g, gelu, tfh::ReplaceWith("com.microsoft", "Gelu", {"x"}));
//
// A pattern is a value describing how a value (or, at the root, a node) is computed:
//   Op("Mul", {a, b})  a node of that op type whose inputs match a, b (exactly that many inputs,
//                      trailing omitted ones ignored); Op("Mul") leaves the inputs unconstrained
//   Any("x")           any value, captured as "x"; Any() captures nothing
//   Const(0.5)         a constant (initializer or Constant node, any numeric type) whose elements
//                      all equal 0.5 within .tol(t) (absolute, default 1e-6); Const() any constant
//   OneOf(p1, p2, ..)  the first alternative that matches (exporter or opset variants)
// Modifiers return a new pattern: .commutative() (binary ops, both operand orders), .opset({7,13})
// (allowed since-versions, as ORT's IsSupportedOptypeVersionAndDomain), .domain("com.microsoft"),
// .output(i) (the value is output i of its producer; default 0), .where(check), .as("name")
// (capture a node and its value), .may_escape(), .tol(t).
//
// Captures: a name used twice must bind the same value, and one pattern object used twice must
// match the same value (shared subexpressions). Read them back as m["x"] (the value) and
// m.node("div") (the node of an Op capture).
//
// Safety: every matched node except the root must have all its outputs consumed only by matched
// nodes and none may be a graph output (ORT's is_safe_to_fuse), unless marked .may_escape().
// Build patterns inside the fusion (or in a function-local static), never as namespace-scope
// globals: a plugin runs no code from static initialisers.
#pragma once

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tfhost/graph.hpp"

namespace tfh {

class Match;
class Pattern;

namespace pattern_detail {

enum class Kind { Any, Const, Op, OneOf };

// A check runs once its pattern (and everything below it) has matched; node is null for values
// not matched as an Op.
using Check = std::function<bool(const Match&, NodeView, ValueView)>;

struct Impl {
  Kind kind = Kind::Any;
  std::string name;                                // capture name, "" = none
  std::string op_type, domain;                     // Op
  bool has_inputs = false;                         // Op: inputs listed
  std::vector<std::shared_ptr<const Impl>> items;  // Op: operands; OneOf: alternatives
  bool commutative = false;
  std::vector<int64_t> opsets;  // allowed since-versions; empty = any
  size_t output = 0;
  bool may_escape = false;
  std::optional<double> value;  // Const: required element value
  double tol = 1e-6;
  std::vector<Check> checks;
};

class Matcher;

}  // namespace pattern_detail

// The result of a successful match: the matched nodes and the named captures.
class Match {
 public:
  GraphView graph() const { return g_; }
  NodeView root() const { return root_; }
  // Every matched node: producers before consumers, the root last (Const producers excluded).
  const std::vector<NodeView>& nodes() const { return nodes_; }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // The value captured as `name`; throws sdk::Error if there is none.
  ValueView operator[](std::string_view name) const { return get(name).value; }
  // The node captured as `name` (an Op pattern with .as(name)); throws if none.
  NodeView node(std::string_view name) const {
    const Capture& c = get(name);
    if (!c.node) sdk::fail("pattern capture '" + std::string(name) + "' is not an Op");
    return c.node;
  }
  // The constant data of the value captured as `name` (null view if it is not constant).
  TensorView constant(std::string_view name) const { return (*this)[name].constant(); }

 private:
  friend class pattern_detail::Matcher;
  friend class Pattern;
  friend class Rewriter;
  struct Capture {
    std::string name;
    ValueView value;
    NodeView node;
  };
  const Capture* find(std::string_view name) const {
    for (const Capture& c : captures_)
      if (c.name == name) return &c;
    return nullptr;
  }
  const Capture& get(std::string_view name) const {
    const Capture* c = find(name);
    if (!c) sdk::fail("pattern has no capture named '" + std::string(name) + "'");
    return *c;
  }
  bool is_matched(NodeView n) const {
    return std::find(nodes_.begin(), nodes_.end(), n) != nodes_.end();
  }

  GraphView g_;
  NodeView root_;
  std::vector<Capture> captures_;
  std::vector<std::pair<const pattern_detail::Impl*, ValueView>> bound_;  // pattern identity
  std::vector<NodeView> nodes_;
  std::vector<bool> may_escape_;   // parallel to nodes_
  std::vector<ValueView> consts_;  // values matched by Const patterns
};

// A pattern value. Cheap to copy; modifiers return a new pattern sharing the operands.
class Pattern {
 public:
  Pattern commutative() const {
    require(pattern_detail::Kind::Op, "commutative");
    return with([](auto& p) { p.commutative = true; });
  }
  Pattern opset(std::initializer_list<int64_t> since_versions) const {
    require(pattern_detail::Kind::Op, "opset");
    return with([&](auto& p) { p.opsets.assign(since_versions.begin(), since_versions.end()); });
  }
  Pattern domain(std::string d) const {
    require(pattern_detail::Kind::Op, "domain");
    return with([&](auto& p) { p.domain = d == "ai.onnx" ? std::string() : d; });
  }
  Pattern output(size_t i) const {
    require(pattern_detail::Kind::Op, "output");
    return with([&](auto& p) { p.output = i; });
  }
  Pattern may_escape() const {
    require(pattern_detail::Kind::Op, "may_escape");
    return with([](auto& p) { p.may_escape = true; });
  }
  Pattern tol(double t) const {
    require(pattern_detail::Kind::Const, "tol");
    return with([&](auto& p) { p.tol = t; });
  }
  Pattern as(std::string name) const {
    return with([&](auto& p) { p.name = name; });
  }
  // Adds a check: F takes (const Match&) for checks over captures, or (NodeView) for the node
  // an Op matched, or (ValueView) for the matched value, or (TensorView) for a Const's data.
  template <typename F>
  Pattern where(F f) const {
    using pattern_detail::Check;
    Check c;
    if constexpr (std::is_invocable_r_v<bool, F, const Match&>)
      c = [f](const Match& m, NodeView, ValueView) { return f(m); };
    else if constexpr (std::is_invocable_r_v<bool, F, NodeView>)
      c = [f](const Match&, NodeView n, ValueView) { return n && f(n); };
    else if constexpr (std::is_invocable_r_v<bool, F, ValueView>)
      c = [f](const Match&, NodeView, ValueView v) { return f(v); };
    else if constexpr (std::is_invocable_r_v<bool, F, TensorView>)
      c = [f](const Match&, NodeView, ValueView v) { return v.constant() && f(v.constant()); };
    else
      static_assert(std::is_invocable_r_v<bool, F, const Match&>,
                    "where(): the check must take const Match&, NodeView, ValueView or TensorView");
    return with([&](auto& p) { p.checks.push_back(std::move(c)); });
  }

  // Matches with the root (an Op or OneOf of Ops) at `root`; nullopt when it does not match.
  inline std::optional<Match> match(GraphView g, NodeView root) const;
  // The op types the root can have (empty: any), to skip nodes cheaply.
  std::vector<std::string> root_op_types() const {
    std::vector<std::string> ops;
    collect_roots(*impl_, ops);
    return ops;
  }
  const pattern_detail::Impl& impl() const { return *impl_; }

 private:
  friend Pattern Op(std::string, std::vector<Pattern>);
  friend Pattern Op(std::string);
  friend Pattern Any(std::string);
  friend Pattern Const();
  friend Pattern Const(double);
  template <typename... P>
  friend Pattern OneOf(P... alternatives);

  explicit Pattern(std::shared_ptr<const pattern_detail::Impl> impl) : impl_(std::move(impl)) {}
  template <typename F>
  Pattern with(F modify) const {
    auto copy = std::make_shared<pattern_detail::Impl>(*impl_);
    modify(*copy);
    return Pattern(std::move(copy));
  }
  void require(pattern_detail::Kind k, const char* what) const {
    if (impl_->kind != k)
      sdk::fail(std::string("pattern modifier .") + what +
                "() does not apply to this pattern kind");
  }
  static void collect_roots(const pattern_detail::Impl& p, std::vector<std::string>& ops) {
    if (p.kind == pattern_detail::Kind::Op) ops.push_back(p.op_type);
    if (p.kind == pattern_detail::Kind::OneOf)
      for (const auto& alt : p.items) collect_roots(*alt, ops);
  }
  static std::shared_ptr<pattern_detail::Impl> make(pattern_detail::Kind k) {
    auto p = std::make_shared<pattern_detail::Impl>();
    p->kind = k;
    return p;
  }

  std::shared_ptr<const pattern_detail::Impl> impl_;
};

// A node of `op_type` (ONNX domain unless .domain()) whose inputs match `inputs`.
inline Pattern Op(std::string op_type, std::vector<Pattern> inputs) {
  auto p = Pattern::make(pattern_detail::Kind::Op);
  p->op_type = std::move(op_type);
  p->has_inputs = true;
  for (Pattern& in : inputs) p->items.push_back(std::move(in.impl_));
  return Pattern(std::move(p));
}
// A node of `op_type` with any inputs.
inline Pattern Op(std::string op_type) {
  auto p = Pattern::make(pattern_detail::Kind::Op);
  p->op_type = std::move(op_type);
  return Pattern(std::move(p));
}
// Any value; captured as `name` unless it is "".
inline Pattern Any(std::string name = "") {
  auto p = Pattern::make(pattern_detail::Kind::Any);
  p->name = std::move(name);
  return Pattern(std::move(p));
}
// Any constant value.
inline Pattern Const() { return Pattern(Pattern::make(pattern_detail::Kind::Const)); }
// A constant whose elements all equal `v` (within .tol()).
inline Pattern Const(double v) {
  auto p = Pattern::make(pattern_detail::Kind::Const);
  p->value = v;
  return Pattern(std::move(p));
}
// The first of the alternatives that matches.
template <typename... P>
Pattern OneOf(P... alternatives) {
  static_assert(sizeof...(P) >= 1 && (std::is_same_v<P, Pattern> && ...),
                "OneOf takes one or more Patterns");
  auto p = Pattern::make(pattern_detail::Kind::OneOf);
  (p->items.push_back(alternatives.impl_), ...);
  return Pattern(std::move(p));
}

namespace pattern_detail {

// A non-owning reference to a callable (the continuation of the backtracking matcher).
class Next {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Next>>>
  Next(F&& f)
      : obj_(static_cast<void*>(std::addressof(f))),  // NOLINT: implicit on purpose
        call_([](void* o) { return (*static_cast<std::remove_reference_t<F>*>(o))(); }) {}
  bool operator()() const { return call_(obj_); }

 private:
  void* obj_;
  bool (*call_)(void*);
};

// Backtracking matcher in continuation-passing style: each step calls `k` for the rest of the
// match and undoes its own bindings when `k` fails, so alternatives (OneOf, operand orders) are
// retried with every later constraint in view.
class Matcher {
 public:
  Matcher(GraphView g, Match& m) : g_(g), m_(m) {}

  bool match_root(const Impl& p, NodeView n) {
    m_.root_ = n;
    return root(p, n, [&] { return safe(); });
  }

 private:
  struct Mark {
    size_t captures, bound, nodes, consts;
  };
  Mark mark() const {
    return {m_.captures_.size(), m_.bound_.size(), m_.nodes_.size(), m_.consts_.size()};
  }
  void undo(const Mark& k) {
    m_.captures_.resize(k.captures);
    m_.bound_.resize(k.bound);
    m_.nodes_.resize(k.nodes);
    m_.may_escape_.resize(k.nodes);
    m_.consts_.resize(k.consts);
  }

  bool root(const Impl& p, NodeView n, Next k) {
    if (p.kind == Kind::Op) return node(p, n, n.output(p.output), k);
    if (p.kind == Kind::OneOf) {
      for (const auto& alt : p.items)
        if (root(*alt, n, [&] { return bind(p, n.output(0), NodeView(), k); })) return true;
      return false;
    }
    sdk::fail("the root of a pattern must be an Op or a OneOf of Ops");
  }

  bool value(const Impl& p, ValueView v, Next k) {
    if (!v) return false;  // an omitted optional input matches nothing
    for (const auto& b : m_.bound_)
      if (b.first == &p) return b.second == v && k();
    switch (p.kind) {
      case Kind::Any:
        return bind(p, v, NodeView(), k);
      case Kind::Const:
        return constant_ok(p, v) && bind(p, v, NodeView(), k);
      case Kind::Op: {
        size_t idx = 0;
        NodeView n = v.producer(&idx);
        return n && idx == p.output && node(p, n, v, k);
      }
      case Kind::OneOf:
        for (const auto& alt : p.items)
          if (value(*alt, v, [&] { return bind(p, v, NodeView(), k); })) return true;
        return false;
    }
    return false;
  }

  bool node(const Impl& p, NodeView n, ValueView out, Next k) {
    if (n.op_type() != p.op_type || !same_domain(n.domain(), p.domain) || !opset_ok(p, n))
      return false;
    auto done = [&] { return bind(p, out, n, k); };
    if (!p.has_inputs) return done();
    std::vector<ValueView> ins = n.inputs();
    while (!ins.empty() && !ins.back()) ins.pop_back();
    if (ins.size() != p.items.size()) return false;
    static const size_t kSwapped[2] = {1, 0};
    if (operands(p, ins, nullptr, 0, done)) return true;
    return p.commutative && ins.size() == 2 && operands(p, ins, kSwapped, 0, done);
  }

  // Matches input slot i (and the rest) against operand order[i] (identity when order is null).
  bool operands(const Impl& p, const std::vector<ValueView>& ins, const size_t* order, size_t i,
                Next k) {
    if (i == ins.size()) return k();
    const Impl& operand = *p.items[order ? order[i] : i];
    return value(operand, ins[i], [&] { return operands(p, ins, order, i + 1, k); });
  }

  // Records p's captures for value v (and node n), runs p's checks, then the continuation.
  bool bind(const Impl& p, ValueView v, NodeView n, Next k) {
    Mark before = mark();
    if (!p.name.empty()) {
      if (const Match::Capture* c = m_.find(p.name)) {
        if (c->value != v || (n && c->node && c->node != n)) return false;
      } else {
        m_.captures_.push_back({p.name, v, n});
      }
    }
    m_.bound_.emplace_back(&p, v);
    if (n && !m_.is_matched(n)) {
      m_.nodes_.push_back(n);
      m_.may_escape_.push_back(p.may_escape);
    }
    if (p.kind == Kind::Const) m_.consts_.push_back(v);
    for (const Check& c : p.checks)
      if (!c(m_, n, v)) {
        undo(before);
        return false;
      }
    if (k()) return true;
    undo(before);
    return false;
  }

  bool constant_ok(const Impl& p, ValueView v) const {
    TensorView t = v.constant();
    if (!t) return false;
    if (!p.value) return true;
    size_t n = t.size();
    if (n == 0) return false;
    for (size_t i = 0; i < n; ++i) {
      std::optional<double> x = t.at(i);
      if (!x || !(*x - *p.value <= p.tol && *p.value - *x <= p.tol)) return false;
    }
    return true;
  }

  bool opset_ok(const Impl& p, NodeView n) const {
    if (p.opsets.empty()) return true;
    int64_t since = g_.since_version(n);
    if (since >= 0) return std::find(p.opsets.begin(), p.opsets.end(), since) != p.opsets.end();
    // No schema known to the host (e.g. a contrib op): the imported opset must reach the
    // smallest listed version.
    int64_t imported = g_.opset(p.domain);
    return imported >= 0 && imported >= *std::min_element(p.opsets.begin(), p.opsets.end());
  }

  // No intermediate escapes: outputs of non-root nodes feed only matched nodes.
  bool safe() const {
    for (size_t i = 0; i < m_.nodes_.size(); ++i) {
      NodeView n = m_.nodes_[i];
      if (n == m_.root_ || m_.may_escape_[i]) continue;
      for (ValueView out : n.outputs()) {
        if (!out) continue;
        if (out.is_graph_output()) return false;
        for (const Use& u : out.consumers())
          if (!m_.is_matched(u.node)) return false;
      }
    }
    return true;
  }

  GraphView g_;
  Match& m_;
};

}  // namespace pattern_detail

inline std::optional<Match> Pattern::match(GraphView g, NodeView root) const {
  if (!root) return std::nullopt;
  Match m;
  m.g_ = g;
  pattern_detail::Matcher matcher(g, m);
  if (!matcher.match_root(*impl_, root)) return std::nullopt;
  return m;
}

}  // namespace tfh
