// The restricted unpickler of state_dict_pickle.h: a small pickle machine (stack, mark stack,
// memo) over an arena of values referenced by index, so that memory stays linear in the input,
// shared and self-referencing objects are harmless and nothing recurses. Opcodes follow
// CPython's Lib/pickle.py (protocols 2-5); the allowed globals, what REDUCE and BUILD may do and
// the persistent ids follow torch/_weights_only_unpickler.py and torch/serialization.py.
#include "compacter/io/state_dict_pickle.h"

#include <cstring>
#include <map>
#include <ostream>
#include <unordered_map>
#include <utility>

#include "compacter/core/error.h"

namespace compacter::torch_pickle {

namespace {

enum class Kind : uint8_t {
  None,
  Bool,
  Int,
  Float,
  Str,
  Bytes,
  Tuple,
  List,
  Dict,
  OrderedDict,
  Global,
  Storage,
  Tensor
};

// The globals a state dict's pickle may name. Dtype (torch.float16, ...) is an argument of
// _rebuild_tensor_v3, never called; UntypedStorage names storages whose dtype their views give.
enum class Callable : uint8_t {
  OrderedDict,
  RebuildTensorV2,
  RebuildTensorV3,
  RebuildParameter,
  StorageType,
  UntypedStorage,
  Dtype
};

struct Value {
  Kind kind = Kind::None;
  int64_t num = 0;  // Bool, Int; Global: Callable; Storage: index into storages; Tensor: index
  DType dtype = DType::F32;   // Global StorageType
  std::string text;           // Str, Bytes
  std::vector<size_t> items;  // Tuple, List; Dict and OrderedDict: key, value, key, value, ...
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::Str:
      return "a string";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "a tuple";
    case Kind::List:
      return "a list";
    case Kind::Dict:
      return "a dict";
    case Kind::OrderedDict:
      return "an OrderedDict";
    case Kind::Global:
      return "a global";
    case Kind::Storage:
      return "a storage";
    case Kind::Tensor:
      return "a tensor";
  }
  return "a value";
}

struct StorageTypeName {
  const char* name;
  DType dtype;
};
constexpr StorageTypeName kStorageTypes[] = {
    {"FloatStorage", DType::F32},  {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
    {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16},  {"CharStorage", DType::I8},  {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL},
};

// torch.<name> dtypes (the names torch.dtype pickles as) of the element types read.
constexpr StorageTypeName kDtypes[] = {
    {"float32", DType::F32}, {"float", DType::F32},     {"float16", DType::F16},
    {"half", DType::F16},    {"bfloat16", DType::BF16}, {"float64", DType::F64},
    {"double", DType::F64},  {"int64", DType::I64},     {"long", DType::I64},
    {"int32", DType::I32},   {"int", DType::I32},       {"int16", DType::I16},
    {"short", DType::I16},   {"int8", DType::I8},       {"uint8", DType::U8},
    {"bool", DType::BOOL},
};
// Other dtypes torch pickles (with _rebuild_tensor_v3): recognised, refused by name.
constexpr const char* kOtherDtypes[] = {
    "uint16",          "uint32",          "uint64",         "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "complex32",     "complex64",
    "complex128",      "cfloat",          "cdouble",        "chalf",         "bits8",
    "bits16",          "bits1x8",         "bits2x4",        "bits4x2",       "qint8",
    "quint8",          "qint32",          "quint4x2",       "quint2x4",      "float4_e2m1fn_x2",
};

constexpr const char* kAllowed =
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_tensor_v3 and "
    "_rebuild_parameter, the storage types torch.FloatStorage, HalfStorage, BFloat16Storage, "
    "DoubleStorage, LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage, BoolStorage "
    "and torch.storage.UntypedStorage, and the dtypes torch.float32, float16, bfloat16, float64, "
    "int64, int32, "
    "int16, int8, uint8, bool";

// At most this many values (about 20 per tensor in a state dict).
constexpr size_t kMaxValues = size_t{4} << 20;
constexpr size_t kMaxDims = 64;
constexpr size_t kMaxGlobalName = 200;

// Text from the file, made printable and short for a message.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMaxGlobalName; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > kMaxGlobalName) out += "...";
  return out;
}

// "file: pickle byte N", formatted only when a message is built.
struct At {
  const std::string& source;
  size_t pos;
};
std::ostream& operator<<(std::ostream& o, const At& a) {
  return o << a.source << ": pickle byte " << a.pos;
}

class Machine {
 public:
  Machine(const uint8_t* data, size_t size, const std::string& source)
      : p_(data), n_(size), source_(source) {}

  StateDict run() {
    check(n_ <= kMaxPickleBytes, source_, ": pickle of ", n_, " bytes is larger than the limit (",
          kMaxPickleBytes, ")");
    while (true) {
      need(1);
      op_pos_ = pos_;
      const uint8_t op = p_[pos_++];
      if (op == '.') break;  // STOP
      step(op);
      if (values_.size() > kMaxValues)
        throw Error(cat(where(), ": more than ", kMaxValues, " objects; not a state dict"));
    }
    return finish(pop());
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& source_;
  std::vector<Value> values_;
  std::vector<size_t> stack_;
  std::vector<std::vector<size_t>> marks_;
  std::unordered_map<uint64_t, size_t> memo_;
  StateDict out_;
  std::map<std::string, size_t> storage_by_key_;
  // Per storage: its persistent id's type and count (to compare later references with), and for
  // an UntypedStorage whether a view has fixed its dtype yet (the count is then in elements).
  struct StorageState {
    DType pid_dtype = DType::U8;
    uint64_t pid_numel = 0;
    bool untyped = false, dtype_fixed = true;
  };
  std::vector<StorageState> storage_state_;

  At where() const { return At{source_, op_pos_}; }

  void need(size_t k) const {
    check(k <= n_ - pos_, source_, ": pickle ends early (at byte ", n_, ", inside the opcode at ",
          op_pos_, "): truncated or corrupt");
  }
  uint64_t le(size_t k) {
    need(k);
    uint64_t v = 0;
    for (size_t i = k; i-- > 0;) v = (v << 8) | p_[pos_ + i];
    pos_ += k;
    return v;
  }
  std::string bytes(uint64_t k) {
    check(k <= n_ - pos_, source_, ": pickle ends early (a ", k, "-byte string at byte ", op_pos_,
          "): truncated or corrupt");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(k));
    pos_ += static_cast<size_t>(k);
    return s;
  }
  std::string line() {
    const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
    check(nl != nullptr, source_, ": pickle ends early (in a GLOBAL at byte ", op_pos_, ")");
    const size_t len = static_cast<size_t>(static_cast<const uint8_t*>(nl) - (p_ + pos_));
    std::string s = bytes(len);
    ++pos_;
    return s;
  }

  size_t make(Value v) {
    values_.push_back(std::move(v));
    return values_.size() - 1;
  }
  size_t make(Kind k, int64_t num = 0) {
    Value v;
    v.kind = k;
    v.num = num;
    return make(std::move(v));
  }
  void push(size_t v) { stack_.push_back(v); }
  size_t pop() {
    check(!stack_.empty(), where(), ": stack underflow (corrupt pickle)");
    const size_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  size_t top() const {
    check(!stack_.empty(), where(), ": stack underflow (corrupt pickle)");
    return stack_.back();
  }
  std::vector<size_t> pop_mark() {
    check(!marks_.empty(), where(), ": no MARK to pop to (corrupt pickle)");
    std::vector<size_t> items = std::move(stack_);
    stack_ = std::move(marks_.back());
    marks_.pop_back();
    return items;
  }
  size_t tuple(std::vector<size_t> items) {
    Value v;
    v.kind = Kind::Tuple;
    v.items = std::move(items);
    return make(std::move(v));
  }
  const Value& val(size_t i) const { return values_[i]; }

  bool is_dict(size_t i) const {
    return val(i).kind == Kind::Dict || val(i).kind == Kind::OrderedDict;
  }

  // A string argument: str, or bytes as torch's _maybe_decode_ascii accepts.
  bool text_is(size_t i, const char* s) const {
    return (val(i).kind == Kind::Str || val(i).kind == Kind::Bytes) && val(i).text == s;
  }

  size_t global(const std::string& module, const std::string& name) {
    Value v;
    v.kind = Kind::Global;
    if (module == "collections" && name == "OrderedDict") {
      v.num = static_cast<int64_t>(Callable::OrderedDict);
      return make(std::move(v));
    }
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      v.num = static_cast<int64_t>(Callable::RebuildTensorV2);
      return make(std::move(v));
    }
    if (module == "torch._utils" && name == "_rebuild_tensor_v3") {
      v.num = static_cast<int64_t>(Callable::RebuildTensorV3);
      return make(std::move(v));
    }
    if (module == "torch._utils" && name == "_rebuild_parameter") {
      v.num = static_cast<int64_t>(Callable::RebuildParameter);
      return make(std::move(v));
    }
    // torch.save pickles it under the class's module, torch.storage.
    if ((module == "torch.storage" || module == "torch") && name == "UntypedStorage") {
      v.num = static_cast<int64_t>(Callable::UntypedStorage);
      v.dtype = DType::U8;
      return make(std::move(v));
    }
    if (module == "torch") {
      for (const auto& dt : kDtypes) {
        if (name == dt.name) {
          v.num = static_cast<int64_t>(Callable::Dtype);
          v.dtype = dt.dtype;
          return make(std::move(v));
        }
      }
      for (const char* other : kOtherDtypes)
        if (name == other)
          throw Error(cat(where(), ": tensor dtype torch.", name,
                          " is not supported (supported: float32, float16, bfloat16, float64, "
                          "int64, int32, int16, int8, uint8, bool)"));
      for (const auto& st : kStorageTypes) {
        if (name == st.name) {
          v.num = static_cast<int64_t>(Callable::StorageType);
          v.dtype = st.dtype;
          return make(std::move(v));
        }
      }
      if (name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0)
        throw Error(cat(where(), ": storage type torch.", printable(name),
                        " is not supported (supported: Float, Half, BFloat16, Double, Long, Int, "
                        "Short, Char, Byte, Bool)"));
    }
    throw Error(cat(where(), ": refusing global ", printable(module), ".", printable(name),
                    ": a state dict needs only ", kAllowed, " (nothing in the file was executed)"));
  }

  void reduce() {
    const size_t args = pop();
    const size_t fn = top();
    check(val(fn).kind == Kind::Global, where(), ": REDUCE on ", kind_name(val(fn).kind),
          ", not a callable (corrupt pickle)");
    check(val(args).kind == Kind::Tuple, where(), ": REDUCE arguments are ",
          kind_name(val(args).kind), ", not a tuple");
    const auto c = static_cast<Callable>(val(fn).num);
    if (c == Callable::OrderedDict) {
      check(val(args).items.empty(), where(),
            ": collections.OrderedDict called with arguments (only OrderedDict() is supported)");
      stack_.back() = make(Kind::OrderedDict);
    } else if (c == Callable::RebuildTensorV2) {
      stack_.back() = rebuild_tensor(val(args).items, false);
    } else if (c == Callable::RebuildTensorV3) {
      stack_.back() = rebuild_tensor(val(args).items, true);
    } else if (c == Callable::RebuildParameter) {
      stack_.back() = rebuild_parameter(val(args).items);
    } else if (c == Callable::Dtype) {
      throw Error(cat(where(), ": a dtype is called; dtypes are only arguments"));
    } else {
      throw Error(cat(where(), ": a storage type is called; storages come from persistent ids"));
    }
  }

  int64_t int_arg(size_t v, const char* fn, const char* what) const {
    check(val(v).kind == Kind::Int, where(), ": ", fn, ": ", what, " is ", kind_name(val(v).kind),
          ", expected an int");
    return val(v).num;
  }

  // _rebuild_parameter(data, requires_grad, backward_hooks), as torch.nn.Parameter pickles
  // itself: the tensor `data`; the hooks must be an empty dict (PyTorch never saves hooks).
  size_t rebuild_parameter(const std::vector<size_t>& a) {
    const char* fn = "_rebuild_parameter";
    check(a.size() == 3, where(), ": ", fn, " takes 3 arguments, got ", a.size());
    check(val(a[0]).kind == Kind::Tensor, where(), ": ", fn, ": data is ",
          kind_name(val(a[0]).kind), ", expected a tensor");
    check(val(a[1]).kind == Kind::Bool, where(), ": ", fn, ": requires_grad is ",
          kind_name(val(a[1]).kind), ", expected a bool");
    check(is_dict(a[2]), where(), ": ", fn, ": backward_hooks is ", kind_name(val(a[2]).kind),
          ", expected an OrderedDict");
    check(val(a[2]).items.empty(), where(), ": ", fn, ": backward hooks are not supported");
    return a[0];
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
  // [, metadata]) and _rebuild_tensor_v3(..., backward_hooks, dtype[, metadata]): a view of
  // `storage` (v3: as `dtype`, usually of an UntypedStorage), checked to lie inside it.
  size_t rebuild_tensor(std::vector<size_t> a, bool v3) {
    const char* fn = v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2";
    const size_t fixed = v3 ? 7 : 6;
    check(a.size() == fixed || a.size() == fixed + 1, where(), ": ", fn, " takes ", fixed, " or ",
          fixed + 1, " arguments, got ", a.size());
    check(val(a[0]).kind == Kind::Storage, where(), ": ", fn, ": the first argument is ",
          kind_name(val(a[0]).kind), ", expected a storage (a persistent id)");
    Tensor t;
    t.storage = static_cast<size_t>(val(a[0]).num);
    if (v3) {
      const Value& d = val(a[6]);
      check(d.kind == Kind::Global && static_cast<Callable>(d.num) == Callable::Dtype, where(),
            ": ", fn, ": dtype is ", kind_name(d.kind),
            ", expected a torch dtype (torch.float32, ...)");
      view_storage_as(t.storage, d.dtype, fn);
    } else {
      view_storage_as(t.storage, DType::U8, fn);  // fixes an UntypedStorage as bytes
    }
    const int64_t offset = int_arg(a[1], fn, "storage_offset");
    check(offset >= 0, where(), ": ", fn, ": negative storage offset ", offset);
    t.offset = static_cast<uint64_t>(offset);
    for (int which = 0; which < 2; ++which) {
      const Value& tup = val(a[2 + which]);
      const char* what = which == 0 ? "size" : "stride";
      check(tup.kind == Kind::Tuple, where(), ": ", fn, ": ", what, " is ", kind_name(tup.kind),
            ", expected a tuple");
      check(tup.items.size() <= kMaxDims, where(), ": ", fn, ": ", tup.items.size(),
            " dimensions (at most ", kMaxDims, ")");
      auto& dst = which == 0 ? t.shape : t.stride;
      for (size_t d : tup.items) {
        const int64_t x = int_arg(d, fn, what);
        check(x >= 0, where(), ": ", fn, ": negative ", what, " ", x);
        dst.push_back(x);
      }
    }
    check(t.shape.size() == t.stride.size(), where(), ": ", fn, ": ", t.shape.size(), " sizes but ",
          t.stride.size(), " strides");
    check(val(a[4]).kind == Kind::Bool, where(), ": ", fn, ": requires_grad is ",
          kind_name(val(a[4]).kind), ", expected a bool");
    check(is_dict(a[5]), where(), ": ", fn, ": backward_hooks is ", kind_name(val(a[5]).kind),
          ", expected an OrderedDict");
    check(val(a[5]).items.empty(), where(), ": ", fn, ": backward hooks are not supported");
    if (a.size() == fixed + 1)
      check(is_dict(a[fixed]) || val(a[fixed]).kind == Kind::None, where(), ": ", fn,
            ": metadata is ", kind_name(val(a[fixed]).kind), ", expected a dict");

    // The view must lie inside the storage: offset + sum((size-1) * stride) < numel.
    const Storage& s = out_.storages[t.storage];
    const std::string what = cat(where(), ": tensor view (offset ", t.offset, ") of storage \"",
                                 printable(s.key), "\" (", s.numel, " elements)");
    unsigned __int128 numel = 1, last = t.offset;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      numel *= static_cast<uint64_t>(t.shape[d]);
      check(numel <= (uint64_t{1} << 62), what, ": more than 2^62 elements");
    }
    if (numel > 0) {
      for (size_t d = 0; d < t.shape.size(); ++d)
        last += static_cast<unsigned __int128>(t.shape[d] - 1) * static_cast<uint64_t>(t.stride[d]);
      check(last < s.numel, what, ": reaches element ",
            static_cast<uint64_t>(last > ~uint64_t{0} ? ~uint64_t{0} : last),
            ", past the storage's end");
    } else {
      check(t.offset <= s.numel, what, ": offset past the storage's end");
    }
    out_.tensors.push_back(std::move(t));
    return make(Kind::Tensor, static_cast<int64_t>(out_.tensors.size() - 1));
  }

  // BINPERSID: ('storage', storage_type, key, location, numel).
  size_t persistent_load(size_t pid) {
    const Value& t = val(pid);
    check(t.kind == Kind::Tuple && t.items.size() == 5, where(),
          ": persistent id is not a 5-tuple ('storage', type, key, location, numel)");
    const auto& it = t.items;
    check(text_is(it[0], "storage"), where(), ": only persistent ids of storages are allowed");
    const bool untyped = val(it[1]).kind == Kind::Global &&
                         static_cast<Callable>(val(it[1]).num) == Callable::UntypedStorage;
    check(untyped || (val(it[1]).kind == Kind::Global &&
                      static_cast<Callable>(val(it[1]).num) == Callable::StorageType),
          where(), ": persistent id: the storage type is ", kind_name(val(it[1]).kind),
          ", expected torch.<Type>Storage or torch.UntypedStorage");
    std::string key;
    if (val(it[2]).kind == Kind::Str) {
      key = val(it[2]).text;
    } else {
      check(val(it[2]).kind == Kind::Int && val(it[2]).num >= 0, where(),
            ": persistent id: the storage key is ", kind_name(val(it[2]).kind),
            ", expected a string");
      key = std::to_string(val(it[2]).num);
    }
    check(!key.empty() && key.find('/') == std::string::npos, where(), ": storage key \"",
          printable(key), "\" is not a plain entry name");
    check(val(it[3]).kind == Kind::Str || val(it[3]).kind == Kind::Bytes, where(),
          ": persistent id: the location is ", kind_name(val(it[3]).kind), ", expected a string");
    check(val(it[4]).kind == Kind::Int && val(it[4]).num >= 0, where(),
          ": persistent id: the element count is not a non-negative int");
    Storage s{key, val(it[1]).dtype, static_cast<uint64_t>(val(it[4]).num), val(it[3]).text};
    auto [found, inserted] = storage_by_key_.emplace(key, out_.storages.size());
    if (inserted) {
      storage_state_.push_back(StorageState{s.dtype, s.numel, untyped, !untyped});
      out_.storages.push_back(std::move(s));
    } else {
      const StorageState& old = storage_state_[found->second];
      check(old.pid_dtype == s.dtype && old.pid_numel == s.numel && old.untyped == untyped, where(),
            ": storage \"", printable(key), "\" is named twice with different types or sizes (",
            old.untyped ? "torch.UntypedStorage" : storage_type_name(old.pid_dtype), " x ",
            old.pid_numel, " vs ", untyped ? "torch.UntypedStorage" : storage_type_name(s.dtype),
            " x ", s.numel, ")");
    }
    return make(Kind::Storage, static_cast<int64_t>(found->second));
  }

  // A view of storage `i` as `dtype`. A typed storage must have that dtype (v2 views take the
  // storage's own); an UntypedStorage (its count in bytes) takes the dtype of its first view,
  // and every later view must agree.
  void view_storage_as(size_t i, DType dtype, const char* fn) {
    StorageState& st = storage_state_[i];
    Storage& s = out_.storages[i];
    if (!st.untyped) {
      check(std::string(fn) == "_rebuild_tensor_v2" || s.dtype == dtype, where(), ": ", fn,
            ": dtype ", safetensors::dtype_name(dtype), " over storage \"", printable(s.key),
            "\" of type ", storage_type_name(s.dtype));
      return;
    }
    if (st.dtype_fixed) {
      check(s.dtype == dtype, where(), ": ", fn, ": untyped storage \"", printable(s.key),
            "\" is viewed as both ", safetensors::dtype_name(s.dtype), " and ",
            safetensors::dtype_name(dtype), " (not supported)");
      return;
    }
    const uint64_t size = safetensors::dtype_size(dtype);
    check(st.pid_numel % size == 0, where(), ": ", fn, ": untyped storage \"", printable(s.key),
          "\" of ", st.pid_numel, " bytes is not a whole number of ",
          safetensors::dtype_name(dtype), " elements");
    s.dtype = dtype;
    s.numel = st.pid_numel / size;
    st.dtype_fixed = true;
  }

  void setitems(std::vector<size_t> kv) {
    const size_t d = top();
    check(is_dict(d), where(), ": SETITEM on ", kind_name(val(d).kind), ", not a dict");
    check(kv.size() % 2 == 0, where(), ": SETITEMS with an odd number of items");
    auto& items = values_[d].items;
    items.insert(items.end(), kv.begin(), kv.end());
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t proto = le(1);
        check(proto >= 2 && proto <= 5, where(), ": pickle protocol ", proto,
              " (torch.save writes protocol 2; 2 to 5 are read)");
        return;
      }
      case 0x95:  // FRAME (protocol 4): a length hint
        le(8);
        return;
      case 'c': {  // GLOBAL module\nname\n
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        const size_t name = pop(), module = pop();
        check(val(name).kind == Kind::Str && val(module).kind == Kind::Str, where(),
              ": STACK_GLOBAL needs two strings");
        push(global(val(module).text, val(name).text));
        return;
      }
      case 'R':  // REDUCE
        reduce();
        return;
      case 'b': {  // BUILD: only OrderedDict attributes (Hugging Face's _metadata), ignored
        pop();
        const size_t inst = top();
        check(val(inst).kind == Kind::OrderedDict, where(), ": BUILD on ",
              kind_name(val(inst).kind), " (only an OrderedDict's attributes may be set)");
        return;
      }
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        return;
      case '(':  // MARK
        marks_.push_back(std::move(stack_));
        stack_.clear();
        return;
      case 't':  // TUPLE
        push(tuple(pop_mark()));
        return;
      case ')':  // EMPTY_TUPLE
        push(tuple({}));
        return;
      case 0x85:    // TUPLE1
      case 0x86:    // TUPLE2
      case 0x87: {  // TUPLE3
        const size_t k = static_cast<size_t>(op - 0x84);
        check(stack_.size() >= k, where(), ": stack underflow (corrupt pickle)");
        std::vector<size_t> items(stack_.end() - static_cast<std::ptrdiff_t>(k), stack_.end());
        stack_.resize(stack_.size() - k);
        push(tuple(std::move(items)));
        return;
      }
      case ']':  // EMPTY_LIST
        push(make(Kind::List));
        return;
      case 'l': {  // LIST
        Value v;
        v.kind = Kind::List;
        v.items = pop_mark();
        push(make(std::move(v)));
        return;
      }
      case 'a': {  // APPEND
        const size_t item = pop();
        const size_t l = top();
        check(val(l).kind == Kind::List, where(), ": APPEND to ", kind_name(val(l).kind));
        values_[l].items.push_back(item);
        return;
      }
      case 'e': {  // APPENDS
        std::vector<size_t> items = pop_mark();
        const size_t l = top();
        check(val(l).kind == Kind::List, where(), ": APPENDS to ", kind_name(val(l).kind));
        values_[l].items.insert(values_[l].items.end(), items.begin(), items.end());
        return;
      }
      case '}':  // EMPTY_DICT
        push(make(Kind::Dict));
        return;
      case 'd': {  // DICT
        std::vector<size_t> kv = pop_mark();
        push(make(Kind::Dict));
        setitems(std::move(kv));
        return;
      }
      case 's': {  // SETITEM
        const size_t v = pop(), k = pop();
        setitems({k, v});
        return;
      }
      case 'u':  // SETITEMS
        setitems(pop_mark());
        return;
      case 'N':  // NONE
        push(make(Kind::None));
        return;
      case 0x88:  // NEWTRUE
      case 0x89:  // NEWFALSE
        push(make(Kind::Bool, op == 0x88 ? 1 : 0));
        return;
      case 'J':  // BININT: signed 32-bit
        push(make(Kind::Int, static_cast<int32_t>(static_cast<uint32_t>(le(4)))));
        return;
      case 'K':  // BININT1
        push(make(Kind::Int, static_cast<int64_t>(le(1))));
        return;
      case 'M':  // BININT2
        push(make(Kind::Int, static_cast<int64_t>(le(2))));
        return;
      case 0x8a: {  // LONG1: n bytes, two's complement little-endian
        const size_t k = static_cast<size_t>(le(1));
        check(k <= 8, where(), ": integer of ", k, " bytes does not fit 64 bits");
        uint64_t v = k > 0 ? le(k) : 0;
        if (k > 0 && k < 8 && (v >> (8 * k - 1)) != 0) v |= ~uint64_t{0} << (8 * k);  // sign
        push(make(Kind::Int, static_cast<int64_t>(v)));
        return;
      }
      case 'G': {  // BINFLOAT: big-endian double
        need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p_[pos_ + static_cast<size_t>(i)];
        pos_ += 8;
        Value v;
        v.kind = Kind::Float;
        v.num = static_cast<int64_t>(bits);
        push(make(std::move(v)));
        return;
      }
      case 'X':    // BINUNICODE (u32 length)
      case 0x8c:   // SHORT_BINUNICODE (u8)
      case 0x8d:   // BINUNICODE8 (u64)
      case 'U':    // SHORT_BINSTRING (u8), decoded as text like torch.load's encoding="ASCII"
      case 'T': {  // BINSTRING (u32)
        const size_t width = op == 0x8c || op == 'U' ? 1 : op == 0x8d ? 8 : 4;
        Value v;
        v.kind = Kind::Str;
        v.text = bytes(le(width));
        push(make(std::move(v)));
        return;
      }
      case 'C':     // SHORT_BINBYTES
      case 'B':     // BINBYTES
      case 0x8e: {  // BINBYTES8
        const size_t width = op == 'C' ? 1 : op == 'B' ? 4 : 8;
        Value v;
        v.kind = Kind::Bytes;
        v.text = bytes(le(width));
        push(make(std::move(v)));
        return;
      }
      case 'q':  // BINPUT
      case 'r':  // LONG_BINPUT
        memo_[le(op == 'q' ? 1 : 4)] = top();
        return;
      case 0x94:  // MEMOIZE
        memo_[memo_.size()] = top();
        return;
      case 'h':    // BINGET
      case 'j': {  // LONG_BINGET
        const uint64_t k = le(op == 'h' ? 1 : 4);
        auto it = memo_.find(k);
        check(it != memo_.end(), where(), ": memo entry ", k, " was never stored (corrupt pickle)");
        push(it->second);
        return;
      }
      default:
        break;
    }
    const char shown = op >= 0x20 && op < 0x7f ? static_cast<char>(op) : '?';
    throw Error(cat(where(), ": pickle opcode 0x", std::hex, static_cast<int>(op), std::dec, " ('",
                    shown, "') is not supported: a torch.save'd state dict does not use it"));
  }

  StateDict finish(size_t result) {
    check(is_dict(result), source_, ": the pickle holds ", kind_name(val(result).kind),
          ", not a state dict (a dict of tensor names to tensors)");
    const auto& items = val(result).items;
    std::map<std::string, size_t> seen;
    std::vector<Tensor> tensors;
    tensors.reserve(items.size() / 2);
    for (size_t i = 0; i + 1 < items.size(); i += 2) {
      const Value& k = val(items[i]);
      const Value& v = val(items[i + 1]);
      check(k.kind == Kind::Str, source_, ": state dict key ", i / 2, " is ", kind_name(k.kind),
            ", expected a tensor name");
      check(v.kind == Kind::Tensor, source_, ": state dict entry \"", printable(k.text), "\" is ",
            kind_name(v.kind), ", expected a tensor");
      check(seen.emplace(k.text, i).second, source_, ": tensor \"", printable(k.text),
            "\" appears twice in the state dict");
      Tensor t = out_.tensors[static_cast<size_t>(v.num)];
      t.name = k.text;
      tensors.push_back(std::move(t));
    }
    out_.tensors = std::move(tensors);
    return std::move(out_);
  }
};

}  // namespace

std::string storage_type_name(DType d) {
  for (const auto& st : kStorageTypes)
    if (st.dtype == d) return std::string("torch.") + st.name;
  return "torch.?Storage";
}

StateDict parse_state_dict(const uint8_t* data, size_t size, const std::string& source) {
  return Machine(data, size, source).run();
}

}  // namespace compacter::torch_pickle
