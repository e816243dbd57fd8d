#include "keygen_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "edgefl/common/status.h"
#include "edgefl/transport/keys.h"

namespace edgefl::app {
namespace {

struct KeygenArgs {
  std::string prefix;
  bool force = false;
};

Status RunKeygen(const KeygenArgs& args) {
  EDGEFL_ASSIGN_OR_RETURN(transport::CurveKeyPair pair, transport::GenerateCurveKeyPair());
  EDGEFL_RETURN_IF_ERROR(transport::WriteCurveKeyPair(pair, args.prefix, args.force));
  std::cout << "wrote " << args.prefix << ".key (secret, mode 0600) and " << args.prefix
            << ".pub\npublic key: " << pair.public_key.z85() << "\n";
  return OkStatus();
}

}  // namespace

void AddKeygenCommand(CLI::App& app) {
  auto args = std::make_shared<KeygenArgs>();
  CLI::App* command = app.add_subcommand(
      "keygen", "Make a CURVE key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub");
  command->add_option("--out", args->prefix, "Path prefix of the two key files")->required();
  command->add_flag("--force", args->force, "Overwrite existing key files");
  command->callback([args] {
    const Status status = RunKeygen(*args);
    if (!status.ok()) {
      std::cerr << "edgefl keygen: " << status.ToString() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace edgefl::app
