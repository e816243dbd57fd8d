// CURVE keys: the long-term Curve25519 key pairs that authenticate and encrypt the ZeroMQ
// channel (docs/protocol.md, "Security"). The coordinator has one server key pair; every
// device has its own, and the coordinator admits only allow-listed device public keys.
//
// Keys travel as Z85 text (40 characters for 32 bytes, ZeroMQ RFC 32). A key pair lives in
// two files written by `edgefl keygen --out PREFIX`: PREFIX.key (the secret key, mode 0600)
// and PREFIX.pub (the public key). A CurveSecretKey cannot be printed, is copied only by an
// explicit Clone(), and wipes its bytes when destroyed. Values; no shared state.
//
//   EDGEFL_ASSIGN_OR_RETURN(CurveKeyPair pair, GenerateCurveKeyPair());
//   EDGEFL_RETURN_IF_ERROR(WriteCurveKeyPair(pair, "keys/device-7", /*overwrite=*/false));
//   EDGEFL_ASSIGN_OR_RETURN(auto allowed, ReadAllowedCurveKeys("keys/allowed/"));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::transport {

inline constexpr size_t kCurveKeyBytes = 32;
inline constexpr size_t kCurveKeyZ85Chars = 40;

class CurvePublicKey {
 public:
  // kInvalidArgument unless `z85` is exactly 40 characters of the Z85 alphabet.
  [[nodiscard]] static Result<CurvePublicKey> FromZ85(std::string_view z85);
  const std::string& z85() const { return z85_; }
  friend bool operator==(const CurvePublicKey&, const CurvePublicKey&) = default;

 private:
  explicit CurvePublicKey(std::string z85) : z85_(std::move(z85)) {}
  std::string z85_;
};

class CurveSecretKey {
 public:
  // kInvalidArgument unless `z85` is exactly 40 characters of the Z85 alphabet.
  [[nodiscard]] static Result<CurveSecretKey> FromZ85(std::string_view z85);
  CurveSecretKey(CurveSecretKey&& other) noexcept;
  CurveSecretKey& operator=(CurveSecretKey&& other) noexcept;
  CurveSecretKey(const CurveSecretKey&) = delete;
  CurveSecretKey& operator=(const CurveSecretKey&) = delete;
  ~CurveSecretKey();

  CurveSecretKey Clone() const { return CurveSecretKey(z85_); }
  // The Z85 text, for configuring a socket or writing the key file; never log it.
  std::string_view RevealZ85() const { return z85_; }
  // The matching public key. kInternal if libzmq was built without CURVE.
  [[nodiscard]] Result<CurvePublicKey> DerivePublicKey() const;

 private:
  explicit CurveSecretKey(std::string z85) : z85_(std::move(z85)) {}
  void Wipe();
  std::string z85_;
};

struct CurveKeyPair {
  CurvePublicKey public_key;
  CurveSecretKey secret_key;
};

// A fresh key pair from libzmq's CSPRNG. kUnimplemented if libzmq was built without CURVE.
[[nodiscard]] Result<CurveKeyPair> GenerateCurveKeyPair();

// Writes `prefix`.key (secret, created with mode 0600) and `prefix`.pub, each one line of Z85.
// kAlreadyExists if either file exists and !overwrite; kUnavailable on an I/O failure
// (message names the file and errno text).
[[nodiscard]] Status WriteCurveKeyPair(const CurveKeyPair& pair, const std::string& prefix,
                                       bool overwrite);

// Reads a secret key file (one line of Z85; surrounding whitespace ignored). kNotFound,
// kUnavailable (unreadable), kInvalidArgument (not a key). Logs a warning when the file is
// readable by group or others.
[[nodiscard]] Result<CurveSecretKey> ReadCurveSecretKey(const std::string& path);
// Reads a public key file (one line of Z85). kNotFound, kUnavailable, kInvalidArgument.
[[nodiscard]] Result<CurvePublicKey> ReadCurvePublicKey(const std::string& path);

// The allow-list of device public keys. `path` is either a directory, whose regular files
// named *.pub each hold one key (other files are ignored), or a file with one Z85 key per line
// (blank lines and lines starting with '#' ignored). kNotFound if `path` does not exist;
// kInvalidArgument naming the file and line of the first bad key, or when no key is found.
[[nodiscard]] Result<std::vector<CurvePublicKey>> ReadAllowedCurveKeys(const std::string& path);

}  // namespace edgefl::transport
