// `edgefl quantize` (quantize_command.h).
#include "quantize_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "edgefl/models/charlm.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/model.h"
#include "edgefl/models/quantized.h"

namespace edgefl::app {
namespace {

constexpr int kUsageError = 2;
constexpr int kRuntimeError = 1;

std::string Format(const char* format, auto... values) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer), format, values...);
  return buffer;
}

Result<models::TensorMap> QuantizeSequential(std::unique_ptr<models::Model> model,
                                             models::WeightFormat format,
                                             std::vector<models::QuantizedTensorReport>* report) {
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<models::Model> quantized,
                          models::QuantizeModel(std::move(model), {.format = format}, report));
  return models::QuantizedModelTensors(*quantized);
}

}  // namespace

int RunQuantizeCommand(const QuantizeFlags& flags, std::ostream& out, std::ostream& err) {
  auto fail = [&err](const Status& status, int code) {
    err << "edgefl quantize: " << status.message() << "\n";
    return code;
  };
  Result<models::WeightFormat> format = models::ParseWeightFormat(flags.format);
  if (!format.ok() || *format == models::WeightFormat::kF32) {
    return fail(InvalidArgumentError("--format must be q8 or q4, got '" + flags.format + "'"),
                kUsageError);
  }
  Result<std::unique_ptr<models::Model>> model =
      models::CreateModel(models::ModelSpec{.name = flags.model});
  if (!model.ok()) return fail(model.status(), kUsageError);
  // Read once: the tensors become the model's parameters, and the metadata (what `edgefl train`
  // recorded: data, categories, steps) carries over, so that `edgefl eval` finds the same
  // held-out data for the quantized file.
  Result<models::Safetensors> source = models::LoadSafetensors(flags.checkpoint);
  if (!source.ok()) return fail(source.status(), kRuntimeError);
  if (Status status = models::SetModelParameters(source->tensors, **model); !status.ok()) {
    std::string context = "'";  // appended: GCC 12 warns falsely (-Wrestrict) on "'" + string
    context += flags.checkpoint;
    context += '\'';
    return fail(status.WithContext(context), kRuntimeError);
  }
  const std::string model_name = (*model)->name();
  std::vector<models::QuantizedTensorReport> report;
  // charlm is not sequential: it quantizes its own projections (charlm.h).
  Result<models::TensorMap> tensors =
      model_name == "charlm" ? models::QuantizeCharLm(**model, *format, &report)
                             : QuantizeSequential(std::move(model).value(), *format, &report);
  if (!tensors.ok()) return fail(tensors.status(), kRuntimeError);
  models::Metadata metadata = std::move(source->metadata);
  metadata["format"] = std::string(models::QuantizedMetadataFormat(*format));
  metadata["model"] = model_name;
  if (Status status = models::SaveSafetensors(flags.out, *tensors, metadata); !status.ok()) {
    return fail(status, kRuntimeError);
  }

  out << Format("%-16s %12s %12s %8s %12s %12s\n", "tensor", "fp32 bytes", "quant bytes",
                "ratio", "max |err|", "mean |err|");
  size_t fp32_total = 0;
  size_t quantized_total = 0;
  for (const models::QuantizedTensorReport& row : report) {
    out << Format("%-16s %12zu %12zu %8.2f %12.3e %12.3e\n", row.name.c_str(), row.fp32_bytes,
                  row.quantized_bytes,
                  static_cast<double>(row.fp32_bytes) / static_cast<double>(row.quantized_bytes),
                  static_cast<double>(row.max_abs_error), static_cast<double>(row.mean_abs_error));
    fp32_total += row.fp32_bytes;
    quantized_total += row.quantized_bytes;
  }
  std::error_code error;
  const auto size_in = std::filesystem::file_size(flags.checkpoint, error);
  const auto size_out = std::filesystem::file_size(flags.out, error);
  out << Format("%-16s %12zu %12zu %8.2f\n", "weights", fp32_total, quantized_total,
                static_cast<double>(fp32_total) / static_cast<double>(quantized_total));
  out << Format("file %s: %ju bytes -> %s: %ju bytes (%s)\n", flags.checkpoint.c_str(),
                static_cast<uintmax_t>(size_in), flags.out.c_str(),
                static_cast<uintmax_t>(size_out), metadata.at("format").c_str());
  return 0;
}

void AddQuantizeCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* command = app.add_subcommand(
      "quantize",
      "Quantize the dense layers of an fp32 safetensors checkpoint to int8 (q8, one scale per\n"
      "output channel) or int4 (q4, one scale per 32 inputs) and write a new safetensors\n"
      "file; prints the sizes and the weight error of each tensor.");
  command->add_option("--model", flags->model, "Model the checkpoint belongs to (e.g. mlp)")
      ->capture_default_str();
  command->add_option("--checkpoint", flags->checkpoint, "fp32 safetensors checkpoint")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("--format", flags->format, "q8 or q4")
      ->check(CLI::IsMember({"q8", "q4"}))
      ->capture_default_str();
  command->add_option("--out", flags->out, "Output safetensors file")->required();
  command->callback(
      [flags, &exit_code] { exit_code = RunQuantizeCommand(*flags, std::cout, std::cerr); });
}

}  // namespace edgefl::app
