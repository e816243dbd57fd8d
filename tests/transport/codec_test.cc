#include "edgefl/transport/codec.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/transport/limits.h"

// GCC 12's -Wextra flags designated initializers that leave fields at their defaults, which
// is how STYLE.md builds values in tests.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace edgefl::transport {
namespace {

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::vector<uint8_t> FromHex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// Whole-value equality; floats compare by bits so NaN payloads count.
bool SameMessage(const Message& a, const Message& b) {
  if (a.sender != b.sender || a.round != b.round || a.body.index() != b.body.index()) return false;
  struct Visitor {
    const Body& other;
    bool operator()(const Hello& x) const {
      const auto& y = std::get<Hello>(other);
      return x.device_name == y.device_name && x.num_examples == y.num_examples &&
             x.requested_id == y.requested_id;
    }
    bool operator()(const Welcome& x) const {
      const auto& y = std::get<Welcome>(other);
      return x.assigned_id == y.assigned_id && x.num_parameters == y.num_parameters;
    }
    bool operator()(const RoundStart& x) const {
      const auto& y = std::get<RoundStart>(other);
      const TrainingConfig& s = x.training;
      const TrainingConfig& t = y.training;
      const std::vector<float> none;
      return x.model_version == y.model_version && s.local_epochs == t.local_epochs &&
             s.local_steps == t.local_steps && s.batch_size == t.batch_size &&
             SameBits(s.learning_rate, t.learning_rate) && SameBits(s.momentum, t.momentum) &&
             SameBits(s.weight_decay, t.weight_decay) && SameBits(s.proximal_mu, t.proximal_mu) &&
             s.seed == t.seed &&
             SameFloats(x.global_weights ? *x.global_weights : none,
                        y.global_weights ? *y.global_weights : none) &&
             x.privacy.dp_mode == y.privacy.dp_mode &&
             SameBits(x.privacy.clip_norm, y.privacy.clip_norm) &&
             x.privacy.secure_aggregation == y.privacy.secure_aggregation &&
             x.privacy.cohort_index == y.privacy.cohort_index &&
             x.privacy.cohort_size == y.privacy.cohort_size &&
             x.privacy.threshold == y.privacy.threshold &&
             x.privacy.neighbours == y.privacy.neighbours &&
             x.privacy.graph_seed == y.privacy.graph_seed &&
             x.privacy.encoding_scale == y.privacy.encoding_scale &&
             x.privacy.local_noise_stddev == y.privacy.local_noise_stddev;
    }
    bool operator()(const Update& x) const {
      const auto& y = std::get<Update>(other);
      return x.num_examples == y.num_examples && SameBits(x.train_loss, y.train_loss) &&
             SameFloats(x.delta, y.delta);
    }
    bool operator()(const RoundEnd& x) const {
      const auto& y = std::get<RoundEnd>(other);
      return x.outcome == y.outcome && x.reason == y.reason;
    }
    bool operator()(const Heartbeat&) const { return true; }
    bool operator()(const ErrorReply& x) const {
      const auto& y = std::get<ErrorReply>(other);
      return x.code == y.code && x.message == y.message;
    }
    bool operator()(const Goodbye&) const { return true; }
    bool operator()(const SecAggPayload& x) const {
      const auto& y = std::get<SecAggPayload>(other);
      return x.step == y.step && x.num_examples == y.num_examples &&
             SameBits(x.train_loss, y.train_loss) && x.payload == y.payload;
    }
  };
  return std::visit(Visitor{b.body}, a.body);
}

std::vector<float> RandomFloats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(rng.Normal());
  return values;
}

// One small message of each type, in MessageType order; the fixtures of the golden test.
std::vector<Message> GoldenMessages() {
  const RoundId round(3);
  const ClientId device(7);
  return {
      Message{.sender = ClientId(0),
              .round = RoundId(0),
              .body = Hello{.device_name = "pi", .num_examples = 600, .requested_id = 5}},
      Message{.sender = ClientId(0),
              .round = RoundId(0),
              .body = Welcome{.assigned_id = device, .num_parameters = 10}},
      Message{.sender = ClientId(0),
              .round = round,
              .body = RoundStart{.model_version = 2,
                                 .training = {.local_epochs = 1,
                                              .local_steps = 0,
                                              .batch_size = 10,
                                              .learning_rate = 0.5f,
                                              .momentum = 0.0f,
                                              .weight_decay = 0.0f,
                                              .proximal_mu = 0.0f,
                                              .seed = 9},
                                 .global_weights = std::make_shared<const std::vector<float>>(
                                     std::vector<float>{1.0f, -2.0f}),
                                 .privacy = {.dp_mode = 2,
                                             .clip_norm = 0.5f,
                                             .secure_aggregation = true,
                                             .cohort_index = 1,
                                             .cohort_size = 3,
                                             .threshold = 2,
                                             .neighbours = 0,
                                             .graph_seed = 5,
                                             .encoding_scale = 4.0,
                                             .local_noise_stddev = 2.0}}},
      Message{.sender = device,
              .round = round,
              .body = Update{.num_examples = 600, .train_loss = 0.25f, .delta = {0.5f}}},
      Message{.sender = ClientId(0),
              .round = round,
              .body = RoundEnd{.outcome = StatusCode::kDeadlineExceeded, .reason = "late"}},
      Message{.sender = device, .round = RoundId(0), .body = Heartbeat{}},
      Message{.sender = ClientId(0),
              .round = RoundId(0),
              .body = ErrorReply{.code = StatusCode::kInvalidArgument, .message = "bad"}},
      Message{.sender = device, .round = RoundId(0), .body = Goodbye{}},
      Message{.sender = device,
              .round = round,
              .body = SecAggPayload{.step = 5, .payload = {1, 2, 3}}},
  };
}

std::vector<uint8_t> MustEncode(const Message& message) {
  Result<std::vector<uint8_t>> frame = Encode(message);
  REQUIRE(frame.ok());
  return std::move(frame).value();
}

// Header bytes for hand-made frames.
std::vector<uint8_t> Header(uint16_t version, uint16_t type, uint32_t payload_bytes) {
  std::vector<uint8_t> out = {'E', 'D', 'F', 'L'};
  out.push_back(static_cast<uint8_t>(version));
  out.push_back(static_cast<uint8_t>(version >> 8));
  out.push_back(static_cast<uint8_t>(type));
  out.push_back(static_cast<uint8_t>(type >> 8));
  out.insert(out.end(), 16, 0);  // round, sender
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(payload_bytes >> (8 * i)));
  return out;
}

std::vector<uint8_t> Frame(uint16_t type, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out = Header(kProtocolVersion, type, static_cast<uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void AppendU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

TEST_CASE("Every message type survives an encode-decode round trip") {
  std::vector<Message> messages = GoldenMessages();
  // Larger and odder values than the golden fixtures: long text, many floats, NaN, extremes.
  messages.push_back(Message{.sender = ClientId(std::numeric_limits<uint64_t>::max()),
                             .round = RoundId(123456789),
                             .body = Update{.num_examples = 1,
                                            .train_loss = std::numeric_limits<float>::quiet_NaN(),
                                            .delta = RandomFloats(1000, 1)}});
  std::get<Update>(messages.back().body).delta[17] = std::numeric_limits<float>::infinity();
  messages.push_back(Message{.body = Hello{.device_name = std::string(kMaxDeviceNameBytes, 'x'),
                                           .num_examples = ~uint64_t{0}}});
  messages.push_back(Message{.body = ErrorReply{.code = StatusCode::kUnauthenticated,
                                                .message = std::string(kMaxErrorTextBytes, '\0')}});
  messages.push_back(Message{
      .body = RoundEnd{.outcome = StatusCode::kOk, .reason = std::string(kMaxReasonBytes, 'r')}});
  messages.push_back(Message{
      .round = RoundId(1),
      .body = RoundStart{
          .model_version = 5,
          .global_weights = std::make_shared<const std::vector<float>>(RandomFloats(4097, 2))}});
  for (const Message& message : messages) {
    CAPTURE(MessageTypeName(TypeOf(message.body)));
    const std::vector<uint8_t> frame = MustEncode(message);
    Result<Message> back = Decode(frame);
    REQUIRE(back.ok());
    CHECK(SameMessage(*back, message));
  }
}

TEST_CASE("A RoundStart with a million weights round-trips into a new weights buffer") {
  auto weights = std::make_shared<const std::vector<float>>(RandomFloats(1'000'000, 3));
  const Message message{.round = RoundId(2), .body = RoundStart{.global_weights = weights}};
  const std::vector<uint8_t> frame = MustEncode(message);
  // marker, version, training, weights count and values, privacy settings (46 bytes).
  CHECK(frame.size() == kEnvelopeHeaderBytes + 1 + 8 + 12 + 16 + 8 + 8 + 4'000'000 + 46);
  Result<Message> back = Decode(frame);
  REQUIRE(back.ok());
  const auto& decoded = std::get<RoundStart>(back->body).global_weights;
  REQUIRE(decoded != nullptr);
  CHECK(decoded != weights);
  CHECK(SameFloats(*decoded, *weights));
}

TEST_CASE("A RoundStart without weights encodes as zero weights and decodes to an empty buffer") {
  const Message message{.body = RoundStart{.model_version = 1}};
  Result<Message> back = Decode(MustEncode(message));
  REQUIRE(back.ok());
  const auto& weights = std::get<RoundStart>(back->body).global_weights;
  REQUIRE(weights != nullptr);
  CHECK(weights->empty());
}

TEST_CASE("The encoding of each message type is pinned byte for byte") {
  // Header: "EDFL", version 2, type, round, sender, payload length; all little-endian.
  // Payload: 0x01 (little-endian marker), then the fields in docs/protocol.md order.
  // clang-format off
  const std::vector<std::string> expected = {
      // Hello{"pi", 600, 5}
      "4544464c" "0200" "0100" "0000000000000000" "0000000000000000" "1b000000"
      "01" "0200000000000000" "7069" "5802000000000000" "0500000000000000",
      // Welcome{7, 10}
      "4544464c" "0200" "0200" "0000000000000000" "0000000000000000" "11000000"
      "01" "0700000000000000" "0a00000000000000",
      // RoundStart{2, {1, 0, 10, 0.5, 0, 0, 0, 9}, {1, -2}, {2, 0.5, 1, 1, 3, 2, 0, 5, 4, 2}},
      // round 3
      "4544464c" "0200" "0300" "0300000000000000" "0000000000000000" "6b000000"
      "01" "0200000000000000" "01000000" "00000000" "0a000000" "0000003f" "00000000"
      "00000000" "00000000" "0900000000000000" "0200000000000000" "0000803f" "000000c0"
      "02" "0000003f" "01" "01000000" "03000000" "02000000" "00000000" "0500000000000000"
      "0000000000001040" "0000000000000040",
      // Update{600, 0.25, {0.5}}, round 3, sender 7
      "4544464c" "0200" "0400" "0300000000000000" "0700000000000000" "19000000"
      "01" "5802000000000000" "0000803e" "0100000000000000" "0000003f",
      // RoundEnd{DEADLINE_EXCEEDED, "late"}, round 3
      "4544464c" "0200" "0500" "0300000000000000" "0000000000000000" "11000000"
      "01" "04000000" "0400000000000000" "6c617465",
      // Heartbeat, sender 7
      "4544464c" "0200" "0600" "0000000000000000" "0700000000000000" "01000000" "01",
      // Error{INVALID_ARGUMENT, "bad"}
      "4544464c" "0200" "0700" "0000000000000000" "0000000000000000" "10000000"
      "01" "03000000" "0300000000000000" "626164",
      // Goodbye, sender 7
      "4544464c" "0200" "0800" "0000000000000000" "0700000000000000" "01000000" "01",
      // SecAgg{5, 0, 0, {1, 2, 3}}, round 3, sender 7
      "4544464c" "0200" "0900" "0300000000000000" "0700000000000000" "19000000"
      "01" "05" "0000000000000000" "00000000" "0300000000000000" "010203",
  };
  // clang-format on
  const std::vector<Message> messages = GoldenMessages();
  REQUIRE(messages.size() == expected.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    CAPTURE(MessageTypeName(TypeOf(messages[i].body)));
    CHECK(Hex(MustEncode(messages[i])) == expected[i]);
    Result<Message> decoded = Decode(FromHex(expected[i]));
    REQUIRE(decoded.ok());
    CHECK(SameMessage(*decoded, messages[i]));
  }
}

TEST_CASE("DecodeHeader reads the envelope without the payload") {
  const std::vector<uint8_t> frame = MustEncode(GoldenMessages()[3]);
  Result<EnvelopeHeader> header = DecodeHeader(frame);
  REQUIRE(header.ok());
  CHECK(header->version == kProtocolVersion);
  CHECK(header->type == MessageType::kUpdate);
  CHECK(header->round == RoundId(3));
  CHECK(header->sender == ClientId(7));
  CHECK(header->payload_bytes == frame.size() - kEnvelopeHeaderBytes);
}

TEST_CASE("Decode refuses bad envelopes with the documented status codes") {
  const std::vector<uint8_t> good = MustEncode(GoldenMessages()[0]);
  const auto code_of = [](std::span<const uint8_t> frame) { return Decode(frame).status().code(); };

  CHECK(code_of({}) == StatusCode::kDataLoss);
  CHECK(code_of(std::span(good).first(kEnvelopeHeaderBytes - 1)) == StatusCode::kDataLoss);

  std::vector<uint8_t> bad = good;
  bad[0] = 'X';
  CHECK(code_of(bad) == StatusCode::kInvalidArgument);

  bad = good;
  bad[4] = 1;  // version 1, before Hello.requested_id
  CHECK(code_of(bad) == StatusCode::kUnimplemented);
  CHECK(Decode(bad).status().message() == "protocol version 1, this build speaks 2");
  bad[4] = 3;  // a later version
  CHECK(Decode(bad).status().message() == "protocol version 3, this build speaks 2");

  for (uint16_t type : {uint16_t{0}, uint16_t{10}, uint16_t{0xffff}}) {
    bad = good;
    bad[6] = static_cast<uint8_t>(type);
    bad[7] = static_cast<uint8_t>(type >> 8);
    CHECK(code_of(bad) == StatusCode::kInvalidArgument);
  }

  bad = good;
  bad.push_back(0);  // a byte beyond the announced payload
  CHECK(code_of(bad) == StatusCode::kDataLoss);

  bad = good;
  bad.pop_back();  // one byte short of the announced payload
  CHECK(code_of(bad) == StatusCode::kDataLoss);

  // Announced length and frame agree, but a byte follows the last field.
  std::vector<uint8_t> payload(good.begin() + kEnvelopeHeaderBytes, good.end());
  payload.push_back(0);
  CHECK(code_of(Frame(1, payload)) == StatusCode::kInvalidArgument);
  CHECK(Decode(Frame(1, payload)).status().message() == "1 trailing bytes after Hello payload");

  // A big-endian marker (0x00) or any other value is refused.
  payload.assign(good.begin() + kEnvelopeHeaderBytes, good.end());
  payload[0] = 0;
  CHECK(code_of(Frame(1, payload)) == StatusCode::kInvalidArgument);
  CHECK(code_of(Frame(6, {})) == StatusCode::kInvalidArgument);  // Heartbeat without marker
}

TEST_CASE("Decode refuses payloads over their type's limit before reading them") {
  // A Hello whose header announces 4 KiB + 1 is refused from the header alone.
  std::vector<uint8_t> frame = Header(kProtocolVersion, 1, kMaxHelloPayloadBytes + 1);
  Result<Message> decoded = Decode(frame);
  CHECK(decoded.status().code() == StatusCode::kResourceExhausted);
  CHECK(decoded.status().message() == "Hello payload of 4097 bytes exceeds limit 4096");

  frame = Header(kProtocolVersion, 4, 0xffffffffu);
  CHECK(Decode(frame).status().code() == StatusCode::kResourceExhausted);
}

TEST_CASE("Decode refuses length fields beyond their limits or the remaining bytes") {
  // Hello.device_name one byte over its limit (the payload itself is within 4 KiB).
  std::vector<uint8_t> payload = {1};
  AppendU64(payload, kMaxDeviceNameBytes + 1);
  payload.insert(payload.end(), kMaxDeviceNameBytes + 1, 'x');
  AppendU64(payload, 1);
  Result<Message> decoded = Decode(Frame(1, payload));
  CHECK(decoded.status().code() == StatusCode::kInvalidArgument);
  CHECK(decoded.status().message() == "Hello: Hello.device_name has 257 bytes, limit 256");

  // A name length far beyond the bytes present: refused without allocating 2^60 bytes.
  payload = {1};
  AppendU64(payload, uint64_t{1} << 60);
  CHECK(Decode(Frame(1, payload)).status().code() == StatusCode::kInvalidArgument);
  payload = {1};
  AppendU64(payload, 200);
  payload.insert(payload.end(), 10, 'x');
  CHECK(Decode(Frame(1, payload)).status().code() == StatusCode::kDataLoss);

  // Update.delta: a count over kMaxNumWeights, and a count larger than the bytes that follow.
  for (uint64_t count : {uint64_t{kMaxNumWeights} + 1, ~uint64_t{0}, uint64_t{3}}) {
    payload = {1};
    AppendU64(payload, 600);
    payload.insert(payload.end(), {0, 0, 0, 0});  // train_loss
    AppendU64(payload, count);
    payload.insert(payload.end(), 8, 0);  // two floats
    CAPTURE(count);
    CHECK_FALSE(Decode(Frame(4, payload)).ok());
  }

  // Status codes outside 0..16.
  for (int32_t code : {-1, 17}) {
    payload = {1};
    for (int i = 0; i < 4; ++i) payload.push_back(static_cast<uint8_t>(code >> (8 * i)));
    AppendU64(payload, 0);
    CHECK(Decode(Frame(7, payload)).status().code() == StatusCode::kInvalidArgument);
    CHECK(Decode(Frame(5, payload)).status().code() == StatusCode::kInvalidArgument);
  }

  // Welcome.num_parameters beyond kMaxNumWeights.
  payload = {1};
  AppendU64(payload, 1);
  AppendU64(payload, uint64_t{kMaxNumWeights} + 1);
  CHECK(Decode(Frame(2, payload)).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Encode refuses fields over their limits") {
  const auto code_of = [](Body body) { return Encode(Message{.body = body}).status().code(); };
  CHECK(code_of(Hello{.device_name = std::string(kMaxDeviceNameBytes + 1, 'x')}) ==
        StatusCode::kInvalidArgument);
  CHECK(code_of(RoundEnd{.reason = std::string(kMaxReasonBytes + 1, 'x')}) ==
        StatusCode::kInvalidArgument);
  CHECK(code_of(ErrorReply{.message = std::string(kMaxErrorTextBytes + 1, 'x')}) ==
        StatusCode::kInvalidArgument);
  CHECK(code_of(Welcome{.num_parameters = kMaxNumWeights + 1}) == StatusCode::kInvalidArgument);
  CHECK(code_of(Update{.delta = std::vector<float>(kMaxNumWeights + 1)}) ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("Float vectors of the maximum size round-trip" * doctest::test_suite("slow")) {
  const Message message{
      .body = Update{.num_examples = 1, .delta = std::vector<float>(kMaxNumWeights, 1.5f)}};
  const std::vector<uint8_t> frame = MustEncode(message);
  CHECK(frame.size() == kEnvelopeHeaderBytes + 1 + 8 + 4 + 8 + kMaxWeightsBytes);
  Result<Message> back = Decode(frame);
  REQUIRE(back.ok());
  CHECK(SameMessage(*back, message));
}

// Every accepted frame must be the canonical encoding of what it decodes to.
void CheckDecodesToErrorOrCanonical(std::span<const uint8_t> frame) {
  Result<Message> decoded = Decode(frame);
  if (!decoded.ok()) return;
  Result<std::vector<uint8_t>> again = Encode(*decoded);
  REQUIRE(again.ok());
  CHECK(std::equal(again->begin(), again->end(), frame.begin(), frame.end()));
}

TEST_CASE("Truncated and bit-flipped frames decode to an error or a canonical message") {
  std::vector<Message> messages = GoldenMessages();
  messages.push_back(Message{.body = Update{.num_examples = 3, .delta = RandomFloats(9, 4)}});
  Rng rng(20240601);
  for (const Message& message : messages) {
    CAPTURE(MessageTypeName(TypeOf(message.body)));
    const std::vector<uint8_t> frame = MustEncode(message);
    for (size_t n = 0; n < frame.size(); ++n) {
      CHECK_FALSE(Decode(std::span(frame).first(n)).ok());
    }
    for (int trial = 0; trial < 2000; ++trial) {
      std::vector<uint8_t> corrupt = frame;
      const int num_flips = 1 + static_cast<int>(rng.UniformInt(3));
      for (int f = 0; f < num_flips; ++f) {
        const size_t position = rng.UniformInt(corrupt.size());
        if (rng.UniformInt(2) == 0) {
          corrupt[position] ^= static_cast<uint8_t>(1u << rng.UniformInt(8));
        } else {
          corrupt[position] = static_cast<uint8_t>(rng.UniformInt(256));
        }
      }
      CheckDecodesToErrorOrCanonical(corrupt);
    }
  }
}

TEST_CASE("Random byte strings decode to an error or a canonical message") {
  Rng rng(77);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bytes(rng.UniformInt(80));
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.UniformInt(256));
    if (bytes.size() >= 4 && rng.UniformInt(2) == 0) std::memcpy(bytes.data(), "EDFL", 4);
    CheckDecodesToErrorOrCanonical(bytes);
  }
}

}  // namespace
}  // namespace edgefl::transport
