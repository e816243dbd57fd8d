// Key derivation and share encoding shared by both protocol ends (protocol_internal.h).

#include "secagg/protocol_internal.h"

#include <omp.h>

#include <algorithm>
#include <string_view>

namespace edgefl::privacy::secagg::internal {
namespace {

constexpr std::string_view kProtocolLabel = "edgefl-secagg-v1";

// label || round (LE u64) || min(a, b) || max(a, b) (LE u32 each).
std::vector<uint8_t> PairInfo(std::string_view purpose, RoundId round, uint32_t a, uint32_t b) {
  std::vector<uint8_t> info(kProtocolLabel.begin(), kProtocolLabel.end());
  info.push_back('/');
  info.insert(info.end(), purpose.begin(), purpose.end());
  for (int i = 0; i < 8; ++i) info.push_back(static_cast<uint8_t>(round.value() >> (8 * i)));
  uint8_t ids[8];
  PutU32(std::min(a, b), ids);
  PutU32(std::max(a, b), ids + 4);
  info.insert(info.end(), ids, ids + 8);
  return info;
}

}  // namespace

void PutU32(uint32_t value, uint8_t* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint32_t GetU32(const uint8_t* in) {
  return uint32_t{in[0]} | uint32_t{in[1]} << 8 | uint32_t{in[2]} << 16 | uint32_t{in[3]} << 24;
}

Result<SecretBytes<kAesGcmKeyBytes>> DeriveShareKey(const SecretBytes<32>& shared, RoundId round,
                                                    uint32_t a, uint32_t b) {
  SecretBytes<kAesGcmKeyBytes> key;
  EDGEFL_RETURN_IF_ERROR(
      HkdfSha256(shared.Reveal(), {}, PairInfo("share-key", round, a, b), key.MutableReveal()));
  return key;
}

Result<PairwiseSeed> DerivePairwiseSeed(const SecretBytes<32>& shared, RoundId round, uint32_t a,
                                        uint32_t b) {
  PairwiseSeed seed;
  EDGEFL_RETURN_IF_ERROR(HkdfSha256(shared.Reveal(), {}, PairInfo("pairwise-mask", round, a, b),
                                    seed.MutableReveal()));
  return seed;
}

std::vector<uint8_t> ShareAssociatedData(RoundId round, uint32_t sender, uint32_t recipient) {
  std::vector<uint8_t> aad(kProtocolLabel.begin(), kProtocolLabel.end());
  for (int i = 0; i < 8; ++i) aad.push_back(static_cast<uint8_t>(round.value() >> (8 * i)));
  uint8_t ids[8];
  PutU32(sender, ids);
  PutU32(recipient, ids + 4);
  aad.insert(aad.end(), ids, ids + 8);
  return aad;
}

Result<X25519PublicKey> PublicKeyFromBytes(std::span<const uint8_t> bytes, const char* what,
                                           uint32_t owner) {
  X25519PublicKey key{};
  if (bytes.size() != key.size()) {
    return InvalidArgumentError(std::string(what) + " of client " + std::to_string(owner) +
                                " has " + std::to_string(bytes.size()) + " bytes, expected " +
                                std::to_string(key.size()));
  }
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}

int WorkerThreads(int max_threads, double work_us) {
  if (omp_in_parallel() || work_us < 1000) return 1;
  return max_threads > 0 ? max_threads : omp_get_max_threads();
}

Status BelowThreshold(const std::string& where, size_t have, uint32_t threshold) {
  return AbortedError("secure aggregation aborted at " + where + ": " + std::to_string(have) +
                      " participants, threshold " + std::to_string(threshold));
}

}  // namespace edgefl::privacy::secagg::internal
