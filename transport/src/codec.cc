#include "edgefl/transport/codec.h"

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cmath>
#include <cstring>
#include <istream>
#include <memory>
#include <new>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <utility>

namespace edgefl::transport {
namespace {

// Cereal's PortableBinaryOutputArchive writes this byte first: 1 = the payload is little-endian.
// We only ever write 1 and only accept 1, so every other language reads plain little-endian.
constexpr uint8_t kLittleEndianMarker = 1;
constexpr StatusCode kLastStatusCode = StatusCode::kUnauthenticated;

// Appends everything written through an ostream to a byte vector, so header and payload are
// built in one buffer.
class AppendingStreamBuf final : public std::streambuf {
 public:
  explicit AppendingStreamBuf(std::vector<uint8_t>& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const auto* bytes = reinterpret_cast<const uint8_t*>(s);
    out_.insert(out_.end(), bytes, bytes + n);
    return n;
  }
  int_type overflow(int_type ch) override {
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      out_.push_back(static_cast<uint8_t>(traits_type::to_char_type(ch)));
    }
    return traits_type::not_eof(ch);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Reads from a span in place and tells how much is left, so every length field can be checked
// against the remaining bytes before anything is allocated.
class SpanStreamBuf final : public std::streambuf {
 public:
  explicit SpanStreamBuf(std::span<const uint8_t> bytes) {
    // std::streambuf wants char*; the get area is only ever read.
    char* begin = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
    setg(begin, begin, begin + bytes.size());
  }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

void StoreLittleEndian(uint8_t* out, uint64_t value, int num_bytes) {
  for (int i = 0; i < num_bytes; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t LoadLittleEndian(std::span<const uint8_t> bytes, size_t offset, int num_bytes) {
  uint64_t value = 0;
  for (int i = 0; i < num_bytes; ++i) value |= uint64_t{bytes[offset + i]} << (8 * i);
  return value;
}

class PayloadWriter {
 public:
  explicit PayloadWriter(std::ostream& stream)
      : archive_(stream, cereal::PortableBinaryOutputArchive::Options::LittleEndian()) {}

  template <typename T>
  void Write(T value) {
    archive_(value);
  }
  // Cereal's own std::string layout: uint64 byte count, then the bytes.
  void WriteText(std::string_view text) {
    archive_(static_cast<uint64_t>(text.size()));
    archive_(cereal::binary_data(text.data(), text.size()));
  }
  // uint64 count, then the bytes.
  void WriteBytes(std::span<const uint8_t> bytes) {
    archive_(static_cast<uint64_t>(bytes.size()));
    archive_(cereal::binary_data(bytes.data(), bytes.size()));
  }
  // uint64 count, then count IEEE-754 binary32 values, little-endian. Written as one block.
  void WriteFloats(std::span<const float> values) {
    archive_(static_cast<uint64_t>(values.size()));
    archive_(cereal::binary_data(values.data(), values.size_bytes()));
  }

 private:
  cereal::PortableBinaryOutputArchive archive_;
};

// Reads payload fields with a sticky error: after the first failure every read returns a zero
// value and status() says what went wrong. Lengths are checked before allocation, so cereal's
// own short-read exception is a second line of defence, not the first.
class PayloadReader {
 public:
  // Precondition: `payload` starts with kLittleEndianMarker (the archive reads it).
  explicit PayloadReader(std::span<const uint8_t> payload)
      : buffer_(payload), stream_(&buffer_), archive_(stream_) {}

  const Status& status() const { return status_; }
  size_t remaining() const { return buffer_.remaining(); }

  template <typename T>
  T Read(const char* field) {
    T value{};
    if (!status_.ok()) return value;
    if (remaining() < sizeof(T)) {
      Fail(DataLossError(std::string(field) + " needs " + std::to_string(sizeof(T)) + " bytes, " +
                         std::to_string(remaining()) + " remain"));
      return value;
    }
    archive_(value);
    return value;
  }

  std::string ReadText(const char* field, size_t max_bytes) {
    const uint64_t size = Read<uint64_t>(field);
    if (!status_.ok()) return {};
    if (size > max_bytes) {
      Fail(InvalidArgumentError(std::string(field) + " has " + std::to_string(size) +
                                " bytes, limit " + std::to_string(max_bytes)));
      return {};
    }
    if (size > remaining()) {
      Fail(DataLossError(std::string(field) + " has " + std::to_string(size) + " bytes, " +
                         std::to_string(remaining()) + " remain"));
      return {};
    }
    std::string text(static_cast<size_t>(size), '\0');
    archive_(cereal::binary_data(text.data(), text.size()));
    return text;
  }

  std::vector<uint8_t> ReadBytes(const char* field, size_t max_bytes) {
    const uint64_t size = Read<uint64_t>(field);
    if (!status_.ok()) return {};
    if (size > max_bytes) {
      Fail(InvalidArgumentError(std::string(field) + " has " + std::to_string(size) +
                                " bytes, limit " + std::to_string(max_bytes)));
      return {};
    }
    if (size > remaining()) {
      Fail(DataLossError(std::string(field) + " has " + std::to_string(size) + " bytes, " +
                         std::to_string(remaining()) + " remain"));
      return {};
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    archive_(cereal::binary_data(bytes.data(), bytes.size()));
    return bytes;
  }

  std::vector<float> ReadFloats(const char* field) {
    const uint64_t count = Read<uint64_t>(field);
    if (!status_.ok()) return {};
    if (count > kMaxNumWeights) {
      Fail(InvalidArgumentError(std::string(field) + " has " + std::to_string(count) +
                                " floats, limit " + std::to_string(kMaxNumWeights)));
      return {};
    }
    // count <= 2^24, so the product cannot overflow.
    if (count * sizeof(float) > remaining()) {
      Fail(DataLossError(std::string(field) + " has " + std::to_string(count) + " floats (" +
                         std::to_string(count * sizeof(float)) + " bytes), " +
                         std::to_string(remaining()) + " remain"));
      return {};
    }
    std::vector<float> values(static_cast<size_t>(count));
    archive_(cereal::binary_data(values.data(), values.size() * sizeof(float)));
    return values;
  }

  StatusCode ReadStatusCode(const char* field) {
    const int32_t code = Read<int32_t>(field);
    if (!status_.ok()) return StatusCode::kUnknown;
    if (code < 0 || code > static_cast<int32_t>(kLastStatusCode)) {
      Fail(InvalidArgumentError(std::string(field) + " " + std::to_string(code) +
                                " is not a status code (0.." +
                                std::to_string(static_cast<int32_t>(kLastStatusCode)) + ")"));
      return StatusCode::kUnknown;
    }
    return static_cast<StatusCode>(code);
  }

  void Fail(Status status) {
    if (status_.ok()) status_ = std::move(status);
  }

 private:
  SpanStreamBuf buffer_;
  std::istream stream_;
  cereal::PortableBinaryInputArchive archive_;
  Status status_;
};

size_t NumFloats(const Body& body) {
  if (const auto* start = std::get_if<RoundStart>(&body)) {
    return start->global_weights ? start->global_weights->size() : 0;
  }
  if (const auto* update = std::get_if<Update>(&body)) return update->delta.size();
  return 0;
}

Status CheckTextLimit(std::string_view field, size_t size, size_t limit) {
  if (size <= limit) return OkStatus();
  return InvalidArgumentError(std::string(field) + " has " + std::to_string(size) +
                              " bytes, limit " + std::to_string(limit));
}

Status CheckEncodeLimits(const Body& body) {
  if (const auto* hello = std::get_if<Hello>(&body)) {
    return CheckTextLimit("Hello.device_name", hello->device_name.size(), kMaxDeviceNameBytes);
  }
  if (const auto* end = std::get_if<RoundEnd>(&body)) {
    return CheckTextLimit("RoundEnd.reason", end->reason.size(), kMaxReasonBytes);
  }
  if (const auto* error = std::get_if<ErrorReply>(&body)) {
    return CheckTextLimit("Error.message", error->message.size(), kMaxErrorTextBytes);
  }
  if (const auto* welcome = std::get_if<Welcome>(&body)) {
    if (welcome->num_parameters > kMaxNumWeights) {
      return InvalidArgumentError("Welcome.num_parameters " +
                                  std::to_string(welcome->num_parameters) + " exceeds limit " +
                                  std::to_string(kMaxNumWeights));
    }
  }
  const size_t num_floats = NumFloats(body);
  if (num_floats > kMaxNumWeights) {
    return InvalidArgumentError(std::string(MessageTypeName(TypeOf(body))) + " carries " +
                                std::to_string(num_floats) + " floats, limit " +
                                std::to_string(kMaxNumWeights));
  }
  return OkStatus();
}

// Field order is the wire format (docs/protocol.md); keep EncodeBody and DecodeBody in step.
void EncodeBody(const Body& body, PayloadWriter& out) {
  struct Visitor {
    PayloadWriter& out;
    void operator()(const Hello& m) {
      out.WriteText(m.device_name);
      out.Write<uint64_t>(m.num_examples);
      out.Write<uint64_t>(m.requested_id);
    }
    void operator()(const Welcome& m) {
      out.Write<uint64_t>(m.assigned_id.value());
      out.Write<uint64_t>(m.num_parameters);
    }
    void operator()(const RoundStart& m) {
      out.Write<uint64_t>(m.model_version);
      out.Write<uint32_t>(m.training.local_epochs);
      out.Write<uint32_t>(m.training.local_steps);
      out.Write<uint32_t>(m.training.batch_size);
      out.Write<float>(m.training.learning_rate);
      out.Write<float>(m.training.momentum);
      out.Write<float>(m.training.weight_decay);
      out.Write<float>(m.training.proximal_mu);
      out.Write<uint64_t>(m.training.seed);
      if (m.global_weights) {
        out.WriteFloats(*m.global_weights);
      } else {
        out.WriteFloats({});
      }
      const PrivacySettings& p = m.privacy;
      out.Write<uint8_t>(p.dp_mode);
      out.Write<float>(p.clip_norm);
      out.Write<uint8_t>(p.secure_aggregation ? 1 : 0);
      out.Write<uint32_t>(p.cohort_index);
      out.Write<uint32_t>(p.cohort_size);
      out.Write<uint32_t>(p.threshold);
      out.Write<uint32_t>(p.neighbours);
      out.Write<uint64_t>(p.graph_seed);
      out.Write<double>(p.encoding_scale);
      out.Write<double>(p.local_noise_stddev);
    }
    void operator()(const Update& m) {
      out.Write<uint64_t>(m.num_examples);
      out.Write<float>(m.train_loss);
      out.WriteFloats(m.delta);
    }
    void operator()(const RoundEnd& m) {
      out.Write<int32_t>(static_cast<int32_t>(m.outcome));
      out.WriteText(m.reason);
    }
    void operator()(const Heartbeat&) {}
    void operator()(const ErrorReply& m) {
      out.Write<int32_t>(static_cast<int32_t>(m.code));
      out.WriteText(m.message);
    }
    void operator()(const Goodbye&) {}
    void operator()(const SecAggPayload& m) {
      out.Write<uint8_t>(m.step);
      out.Write<uint64_t>(m.num_examples);
      out.Write<float>(m.train_loss);
      out.WriteBytes(m.payload);
    }
  };
  std::visit(Visitor{out}, body);
}

Body DecodeBody(MessageType type, PayloadReader& in) {
  switch (type) {
    case MessageType::kHello: {
      Hello m;
      m.device_name = in.ReadText("Hello.device_name", kMaxDeviceNameBytes);
      m.num_examples = in.Read<uint64_t>("Hello.num_examples");
      m.requested_id = in.Read<uint64_t>("Hello.requested_id");
      return m;
    }
    case MessageType::kWelcome: {
      Welcome m;
      m.assigned_id = ClientId(in.Read<uint64_t>("Welcome.assigned_id"));
      m.num_parameters = in.Read<uint64_t>("Welcome.num_parameters");
      if (m.num_parameters > kMaxNumWeights) {
        in.Fail(InvalidArgumentError("Welcome.num_parameters " + std::to_string(m.num_parameters) +
                                     " exceeds limit " + std::to_string(kMaxNumWeights)));
      }
      return m;
    }
    case MessageType::kRoundStart: {
      RoundStart m;
      m.model_version = in.Read<uint64_t>("RoundStart.model_version");
      m.training.local_epochs = in.Read<uint32_t>("RoundStart.training.local_epochs");
      m.training.local_steps = in.Read<uint32_t>("RoundStart.training.local_steps");
      m.training.batch_size = in.Read<uint32_t>("RoundStart.training.batch_size");
      m.training.learning_rate = in.Read<float>("RoundStart.training.learning_rate");
      m.training.momentum = in.Read<float>("RoundStart.training.momentum");
      m.training.weight_decay = in.Read<float>("RoundStart.training.weight_decay");
      m.training.proximal_mu = in.Read<float>("RoundStart.training.proximal_mu");
      m.training.seed = in.Read<uint64_t>("RoundStart.training.seed");
      m.global_weights =
          std::make_shared<const std::vector<float>>(in.ReadFloats("RoundStart.global_weights"));
      PrivacySettings& p = m.privacy;
      p.dp_mode = in.Read<uint8_t>("RoundStart.privacy.dp_mode");
      p.clip_norm = in.Read<float>("RoundStart.privacy.clip_norm");
      const uint8_t secure = in.Read<uint8_t>("RoundStart.privacy.secure_aggregation");
      p.secure_aggregation = secure == 1;
      p.cohort_index = in.Read<uint32_t>("RoundStart.privacy.cohort_index");
      p.cohort_size = in.Read<uint32_t>("RoundStart.privacy.cohort_size");
      p.threshold = in.Read<uint32_t>("RoundStart.privacy.threshold");
      p.neighbours = in.Read<uint32_t>("RoundStart.privacy.neighbours");
      p.graph_seed = in.Read<uint64_t>("RoundStart.privacy.graph_seed");
      p.encoding_scale = in.Read<double>("RoundStart.privacy.encoding_scale");
      p.local_noise_stddev = in.Read<double>("RoundStart.privacy.local_noise_stddev");
      if (in.status().ok()) {
        if (p.dp_mode > 2 || secure > 1) {
          in.Fail(InvalidArgumentError("RoundStart.privacy: dp_mode or secure_aggregation out of range"));
        } else if (!(p.clip_norm >= 0.0f && std::isfinite(p.clip_norm)) ||
                   !(p.encoding_scale >= 0.0 && std::isfinite(p.encoding_scale)) ||
                   !(p.local_noise_stddev >= 0.0 && std::isfinite(p.local_noise_stddev))) {
          in.Fail(InvalidArgumentError("RoundStart.privacy: a clip, scale or noise value is negative or not finite"));
        } else if (p.secure_aggregation && p.cohort_index >= p.cohort_size) {
          in.Fail(InvalidArgumentError("RoundStart.privacy.cohort_index " +
                                       std::to_string(p.cohort_index) + " is not below cohort_size " +
                                       std::to_string(p.cohort_size)));
        }
      }
      return m;
    }
    case MessageType::kUpdate: {
      Update m;
      m.num_examples = in.Read<uint64_t>("Update.num_examples");
      m.train_loss = in.Read<float>("Update.train_loss");
      m.delta = in.ReadFloats("Update.delta");
      return m;
    }
    case MessageType::kRoundEnd: {
      RoundEnd m;
      m.outcome = in.ReadStatusCode("RoundEnd.outcome");
      m.reason = in.ReadText("RoundEnd.reason", kMaxReasonBytes);
      return m;
    }
    case MessageType::kHeartbeat:
      return Heartbeat{};
    case MessageType::kError: {
      ErrorReply m;
      m.code = in.ReadStatusCode("Error.code");
      m.message = in.ReadText("Error.message", kMaxErrorTextBytes);
      return m;
    }
    case MessageType::kGoodbye:
      return Goodbye{};
    case MessageType::kSecAgg: {
      SecAggPayload m;
      m.step = in.Read<uint8_t>("SecAgg.step");
      m.num_examples = in.Read<uint64_t>("SecAgg.num_examples");
      m.train_loss = in.Read<float>("SecAgg.train_loss");
      m.payload = in.ReadBytes("SecAgg.payload", kMaxSecAggPayloadBytes);
      return m;
    }
  }
  // DecodeHeader admits only the types above.
  in.Fail(
      InternalError("no decoder for message type " + std::to_string(static_cast<uint16_t>(type))));
  return Heartbeat{};
}

}  // namespace

Result<std::vector<uint8_t>> Encode(const Message& message) {
  EDGEFL_RETURN_IF_ERROR(CheckEncodeLimits(message.body));
  const MessageType type = TypeOf(message.body);
  std::vector<uint8_t> frame;
  try {
    frame.reserve(kEnvelopeHeaderBytes + 64 + NumFloats(message.body) * sizeof(float) +
                  kMaxErrorTextBytes);
    frame.resize(kEnvelopeHeaderBytes);
    std::memcpy(frame.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size());
    StoreLittleEndian(&frame[4], kProtocolVersion, 2);
    StoreLittleEndian(&frame[6], static_cast<uint16_t>(type), 2);
    StoreLittleEndian(&frame[8], message.round.value(), 8);
    StoreLittleEndian(&frame[16], message.sender.value(), 8);
    // frame[24..27], the payload length, is stored once the payload is written.
    AppendingStreamBuf buffer(frame);
    std::ostream stream(&buffer);
    {
      PayloadWriter writer(stream);
      EncodeBody(message.body, writer);
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(std::string("out of memory encoding ") + MessageTypeName(type));
  } catch (const std::exception& e) {
    return InternalError(std::string("encoding ") + MessageTypeName(type) + ": " + e.what());
  }
  const size_t payload_bytes = frame.size() - kEnvelopeHeaderBytes;
  // The field limits checked above keep every payload within its type's limit.
  EDGEFL_CHECK_LE(payload_bytes, MaxPayloadBytes(type)) << MessageTypeName(type);
  StoreLittleEndian(&frame[24], payload_bytes, 4);
  return frame;
}

Result<EnvelopeHeader> DecodeHeader(std::span<const uint8_t> frame) {
  if (frame.size() < kEnvelopeHeaderBytes) {
    return DataLossError("frame has " + std::to_string(frame.size()) + " bytes, shorter than the " +
                         std::to_string(kEnvelopeHeaderBytes) + "-byte envelope header");
  }
  if (std::memcmp(frame.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size()) != 0) {
    return InvalidArgumentError("frame does not start with the magic \"EDFL\"");
  }
  EnvelopeHeader header;
  header.version = static_cast<uint16_t>(LoadLittleEndian(frame, 4, 2));
  if (header.version != kProtocolVersion) {
    return UnimplementedError("protocol version " + std::to_string(header.version) +
                              ", this build speaks " + std::to_string(kProtocolVersion));
  }
  const auto type_value = static_cast<uint16_t>(LoadLittleEndian(frame, 6, 2));
  header.type = static_cast<MessageType>(type_value);
  const size_t limit = MaxPayloadBytes(header.type);
  if (limit == 0) {
    return InvalidArgumentError("unknown message type " + std::to_string(type_value));
  }
  header.round = RoundId(LoadLittleEndian(frame, 8, 8));
  header.sender = ClientId(LoadLittleEndian(frame, 16, 8));
  header.payload_bytes = static_cast<uint32_t>(LoadLittleEndian(frame, 24, 4));
  if (header.payload_bytes > limit) {
    return ResourceExhaustedError(std::string(MessageTypeName(header.type)) + " payload of " +
                                  std::to_string(header.payload_bytes) + " bytes exceeds limit " +
                                  std::to_string(limit));
  }
  const size_t actual = frame.size() - kEnvelopeHeaderBytes;
  if (actual != header.payload_bytes) {
    return DataLossError(std::string(MessageTypeName(header.type)) + " header announces " +
                         std::to_string(header.payload_bytes) + " payload bytes, frame holds " +
                         std::to_string(actual));
  }
  return header;
}

Result<Message> Decode(std::span<const uint8_t> frame) {
  EDGEFL_ASSIGN_OR_RETURN(EnvelopeHeader header, DecodeHeader(frame));
  const char* type_name = MessageTypeName(header.type);
  const std::span<const uint8_t> payload = frame.subspan(kEnvelopeHeaderBytes);
  if (payload.empty() || payload[0] != kLittleEndianMarker) {
    return InvalidArgumentError(std::string(type_name) +
                                " payload does not start with the little-endian marker 0x01");
  }
  try {
    PayloadReader reader(payload);
    Message message{
        .sender = header.sender, .round = header.round, .body = DecodeBody(header.type, reader)};
    EDGEFL_RETURN_IF_ERROR(reader.status().WithContext(type_name));
    if (reader.remaining() != 0) {
      return InvalidArgumentError(std::to_string(reader.remaining()) + " trailing bytes after " +
                                  type_name + " payload");
    }
    return message;
  } catch (const cereal::Exception& e) {
    return DataLossError(std::string(type_name) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(std::string("out of memory decoding ") + type_name);
  } catch (const std::exception& e) {
    return InternalError(std::string("decoding ") + type_name + ": " + e.what());
  }
}

}  // namespace edgefl::transport
