// Known-answer tests for the secure-aggregation primitives (secagg/crypto.h): RFC 7748 X25519,
// RFC 5869 HKDF-SHA256, NIST SP 800-38A AES-128-CTR; AES-GCM round trips and tampering; the
// tiled, threaded mask kernel against a one-call keystream reference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/privacy/secagg/crypto.h"
#include "edgefl/privacy/secagg/secret.h"

namespace edgefl::privacy::secagg {
namespace {

std::vector<uint8_t> Hex(std::string_view hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

template <size_t N>
SecretBytes<N> SecretFromHex(std::string_view hex) {
  std::vector<uint8_t> bytes = Hex(hex);
  REQUIRE(bytes.size() == N);
  return SecretBytes<N>(std::span<const uint8_t, N>(bytes.data(), N));
}

template <typename A, typename B>
bool SameBytes(const A& a, const B& b) {
  return std::ranges::equal(a, b);
}

// The scalar reference for ApplyMasks: one keystream for the whole vector, added word by word.
void ReferenceApplyMasks(std::span<const MaskTerm> terms, std::span<uint32_t> values) {
  std::vector<uint8_t> keystream(values.size() * 4);
  for (const MaskTerm& term : terms) {
    REQUIRE(PrgKeystream(term.seed, keystream).ok());
    for (size_t i = 0; i < values.size(); ++i) {
      const uint32_t word = uint32_t{keystream[4 * i]} | uint32_t{keystream[4 * i + 1]} << 8 |
                            uint32_t{keystream[4 * i + 2]} << 16 |
                            uint32_t{keystream[4 * i + 3]} << 24;
      values[i] = term.sign == MaskSign::kAdd ? values[i] + word : values[i] - word;
    }
  }
}

TEST_CASE("SecretBytes cannot be copied and a move wipes the source") {
  static_assert(!std::is_copy_constructible_v<SecretBytes<32>>);
  static_assert(!std::is_copy_assignable_v<SecretBytes<32>>);
  static_assert(std::is_nothrow_move_constructible_v<SecretBytes<32>>);
  SecretBytes<4> secret = SecretFromHex<4>("01020304");
  SecretBytes<4> moved = std::move(secret);
  CHECK(SameBytes(moved.Reveal(), Hex("01020304")));
  CHECK(SameBytes(secret.Reveal(), Hex("00000000")));  // NOLINT: reading a moved-from secret
  SecretBytes<4> clone = moved.Clone();
  CHECK(SameBytes(clone.Reveal(), moved.Reveal()));
}

TEST_CASE("X25519 matches the RFC 7748 section 6.1 Diffie-Hellman test vector") {
  const auto alice =
      SecretFromHex<32>("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const auto bob =
      SecretFromHex<32>("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  const std::vector<uint8_t> alice_public =
      Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  const std::vector<uint8_t> bob_public =
      Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const std::vector<uint8_t> shared =
      Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

  auto alice_pk = X25519PublicKeyOf(alice);
  auto bob_pk = X25519PublicKeyOf(bob);
  REQUIRE(alice_pk.ok());
  REQUIRE(bob_pk.ok());
  CHECK(SameBytes(*alice_pk, alice_public));
  CHECK(SameBytes(*bob_pk, bob_public));
  auto k1 = X25519Agree(alice, std::span<const uint8_t, 32>(bob_public.data(), 32));
  auto k2 = X25519Agree(bob, std::span<const uint8_t, 32>(alice_public.data(), 32));
  REQUIRE(k1.ok());
  REQUIRE(k2.ok());
  CHECK(SameBytes(k1->Reveal(), shared));
  CHECK(SameBytes(k2->Reveal(), shared));
}

TEST_CASE("X25519 refuses a low-order peer key and fresh key pairs agree") {
  auto a = GenerateX25519KeyPair();
  auto b = GenerateX25519KeyPair();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->public_key != b->public_key);
  auto ab = X25519Agree(a->private_key, b->public_key);
  auto ba = X25519Agree(b->private_key, a->public_key);
  REQUIRE(ab.ok());
  REQUIRE(ba.ok());
  CHECK(SameBytes(ab->Reveal(), ba->Reveal()));
  const X25519PublicKey zero{};  // the neutral point: every shared secret would be zero
  CHECK(X25519Agree(a->private_key, zero).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("X25519AgreeMany matches one agreement per peer, on any number of threads") {
  auto own = GenerateX25519KeyPair();
  REQUIRE(own.ok());
  std::vector<X25519PublicKey> peers;
  for (int i = 0; i < 40; ++i) peers.push_back(GenerateX25519KeyPair()->public_key);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    std::vector<SecretBytes<32>> shared(peers.size());
    REQUIRE(X25519AgreeMany(own->private_key, peers, shared, threads).ok());
    for (size_t i = 0; i < peers.size(); ++i) {
      auto one = X25519Agree(own->private_key, peers[i]);
      REQUIRE(one.ok());
      CHECK(SameBytes(shared[i].Reveal(), one->Reveal()));
    }
  }
  peers[33] = X25519PublicKey{};
  std::vector<SecretBytes<32>> shared(peers.size());
  const Status status = X25519AgreeMany(own->private_key, peers, shared, 2);
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK(status.message().find("peer 33") != std::string::npos);
  CHECK(std::all_of(shared.begin(), shared.end(), [](const SecretBytes<32>& s) {
    return std::ranges::all_of(s.Reveal(), [](uint8_t b) { return b == 0; });
  }));
}

TEST_CASE("HKDF-SHA256 matches RFC 5869 test cases 1 to 3") {
  struct Case {
    std::vector<uint8_t> ikm, salt, info;
    std::string okm;
  };
  std::vector<uint8_t> ikm2, salt2, info2;
  for (int i = 0; i < 80; ++i) {
    ikm2.push_back(static_cast<uint8_t>(i));
    salt2.push_back(static_cast<uint8_t>(0x60 + i));
    info2.push_back(static_cast<uint8_t>(0xb0 + i));
  }
  const std::vector<Case> cases = {
      {std::vector<uint8_t>(22, 0x0b), Hex("000102030405060708090a0b0c"),
       Hex("f0f1f2f3f4f5f6f7f8f9"),
       "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
      {ikm2, salt2, info2,
       "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c6"
       "5e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
      {std::vector<uint8_t>(22, 0x0b),
       {},
       {},
       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const std::vector<uint8_t> expected = Hex(cases[i].okm);
    std::vector<uint8_t> okm(expected.size());
    REQUIRE(HkdfSha256(cases[i].ikm, cases[i].salt, cases[i].info, okm).ok());
    CHECK(okm == expected);
  }
  std::vector<uint8_t> too_long(255 * 32 + 1);
  CHECK(HkdfSha256(Hex("00"), {}, {}, too_long).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("AES-128-CTR keystream matches NIST SP 800-38A F.5.1 at every block offset") {
  // Seed = key || initial counter block.
  const std::vector<uint8_t> seed =
      Hex("2b7e151628aed2a6abf7158809cf4f3cf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  const std::vector<uint8_t> plaintext =
      Hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  const std::vector<uint8_t> ciphertext =
      Hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
          "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
  for (size_t offset = 0; offset < 64; offset += 16) {
    CAPTURE(offset);
    std::vector<uint8_t> keystream(64 - offset);
    REQUIRE(PrgKeystream(seed, keystream, offset).ok());
    for (size_t i = 0; i < keystream.size(); ++i) keystream[i] ^= plaintext[offset + i];
    CHECK(SameBytes(keystream, std::span(ciphertext).subspan(offset)));
  }
  std::vector<uint8_t> out(16);
  CHECK(PrgKeystream(seed, out, 8).code() == StatusCode::kInvalidArgument);
  CHECK(PrgKeystream(Hex("0011"), out).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("AES-GCM opens what it sealed and rejects any tampering") {
  auto key = SecretFromHex<32>("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const std::vector<uint8_t> plaintext = Hex("00112233445566778899aabbccddeeff0102030405");
  const std::vector<uint8_t> aad = Hex("0a0b0c");
  std::vector<uint8_t> sealed(plaintext.size() + kAesGcmOverheadBytes);
  REQUIRE(AesGcmSeal(key, plaintext, aad, sealed).ok());
  std::vector<uint8_t> opened(plaintext.size());
  REQUIRE(AesGcmOpen(key, sealed, aad, opened).ok());
  CHECK(opened == plaintext);

  // Fresh nonces: sealing twice gives different bytes.
  std::vector<uint8_t> sealed_again(sealed.size());
  REQUIRE(AesGcmSeal(key, plaintext, aad, sealed_again).ok());
  CHECK(sealed_again != sealed);

  for (size_t i = 0; i < sealed.size(); ++i) {
    std::vector<uint8_t> tampered = sealed;
    tampered[i] ^= 0x01;
    CAPTURE(i);
    CHECK(AesGcmOpen(key, tampered, aad, opened).code() == StatusCode::kDataLoss);
    CHECK(std::all_of(opened.begin(), opened.end(), [](uint8_t b) { return b == 0; }));
  }
  CHECK(AesGcmOpen(key, sealed, Hex("0a0b0d"), opened).code() == StatusCode::kDataLoss);
  auto other_key = key.Clone();
  other_key.MutableReveal()[0] ^= 1;
  CHECK(AesGcmOpen(other_key, sealed, aad, opened).code() == StatusCode::kDataLoss);
  CHECK(AesGcmOpen(key, std::span(sealed).first(10), aad, opened).code() ==
        StatusCode::kInvalidArgument);
  std::vector<uint8_t> wrong_size(3);
  CHECK(AesGcmSeal(key, plaintext, aad, wrong_size).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("ApplyMasks matches the one-keystream reference for every size, sign and thread count") {
  Rng rng(11);
  std::vector<std::vector<uint8_t>> seeds;
  for (size_t size : {16, 32, 16, 32}) {
    std::vector<uint8_t> seed(size);
    for (uint8_t& b : seed) b = static_cast<uint8_t>(rng.NextU64());
    seeds.push_back(seed);
  }
  // A counter block about to carry through its low 64 bits: tiles must carry across bytes.
  std::fill(seeds[3].begin() + 16, seeds[3].end(), 0xff);
  seeds[3][16] = 0x00;
  const std::vector<MaskTerm> terms = {{seeds[0], MaskSign::kAdd},
                                       {seeds[1], MaskSign::kSubtract},
                                       {seeds[2], MaskSign::kSubtract},
                                       {seeds[3], MaskSign::kAdd}};
  // Sizes around the AES block, the 4096-word chunk and the 65536-word tile.
  for (size_t size : {0, 1, 3, 4, 7, 15, 16, 17, 255, 1027, 4096, 4097, 65535, 65536, 300007}) {
    std::vector<uint32_t> start(size);
    for (uint32_t& v : start) v = static_cast<uint32_t>(rng.NextU64());
    std::vector<uint32_t> expected = start;
    ReferenceApplyMasks(terms, expected);
    for (int threads : {1, 2, 3}) {
      CAPTURE(size);
      CAPTURE(threads);
      std::vector<uint32_t> values = start;
      REQUIRE(ApplyMasks(terms, values, threads).ok());
      CHECK(values == expected);
    }
  }
}

TEST_CASE("ApplyMasks adds then subtracts back to the input and leaves it alone on bad seeds") {
  const std::vector<uint8_t> seed(16, 7);
  std::vector<uint32_t> values(5000, 42);
  const std::vector<MaskTerm> add = {{seed, MaskSign::kAdd}};
  const std::vector<MaskTerm> subtract = {{seed, MaskSign::kSubtract}};
  REQUIRE(ApplyMasks(add, values).ok());
  CHECK(values != std::vector<uint32_t>(5000, 42));
  REQUIRE(ApplyMasks(subtract, values).ok());
  CHECK(values == std::vector<uint32_t>(5000, 42));
  const std::vector<uint8_t> bad(20, 1);
  const std::vector<MaskTerm> bad_terms = {{seed, MaskSign::kAdd}, {bad, MaskSign::kAdd}};
  CHECK(ApplyMasks(bad_terms, values).code() == StatusCode::kInvalidArgument);
  CHECK(values == std::vector<uint32_t>(5000, 42));
}

TEST_CASE("ApplyMasks gives the same result when called from several threads at once") {
  const std::vector<uint8_t> seed(32, 3);
  const std::vector<MaskTerm> terms = {{seed, MaskSign::kAdd}};
  std::vector<uint32_t> expected(100000, 1);
  ReferenceApplyMasks(terms, expected);
  std::vector<std::vector<uint32_t>> results(4, std::vector<uint32_t>(100000, 1));
  std::vector<char> ok(results.size(), 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { ok[i] = ApplyMasks(terms, results[i], 2).ok(); });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < results.size(); ++i) {
    CHECK(ok[i]);
    CHECK(results[i] == expected);
  }
}

}  // namespace
}  // namespace edgefl::privacy::secagg
