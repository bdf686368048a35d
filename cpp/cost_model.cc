/*!
 * \file cost_model.cc
 * \brief Buffer occupancy F_beta and DRAM traffic F_D of fusion groups, for LBDF and BRR.
 *
 * The one home of the cost equations; docs/cost_model.md states them with a worked example
 * per fusion type. Python (tvm_fusion/cost.py) flattens an OpGraph into int64 arrays once,
 * calls `tvm_fusion.cost.make_evaluator` with them, and then evaluates whole batches of
 * groups per FFI call (zero-copy through DLPack).
 */
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace tvm_fusion {
namespace {

using tvm::ffi::Function;
using tvm::ffi::Map;
using tvm::ffi::String;
using tvm::ffi::TensorView;

// Row classes, as in tvm_fusion/graph.py, plus kGlobalReduce: a GLOBAL op that accumulates
// its input row by row (global pooling, mean, sum, max), set by tvm_fusion/cost.py.
constexpr int64_t kRowLocal = 0;
constexpr int64_t kWindowed = 1;
constexpr int64_t kGlobal = 2;
constexpr int64_t kGlobalReduce = 3;
// Fusion types, as passed by tvm_fusion/cost.py.
constexpr int64_t kLBDF = 0;
constexpr int64_t kBRR = 1;

/*! \brief Check that `t` is a contiguous 1-D (or `ndim`-D) int64 CPU tensor and return its data. */
int64_t* Int64Data(const TensorView& t, const char* arg, int ndim = 1) {
  DLDataType dt = t.dtype();
  if (dt.code != kDLInt || dt.bits != 64 || dt.lanes != 1) {
    TVM_FFI_THROW(TypeError) << "tvm_fusion.cost: argument `" << arg << "` must be an int64 array";
  }
  if (t.ndim() != ndim) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: argument `" << arg << "` must have " << ndim
                              << " dimension(s), got " << t.ndim();
  }
  if (t.device().device_type != kDLCPU) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: argument `" << arg << "` must live on the CPU";
  }
  if (!t.IsContiguous()) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: argument `" << arg << "` must be contiguous";
  }
  return reinterpret_cast<int64_t*>(static_cast<char*>(t.data_ptr()) + t.byte_offset());
}

std::vector<int64_t> Copy(const TensorView& t, const char* arg, int64_t expected_len) {
  const int64_t* p = Int64Data(t, arg);
  if (expected_len >= 0 && t.numel() != expected_len) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: argument `" << arg << "` must have "
                              << expected_len << " entries, got " << t.numel();
  }
  return std::vector<int64_t>(p, p + t.numel());
}

/*! \brief An OpGraph flattened to arrays (see CostModel in tvm_fusion/cost.py). */
struct Graph {
  int64_t num_nodes = 0, num_tensors = 0;
  // per node; node ids are a topological order
  std::vector<int64_t> row_class, k_eff, stride_h, weight_elems, out_channels, output;
  std::vector<int64_t> in_ptr, in_idx;  // CSR of distinct input tensors
  // per tensor
  std::vector<int64_t> rows, row_elems, producer, is_output;
  std::vector<int64_t> cons_ptr, cons_idx;  // CSR of consumer nodes (derived)
  // per input edge i of node v (derived): lag added by v, rows v needs by its row class
  std::vector<double> edge_lag;
  std::vector<int64_t> edge_rows;
  std::vector<int64_t> slice;  // per node (derived): elements of one filter, ceil(w / oc)

  void Validate() const {
    for (int64_t v = 0; v < num_nodes; ++v) {
      if (row_class[v] < kRowLocal || row_class[v] > kGlobalReduce) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: node " << v << " has unknown row class "
                                  << row_class[v];
      }
      if (k_eff[v] < 1 || stride_h[v] < 1 || weight_elems[v] < 0 || out_channels[v] < 1) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: node " << v
                                  << " needs kernel_h_eff >= 1, stride >= 1, weight_elems >= 0"
                                     " and out_channels >= 1";
      }
      if (output[v] < 0 || output[v] >= num_tensors || producer[output[v]] != v) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: node " << v << " output tensor "
                                  << output[v] << " does not name node " << v << " as producer";
      }
      if (in_ptr[v] > in_ptr[v + 1]) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: node input CSR is not monotone at node " << v;
      }
      for (int64_t i = in_ptr[v]; i < in_ptr[v + 1]; ++i) {
        int64_t x = in_idx[i];
        if (x < 0 || x >= num_tensors || producer[x] >= v) {
          TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: node " << v << " reads tensor " << x
                                    << " that is not a graph input or the output of an earlier"
                                       " node (node ids must be a topological order)";
        }
      }
    }
    for (int64_t t = 0; t < num_tensors; ++t) {
      if (producer[t] >= num_nodes || (producer[t] >= 0 && output[producer[t]] != t)) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: tensor " << t << " names producer "
                                  << producer[t] << ", which does not write it";
      }
      if (rows[t] < 1 || row_elems[t] < 0) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: tensor " << t
                                  << " needs rows >= 1 and row_elems >= 0";
      }
    }
  }

  void BuildDerived() {
    edge_lag.assign(in_idx.size(), 0.0);
    edge_rows.assign(in_idx.size(), 1);
    slice.resize(num_nodes);
    for (int64_t v = 0; v < num_nodes; ++v) {
      slice[v] = (weight_elems[v] + out_channels[v] - 1) / out_channels[v];
      for (int64_t i = in_ptr[v]; i < in_ptr[v + 1]; ++i) {
        int64_t x = in_idx[i];
        if (row_class[v] == kWindowed) {
          edge_lag[i] = static_cast<double>(k_eff[v] - 1) / static_cast<double>(rows[x]);
          edge_rows[i] = k_eff[v] + stride_h[v] - 1;
        } else if (row_class[v] == kGlobal) {
          edge_rows[i] = rows[x];
        }
      }
    }
  }

  void BuildConsumers() {
    std::vector<int64_t> count(num_tensors + 1, 0);
    for (int64_t i = 0; i < static_cast<int64_t>(in_idx.size()); ++i) count[in_idx[i] + 1]++;
    for (int64_t t = 0; t < num_tensors; ++t) count[t + 1] += count[t];
    cons_ptr = count;
    cons_idx.assign(in_idx.size(), 0);
    std::vector<int64_t> fill(count.begin(), count.end() - 1);
    for (int64_t v = 0; v < num_nodes; ++v) {
      for (int64_t i = in_ptr[v]; i < in_ptr[v + 1]; ++i) cons_idx[fill[in_idx[i]]++] = v;
    }
  }
};

/*! \brief Whether node `v` merges >= 2 distinct input tensors (a merge holds rows for skew). */
bool IsMerge(const Graph& g, int64_t v) { return g.in_ptr[v + 1] - g.in_ptr[v] >= 2; }

/*! \brief Lag of node `v`'s output from the lags of its inputs (docs/cost_model.md, "Lag"). */
double OutputLag(const Graph& g, int64_t v, const std::vector<double>& lag) {
  double base = 0.0;
  for (int64_t i = g.in_ptr[v]; i < g.in_ptr[v + 1]; ++i) {
    base = std::max(base, lag[g.in_idx[i]] + g.edge_lag[i]);
  }
  bool global = g.row_class[v] == kGlobal || g.row_class[v] == kGlobalReduce;
  return global ? 1.0 + base : base;
}

/*! \brief Rows of its input edge `i` a consumer needs at once (docs/cost_model.md, "Rows held on
 * chip"): its own need by row class, and at a merge (`merge`, the largest input lag `lmax`) enough
 * for the earlier input to wait for the later one. Not capped at the tensor's rows. */
int64_t NeededRows(const Graph& g, int64_t i, bool merge, double lmax,
                   const std::vector<double>& lag) {
  int64_t x = g.in_idx[i];
  int64_t r = g.edge_rows[i];
  if (merge) {
    double skew = (lmax - lag[x]) * static_cast<double>(g.rows[x]) - 1e-9;
    r = std::max(r, 1 + static_cast<int64_t>(std::ceil(skew)));
  }
  return r;
}

/*! \brief The largest lag among node `v`'s inputs if it merges >= 2 tensors, else 0 (unused). */
double MergeLag(const Graph& g, int64_t v, const std::vector<double>& lag) {
  double lmax = 0.0;
  if (IsMerge(g, v)) {
    for (int64_t i = g.in_ptr[v]; i < g.in_ptr[v + 1]; ++i) lmax = std::max(lmax, lag[g.in_idx[i]]);
  }
  return lmax;
}

/*! \brief Per-call scratch; entries are valid for a group when their mark equals its index. */
struct Scratch {
  std::vector<int64_t> node_mark, tensor_mark, need;
  std::vector<double> lag;
  std::vector<int64_t> nodes, tensors;
  explicit Scratch(const Graph& g)
      : node_mark(g.num_nodes, -1), tensor_mark(g.num_tensors, -1), need(g.num_tensors, 0),
        lag(g.num_tensors, 0.0) {}
};

struct Cost {
  int64_t buffer_bytes;
  int64_t dram_bytes;
};

/*! \brief F_beta and F_D of one group (node ids `begin..end`), see docs/cost_model.md. */
Cost EvaluateGroup(const Graph& g, Scratch* s, int64_t gid, const int64_t* begin,
                   const int64_t* end, int64_t buffer, int64_t b, int64_t fusion) {
  if (begin == end) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: group " << gid << " is empty";
  }
  s->nodes.assign(begin, end);
  std::sort(s->nodes.begin(), s->nodes.end());
  for (size_t i = 0; i < s->nodes.size(); ++i) {
    int64_t v = s->nodes[i];
    if (v < 0 || v >= g.num_nodes) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: group " << gid << " names node id " << v
                                << ", but the graph has nodes 0.." << g.num_nodes - 1;
    }
    if (i > 0 && s->nodes[i - 1] == v) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: group " << gid << " lists node " << v
                                << " twice";
    }
    s->node_mark[v] = gid;
  }
  // Pass 1 (topological order): discover T_in and T_int, compute lags.
  s->tensors.clear();
  int64_t weights = 0, max_slice = 0;
  for (int64_t v : s->nodes) {
    for (int64_t i = g.in_ptr[v]; i < g.in_ptr[v + 1]; ++i) {
      int64_t x = g.in_idx[i];
      if (s->tensor_mark[x] != gid) {  // not produced earlier in the group: a group input
        s->tensor_mark[x] = gid;
        s->lag[x] = 0.0;
        s->need[x] = 0;
        s->tensors.push_back(x);
      }
    }
    int64_t y = g.output[v];
    s->tensor_mark[y] = gid;
    s->lag[y] = OutputLag(g, v, s->lag);
    s->need[y] = 0;
    s->tensors.push_back(y);
    weights += g.weight_elems[v];
    max_slice = std::max(max_slice, g.slice[v]);
  }
  // Pass 2: rows each consumer in the group needs of each input.
  for (int64_t v : s->nodes) {
    bool merge = IsMerge(g, v);
    double lmax = MergeLag(g, v, s->lag);
    for (int64_t i = g.in_ptr[v]; i < g.in_ptr[v + 1]; ++i) {
      int64_t x = g.in_idx[i];
      s->need[x] = std::max(s->need[x], NeededRows(g, i, merge, lmax, s->lag));
    }
  }
  // Pass 3: footprint and traffic per tensor.
  int64_t in_elems = 0, out_elems = 0, whole = 0, lines = 0, h_ref = 1;
  for (int64_t t : s->tensors) {
    int64_t p = g.producer[t];
    bool produced = p >= 0 && s->node_mark[p] == gid;
    int64_t numel = g.rows[t] * g.row_elems[t];
    if (!produced) {
      in_elems += numel;
    } else {
      bool out = g.is_output[t] != 0;
      for (int64_t i = g.cons_ptr[t]; !out && i < g.cons_ptr[t + 1]; ++i) {
        out = s->node_mark[g.cons_idx[i]] != gid;
      }
      if (out) {
        out_elems += numel;
        h_ref = std::max(h_ref, g.rows[t]);
      }
    }
    int64_t held = std::min(g.rows[t], std::max<int64_t>(1, s->need[t]));
    if (held == g.rows[t]) {
      whole += held * g.row_elems[t];
    } else {
      lines += held * g.row_elems[t];
    }
  }
  int64_t feat = whole + lines;
  int64_t lbdf_dram = (in_elems + out_elems + weights) * b;
  if (fusion == kLBDF) return Cost{(weights + feat) * b, lbdf_dram};
  // BRR: weights streamed one filter at a time.
  int64_t f_beta = (feat + max_slice) * b;
  if ((weights + feat) * b <= buffer) return Cost{f_beta, lbdf_dram};
  int64_t tiles = h_ref;  // h = 1 when even one filter + the line buffers do not fit
  if (f_beta <= buffer) {
    if (lines == 0) {
      tiles = 1;
    } else {
      int64_t h = (buffer - (max_slice + whole) * b) / (lines * b);
      tiles = (h_ref + h - 1) / h;
    }
  }
  return Cost{f_beta, (in_elems + out_elems + tiles * weights) * b};
}

/*! \brief Compulsory traffic: every weight, consumed graph input and produced graph output once. */
int64_t LowerBound(const Graph& g, int64_t b) {
  int64_t total = 0;
  for (int64_t v = 0; v < g.num_nodes; ++v) total += g.weight_elems[v];
  for (int64_t t = 0; t < g.num_tensors; ++t) {
    bool consumed_input = g.producer[t] < 0 && g.cons_ptr[t + 1] > g.cons_ptr[t];
    bool produced_output = g.producer[t] >= 0 && g.is_output[t] != 0;
    if (consumed_input || produced_output) total += g.rows[t] * g.row_elems[t];
  }
  return total * b;
}

Map<String, Function> MakeEvaluator(TensorView row_class, TensorView k_eff, TensorView stride_h,
                                    TensorView weight_elems, TensorView out_channels,
                                    TensorView output, TensorView in_ptr, TensorView in_idx,
                                    TensorView rows, TensorView row_elems, TensorView producer,
                                    TensorView is_output) {
  auto g = std::make_shared<Graph>();
  g->num_nodes = row_class.numel();
  g->num_tensors = rows.numel();
  g->row_class = Copy(row_class, "row_class", -1);
  g->k_eff = Copy(k_eff, "kernel_h_eff", g->num_nodes);
  g->stride_h = Copy(stride_h, "stride_h", g->num_nodes);
  g->weight_elems = Copy(weight_elems, "weight_elems", g->num_nodes);
  g->out_channels = Copy(out_channels, "out_channels", g->num_nodes);
  g->output = Copy(output, "output", g->num_nodes);
  g->in_ptr = Copy(in_ptr, "in_ptr", g->num_nodes + 1);
  g->in_idx = Copy(in_idx, "in_idx", -1);
  g->rows = Copy(rows, "rows", -1);
  g->row_elems = Copy(row_elems, "row_elems", g->num_tensors);
  g->producer = Copy(producer, "producer", g->num_tensors);
  g->is_output = Copy(is_output, "is_output", g->num_tensors);
  if (g->in_ptr[0] != 0 || g->in_ptr[g->num_nodes] != static_cast<int64_t>(g->in_idx.size())) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: in_ptr must start at 0 and end at len(in_idx)";
  }
  g->Validate();
  g->BuildConsumers();
  g->BuildDerived();

  // Fills out[i] = (F_beta, F_D) of group i = group_nodes[group_ptr[i]:group_ptr[i+1]].
  auto evaluate = [g](TensorView group_ptr, TensorView group_nodes, int64_t buffer_bytes,
                      int64_t bytes_per_element, int64_t fusion, TensorView out) {
    if (buffer_bytes < 1 || bytes_per_element < 1) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: buffer_bytes and bytes_per_element must be"
                                   " positive";
    }
    if (fusion != kLBDF && fusion != kBRR) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: fusion type must be 0 (LBDF) or 1 (BRR), got "
                                << fusion;
    }
    const int64_t* ptr = Int64Data(group_ptr, "group_ptr");
    const int64_t* nodes = Int64Data(group_nodes, "group_nodes");
    int64_t* res = Int64Data(out, "out", 2);
    int64_t num_groups = group_ptr.numel() - 1;
    if (num_groups < 0 || out.size(0) != num_groups || out.size(1) != 2) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: out must have shape [len(group_ptr) - 1, 2]";
    }
    if (num_groups > 0 && (ptr[0] != 0 || ptr[num_groups] != group_nodes.numel())) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: group_ptr must start at 0 and end at "
                                   "len(group_nodes)";
    }
    Scratch scratch(*g);
    for (int64_t i = 0; i < num_groups; ++i) {
      if (ptr[i] > ptr[i + 1]) {
        TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: group_ptr decreases at group " << i;
      }
      Cost c = EvaluateGroup(*g, &scratch, i, nodes + ptr[i], nodes + ptr[i + 1], buffer_bytes,
                             bytes_per_element, fusion);
      res[2 * i] = c.buffer_bytes;
      res[2 * i + 1] = c.dram_bytes;
    }
  };
  auto lower_bound = [g](int64_t bytes_per_element) { return LowerBound(*g, bytes_per_element); };
  // Fills own[i] and held[i] per input edge i (in_idx order): the rows its consumer needs by its
  // row class, and those plus the merge skew, both capped at the tensor's rows, with the whole
  // graph streamed as one group (lags from the graph inputs). The GET features read them, so that
  // these rules stay here only.
  auto stream_terms = [g](TensorView own_out, TensorView held_out) {
    int64_t* own = Int64Data(own_out, "own");
    int64_t* held = Int64Data(held_out, "held");
    int64_t n = static_cast<int64_t>(g->in_idx.size());
    if (own_out.numel() != n || held_out.numel() != n) {
      TVM_FFI_THROW(ValueError) << "tvm_fusion.cost: own and held must have len(in_idx) = " << n
                                << " entries";
    }
    std::vector<double> lag(g->num_tensors, 0.0);
    for (int64_t v = 0; v < g->num_nodes; ++v) lag[g->output[v]] = OutputLag(*g, v, lag);
    for (int64_t v = 0; v < g->num_nodes; ++v) {
      bool merge = IsMerge(*g, v);
      double lmax = MergeLag(*g, v, lag);
      for (int64_t i = g->in_ptr[v]; i < g->in_ptr[v + 1]; ++i) {
        int64_t rows = g->rows[g->in_idx[i]];
        own[i] = std::min(rows, g->edge_rows[i]);
        held[i] = std::min(rows, NeededRows(*g, i, merge, lmax, lag));
      }
    }
  };
  Map<String, Function> fns;
  fns.Set("evaluate", Function::FromTyped(evaluate, "tvm_fusion.cost.evaluate"));
  fns.Set("lower_bound", Function::FromTyped(lower_bound, "tvm_fusion.cost.lower_bound"));
  fns.Set("stream_terms", Function::FromTyped(stream_terms, "tvm_fusion.cost.stream_terms"));
  return fns;
}

}  // namespace
}  // namespace tvm_fusion

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef().def("tvm_fusion.cost.make_evaluator", tvm_fusion::MakeEvaluator,
                        "Flattened OpGraph arrays -> {'evaluate', 'lower_bound', 'stream_terms'}; see "
                        "docs/cost_model.md");
}
