// SecretBytes<N>: a fixed-size secret (private key, seed, key share) that cannot be printed or
// copied by accident.
//
// It is move-only; a move wipes the source, and the destructor wipes the bytes with
// OPENSSL_cleanse (through SecureWipe), so a std::vector<SecretBytes<N>> leaves no copy behind
// when it reallocates. The bytes are read only through Reveal(), which makes every use visible
// in review. Deliberate copies go through Clone(). A value, not thread-safe.
//
//   SecretBytes<32> seed;
//   EDGEFL_RETURN_IF_ERROR(RandomBytes(seed.MutableReveal()));
//   Status s = HkdfSha256(seed.Reveal(), salt, info, out);
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>

namespace edgefl::privacy::secagg {

// Overwrites `size` bytes at `data` with zeros in a way the compiler cannot elide
// (OPENSSL_cleanse). `data` may be null when `size` is 0.
void SecureWipe(void* data, size_t size);

template <size_t N>
class SecretBytes {
 public:
  static constexpr size_t kSize = N;

  // All zeros.
  SecretBytes() = default;
  // Copies `bytes` in; the caller wipes its own copy.
  explicit SecretBytes(std::span<const uint8_t, N> bytes) {
    for (size_t i = 0; i < N; ++i) bytes_[i] = bytes[i];
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept : bytes_(other.bytes_) { other.Wipe(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      bytes_ = other.bytes_;
      other.Wipe();
    }
    return *this;
  }
  ~SecretBytes() { Wipe(); }

  // Read access to the secret. Do not keep the span beyond the object's lifetime.
  std::span<const uint8_t, N> Reveal() const { return bytes_; }
  // Write access, to fill the secret in place (RandomBytes, HKDF output).
  std::span<uint8_t, N> MutableReveal() { return bytes_; }
  // A deliberate copy.
  SecretBytes Clone() const { return SecretBytes(Reveal()); }

  // Secrets are never printed.
  friend std::ostream& operator<<(std::ostream&, const SecretBytes&) = delete;

 private:
  void Wipe() { SecureWipe(bytes_.data(), N); }

  std::array<uint8_t, N> bytes_{};
};

}  // namespace edgefl::privacy::secagg
