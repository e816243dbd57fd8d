#include "edgefl/privacy/secagg_wire.h"

#include <cstring>
#include <string>

namespace edgefl::privacy {
namespace {

using namespace secagg;

class Writer {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Bytes(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void Count(size_t n) { U32(static_cast<uint32_t>(n)); }
  std::vector<uint8_t> Take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads with bounds checks; the first failure sticks and names the field.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint32_t U32(const char* field) {
    if (!Need(4, field)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(bytes_[offset_ + i]) << (8 * i);
    offset_ += 4;
    return v;
  }
  std::vector<uint8_t> Bytes(size_t n, const char* field) {
    if (!Need(n, field)) return {};
    std::vector<uint8_t> out(bytes_.begin() + offset_, bytes_.begin() + offset_ + n);
    offset_ += n;
    return out;
  }
  // A count of items of at least `min_item_bytes` each, refused before any allocation when the
  // remaining bytes cannot hold that many.
  uint32_t Count(size_t min_item_bytes, const char* field) {
    const uint32_t n = U32(field);
    if (status_.ok() && static_cast<uint64_t>(n) * min_item_bytes > bytes_.size() - offset_) {
      status_ = DataLossError(std::string(field) + ": count " + std::to_string(n) +
                              " exceeds the " + std::to_string(bytes_.size() - offset_) +
                              " bytes left");
      return 0;
    }
    return n;
  }
  Status Finish() {
    if (status_.ok() && offset_ != bytes_.size()) {
      status_ = DataLossError(std::to_string(bytes_.size() - offset_) + " trailing bytes");
    }
    return status_;
  }
  bool ok() const { return status_.ok(); }

 private:
  bool Need(size_t n, const char* field) {
    if (!status_.ok()) return false;
    if (bytes_.size() - offset_ < n) {
      status_ = DataLossError(std::string(field) + ": truncated");
      return false;
    }
    return true;
  }
  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  Status status_;
};

void WriteKeys(Writer& w, const AdvertiseKeysMessage& m) {
  w.U32(m.sender);
  w.Bytes(m.encryption_public_key);
  w.Bytes(m.mask_public_key);
}
AdvertiseKeysMessage ReadKeys(Reader& r) {
  AdvertiseKeysMessage m;
  m.sender = r.U32("sender");
  m.encryption_public_key = r.Bytes(kPublicKeyBytes, "encryption_public_key");
  m.mask_public_key = r.Bytes(kPublicKeyBytes, "mask_public_key");
  return m;
}
void WriteShares(Writer& w, const std::vector<EncryptedShare>& shares) {
  w.Count(shares.size());
  for (const EncryptedShare& s : shares) {
    w.U32(s.sender);
    w.U32(s.recipient);
    w.Bytes(s.ciphertext);
  }
}
std::vector<EncryptedShare> ReadShares(Reader& r) {
  const uint32_t n = r.Count(8 + kEncryptedShareBytes, "shares");
  std::vector<EncryptedShare> shares(n);
  for (EncryptedShare& s : shares) {
    s.sender = r.U32("share.sender");
    s.recipient = r.U32("share.recipient");
    s.ciphertext = r.Bytes(kEncryptedShareBytes, "share.ciphertext");
  }
  return shares;
}
void WriteIndices(Writer& w, const std::vector<uint32_t>& v) {
  w.Count(v.size());
  for (uint32_t x : v) w.U32(x);
}
std::vector<uint32_t> ReadIndices(Reader& r, const char* field) {
  std::vector<uint32_t> v(r.Count(4, field));
  for (uint32_t& x : v) x = r.U32(field);
  return v;
}
void WriteRevealed(Writer& w, const std::vector<RevealedShare>& v) {
  w.Count(v.size());
  for (const RevealedShare& s : v) {
    w.U32(s.owner);
    w.Bytes(s.share);
  }
}
std::vector<RevealedShare> ReadRevealed(Reader& r, const char* field) {
  std::vector<RevealedShare> v(r.Count(4 + kRevealedShareBytes, field));
  for (RevealedShare& s : v) {
    s.owner = r.U32(field);
    s.share = r.Bytes(kRevealedShareBytes, field);
  }
  return v;
}

}  // namespace

SecAggStep StepOf(const SecAggMessage& message) {
  return static_cast<SecAggStep>(message.index() + 1);
}

std::vector<uint8_t> EncodeSecAgg(const SecAggMessage& message) {
  Writer w;
  struct Visitor {
    Writer& w;
    void operator()(const AdvertiseKeysMessage& m) const { WriteKeys(w, m); }
    void operator()(const KeyDirectoryMessage& m) const {
      w.U32(m.recipient);
      w.Count(m.neighbours.size());
      for (const AdvertiseKeysMessage& k : m.neighbours) WriteKeys(w, k);
    }
    void operator()(const ShareKeysMessage& m) const {
      w.U32(m.sender);
      WriteShares(w, m.shares);
    }
    void operator()(const ShareKeysRelayMessage& m) const {
      w.U32(m.recipient);
      WriteShares(w, m.shares);
    }
    void operator()(const MaskedInputMessage& m) const {
      w.U32(m.sender);
      w.Count(m.masked_input.size());
      for (uint32_t x : m.masked_input) w.U32(x);
    }
    void operator()(const UnmaskRequestMessage& m) const {
      WriteIndices(w, m.survivors);
      WriteIndices(w, m.dropped);
    }
    void operator()(const UnmaskResponseMessage& m) const {
      w.U32(m.sender);
      WriteRevealed(w, m.self_mask_shares);
      WriteRevealed(w, m.mask_key_shares);
    }
  };
  std::visit(Visitor{w}, message);
  return w.Take();
}

Result<SecAggMessage> DecodeSecAgg(SecAggStep step, std::span<const uint8_t> bytes) {
  Reader r(bytes);
  SecAggMessage message;
  switch (step) {
    case SecAggStep::kAdvertiseKeys:
      message = ReadKeys(r);
      break;
    case SecAggStep::kKeyDirectory: {
      KeyDirectoryMessage m;
      m.recipient = r.U32("recipient");
      m.neighbours.resize(r.Count(4 + 2 * kPublicKeyBytes, "neighbours"));
      for (AdvertiseKeysMessage& k : m.neighbours) k = ReadKeys(r);
      message = std::move(m);
      break;
    }
    case SecAggStep::kShareKeys: {
      ShareKeysMessage m;
      m.sender = r.U32("sender");
      m.shares = ReadShares(r);
      message = std::move(m);
      break;
    }
    case SecAggStep::kShareKeysRelay: {
      ShareKeysRelayMessage m;
      m.recipient = r.U32("recipient");
      m.shares = ReadShares(r);
      message = std::move(m);
      break;
    }
    case SecAggStep::kMaskedInput: {
      MaskedInputMessage m;
      m.sender = r.U32("sender");
      m.masked_input = ReadIndices(r, "masked_input");
      message = std::move(m);
      break;
    }
    case SecAggStep::kUnmaskRequest: {
      UnmaskRequestMessage m;
      m.survivors = ReadIndices(r, "survivors");
      m.dropped = ReadIndices(r, "dropped");
      message = std::move(m);
      break;
    }
    case SecAggStep::kUnmaskResponse: {
      UnmaskResponseMessage m;
      m.sender = r.U32("sender");
      m.self_mask_shares = ReadRevealed(r, "self_mask_shares");
      m.mask_key_shares = ReadRevealed(r, "mask_key_shares");
      message = std::move(m);
      break;
    }
    default:
      return InvalidArgumentError("unknown secure-aggregation step " +
                                  std::to_string(static_cast<int>(step)));
  }
  EDGEFL_RETURN_IF_ERROR(r.Finish().WithContext("secure-aggregation payload"));
  return message;
}

}  // namespace edgefl::privacy
