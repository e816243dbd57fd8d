// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): model
// parameters, quantized base weights and LoRA adapters, readable by the Python `safetensors`
// package and by anything that can parse 8 bytes, JSON and a flat buffer.
//
// File layout (all integers little-endian):
//   u64 N | N bytes of UTF-8 JSON header, padded with spaces to a multiple of 8 | data buffer
// The header maps each tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [begin,
// end]} (offsets in bytes, relative to the start of the data buffer, end exclusive) and may hold
// "__metadata__": {string: string}. Tensors are row-major and little-endian; edgefl writes them
// in name order, back to back, with no gap. Quantized weights are tensors too (quantized.h:
// "fc1.weight.q8" I8, "fc1.weight.q4" U8, "fc1.weight.scale" F32; metadata "format").
//
// Plain functions, no shared state: safe to call from any number of threads on distinct files.
// Loading reads the whole file into memory once.
//
//   TensorMap tensors;
//   tensors["fc1.weight"] = F32Tensor({200, 784}, weights);
//   EDGEFL_RETURN_IF_ERROR(SaveSafetensors("model.safetensors", tensors, {{"format", "pt"}}));
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/model.h"

namespace edgefl::models {

// The element types of the safetensors format that edgefl reads and writes. Values are
// edgefl's own and never renumbered; the file spells them as DtypeName() gives.
enum class TensorDtype : uint8_t {
  kF64 = 0,   // "F64"
  kF32 = 1,   // "F32"
  kF16 = 2,   // "F16"
  kBF16 = 3,  // "BF16"
  kI64 = 4,   // "I64"
  kI32 = 5,   // "I32"
  kI16 = 6,   // "I16"
  kI8 = 7,    // "I8"
  kU8 = 8,    // "U8"
  kBool = 9,  // "BOOL", one byte per element
};

// "F32", ... as the format spells it.
std::string_view DtypeName(TensorDtype dtype);
// Bytes per element.
size_t DtypeSize(TensorDtype dtype);
// kUnimplemented naming the dtype for spellings edgefl does not handle (e.g. "F8_E4M3").
Result<TensorDtype> ParseDtype(std::string_view name);

// One tensor: its element type, its row-major shape (empty for a scalar; dimensions >= 0) and
// its raw little-endian bytes, NumElements(shape) * DtypeSize(dtype) of them.
struct Tensor {
  TensorDtype dtype = TensorDtype::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
using TensorMap = std::map<std::string, Tensor, std::less<>>;
using Metadata = std::map<std::string, std::string, std::less<>>;

struct Safetensors {
  TensorMap tensors;
  Metadata metadata;  // the "__metadata__" object; empty when absent
};

// Tensor constructors from typed values. Precondition (checked): values.size() equals the
// product of `shape`.
Tensor F32Tensor(std::vector<int64_t> shape, std::span<const float> values);
Tensor I8Tensor(std::vector<int64_t> shape, std::span<const int8_t> values);
Tensor U8Tensor(std::vector<int64_t> shape, std::span<const uint8_t> values);
// The values of an F32 tensor. kInvalidArgument naming `name` (for the message) when the
// tensor is not F32.
Result<std::vector<float>> TensorToF32(const Tensor& tensor, std::string_view name);

// Largest header edgefl accepts, as the reference Rust implementation (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
// Deepest JSON nesting accepted in a header (a valid one needs 3): bounds the parser's stack.
inline constexpr int kMaxSafetensorsHeaderDepth = 16;

// The file image: length, header (keys sorted, no whitespace, space-padded to a multiple of
// 8 bytes), then every tensor in name order. Preconditions (checked): each tensor's byte length
// matches its dtype and shape and no dimension is negative; no tensor is named "__metadata__".
std::vector<uint8_t> SerializeSafetensors(const TensorMap& tensors, const Metadata& metadata);

// Parses and validates a whole file image. kDataLoss with the detail when: the image is shorter
// than 8 bytes; the header length exceeds kMaxSafetensorsHeaderBytes or the image; the header
// is not a JSON object (or nests deeper than kMaxSafetensorsHeaderDepth); an entry lacks or
// mistypes dtype, shape or data_offsets; a shape has a negative dimension or overflows; begin >
// end; byte length != element count * dtype size; the tensors do not tile the data buffer
// exactly (a gap, an overlap, or bytes after the last tensor); metadata values are not strings.
// kUnimplemented for a dtype outside TensorDtype.
Result<Safetensors> ParseSafetensors(std::span<const uint8_t> image);

// Writes atomically: a temporary file next to `path`, fsync, rename over `path`, fsync of the
// directory; a crash leaves either the old file or the new one. kUnavailable naming the path
// and errno's text when a step fails (the temporary file is then removed).
[[nodiscard]] Status SaveSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                                     const Metadata& metadata = {});
// kNotFound when the file does not exist, kUnavailable when it cannot be read, and the errors
// of ParseSafetensors (their messages prefixed with the path).
Result<Safetensors> LoadSafetensors(const std::filesystem::path& path);

// Saves model.parameters() as one F32 tensor per layout entry, under the layout's names and
// shapes. `metadata` gets "model" = model.name() unless it already has that key.
[[nodiscard]] Status SaveModel(const std::filesystem::path& path, const Model& model,
                               Metadata metadata = {});
// Fills model.parameters() from the tensors of the same names. Errors, each naming the
// tensor: kNotFound when one is missing, kInvalidArgument when its dtype is not F32 or its
// shape differs from the layout's. Tensors the layout does not name are ignored (a checkpoint
// may carry more, e.g. a quantized base next to adapters). On error the model is unchanged.
[[nodiscard]] Status LoadModelParameters(const std::filesystem::path& path, Model& model);
// The same from already-loaded tensors.
[[nodiscard]] Status SetModelParameters(const TensorMap& tensors, Model& model);

}  // namespace edgefl::models
