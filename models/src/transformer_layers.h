// Transformer pieces private to models/: the parameter-free core of causal self-attention, for a
// model (charlm.cc) that runs the QKV and output projections as layers of their own, frozen,
// quantized or LoRA-adapted (lora.h). Same thread-safety as layers.h.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "edgefl/models/layers.h"

namespace edgefl::models::internal {

// [T, 3d] (q | k | v, as MakeCausalSelfAttention's fused projection lays them out) -> [T, d]:
// per head softmax(q k^T / sqrt(dh) + causal mask) v, no parameters. Build fails with
// kInvalidArgument unless the width is 3 d with d a multiple of num_heads.
std::unique_ptr<Layer> MakeCausalAttentionCore(std::string name, size_t num_heads);

}  // namespace edgefl::models::internal
