// `edgefl eval`: scores a checkpoint written by `edgefl train` on held-out data.
//
// Loads the model's parameters from a safetensors checkpoint (models/checkpoint.h) and prints the
// mean loss with the perplexity (charlm on fortunes: the last 10% of each category's windows, the
// same split `edgefl train` held out) or the accuracy (Fashion-MNIST t10k).
//
//   CLI::App app{"edgefl"};
//   int exit_code = 0;
//   edgefl::app::AddEvalCommand(app, exit_code);  // edgefl eval --checkpoint lm.safetensors
#pragma once

namespace CLI {
class App;
}  // namespace CLI

namespace edgefl::app {

// Adds the `eval` subcommand to `app`. When it runs it stores 0 in `exit_code` on success, 1 when
// loading fails (the error on stderr).
void AddEvalCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app
