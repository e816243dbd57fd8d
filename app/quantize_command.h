// `edgefl quantize`: turns an fp32 checkpoint of a model into an int8 or int4 one
// (models/quantized.h) and prints what that cost: the size before and after, and the max and
// mean absolute weight error of each quantized tensor.
//
//   CLI::App app{"edgefl"};
//   int exit_code = 0;
//   edgefl::app::AddQuantizeCommand(app, exit_code);  // edgefl quantize --model mlp ...
#pragma once

#include <iosfwd>
#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace edgefl::app {

struct QuantizeFlags {
  std::string model = "mlp";  // a built-in model name or a model file (models::CreateModel)
  std::string checkpoint;     // fp32 safetensors file with the model's parameters
  std::string format = "q8";  // q8 or q4
  std::string out;            // where the quantized safetensors file goes
};

// Loads `flags.checkpoint` into `flags.model`, quantizes every dense layer to `flags.format`,
// writes `flags.out` (metadata "format" = "edgefl-q8" / "edgefl-q4", "model", and the source's
// other metadata, e.g. train's "data" and "categories") and prints the table to `out`. Returns
// 0, or prints the error to `err` and returns 2 for a bad model or format name and 1 for a
// file that cannot be read, is not a checkpoint of that model, or cannot be written.
int RunQuantizeCommand(const QuantizeFlags& flags, std::ostream& out, std::ostream& err);

// Adds the `quantize` subcommand (--model, --checkpoint, --format, --out) to `app`; when it
// runs it stores RunQuantizeCommand's result in `exit_code`.
void AddQuantizeCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app
