/*
 * tfhost plugin ABI: the only contract between the tfhost host and a plugin .so.
 *
 * Plain C. No C++ type, exception, STL object or protobuf message crosses this boundary.
 * The rules for changing this file are in sdk/ABI.md; tests/abi/abi_layout_test.cc pins the layout.
 *
 *   - Every struct that one side fills for the other starts with `struct_size` (and, for the two
 *     root tables, `abi_version`). Fields are only ever appended; a reader checks
 *     TFH_HAS_FIELD(ptr, Type, field) before reading a field newer than version 1.
 *   - Every callback returns TfhStatus* (NULL == OK) except release/destroy functions.
 *   - Whoever allocates frees. Strings are UTF-8 and NUL-terminated; counts are size_t; dims int64_t.
 *   - A plugin exports exactly one symbol: tfh_plugin_init.
 */
#ifndef TFHOST_ABI_H_
#define TFHOST_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI epoch. NOT the tfhost release number. Bumped only when something is appended. */
#define TFH_ABI_VERSION 1u
/* The oldest plugin ABI this host still loads. */
#define TFH_ABI_MIN_SUPPORTED 1u

#if defined(_WIN32)
#define TFH_EXPORT __declspec(dllexport)
#else
#define TFH_EXPORT __attribute__((visibility("default")))
#endif

/* True when the struct at `p` (whose first field is struct_size) is large enough to hold `field`. */
#define TFH_HAS_FIELD(p, Type, field) \
  ((p) != NULL && (size_t)(p)->struct_size >= offsetof(Type, field) + sizeof(((Type*)0)->field))

/* ---------------------------------------------------------------------------------------------
 * Enumerations. Stored as fixed-width integers so their size never depends on the compiler;
 * values are explicit and never reused. Gaps are left for the planned scope (DESIGN.md).
 * ------------------------------------------------------------------------------------------- */

typedef int32_t TfhErrorCode;
#define TFH_OK 0
#define TFH_FAIL 1
#define TFH_INVALID_ARGUMENT 2     /* a parameter, attribute or input is wrong */
#define TFH_NOT_FOUND 3            /* a name does not exist */
#define TFH_NOT_IMPLEMENTED 4      /* the capability is not built (yet) */
#define TFH_INVALID_GRAPH 5        /* the graph breaks an invariant (cycle, double definition, ...) */
#define TFH_RUNTIME_EXCEPTION 6    /* a C++ exception was caught at the boundary */
#define TFH_OUT_OF_MEMORY 7

/* Element types: the numbers are ONNX TensorProto.DataType, so new ONNX types append for free. */
typedef int32_t TfhDataType;
#define TFH_TYPE_UNDEFINED 0
#define TFH_TYPE_FLOAT 1
#define TFH_TYPE_UINT8 2
#define TFH_TYPE_INT8 3
#define TFH_TYPE_UINT16 4
#define TFH_TYPE_INT16 5
#define TFH_TYPE_INT32 6
#define TFH_TYPE_INT64 7
#define TFH_TYPE_STRING 8
#define TFH_TYPE_BOOL 9
#define TFH_TYPE_FLOAT16 10
#define TFH_TYPE_DOUBLE 11
#define TFH_TYPE_UINT32 12
#define TFH_TYPE_UINT64 13
#define TFH_TYPE_COMPLEX64 14
#define TFH_TYPE_COMPLEX128 15
#define TFH_TYPE_BFLOAT16 16
#define TFH_TYPE_FLOAT8E4M3FN 17
#define TFH_TYPE_FLOAT8E4M3FNUZ 18
#define TFH_TYPE_FLOAT8E5M2 19
#define TFH_TYPE_FLOAT8E5M2FNUZ 20
#define TFH_TYPE_UINT4 21
#define TFH_TYPE_INT4 22

/* What kind of value flows on an edge. */
typedef int32_t TfhValueKind;
#define TFH_VALUE_UNKNOWN 0
#define TFH_VALUE_TENSOR 1
#define TFH_VALUE_SEQUENCE 2
#define TFH_VALUE_MAP 3
#define TFH_VALUE_OPTIONAL 4
#define TFH_VALUE_SPARSE_TENSOR 5

/* Attribute types: the numbers are ONNX AttributeProto.AttributeType. */
typedef int32_t TfhAttrType;
#define TFH_ATTR_UNDEFINED 0
#define TFH_ATTR_FLOAT 1
#define TFH_ATTR_INT 2
#define TFH_ATTR_STRING 3
#define TFH_ATTR_TENSOR 4
#define TFH_ATTR_GRAPH 5
#define TFH_ATTR_FLOATS 6
#define TFH_ATTR_INTS 7
#define TFH_ATTR_STRINGS 8
#define TFH_ATTR_TENSORS 9
#define TFH_ATTR_GRAPHS 10
#define TFH_ATTR_SPARSE_TENSOR 11
#define TFH_ATTR_SPARSE_TENSORS 12
#define TFH_ATTR_TYPE_PROTO 13
#define TFH_ATTR_TYPE_PROTOS 14

/* Types of descriptor parameters (YAML `with:` keys, CLI flags). */
typedef int32_t TfhParamType;
#define TFH_PARAM_BOOL 1
#define TFH_PARAM_INT 2
#define TFH_PARAM_FLOAT 3
#define TFH_PARAM_STRING 4
#define TFH_PARAM_INT_LIST 5
#define TFH_PARAM_FLOAT_LIST 6
#define TFH_PARAM_STRING_LIST 7
/* bool, or a list of strings (e.g. keep_io_types: true | [input_ids]) */
#define TFH_PARAM_BOOL_OR_STRING_LIST 8

typedef int32_t TfhDevice;
#define TFH_DEVICE_CPU 0
#define TFH_DEVICE_CUDA 1

typedef int32_t TfhLogLevel;
#define TFH_LOG_DEBUG 0
#define TFH_LOG_INFO 1
#define TFH_LOG_WARNING 2
#define TFH_LOG_ERROR 3

/* ---------------------------------------------------------------------------------------------
 * Opaque handles. The host owns every object behind them unless a function says otherwise.
 * ------------------------------------------------------------------------------------------- */
typedef struct TfhStatus TfhStatus;        /* made by host->status_create; freed by the receiver */
typedef struct TfhGraph TfhGraph;          /* a model's main graph, edited in place */
typedef struct TfhNode TfhNode;
typedef struct TfhValue TfhValue;          /* an edge: graph input, initializer or node output */
typedef struct TfhTensor TfhTensor;        /* a dense tensor with host-owned storage */
typedef struct TfhTensorList TfhTensorList;/* named tensors (dummy inputs) */
typedef struct TfhParams TfhParams;        /* resolved parameters, defaults applied by the host */
typedef struct TfhShapeContext TfhShapeContext; /* one node's shape inference */
typedef struct TfhKernelContext TfhKernelContext;

/* ---------------------------------------------------------------------------------------------
 * Descriptors: static const data owned by the plugin, alive as long as the library is loaded.
 * ------------------------------------------------------------------------------------------- */

/* Parameter tables are arrays of TfhParamDesc (`params` + `n_params` below). Arrays of
 * descriptors are strided by the first element's struct_size: the host steps from one element to
 * the next by params[0].struct_size, not by its own sizeof(TfhParamDesc), so the struct can grow.
 * Every element of one array reports the same struct_size (sizeof as compiled), at least ABI 1's. */
typedef struct TfhParamDesc {
  uint32_t struct_size;
  const char* name;
  TfhParamType type;
  const char* default_value; /* YAML text ("true", "3", "[a, b]"); NULL = required */
  const char* description;   /* one line */
} TfhParamDesc;

/* A graph rewrite: match a pattern, replace it. Reports how many matches it fused. */
typedef struct TfhFusionDesc {
  uint32_t struct_size;
  const char* name;            /* namespaced: "bert.gelu", "core.remove_identity" */
  const char* description;     /* one line: "Div->Erf->Add->Mul->Mul => com.microsoft.Gelu" */
  const char* since;           /* plugin version that introduced it */
  const char* produces_domain; /* "" for ONNX, "com.microsoft", NULL if it only removes nodes */
  const char* produces_op;     /* NULL if it only removes nodes */
  size_t n_params;
  const TfhParamDesc* params; /* array; strided by params[0].struct_size (see TfhParamDesc) */
  TfhStatus* (*apply)(TfhGraph* graph, const TfhParams* params, size_t* n_changed);
} TfhFusionDesc;

/* A whole-model transform that is not a pattern rewrite (precision, input types, model builders).
 * `graph` is the loaded model, or an empty graph when the converter builds one (`builds_model`). */
typedef struct TfhConverterDesc {
  uint32_t struct_size;
  const char* name;
  const char* description;
  const char* since;
  int32_t builds_model; /* 1: creates the graph from params (e.g. a checkpoint dir) */
  size_t n_params;
  const TfhParamDesc* params; /* array; strided by params[0].struct_size (see TfhParamDesc) */
  TfhStatus* (*apply)(TfhGraph* graph, const TfhParams* params, size_t* n_changed);
} TfhConverterDesc;

/* Deterministic dummy inputs for a model. Appends one tensor per graph input to `out`. */
typedef struct TfhInputGenDesc {
  uint32_t struct_size;
  const char* name;         /* "bert.inputs" */
  const char* description;
  const char* since;
  size_t n_params;          /* batch, sequence, past, ... */
  const TfhParamDesc* params; /* array; strided by params[0].struct_size (see TfhParamDesc) */
  TfhStatus* (*generate)(const TfhGraph* graph, const TfhParams* params, uint64_t seed,
                         TfhTensorList* out);
  double tolerance_fp32;    /* suggested max abs diff when comparing outputs */
  double tolerance_fp16;
} TfhInputGenDesc;

/* Shape and type inference for an operator this plugin introduces (contrib ops). */
typedef struct TfhOpDesc {
  uint32_t struct_size;
  const char* domain;       /* "com.microsoft" */
  const char* op_type;
  int32_t since_version;
  const char* description;
  TfhStatus* (*infer_shapes)(TfhShapeContext* ctx); /* nullable */
} TfhOpDesc;

/* A kernel. Created once per node when a session is planned; compute runs many times. */
typedef struct TfhKernelDesc {
  uint32_t struct_size;
  const char* name;
  const char* domain;
  const char* op_type;
  int32_t since_version;    /* first opset the kernel serves */
  int32_t end_version;      /* last opset it serves; 0 = open */
  TfhDevice device;
  const char* type_constraints; /* "T=float,float16;M=int32" ; "" = any */
  int32_t priority;         /* higher wins among matching kernels; built-ins use 0 */
  TfhStatus* (*create)(const TfhNode* node, void** state);           /* nullable */
  TfhStatus* (*compute)(void* state, TfhKernelContext* ctx, void* stream);
  void (*destroy)(void* state);                                       /* nullable */

  /* -- appended after the first layout (read with TFH_HAS_FIELD) -- */
  /* The inputs a kernel reads on the host whatever its device, bit i for input i (shape-like
   * integers: Expand's shape, Slice's starts). A device kernel gets those inputs in host memory:
   * host values as they are, a value made on the device downloaded first (which waits for the
   * device). 0: every input on the kernel's device. */
  uint64_t host_inputs;
} TfhKernelDesc;

/* A model family a plugin serves, and its default ordered pass list (`preset:`). */
typedef struct TfhModelTypeDesc {
  uint32_t struct_size;
  const char* name;         /* "bert", "gpt2", "bert_tf" */
  const char* description;
  size_t n_passes;
  const char* const* passes; /* fusion or converter names, in order */
  const char* input_generator; /* default dummy-input generator, nullable */
} TfhModelTypeDesc;

/* What a plugin contributes. Returned by tfh_plugin_init; static const data. */
typedef struct TfhPluginInfo {
  uint32_t abi_version;     /* TFH_ABI_VERSION the plugin was built with */
  uint32_t struct_size;
  const char* name;         /* "bert" */
  const char* version;      /* the plugin's own release, "0.1.0" */
  const char* license;
  const char* description;
  size_t n_fusions;
  const TfhFusionDesc* const* fusions;
  size_t n_converters;
  const TfhConverterDesc* const* converters;
  size_t n_input_generators;
  const TfhInputGenDesc* const* input_generators;
  size_t n_kernels;
  const TfhKernelDesc* const* kernels;
  size_t n_ops;
  const TfhOpDesc* const* ops;
  size_t n_model_types;
  const TfhModelTypeDesc* const* model_types;
  void (*shutdown)(void);   /* nullable; called before the library is unloaded */
} TfhPluginInfo;

/* ---------------------------------------------------------------------------------------------
 * Host function tables. Filled by the host; a plugin checks TFH_HAS_FIELD before using a
 * field newer than the ABI version it was built for.
 * ------------------------------------------------------------------------------------------- */

typedef struct TfhGraphApi {
  uint32_t struct_size;

  /* -- graph -- */
  size_t (*graph_num_nodes)(const TfhGraph* g);
  TfhNode* (*graph_node)(const TfhGraph* g, size_t i); /* in the graph's current node order */
  size_t (*graph_num_inputs)(const TfhGraph* g);
  TfhValue* (*graph_input)(const TfhGraph* g, size_t i);
  size_t (*graph_num_outputs)(const TfhGraph* g);
  TfhValue* (*graph_output)(const TfhGraph* g, size_t i);
  size_t (*graph_num_initializers)(const TfhGraph* g);
  TfhValue* (*graph_initializer)(const TfhGraph* g, size_t i);
  TfhValue* (*graph_find_value)(const TfhGraph* g, const char* name); /* NULL if absent */
  int64_t (*graph_opset)(const TfhGraph* g, const char* domain);     /* -1 if not imported */
  TfhStatus* (*graph_set_opset)(TfhGraph* g, const char* domain, int64_t version);
  /* Writes a name not yet used in the graph, `prefix` + suffix, into buf (NUL-terminated). */
  TfhStatus* (*graph_unique_name)(TfhGraph* g, const char* prefix, char* buf, size_t buf_size);

  /* -- node -- */
  const char* (*node_name)(const TfhNode* n);
  const char* (*node_op_type)(const TfhNode* n);
  const char* (*node_domain)(const TfhNode* n); /* "" for the ONNX domain */
  size_t (*node_num_inputs)(const TfhNode* n);
  TfhValue* (*node_input)(const TfhNode* n, size_t i);  /* NULL for an omitted optional input */
  size_t (*node_num_outputs)(const TfhNode* n);
  TfhValue* (*node_output)(const TfhNode* n, size_t i); /* NULL for an omitted optional output */
  size_t (*node_num_attrs)(const TfhNode* n);
  const char* (*node_attr_name)(const TfhNode* n, size_t i);
  TfhAttrType (*node_attr_type)(const TfhNode* n, const char* name); /* UNDEFINED if absent */
  TfhStatus* (*node_attr_int)(const TfhNode* n, const char* name, int64_t* out);
  TfhStatus* (*node_attr_float)(const TfhNode* n, const char* name, float* out);
  TfhStatus* (*node_attr_string)(const TfhNode* n, const char* name, const char** out,
                                 size_t* len);
  TfhStatus* (*node_attr_ints)(const TfhNode* n, const char* name, const int64_t** out,
                               size_t* count);
  TfhStatus* (*node_attr_floats)(const TfhNode* n, const char* name, const float** out,
                                 size_t* count);
  /* The tensor stays owned by the node; valid until the attribute changes. */
  TfhStatus* (*node_attr_tensor)(const TfhNode* n, const char* name, const TfhTensor** out);

  /* -- value -- */
  const char* (*value_name)(const TfhValue* v);
  TfhNode* (*value_producer)(const TfhValue* v, size_t* output_index); /* NULL: input/initializer */
  size_t (*value_num_consumers)(const TfhValue* v); /* one entry per consuming input slot */
  TfhNode* (*value_consumer)(const TfhValue* v, size_t i, size_t* input_index);
  int32_t (*value_is_graph_input)(const TfhValue* v);
  int32_t (*value_is_graph_output)(const TfhValue* v);
  /* Constant data: an initializer, or the value of a Constant node (`value`, `value_float(s)`,
   * `value_int(s)`). NULL when not constant; an initializer that is also a graph input is not
   * constant (the caller may override it). The view stays valid while the graph is unchanged. */
  const TfhTensor* (*value_constant)(const TfhValue* v);
  TfhValueKind (*value_kind)(const TfhValue* v);
  TfhDataType (*value_elem_type)(const TfhValue* v);          /* UNDEFINED when unknown */
  int64_t (*value_rank)(const TfhValue* v);                    /* -1 when unknown */
  /* dim i: *value >= 0 when known; otherwise *symbol is the dim_param or NULL. */
  TfhStatus* (*value_dim)(const TfhValue* v, size_t i, int64_t* value, const char** symbol);

  /* -- edits -- (a fusion collects all matches first, then edits) */
  /* Adds a node. Inputs may be NULL (omitted). Each output name is a new value, or an existing
   * value that has lost its producer (the usual case when a fusion replaces the nodes that made
   * it); an output name that is NULL or "" is an omitted optional output. Naming a value that
   * still has a producer, or is a graph input or initializer, is TFH_INVALID_GRAPH and changes
   * nothing. `name` NULL = generated. The node is appended; passes that need order call
   * graph_topological_sort. */
  TfhStatus* (*graph_add_node)(TfhGraph* g, const char* name, const char* op_type,
                               const char* domain, const TfhValue* const* inputs, size_t n_inputs,
                               const char* const* output_names, size_t n_outputs, TfhNode** out);
  TfhStatus* (*graph_remove_node)(TfhGraph* g, TfhNode* n);
  TfhStatus* (*node_set_input)(TfhGraph* g, TfhNode* n, size_t i, const TfhValue* v);
  TfhStatus* (*node_set_attr_int)(TfhNode* n, const char* name, int64_t v);
  TfhStatus* (*node_set_attr_float)(TfhNode* n, const char* name, float v);
  TfhStatus* (*node_set_attr_string)(TfhNode* n, const char* name, const char* v, size_t len);
  TfhStatus* (*node_set_attr_ints)(TfhNode* n, const char* name, const int64_t* v, size_t count);
  TfhStatus* (*node_set_attr_floats)(TfhNode* n, const char* name, const float* v, size_t count);
  /* Copies the tensor into the attribute. */
  TfhStatus* (*node_set_attr_tensor)(TfhNode* n, const char* name, const TfhTensor* t);
  TfhStatus* (*node_remove_attr)(TfhNode* n, const char* name);
  /* Every consumer of `from` (and the graph output slot, if `from` is one) reads `to` instead. */
  TfhStatus* (*graph_replace_all_uses)(TfhGraph* g, TfhValue* from, TfhValue* to);
  /* Adds an initializer; takes ownership of `t` (the host frees it, also on error). */
  TfhStatus* (*graph_add_initializer)(TfhGraph* g, const char* name, TfhTensor* t,
                                      TfhValue** out);
  TfhStatus* (*graph_remove_initializer)(TfhGraph* g, TfhValue* v);
  TfhStatus* (*value_set_name)(TfhGraph* g, TfhValue* v, const char* name);
  TfhStatus* (*value_set_type)(TfhValue* v, TfhDataType elem_type, const int64_t* dims,
                               const char* const* symbols, int64_t rank); /* rank -1: unknown */
  TfhStatus* (*graph_topological_sort)(TfhGraph* g);

  /* -- appended after the first layout (read with TFH_HAS_FIELD) -- */
  /* The since-version of the schema that the graph's opset import selects for this node (ONNX
   * Add at opset 14 -> 14, Div at opset 11 -> 7); -1 when the host knows no schema for it. */
  int64_t (*node_since_version)(const TfhGraph* g, const TfhNode* n);
  /* Runs shape and type inference over the whole graph (ONNX's for standard ops, the owners'
   * TfhOpDesc.infer_shapes for the rest) and stores the results, so value_elem_type/value_rank/
   * value_dim answer for intermediate values. *n_typed (nullable): values newly typed or refined. */
  TfhStatus* (*graph_infer_shapes)(TfhGraph* g, size_t* n_typed);
  /* Adds a graph input (after the others) named `name`, typed like value_set_type: dims[i] >= 0
   * known, else symbols[i] (NULL or "" for an anonymous dim); rank -1: shape unknown. Fails when
   * the name exists. *out (nullable): the new value, owned by the graph. For converters that
   * build a model (TfhConverterDesc.builds_model). */
  TfhStatus* (*graph_add_input)(TfhGraph* g, const char* name, TfhDataType elem_type,
                                const int64_t* dims, const char* const* symbols, int64_t rank,
                                TfhValue** out);
  /* Makes `v` (a node output, an input or an initializer) a graph output, after the others. */
  TfhStatus* (*graph_add_output)(TfhGraph* g, TfhValue* v);
} TfhGraphApi;

typedef struct TfhTensorApi {
  uint32_t struct_size;
  /* A zero-filled CPU tensor. Free with tensor_release unless ownership passes to the host. */
  TfhStatus* (*tensor_create)(TfhDataType type, const int64_t* dims, size_t rank, TfhTensor** out);
  void (*tensor_release)(TfhTensor* t);
  TfhDataType (*tensor_type)(const TfhTensor* t);
  size_t (*tensor_rank)(const TfhTensor* t);
  const int64_t* (*tensor_dims)(const TfhTensor* t);
  size_t (*tensor_num_elements)(const TfhTensor* t);
  size_t (*tensor_nbytes)(const TfhTensor* t);
  const void* (*tensor_data)(const TfhTensor* t);
  void* (*tensor_mutable_data)(TfhTensor* t); /* NULL for host-owned read-only tensors */
  /* Appends `t` under `name`; the list takes ownership (also on error). */
  TfhStatus* (*tensor_list_append)(TfhTensorList* list, const char* name, TfhTensor* t);
} TfhTensorApi;

typedef struct TfhParamsApi {
  uint32_t struct_size;
  /* Each returns TFH_NOT_FOUND for a name the descriptor did not declare and TFH_INVALID_ARGUMENT
   * for a type mismatch. Defaults from the descriptor are already applied.
   * TFH_PARAM_BOOL_OR_STRING_LIST: get_bool gives the bool, or 1 for a non-empty list;
   * get_num_strings/get_string_at give the list (0 strings for the bool form). */
  TfhStatus* (*get_bool)(const TfhParams* p, const char* name, int32_t* out);
  TfhStatus* (*get_int)(const TfhParams* p, const char* name, int64_t* out);
  TfhStatus* (*get_float)(const TfhParams* p, const char* name, double* out);
  TfhStatus* (*get_string)(const TfhParams* p, const char* name, const char** out);
  TfhStatus* (*get_ints)(const TfhParams* p, const char* name, const int64_t** out, size_t* n);
  TfhStatus* (*get_floats)(const TfhParams* p, const char* name, const double** out, size_t* n);
  TfhStatus* (*get_num_strings)(const TfhParams* p, const char* name, size_t* n);
  TfhStatus* (*get_string_at)(const TfhParams* p, const char* name, size_t i, const char** out);
  int32_t (*has)(const TfhParams* p, const char* name); /* set explicitly by the user */
} TfhParamsApi;

typedef struct TfhShapeApi {
  uint32_t struct_size;
  const TfhNode* (*node)(const TfhShapeContext* c);
  size_t (*num_inputs)(const TfhShapeContext* c);
  TfhDataType (*input_elem_type)(const TfhShapeContext* c, size_t i);
  int64_t (*input_rank)(const TfhShapeContext* c, size_t i);
  TfhStatus* (*input_dim)(const TfhShapeContext* c, size_t i, size_t d, int64_t* value,
                          const char** symbol);
  const TfhTensor* (*input_constant)(const TfhShapeContext* c, size_t i); /* NULL if unknown */
  size_t (*num_outputs)(const TfhShapeContext* c);
  TfhStatus* (*set_output)(TfhShapeContext* c, size_t i, TfhDataType elem_type,
                           const int64_t* dims, const char* const* symbols, int64_t rank);
} TfhShapeApi;

/* What a kernel's compute sees of one node's execution. Input tensors are read-only and live
 * until compute returns; outputs are allocated by the host on the kernel's device through
 * `output`, and tensor_mutable_data answers for them. Scratch memory is freed after compute. */
typedef struct TfhKernelApi {
  uint32_t struct_size;
  const TfhNode* (*node)(const TfhKernelContext* c);
  size_t (*num_inputs)(const TfhKernelContext* c);
  const TfhTensor* (*input)(const TfhKernelContext* c, size_t i); /* NULL: optional, omitted */
  size_t (*num_outputs)(const TfhKernelContext* c);
  /* 1 when output i is consumed by some node or is a graph output; a kernel may skip it when 0
   * (it must still allocate outputs whose index it writes). */
  int32_t (*output_used)(const TfhKernelContext* c, size_t i);
  /* Allocates output i (once per compute) with this type and shape and returns it, writable. */
  TfhStatus* (*output)(TfhKernelContext* c, size_t i, TfhDataType type, const int64_t* dims,
                       size_t rank, TfhTensor** out);
  /* Temporary memory, 64-byte aligned, valid until compute returns; NULL when out of memory. */
  void* (*scratch)(TfhKernelContext* c, size_t bytes);
  int32_t (*num_threads)(const TfhKernelContext* c); /* the session's thread budget */
  /* Output i holding input j's bytes under a new shape (same element type, same byte count), for
   * Reshape/Squeeze/Unsqueeze/Flatten/Identity: the host hands input j's buffer over when this
   * node is its last reader, else allocates and copies. Input j stays readable until compute
   * returns. */
  TfhStatus* (*output_from_input)(TfhKernelContext* c, size_t i, size_t j, const int64_t* dims,
                                  size_t rank, TfhTensor** out);
  /* Sequence values (SplitToSequence, SequenceAt, ...). An input that is a sequence has a length
   * (-1: a tensor, or omitted) and its tensors by position; input() is NULL for it. An output
   * becomes a sequence (empty) by output_sequence_begin, then grows by one tensor per append. */
  int64_t (*input_sequence_length)(const TfhKernelContext* c, size_t i);
  const TfhTensor* (*input_sequence_at)(const TfhKernelContext* c, size_t i, size_t k);
  TfhStatus* (*output_sequence_begin)(TfhKernelContext* c, size_t i);
  TfhStatus* (*output_sequence_append)(TfhKernelContext* c, size_t i, TfhDataType type,
                                       const int64_t* dims, size_t rank, TfhTensor** out);
  /* Called from a kernel's create: the kernel keeps its own copy of constant input i (a packed
   * layout) and never reads the original again. When every reader of that initializer said so,
   * a host that owns the model may give the initializer's memory back. Ignored otherwise. */
  void (*constant_input_consumed)(const TfhNode* node, size_t i);
  /* Runs, on this same context (same inputs, same outputs), the kernel the runtime would have
   * chosen for this node without the calling one: the next matching kernel by priority. For a
   * kernel specialised for some cases (a decode step: one new token) to hand the others on.
   * TFH_NOT_FOUND when no other kernel matches the node. */
  TfhStatus* (*run_next_kernel)(TfhKernelContext* c);
} TfhKernelApi;

typedef struct TfhHostApi {
  uint32_t abi_version;      /* TFH_ABI_VERSION of the host */
  uint32_t struct_size;
  const char* host_version;  /* tfhost release, for messages */
  TfhStatus* (*status_create)(TfhErrorCode code, const char* utf8_msg); /* TFH_OK -> NULL */
  void (*status_release)(TfhStatus* s);
  TfhErrorCode (*status_code)(const TfhStatus* s);
  const char* (*status_message)(const TfhStatus* s);
  void (*log)(TfhLogLevel level, const char* plugin, const char* msg);
  void* (*alloc)(size_t bytes, TfhDevice device);
  void (*free)(void* p, TfhDevice device);
  const TfhGraphApi* graph;
  const TfhTensorApi* tensor;
  const TfhParamsApi* params;
  const TfhShapeApi* shape;
  const TfhKernelApi* kernel; /* appended in ABI 1 after `shape`; check TFH_HAS_FIELD */
} TfhHostApi;

/* The single entry point of a plugin. The plugin keeps `host` (valid until shutdown) and sets
 * *info to its static TfhPluginInfo. It must not touch any graph here. */
typedef TfhStatus* (*TfhPluginInitFn)(const TfhHostApi* host, const TfhPluginInfo** info);
#define TFH_PLUGIN_INIT_SYMBOL "tfh_plugin_init"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TFHOST_ABI_H_ */
