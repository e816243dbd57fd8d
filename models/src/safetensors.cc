// safetensors reading and writing (checkpoint.h). The validation follows the reference Rust
// implementation (safetensors/src/tensor.rs): a bounded header length, a JSON object header,
// and tensors that tile the data buffer exactly, so a file that loads here loads there too.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "edgefl/common/check.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/layers.h"

namespace edgefl::models {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; edgefl copies it as is");

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";

struct DtypeInfo {
  TensorDtype dtype;
  std::string_view name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {TensorDtype::kF64, "F64", 8}, {TensorDtype::kF32, "F32", 4}, {TensorDtype::kF16, "F16", 2},
    {TensorDtype::kBF16, "BF16", 2}, {TensorDtype::kI64, "I64", 8}, {TensorDtype::kI32, "I32", 4},
    {TensorDtype::kI16, "I16", 2}, {TensorDtype::kI8, "I8", 1},   {TensorDtype::kU8, "U8", 1},
    {TensorDtype::kBool, "BOOL", 1},
};

const DtypeInfo& Info(TensorDtype dtype) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.dtype == dtype) return info;
  }
  EDGEFL_CHECK(false) << "unknown TensorDtype " << static_cast<int>(dtype);
  return kDtypes[0];
}

// Number of elements, or nothing when a dimension is negative or the product overflows
// `limit`.
bool CountElements(std::span<const int64_t> shape, uint64_t limit, uint64_t& count) {
  count = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && count > limit / u) return false;
    count *= u;
  }
  return true;
}

template <typename T>
Tensor MakeTensor(TensorDtype dtype, std::vector<int64_t> shape, std::span<const T> values) {
  uint64_t count = 0;
  EDGEFL_CHECK(CountElements(shape, std::numeric_limits<uint64_t>::max(), count) &&
               count == values.size())
      << "tensor of shape " << ShapeToString(shape) << " given " << values.size() << " values";
  Tensor tensor{.dtype = dtype, .shape = std::move(shape), .bytes = {}};
  tensor.bytes.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(tensor.bytes.data(), values.data(), values.size_bytes());
  return tensor;
}

// Deepest nesting of JSON arrays and objects in `text`, ignoring brackets inside strings; stops
// counting once past `limit`. nlohmann's parser recurses once per level, so this keeps a
// hostile header ("[[[[...") from exhausting the stack.
int NestingDepth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// "'<path>'", built by appending: GCC 12 warns falsely (-Wrestrict) on "'" + std::string.
std::string Quoted(const std::filesystem::path& path) {
  std::string text = "'";
  text += path.string();
  text += '\'';
  return text;
}

Status Corrupt(const std::string& detail) {
  return DataLossError("invalid safetensors file: " + detail);
}

struct Entry {
  std::string name;
  TensorDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

Result<Entry> ParseEntry(const std::string& name, const Json& value) {
  if (!value.is_object()) return Corrupt("tensor '" + name + "' is not a JSON object");
  const auto dtype_it = value.find("dtype");
  const auto shape_it = value.find("shape");
  const auto offsets_it = value.find("data_offsets");
  if (dtype_it == value.end() || !dtype_it->is_string()) {
    return Corrupt("tensor '" + name + "' has no string \"dtype\"");
  }
  if (shape_it == value.end() || !shape_it->is_array()) {
    return Corrupt("tensor '" + name + "' has no array \"shape\"");
  }
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return Corrupt("tensor '" + name + "' has no \"data_offsets\" pair");
  }
  Result<TensorDtype> dtype = ParseDtype(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) return dtype.status().WithContext("tensor '" + name + "'");
  Entry entry{.name = name, .dtype = *dtype, .shape = {}, .begin = 0, .end = 0};
  for (const Json& d : *shape_it) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{1} << 62) {
      return Corrupt("tensor '" + name + "' has a shape dimension that is not a count: " +
                     d.dump());
    }
    entry.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  for (const Json& o : *offsets_it) {
    if (!o.is_number_unsigned()) {
      return Corrupt("tensor '" + name + "' has a data offset that is not a count: " + o.dump());
    }
  }
  entry.begin = (*offsets_it)[0].get<uint64_t>();
  entry.end = (*offsets_it)[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    return Corrupt("tensor '" + name + "' has data_offsets [" + std::to_string(entry.begin) +
                   ", " + std::to_string(entry.end) + "] with begin > end");
  }
  uint64_t count = 0;
  const size_t element_size = Info(entry.dtype).size;
  if (!CountElements(entry.shape, std::numeric_limits<uint64_t>::max() / element_size, count) ||
      count * element_size != entry.end - entry.begin) {
    return Corrupt("tensor '" + name + "' of dtype " + std::string(Info(entry.dtype).name) +
                   " and shape " + ShapeToString(entry.shape) + " cannot fill " +
                   std::to_string(entry.end - entry.begin) + " bytes");
  }
  return entry;
}

Status UnavailableErrno(const std::string& what, const std::filesystem::path& path) {
  return UnavailableError(what + " '" + path.string() + "': " + std::strerror(errno));
}

Status WriteAll(int fd, const uint8_t* data, size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return UnavailableErrno("cannot write", path);
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return OkStatus();
}

}  // namespace

std::string_view DtypeName(TensorDtype dtype) { return Info(dtype).name; }
size_t DtypeSize(TensorDtype dtype) { return Info(dtype).size; }

Result<TensorDtype> ParseDtype(std::string_view name) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.name == name) return info.dtype;
  }
  return UnimplementedError("safetensors dtype '" + std::string(name) +
                            "' is not supported (F64, F32, F16, BF16, I64, I32, I16, I8, U8, "
                            "BOOL are)");
}

Tensor F32Tensor(std::vector<int64_t> shape, std::span<const float> values) {
  return MakeTensor(TensorDtype::kF32, std::move(shape), values);
}
Tensor I8Tensor(std::vector<int64_t> shape, std::span<const int8_t> values) {
  return MakeTensor(TensorDtype::kI8, std::move(shape), values);
}
Tensor U8Tensor(std::vector<int64_t> shape, std::span<const uint8_t> values) {
  return MakeTensor(TensorDtype::kU8, std::move(shape), values);
}

Result<std::vector<float>> TensorToF32(const Tensor& tensor, std::string_view name) {
  if (tensor.dtype != TensorDtype::kF32) {
    return InvalidArgumentError("tensor '" + std::string(name) + "' has dtype " +
                                std::string(DtypeName(tensor.dtype)) + ", expected F32");
  }
  std::vector<float> values(tensor.bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), tensor.bytes.data(), values.size() * 4);
  return values;
}

std::vector<uint8_t> SerializeSafetensors(const TensorMap& tensors, const Metadata& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    EDGEFL_CHECK(name != kMetadataKey) << "a tensor cannot be named " << kMetadataKey;
    uint64_t count = 0;
    EDGEFL_CHECK(CountElements(tensor.shape, std::numeric_limits<uint64_t>::max(), count) &&
                 count * DtypeSize(tensor.dtype) == tensor.bytes.size())
        << "tensor " << name << " of shape " << ShapeToString(tensor.shape) << " holds "
        << tensor.bytes.size() << " bytes";
    header[name] = Json{{"dtype", std::string(DtypeName(tensor.dtype))},
                        {"shape", tensor.shape},
                        {"data_offsets", {offset, offset + tensor.bytes.size()}}};
    offset += tensor.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so that the data buffer starts 8-byte aligned, as the Python writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> image(8 + text.size() + offset);
  const uint64_t length = text.size();
  std::memcpy(image.data(), &length, 8);
  std::memcpy(image.data() + 8, text.data(), text.size());
  uint8_t* data = image.data() + 8 + text.size();
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.bytes.empty()) std::memcpy(data, tensor.bytes.data(), tensor.bytes.size());
    data += tensor.bytes.size();
  }
  return image;
}

Result<Safetensors> ParseSafetensors(std::span<const uint8_t> image) {
  if (image.size() < 8) {
    return Corrupt("file of " + std::to_string(image.size()) +
                   " bytes is shorter than the 8-byte header length");
  }
  uint64_t header_length = 0;
  std::memcpy(&header_length, image.data(), 8);
  if (header_length > kMaxSafetensorsHeaderBytes) {
    return Corrupt("header length " + std::to_string(header_length) + " exceeds the limit of " +
                   std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (header_length > image.size() - 8) {
    return Corrupt("header length " + std::to_string(header_length) + " exceeds the " +
                   std::to_string(image.size() - 8) + " bytes after it");
  }
  const std::string_view text(reinterpret_cast<const char*>(image.data() + 8), header_length);
  if (text.empty() || text.front() != '{') return Corrupt("header does not start with '{'");
  if (NestingDepth(text, kMaxSafetensorsHeaderDepth) > kMaxSafetensorsHeaderDepth) {
    return Corrupt("header nests deeper than " + std::to_string(kMaxSafetensorsHeaderDepth));
  }
  const Json header = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt("header is not a JSON object");
  }

  Safetensors result;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) return Corrupt("__metadata__ is not an object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          return Corrupt("__metadata__ value of '" + meta_key + "' is not a string");
        }
        result.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    EDGEFL_ASSIGN_OR_RETURN(Entry entry, ParseEntry(key, value));
    entries.push_back(std::move(entry));
  }

  // The tensors must tile [0, data size) exactly: sorted by offsets, each starts where the
  // previous one ended (zero-size tensors may share an offset).
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_size = image.size() - 8 - header_length;
  uint64_t expected = 0;
  for (const Entry& entry : entries) {
    if (entry.begin != expected) {
      return Corrupt("tensor '" + entry.name + "' starts at byte " + std::to_string(entry.begin) +
                     " of the data buffer, expected " + std::to_string(expected) +
                     (entry.begin < expected ? " (overlap)" : " (gap)"));
    }
    expected = entry.end;
  }
  if (expected != data_size) {
    return Corrupt("tensors cover " + std::to_string(expected) + " bytes but the data buffer has " +
                   std::to_string(data_size) + (expected < data_size ? " (trailing bytes)"
                                                                       : " (truncated)"));
  }
  const uint8_t* data = image.data() + 8 + header_length;
  for (Entry& entry : entries) {
    Tensor tensor{.dtype = entry.dtype, .shape = std::move(entry.shape), .bytes = {}};
    tensor.bytes.assign(data + entry.begin, data + entry.end);
    result.tensors.emplace(std::move(entry.name), std::move(tensor));
  }
  return result;
}

Status SaveSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                       const Metadata& metadata) {
  const std::vector<uint8_t> image = SerializeSafetensors(tensors, metadata);
  std::filesystem::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableErrno("cannot create", temporary);
  Status status = WriteAll(fd, image.data(), image.size(), temporary);
  if (status.ok() && ::fsync(fd) != 0) status = UnavailableErrno("cannot fsync", temporary);
  if (::close(fd) != 0 && status.ok()) status = UnavailableErrno("cannot close", temporary);
  if (status.ok() && std::rename(temporary.c_str(), path.c_str()) != 0) {
    status = UnavailableErrno("cannot rename onto", path);
  }
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    return status;
  }
  // Make the rename itself durable.
  std::filesystem::path directory = path.parent_path();
  if (directory.empty()) directory = ".";
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return OkStatus();
}

Result<Safetensors> LoadSafetensors(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return NotFoundError("checkpoint '" + path.string() + "' does not exist");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableErrno("cannot open", path);
  std::vector<uint8_t> image((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) return UnavailableErrno("cannot read", path);
  Result<Safetensors> parsed = ParseSafetensors(image);
  if (!parsed.ok()) return parsed.status().WithContext(Quoted(path));
  return parsed;
}

Status SaveModel(const std::filesystem::path& path, const Model& model, Metadata metadata) {
  metadata.try_emplace("model", model.name());
  TensorMap tensors;
  const std::span<const float> parameters = model.parameters();
  for (const ParameterSpec& spec : model.layout().specs()) {
    tensors.emplace(spec.name, F32Tensor(spec.shape, parameters.subspan(spec.offset, spec.size)));
  }
  return SaveSafetensors(path, tensors, metadata);
}

Status SetModelParameters(const TensorMap& tensors, Model& model) {
  std::vector<float> staged(model.layout().size());
  for (const ParameterSpec& spec : model.layout().specs()) {
    const auto it = tensors.find(spec.name);
    if (it == tensors.end()) {
      return NotFoundError("checkpoint has no tensor '" + spec.name + "' for model '" +
                           model.name() + "'");
    }
    const Tensor& tensor = it->second;
    if (tensor.dtype != TensorDtype::kF32) {
      return InvalidArgumentError("tensor '" + spec.name + "' has dtype " +
                                  std::string(DtypeName(tensor.dtype)) + ", expected F32");
    }
    if (tensor.shape != spec.shape) {
      return InvalidArgumentError("tensor '" + spec.name + "' has shape " +
                                  ShapeToString(tensor.shape) + ", model '" + model.name() +
                                  "' expects " + ShapeToString(spec.shape));
    }
    std::memcpy(staged.data() + spec.offset, tensor.bytes.data(), spec.size * sizeof(float));
  }
  std::copy(staged.begin(), staged.end(), model.parameters().begin());
  return OkStatus();
}

Status LoadModelParameters(const std::filesystem::path& path, Model& model) {
  EDGEFL_ASSIGN_OR_RETURN(Safetensors file, LoadSafetensors(path));
  return SetModelParameters(file.tensors, model).WithContext(Quoted(path));
}

}  // namespace edgefl::models
