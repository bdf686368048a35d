/*!
 * \file tir_dataflow.cc
 * \brief Producer -> consumer data-flow graphs of scheduled TIR modules, for the AIO-P
 *        MetaSchedule cost model (predictor/metaschedule.py).
 *
 * MetaSchedule asks a cost model to score hundreds of candidates per call; walking each
 * candidate's loop nest from Python cost ~45 us per candidate (about 25 ms per 512, more than
 * the whole 20 ms budget of `predict`). This walks the same nodes through tvm-ffi
 * reflection (field getters by name, no TVM C++ headers or link), so it needs only
 * apache-tvm-ffi, like the fusion cost model.
 *
 * Node i of a graph is the i-th distinct buffer written (by name) by an SBlock whose body is
 * not a constant store, in program order (pre-order: a block before the blocks nested in it,
 * its init before its body). That is the row order of MetaSchedule's PerStoreFeature. Edge
 * A -> B when a block that writes B reads A.
 */
#include <tvm/ffi/any.h>
#include <tvm/ffi/c_api.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/shape.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/reflection/accessor.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tvm_fusion {
namespace {

using tvm::ffi::Any;
using tvm::ffi::Array;
using tvm::ffi::ArrayObj;
using tvm::ffi::MapObj;
using tvm::ffi::Object;
using tvm::ffi::ObjectRef;
using tvm::ffi::Shape;
using tvm::ffi::String;

/*! \brief How the walk treats a node type. */
enum class Kind { kBlock, kBlockRealize, kSeq, kIfThenElse, kLeaf, kOtherWithBody, kOther };

/*! \brief Type index of a registered type key, or -1 if this TVM build has no such type. */
int32_t TypeIndexOf(const char* key) {
  int32_t index = -1;
  TVMFFIByteArray bytes{key, std::strlen(key)};
  if (TVMFFITypeKeyToIndex(&bytes, &index) != 0) {
    TVMFFIObjectHandle error = nullptr;
    TVMFFIErrorMoveFromRaised(&error);  // clear the "unknown key" error
    if (error != nullptr) TVMFFIObjectDecRef(error);
    return -1;
  }
  return index;
}

/*! \brief The reflected field `name` of type `type_index` (own or inherited), or nullptr. */
const TVMFFIFieldInfo* FindField(int32_t type_index, const char* name) {
  const TVMFFIFieldInfo* found = nullptr;
  tvm::ffi::reflection::ForEachFieldInfoWithEarlyStop(TVMFFIGetTypeInfo(type_index),
                                                      [&](const TVMFFIFieldInfo* f) {
                                                        if (f->name.size == std::strlen(name) &&
                                                            std::memcmp(f->name.data, name, f->name.size) == 0) {
                                                          found = f;
                                                          return true;
                                                        }
                                                        return false;
                                                      });
  return found;
}

/*! \brief Whether `type_index` is `base` or derives from it. */
bool DerivesFrom(int32_t type_index, int32_t base) {
  if (type_index == base) return true;
  const TVMFFITypeInfo* info = TVMFFIGetTypeInfo(type_index);
  for (int32_t i = 0; i < info->type_depth; ++i) {
    if (info->type_ancestors[i]->type_index == base) return true;
  }
  return false;
}

/*! \brief Reads one reflected field; the value stays owned by `obj` (which the caller holds). */
Any Get(const Object* obj, const TVMFFIFieldInfo* field) {
  return tvm::ffi::reflection::FieldGetter(field)(obj);
}

/*! \brief The TIR types and fields the walk needs, resolved once per process. */
class TirReflection {
 public:
  static const TirReflection& Get() {
    static const TirReflection instance;
    return instance;
  }

  /*! \brief The walk kind of `type_index` and, for kOtherWithBody, its `body` field. */
  std::pair<Kind, const TVMFFIFieldInfo*> Classify(int32_t type_index) const {
    auto it = kinds_.find(type_index);
    if (it != kinds_.end()) return it->second;
    std::pair<Kind, const TVMFFIFieldInfo*> kind{Kind::kOther, nullptr};
    if (type_index == block_) {
      kind.first = Kind::kBlock;
    } else if (type_index == block_realize_) {
      kind.first = Kind::kBlockRealize;
    } else if (type_index == seq_) {
      kind.first = Kind::kSeq;
    } else if (type_index == if_then_else_) {
      kind.first = Kind::kIfThenElse;
    } else if (type_index == buffer_store_ || type_index == evaluate_) {
      kind.first = Kind::kLeaf;
    } else if (DerivesFrom(type_index, stmt_)) {
      kind.second = FindField(type_index, "body");
      if (kind.second != nullptr) kind.first = Kind::kOtherWithBody;
    }
    kinds_.emplace(type_index, kind);
    return kind;
  }

  int32_t stmt_, block_, block_realize_, seq_, if_then_else_, buffer_store_, evaluate_, prim_func_;
  int32_t int_imm_, float_imm_, tensor_region_, var_;
  const TVMFFIFieldInfo *block_body_, *block_init_, *block_reads_, *block_writes_;
  const TVMFFIFieldInfo *realize_block_, *seq_seq_, *then_case_, *else_case_, *store_value_;
  const TVMFFIFieldInfo *module_functions_, *func_body_, *region_source_, *var_name_;

 private:
  TirReflection() {
    stmt_ = Require("tirx.Stmt");
    block_ = Require("s_tir.SBlock");
    block_realize_ = Require("s_tir.SBlockRealize");
    seq_ = Require("tirx.SeqStmt");
    if_then_else_ = Require("tirx.IfThenElse");
    buffer_store_ = Require("tirx.BufferStore");
    evaluate_ = Require("tirx.Evaluate");
    prim_func_ = Require("tirx.PrimFunc");
    int_imm_ = Require("ir.IntImm");
    float_imm_ = Require("ir.FloatImm");
    block_body_ = RequireField(block_, "body");
    block_init_ = RequireField(block_, "init");
    block_reads_ = RequireField(block_, "reads");
    block_writes_ = RequireField(block_, "writes");
    realize_block_ = RequireField(block_realize_, "block");
    seq_seq_ = RequireField(seq_, "seq");
    then_case_ = RequireField(if_then_else_, "then_case");
    else_case_ = RequireField(if_then_else_, "else_case");
    store_value_ = RequireField(buffer_store_, "value");
    module_functions_ = RequireField(Require("ir.IRModule"), "functions");
    tensor_region_ = Require("ir.TensorRegion");
    var_ = Require("ir.Var");
    region_source_ = RequireField(tensor_region_, "source");
    var_name_ = RequireField(var_, "name");
    func_body_ = RequireField(prim_func_, "body");
  }

  static int32_t Require(const char* key) {
    int32_t index = TypeIndexOf(key);
    if (index < 0) {
      TVM_FFI_THROW(RuntimeError) << "tvm_fusion.tir.dataflow_graphs: TVM type `" << key
                                  << "` is not registered; import tvm first (this needs TVM 0.27's TIR)";
    }
    return index;
  }

  static const TVMFFIFieldInfo* RequireField(int32_t type_index, const char* name) {
    const TVMFFIFieldInfo* field = FindField(type_index, name);
    if (field == nullptr) {
      TVM_FFI_THROW(RuntimeError) << "tvm_fusion.tir.dataflow_graphs: TVM type `"
                                  << TVMFFIGetTypeInfo(type_index)->type_key.data << "` has no field `"
                                  << name << "` (TVM version mismatch; this needs TVM 0.27)";
    }
    return field;
  }

  mutable std::unordered_map<int32_t, std::pair<Kind, const TVMFFIFieldInfo*>> kinds_;
};

/*! \brief Reads and writes (buffer names) of one data-producing block. */
struct Flow {
  std::vector<std::string> reads, writes;
};

/*! \brief Names of the buffers in an Array of buffer regions (each a TensorRegion whose `source`
 *         is the buffer, an ir.Var). */
std::vector<std::string> RegionBufferNames(const TirReflection& tir, const Any& regions) {
  std::vector<std::string> names;
  const ArrayObj* array = regions.as<ArrayObj>();
  if (array == nullptr) return names;
  for (const Any& region : *array) {
    const Object* obj = region.as<Object>();
    if (obj == nullptr || !DerivesFrom(obj->type_index(), tir.tensor_region_)) continue;
    Any buffer = Get(obj, tir.region_source_);
    const Object* buf = buffer.as<Object>();
    if (buf == nullptr || !DerivesFrom(buf->type_index(), tir.var_)) continue;
    names.push_back(std::string(Get(buf, tir.var_name_).cast<String>()));
  }
  return names;
}

/*! \brief Appends the flows of the SBlocks under `root` in program order. */
void CollectFlows(const TirReflection& tir, Any root, std::vector<Flow>* flows) {
  std::vector<Any> stack{std::move(root)};  // Any keeps each pending node alive
  while (!stack.empty()) {
    Any top = std::move(stack.back());
    stack.pop_back();
    const Object* node = top.as<Object>();
    if (node == nullptr) continue;  // a None (absent else/init)
    auto [kind, body_field] = tir.Classify(node->type_index());
    switch (kind) {
      case Kind::kBlock: {
        Any body = Get(node, tir.block_body_);
        const Object* body_obj = body.as<Object>();
        bool constant_store = false;
        if (body_obj != nullptr && body_obj->type_index() == tir.buffer_store_) {
          int32_t value_type = Get(body_obj, tir.store_value_).type_index();
          constant_store = value_type == tir.int_imm_ || value_type == tir.float_imm_;
        }
        if (!constant_store) {  // constant stores (init blocks) yield no feature row
          Flow flow{RegionBufferNames(tir, Get(node, tir.block_reads_)),
                    RegionBufferNames(tir, Get(node, tir.block_writes_))};
          if (!flow.writes.empty()) flows->push_back(std::move(flow));
        }
        stack.push_back(std::move(body));
        stack.push_back(Get(node, tir.block_init_));  // popped first: init before body
        break;
      }
      case Kind::kBlockRealize:
        stack.push_back(Get(node, tir.realize_block_));
        break;
      case Kind::kSeq: {
        Any seq = Get(node, tir.seq_seq_);
        const ArrayObj* items = seq.as<ArrayObj>();
        for (int64_t i = items->size() - 1; i >= 0; --i) stack.push_back(items->at(i));
        break;
      }
      case Kind::kIfThenElse:
        stack.push_back(Get(node, tir.else_case_));
        stack.push_back(Get(node, tir.then_case_));
        break;
      case Kind::kOtherWithBody:
        stack.push_back(Get(node, body_field));
        break;
      case Kind::kLeaf:
      case Kind::kOther:
        break;
    }
  }
}

/*! \brief The single PrimFunc of a tuning candidate's IRModule. */
const Object* SinglePrimFunc(const TirReflection& tir, const Object* module, int64_t index, Any* holder) {
  *holder = Get(module, tir.module_functions_);
  const MapObj* functions = holder->as<MapObj>();
  const Object* found = nullptr;
  int count = 0;
  if (functions != nullptr) {
    for (const auto& kv : *functions) {
      const Object* func = kv.second.as<Object>();
      if (func != nullptr && func->type_index() == tir.prim_func_) {
        found = func;
        ++count;
      }
    }
  }
  if (count != 1) {
    TVM_FFI_THROW(ValueError) << "tvm_fusion.tir.dataflow_graphs: module " << index
                              << " holds " << count << " PrimFuncs; a tuning candidate has exactly one";
  }
  return found;
}

/*!
 * \brief Data-flow graphs of scheduled modules, flattened into one Shape: per module
 *        [num_nodes, num_edges, src_0, dst_0, src_1, dst_1, ...], edges sorted.
 */
Shape DataflowGraphs(const Array<ObjectRef>& modules) {
  const TirReflection& tir = TirReflection::Get();
  std::vector<int64_t> out;
  std::vector<Flow> flows;
  std::unordered_map<std::string, int64_t> order;
  std::vector<std::pair<int64_t, int64_t>> edges;
  for (int64_t m = 0; m < static_cast<int64_t>(modules.size()); ++m) {
    Any functions_holder;
    const Object* func = SinglePrimFunc(tir, modules[m].get(), m, &functions_holder);
    flows.clear();
    CollectFlows(tir, Get(func, tir.func_body_), &flows);
    order.clear();
    for (const Flow& flow : flows) {
      for (const std::string& name : flow.writes) order.emplace(name, static_cast<int64_t>(order.size()));
    }
    edges.clear();
    for (const Flow& flow : flows) {
      for (const std::string& r : flow.reads) {
        auto src = order.find(r);
        if (src == order.end()) continue;
        for (const std::string& w : flow.writes) {
          int64_t dst = order.at(w);
          if (src->second != dst) edges.emplace_back(src->second, dst);
        }
      }
    }
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    out.push_back(static_cast<int64_t>(order.size()));
    out.push_back(static_cast<int64_t>(edges.size()));
    for (const auto& [src, dst] : edges) {
      out.push_back(src);
      out.push_back(dst);
    }
  }
  return Shape(std::move(out));
}

}  // namespace
}  // namespace tvm_fusion

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef().def("tvm_fusion.tir.dataflow_graphs", tvm_fusion::DataflowGraphs,
                        "Data-flow graphs of scheduled TIR modules (see cpp/tir_dataflow.cc)");
}
