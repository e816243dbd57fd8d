// Checkpoint: the coordinator's durable state after a completed round, written atomically.
//
// A checkpoint holds the global weights, the last completed round and the server optimizer
// state (Strategy::SaveState). SaveCheckpoint writes PATH.tmp, fsyncs it, renames it over PATH
// and fsyncs the folder, so a crash leaves either the old or the new checkpoint, never a torn
// one. Format (little-endian): "EFLCKPT1", u64 round, u64 n, n float32 weights, u64 m, m float32
// strategy state, u64 FNV-1a checksum of everything before it.
// Free functions; no shared state.
//
//   EDGEFL_RETURN_IF_ERROR(SaveCheckpoint("run/ckpt.bin", {.round = 3, .weights = w}));
//   EDGEFL_ASSIGN_OR_RETURN(Checkpoint c, LoadCheckpoint("run/ckpt.bin"));
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::coordinator {

struct Checkpoint {
  uint64_t round = 0;                 // last completed round
  std::vector<float> weights;         // global trainable buffer
  std::vector<float> strategy_state;  // Strategy::SaveState()
  uint64_t accountant_steps = 0;      // privacy accountant: steps composed so far
  std::vector<double> accountant_rdp; // and RDP per order (empty without DP)
};

// Writes `checkpoint` atomically to `path`. kInternal when a write, fsync or rename fails.
[[nodiscard]] Status SaveCheckpoint(const std::filesystem::path& path,
                                    const Checkpoint& checkpoint);
// Reads a checkpoint written by SaveCheckpoint. kNotFound when `path` does not exist;
// kDataLoss when it is truncated, corrupted or not a checkpoint.
[[nodiscard]] Result<Checkpoint> LoadCheckpoint(const std::filesystem::path& path);

}  // namespace edgefl::coordinator
