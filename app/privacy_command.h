// `edgefl privacy`: the privacy accountant on the command line, for planning a DP training run.
//
//   edgefl privacy epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D
//       [--conversion balle|classic] [--sampling poisson|fixed] [--json]
//     prints the epsilon that T rounds spend and the best Rényi order;
//   edgefl privacy noise --target-epsilon E --sampling-rate Q --steps T --delta D [...] [--json]
//     prints the smallest noise multiplier (noise stddev / clip norm) that keeps epsilon <= E.
// With --json the output is one JSON object: {"epsilon": ..., "best_order": ...} or
// {"noise_multiplier": ...} (an unbounded epsilon is null).
//
//   CLI::App app{"edgefl"};
//   edgefl::app::AddPrivacyCommand(app);
//   CLI11_PARSE(app, argc, argv);  // edgefl privacy epsilon --sampling-rate 0.01 ...
#pragma once

namespace CLI {
class App;
}  // namespace CLI

namespace edgefl::app {

// Adds the `privacy` subcommand and its `epsilon` and `noise` subcommands to `app`. Flags out of
// range (sampling rate outside (0, 1], noise multiplier or target epsilon <= 0, delta outside
// (0, 1), steps == 0 for `noise`) print an error naming the flag to stderr and exit with
// status 2; a target that no noise multiplier up to 10^4 reaches exits with status 1.
void AddPrivacyCommand(CLI::App& app);

}  // namespace edgefl::app
