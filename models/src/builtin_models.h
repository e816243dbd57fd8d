// The built-in model files (models/builtin/<name>.toml), compiled into the library by
// models/builtin/embed.cmake (private).
#pragma once

#include <span>
#include <string_view>

namespace edgefl::models::internal {

struct BuiltinModelText {
  std::string_view name;  // "logreg", "mlp", "cnn"
  std::string_view toml;  // the file's text
};

// In the order of models/builtin/embed.cmake's EDGEFL_BUILTIN_MODELS. Defined in the generated
// builtin_models.cc.
std::span<const BuiltinModelText> BuiltinModelTexts();

}  // namespace edgefl::models::internal
