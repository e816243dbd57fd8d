// `edgefl keygen`: makes a CURVE key pair for the ZeroMQ channel (docs/protocol.md, "Security").
//
// Writes PREFIX.key (the secret key, mode 0600) and PREFIX.pub (the public key), each one line
// of Z85 text, and prints the public key. Refuses to overwrite existing files unless --force.
// The coordinator needs one pair (secret_key_file = PREFIX.key, devices get PREFIX.pub); each
// device needs its own, with its PREFIX.pub copied into the coordinator's allow-list directory.
//
//   CLI::App app{"edgefl"};
//   edgefl::app::AddKeygenCommand(app);
//   CLI11_PARSE(app, argc, argv);  // edgefl keygen --out keys/device-7
#pragma once

namespace CLI {
class App;
}  // namespace CLI

namespace edgefl::app {

// Adds the `keygen` subcommand (--out PREFIX, required; --force) to `app`. When it runs, it
// exits with status 1 after printing the error to stderr if the keys cannot be made or written.
void AddKeygenCommand(CLI::App& app);

}  // namespace edgefl::app
