// Checkpoint: the coordinator's durable state after a completed round, written atomically.
//
// A checkpoint holds the global weights, the last completed round, the server optimizer state
// (Strategy::SaveState) and the privacy accountant's state (RoundEngine::accountant_state()),
// so that a restarted coordinator reports the epsilon of every round ever applied to the model,
// not only of those since the restart. SaveCheckpoint writes PATH.tmp, fsyncs it, renames it
// over PATH and fsyncs the folder, so a crash leaves either the old or the new checkpoint, never
// a torn one.
//
// Format 3 (little-endian): "EFLCKPT3", u64 round, u64 n + n float32 weights, u64 m + m float32
// strategy state, u64 accountant steps, u64 k + k float64 RDP values, u64 k + k float64 RDP
// orders, u64 FNV-1a checksum of everything before it. LoadCheckpoint also reads the formats
// before it: 2 ("EFLCKPT2", no orders: written on DefaultRdpOrders()) and 1 ("EFLCKPT1", no
// accountant fields at all), see Checkpoint::accountant. docs/protocol.md describes the same.
// Free functions; no shared state.
//
//   EDGEFL_RETURN_IF_ERROR(SaveCheckpoint("run/ckpt.bin", MakeCheckpoint(engine)));
//   EDGEFL_ASSIGN_OR_RETURN(Checkpoint c, LoadCheckpoint("run/ckpt.bin"));
//   EDGEFL_RETURN_IF_ERROR(ResumeFromCheckpoint(fresh_engine, std::move(c)));
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/privacy/accountant.h"

namespace edgefl::coordinator {

// The format SaveCheckpoint writes; LoadCheckpoint reads 1 to this.
inline constexpr uint32_t kCheckpointFormat = 3;

struct Checkpoint {
  uint64_t round = 0;                 // last completed round
  std::vector<float> weights;         // global trainable buffer
  std::vector<float> strategy_state;  // Strategy::SaveState()
  // The privacy accountant after `round`. No orders (empty) when the rounds ran without DP, and
  // in a format-1 file, which predates privacy accounting whether or not its rounds used DP
  // (RoundEngine::RestoreAccountant refuses to resume such rounds with DP on).
  privacy::RdpAccountantState accountant;
  // LoadCheckpoint: the file's format, 1 to kCheckpointFormat. SaveCheckpoint ignores it and
  // always writes kCheckpointFormat.
  uint32_t format = kCheckpointFormat;
};

// Writes `checkpoint` atomically to `path`. kInvalidArgument (nothing written) when the
// accountant's RDP values and orders differ in number; kInternal when a write, fsync or rename
// fails.
[[nodiscard]] Status SaveCheckpoint(const std::filesystem::path& path,
                                    const Checkpoint& checkpoint);
// Reads a checkpoint written by SaveCheckpoint, of this format or an earlier one. kNotFound when
// `path` does not exist; kDataLoss when it is truncated, corrupted, of an unknown format or not
// a checkpoint, or when its accountant's RDP values and orders differ in number.
[[nodiscard]] Result<Checkpoint> LoadCheckpoint(const std::filesystem::path& path);

// The state of `engine` after its last completed round.
Checkpoint MakeCheckpoint(const RoundEngine& engine);
// Puts `checkpoint` into `engine`, made afresh for the same model: global weights and round
// (RoundEngine::Restore), server optimizer state (Strategy::LoadState) and privacy accounting
// (RoundEngine::RestoreAccountant), so that the next round and its epsilon continue where the
// checkpoint's engine stopped. Returns the first of their errors; kFailedPrecondition when the
// checkpoint's DP rounds and the engine's DP setting do not fit together (RestoreAccountant).
// After an error the engine may be partly restored: discard it.
[[nodiscard]] Status ResumeFromCheckpoint(RoundEngine& engine, Checkpoint checkpoint);

}  // namespace edgefl::coordinator
