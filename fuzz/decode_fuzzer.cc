// libFuzzer target for the wire codec (transport/codec.h): Decode must never crash, leak,
// read out of bounds or allocate from an unchecked length, and every frame it accepts must be
// canonical, i.e. Encode(Decode(frame)) == frame. Built and run by fuzz/run.sh under ASan and
// UBSan.
//
// Built with -DEDGEFL_FUZZ_WRITE_SEEDS instead, this file is a small program that writes one
// valid frame of each message type into the directory given as its argument: the seed corpus.
//
//   fuzz/run.sh 60          # build, seed, fuzz for 60 s (ctest runs it as fuzz.decode)
//   build-fuzz/decode_fuzzer build-fuzz/corpus -max_total_time=10
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "edgefl/transport/codec.h"

#ifndef EDGEFL_FUZZ_WRITE_SEEDS

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using edgefl::transport::Decode;
  using edgefl::transport::Encode;
  edgefl::Result<edgefl::transport::Message> decoded = Decode(std::span(data, size));
  if (!decoded.ok()) return 0;
  edgefl::Result<std::vector<uint8_t>> again = Encode(*decoded);
  if (!again.ok() || again->size() != size ||
      (size > 0 && std::memcmp(again->data(), data, size) != 0)) {
    __builtin_trap();  // an accepted frame that is not the canonical encoding of its message
  }
  return 0;
}

#else  // EDGEFL_FUZZ_WRITE_SEEDS

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  using namespace edgefl;
  using namespace edgefl::transport;
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
    return 2;
  }
  TrainingConfig training;
  training.seed = 9;
  RoundStart start;
  start.model_version = 2;
  start.training = training;
  start.global_weights = std::make_shared<const std::vector<float>>(std::vector<float>{1, -2, 3});
  Update update;
  update.num_examples = 600;
  update.train_loss = 0.25f;
  update.delta = {0.5f, -0.5f};
  const std::vector<Message> messages = {
      {ClientId(0), RoundId(0), Hello{"pi", 600}},
      {ClientId(0), RoundId(0), Welcome{ClientId(7), 10}},
      {ClientId(0), RoundId(3), start},
      {ClientId(7), RoundId(3), update},
      {ClientId(0), RoundId(3), RoundEnd{StatusCode::kDeadlineExceeded, "late"}},
      {ClientId(7), RoundId(0), Heartbeat{}},
      {ClientId(0), RoundId(0), ErrorReply{StatusCode::kInvalidArgument, "bad"}},
      {ClientId(7), RoundId(0), Goodbye{}},
      {ClientId(7), RoundId(3), SecAggPayload{1, 600, 0.25f, {1, 2, 3, 4}}},
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    Result<std::vector<uint8_t>> frame = Encode(messages[i]);
    if (!frame.ok()) {
      std::cerr << frame.status().ToString() << "\n";
      return 1;
    }
    std::ofstream out(std::string(argv[1]) + "/seed-" + std::to_string(i), std::ios::binary);
    out.write(reinterpret_cast<const char*>(frame->data()),
              static_cast<std::streamsize>(frame->size()));
  }
  return 0;
}

#endif  // EDGEFL_FUZZ_WRITE_SEEDS
