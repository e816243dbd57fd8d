// OpenSSL 3 EVP implementations of the secure-aggregation primitives (crypto.h).
//
// Algorithm objects are fetched once (EVP_CIPHER_fetch / EVP_KDF_fetch) and shared read-only
// between threads, which avoids OpenSSL 3's implicit fetch on every init. They are deliberately
// never freed: freeing them from a static destructor could run after OPENSSL_cleanup at exit.

#include "edgefl/privacy/secagg/crypto.h"

#include <omp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace edgefl::privacy::secagg {
namespace {

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using KdfCtx = std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter>;

// kInternal naming the failed call and OpenSSL's first queued error; clears the queue.
Status OpenSslError(std::string_view what) {
  std::string message = "OpenSSL " + std::string(what) + " failed";
  unsigned long code = ERR_get_error();
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    message += ": ";
    message += text;
  }
  ERR_clear_error();
  return InternalError(std::move(message));
}

const EVP_CIPHER* Aes128Ctr() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-128-CTR", nullptr);
  return cipher;
}

const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

EVP_KDF* Hkdf() {
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

Result<Pkey> PrivateKeyFromRaw(const X25519PrivateKey& private_key) {
  Pkey key(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, private_key.Reveal().data(),
                                           kX25519KeyBytes));
  if (key == nullptr) return OpenSslError("EVP_PKEY_new_raw_private_key_ex(X25519)");
  return key;
}

bool IsValidPrgSeedSize(size_t size) { return size == kPrgKeyBytes || size == kPrgSeedBytes; }

Status CheckPrgSeed(std::span<const uint8_t> seed) {
  if (!IsValidPrgSeedSize(seed.size())) {
    return InvalidArgumentError("PRG seed has " + std::to_string(seed.size()) +
                                " bytes, expected " + std::to_string(kPrgKeyBytes) + " or " +
                                std::to_string(kPrgSeedBytes));
  }
  return OkStatus();
}

// The CTR counter block for byte `offset` of the keystream: the seed's initial block (or zero)
// plus offset / 16, as a big-endian 128-bit integer (OpenSSL increments all 128 bits).
void CounterBlockAt(std::span<const uint8_t> seed, uint64_t offset, uint8_t block[16]) {
  if (seed.size() == kPrgSeedBytes) {
    std::memcpy(block, seed.data() + kPrgKeyBytes, 16);
  } else {
    std::memset(block, 0, 16);
  }
  uint64_t carry = offset / 16;
  for (int i = 15; i >= 0 && carry != 0; --i) {
    const uint64_t sum = uint64_t{block[i]} + (carry & 0xff);
    block[i] = static_cast<uint8_t>(sum);
    carry = (carry >> 8) + (sum >> 8);
  }
}

// 16 KiB of keystream per EVP call: stays in L1 while it is added into the output.
constexpr size_t kChunkWords = 4096;
// Output handled per (thread, key schedule): 256 KiB stays in L2 while every stream passes
// over it, and amortises one EVP_EncryptInit_ex2 over 16K AES blocks.
constexpr size_t kTileWords = size_t{1} << 16;
// Smallest tile worth a thread of its own.
constexpr size_t kMinTileWords = 4096;
// Below this much keystream (words, all terms together; ~0.5 ms of AES) a parallel region
// costs more than it saves, above all on a loaded machine.
constexpr size_t kMinParallelWords = size_t{1} << 20;

alignas(64) const uint8_t kZeroChunk[kChunkWords * 4] = {};

// dst[i] += or -= the little-endian uint32 at src + 4i. Plain loops the compiler vectorises.
void AddKeystream(uint32_t* dst, const uint32_t* keystream, size_t n, MaskSign sign) {
  if constexpr (std::endian::native == std::endian::little) {
    if (sign == MaskSign::kAdd) {
      for (size_t i = 0; i < n; ++i) dst[i] += keystream[i];
    } else {
      for (size_t i = 0; i < n; ++i) dst[i] -= keystream[i];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t word = __builtin_bswap32(keystream[i]);
      dst[i] = sign == MaskSign::kAdd ? dst[i] + word : dst[i] - word;
    }
  }
}

}  // namespace

void SecureWipe(void* data, size_t size) {
  if (size != 0) OPENSSL_cleanse(data, size);
}

Status RandomBytes(std::span<uint8_t> out) {
  // RAND_bytes takes an int; draw in pieces so any span works.
  size_t done = 0;
  while (done < out.size()) {
    const size_t n = std::min<size_t>(out.size() - done, 1 << 30);
    if (RAND_bytes(out.data() + done, static_cast<int>(n)) != 1) {
      return OpenSslError("RAND_bytes");
    }
    done += n;
  }
  return OkStatus();
}

Result<X25519KeyPair> GenerateX25519KeyPair() {
  X25519KeyPair pair;
  // RFC 7748 section 6.1: a private key is 32 random bytes; clamping happens inside X25519.
  EDGEFL_RETURN_IF_ERROR(RandomBytes(pair.private_key.MutableReveal()));
  EDGEFL_ASSIGN_OR_RETURN(pair.public_key, X25519PublicKeyOf(pair.private_key));
  return pair;
}

Result<X25519PublicKey> X25519PublicKeyOf(const X25519PrivateKey& private_key) {
  EDGEFL_ASSIGN_OR_RETURN(Pkey key, PrivateKeyFromRaw(private_key));
  X25519PublicKey public_key{};
  size_t size = public_key.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), public_key.data(), &size) != 1 ||
      size != kX25519KeyBytes) {
    return OpenSslError("EVP_PKEY_get_raw_public_key");
  }
  return public_key;
}

Result<SecretBytes<32>> X25519Agree(const X25519PrivateKey& private_key,
                                    std::span<const uint8_t, kX25519KeyBytes> peer) {
  X25519PublicKey peer_key;
  std::copy(peer.begin(), peer.end(), peer_key.begin());
  std::vector<SecretBytes<32>> shared(1);
  EDGEFL_RETURN_IF_ERROR(X25519AgreeMany(private_key, std::span(&peer_key, 1), shared, 1));
  return std::move(shared[0]);
}

Status X25519AgreeMany(const X25519PrivateKey& private_key, std::span<const X25519PublicKey> peers,
                       std::span<SecretBytes<32>> shared, int max_threads) {
  EDGEFL_CHECK_EQ(peers.size(), shared.size());
  if (peers.empty()) return OkStatus();
  EDGEFL_ASSIGN_OR_RETURN(Pkey own, PrivateKeyFromRaw(private_key));
  // One X25519 is ~40 us: a thread pool pays off from a few dozen peers.
  int threads = max_threads > 0 ? max_threads : omp_get_max_threads();
  if (omp_in_parallel() || peers.size() < 32) threads = 1;
  // Per peer: 0 = done, 1 = OpenSSL failure, 2 = low-order peer.
  std::vector<uint8_t> outcome(peers.size(), 0);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    // One derivation context per thread; only the peer changes between derivations.
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own.get(), nullptr));
    const bool ready = ctx != nullptr && EVP_PKEY_derive_init(ctx.get()) == 1;
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < static_cast<int64_t>(peers.size()); ++i) {
      if (!ready) {
        outcome[i] = 1;
        continue;
      }
      Pkey peer(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peers[i].data(),
                                               kX25519KeyBytes));
      // The peer is checked by the derivation itself: X25519 fails on an all-zero result.
      if (peer == nullptr ||
          EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), /*validate_peer=*/0) != 1) {
        outcome[i] = 1;
        continue;
      }
      size_t size = SecretBytes<32>::kSize;
      if (EVP_PKEY_derive(ctx.get(), shared[i].MutableReveal().data(), &size) != 1 ||
          size != SecretBytes<32>::kSize) {
        ERR_clear_error();  // error queues are per thread
        outcome[i] = 2;
      }
    }
  }
  for (size_t i = 0; i < peers.size(); ++i) {
    if (outcome[i] == 0) continue;
    for (SecretBytes<32>& secret : shared) secret = SecretBytes<32>();
    if (outcome[i] == 1) return OpenSslError("X25519 derivation");
    ERR_clear_error();
    return InvalidArgumentError("X25519 agreement with peer " + std::to_string(i) +
                                " gave no shared secret: its public key is a low-order point");
  }
  return OkStatus();
}

Status HkdfSha256(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
                  std::span<const uint8_t> info, std::span<uint8_t> out) {
  if (out.empty() || out.size() > 255 * 32) {
    return InvalidArgumentError("HKDF-SHA256 output of " + std::to_string(out.size()) +
                                " bytes; must be in [1, 8160]");
  }
  if (ikm.empty()) return InvalidArgumentError("HKDF-SHA256 with empty input key material");
  if (Hkdf() == nullptr) return OpenSslError("EVP_KDF_fetch(HKDF)");
  KdfCtx ctx(EVP_KDF_CTX_new(Hkdf()));
  if (ctx == nullptr) return OpenSslError("EVP_KDF_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  OSSL_PARAM* p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                           ikm.size());
  // An absent salt is HashLen zeros (RFC 5869 section 2.2), which is OpenSSL's default.
  if (!salt.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                             salt.size());
  }
  if (!info.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()),
                                             info.size());
  }
  *p = OSSL_PARAM_construct_end();
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return OpenSslError("EVP_KDF_derive(HKDF-SHA256)");
  }
  return OkStatus();
}

Status AesGcmSeal(const SecretBytes<kAesGcmKeyBytes>& key, std::span<const uint8_t> plaintext,
                  std::span<const uint8_t> associated_data, std::span<uint8_t> sealed) {
  if (sealed.size() != plaintext.size() + kAesGcmOverheadBytes) {
    return InvalidArgumentError("AES-GCM output buffer has " + std::to_string(sealed.size()) +
                                " bytes, expected " +
                                std::to_string(plaintext.size() + kAesGcmOverheadBytes));
  }
  if (plaintext.size() > INT_MAX / 2 || associated_data.size() > INT_MAX / 2) {
    return InvalidArgumentError("AES-GCM message too large");
  }
  uint8_t* nonce = sealed.data();
  uint8_t* ciphertext = nonce + kAesGcmNonceBytes;
  uint8_t* tag = ciphertext + plaintext.size();
  // A random 96-bit nonce per message: keys are fresh per round and pair, so the birthday bound
  // is never approached.
  EDGEFL_RETURN_IF_ERROR(RandomBytes(std::span<uint8_t>(nonce, kAesGcmNonceBytes)));
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_CIPHER_CTX_new");
  if (EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), key.Reveal().data(), nonce, nullptr) != 1) {
    return OpenSslError("EVP_EncryptInit_ex2(AES-256-GCM)");
  }
  int length = 0;
  if (!associated_data.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &length, associated_data.data(),
                        static_cast<int>(associated_data.size())) != 1) {
    return OpenSslError("EVP_EncryptUpdate(AAD)");
  }
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ciphertext, &length, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1) {
    return OpenSslError("EVP_EncryptUpdate");
  }
  if (EVP_EncryptFinal_ex(ctx.get(), ciphertext + length, &length) != 1) {
    return OpenSslError("EVP_EncryptFinal_ex");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kAesGcmTagBytes, tag) != 1) {
    return OpenSslError("EVP_CTRL_AEAD_GET_TAG");
  }
  return OkStatus();
}

Status AesGcmOpen(const SecretBytes<kAesGcmKeyBytes>& key, std::span<const uint8_t> sealed,
                  std::span<const uint8_t> associated_data, std::span<uint8_t> plaintext) {
  if (sealed.size() < kAesGcmOverheadBytes ||
      plaintext.size() != sealed.size() - kAesGcmOverheadBytes) {
    return InvalidArgumentError("AES-GCM sealed message of " + std::to_string(sealed.size()) +
                                " bytes does not fit a plaintext of " +
                                std::to_string(plaintext.size()) + " bytes");
  }
  if (sealed.size() > INT_MAX / 2 || associated_data.size() > INT_MAX / 2) {
    return InvalidArgumentError("AES-GCM message too large");
  }
  const uint8_t* nonce = sealed.data();
  const uint8_t* ciphertext = nonce + kAesGcmNonceBytes;
  const uint8_t* tag = ciphertext + plaintext.size();
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_CIPHER_CTX_new");
  if (EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), key.Reveal().data(), nonce, nullptr) != 1) {
    return OpenSslError("EVP_DecryptInit_ex2(AES-256-GCM)");
  }
  int length = 0;
  if (!associated_data.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &length, associated_data.data(),
                        static_cast<int>(associated_data.size())) != 1) {
    return OpenSslError("EVP_DecryptUpdate(AAD)");
  }
  if (!plaintext.empty() && EVP_DecryptUpdate(ctx.get(), plaintext.data(), &length, ciphertext,
                                              static_cast<int>(plaintext.size())) != 1) {
    return OpenSslError("EVP_DecryptUpdate");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kAesGcmTagBytes,
                          const_cast<uint8_t*>(tag)) != 1) {
    return OpenSslError("EVP_CTRL_AEAD_SET_TAG");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plaintext.data() + length, &length) != 1) {
    ERR_clear_error();
    SecureWipe(plaintext.data(), plaintext.size());
    return DataLossError("AES-GCM tag mismatch: sealed message of " +
                         std::to_string(sealed.size()) +
                         " bytes was tampered with or sealed under another key or context");
  }
  return OkStatus();
}

Status PrgKeystream(std::span<const uint8_t> seed, std::span<uint8_t> out, uint64_t offset) {
  EDGEFL_RETURN_IF_ERROR(CheckPrgSeed(seed));
  if (offset % 16 != 0) {
    return InvalidArgumentError("PRG offset " + std::to_string(offset) +
                                " is not a multiple of the AES block");
  }
  if (out.empty()) return OkStatus();
  uint8_t block[16];
  CounterBlockAt(seed, offset, block);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_CIPHER_CTX_new");
  if (EVP_EncryptInit_ex2(ctx.get(), Aes128Ctr(), seed.data(), block, nullptr) != 1) {
    return OpenSslError("EVP_EncryptInit_ex2(AES-128-CTR)");
  }
  // The keystream is the encryption of zeros, done in place over the output.
  std::memset(out.data(), 0, out.size());
  size_t done = 0;
  while (done < out.size()) {
    const size_t n = std::min<size_t>(out.size() - done, size_t{1} << 30);
    int length = 0;
    if (EVP_EncryptUpdate(ctx.get(), out.data() + done, &length, out.data() + done,
                          static_cast<int>(n)) != 1) {
      return OpenSslError("EVP_EncryptUpdate(AES-128-CTR)");
    }
    done += n;
  }
  return OkStatus();
}

Status ApplyMasks(std::span<const MaskTerm> terms, std::span<uint32_t> values, int max_threads) {
  for (const MaskTerm& term : terms) EDGEFL_RETURN_IF_ERROR(CheckPrgSeed(term.seed));
  if (terms.empty() || values.empty()) return OkStatus();
  if (Aes128Ctr() == nullptr) return OpenSslError("EVP_CIPHER_fetch(AES-128-CTR)");

  // Split the output into tiles of equal size (a multiple of 4 words, so every tile starts on
  // an AES block), at least one per thread when the vector is large enough.
  int threads = max_threads > 0 ? max_threads : omp_get_max_threads();
  const size_t size = values.size();
  if (omp_in_parallel() || terms.size() * size < kMinParallelWords) threads = 1;
  size_t num_tiles = (size + kTileWords - 1) / kTileWords;
  num_tiles = std::max(num_tiles, std::min<size_t>(threads, size / kMinTileWords));
  num_tiles = std::max<size_t>(num_tiles, 1);
  const size_t tile_words = ((size + num_tiles - 1) / num_tiles + 3) / 4 * 4;
  num_tiles = (size + tile_words - 1) / tile_words;
  threads = static_cast<int>(std::min<size_t>(threads, num_tiles));

  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (ctx == nullptr) failed.store(true);
    alignas(64) uint32_t keystream[kChunkWords];
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < static_cast<int64_t>(num_tiles); ++tile) {
      const size_t begin = static_cast<size_t>(tile) * tile_words;
      const size_t end = std::min(begin + tile_words, size);
      for (const MaskTerm& term : terms) {
        if (failed.load(std::memory_order_relaxed)) break;
        uint8_t block[16];
        CounterBlockAt(term.seed, uint64_t{begin} * 4, block);
        if (EVP_EncryptInit_ex2(ctx.get(), Aes128Ctr(), term.seed.data(), block, nullptr) != 1) {
          failed.store(true);
          break;
        }
        for (size_t pos = begin; pos < end; pos += kChunkWords) {
          const size_t n = std::min(kChunkWords, end - pos);
          int length = 0;
          if (EVP_EncryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(keystream), &length,
                                kZeroChunk, static_cast<int>(n * 4)) != 1) {
            failed.store(true);
            break;
          }
          AddKeystream(values.data() + pos, keystream, n, term.sign);
        }
      }
    }
    SecureWipe(keystream, sizeof(keystream));
  }
  if (failed.load()) return OpenSslError("AES-128-CTR mask generation");
  return OkStatus();
}

}  // namespace edgefl::privacy::secagg
