#include "edgefl/transport/zmq_channel.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "edgefl/transport/codec.h"
#include "edgefl/transport/keys.h"
#include "edgefl/transport/limits.h"
#include "edgefl/transport/log_limiter.h"

namespace edgefl::transport {
namespace {

// ZeroMQ RFC 27: a ZAP handler serves this inproc endpoint of the socket's context.
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZapDomain = "edgefl";
constexpr int kCoordinatorLingerMs = 1000;
// Pending TCP connections the ROUTER's listener queues (ZeroMQ's default is 100): a sim-worker
// connects thousands of devices at once, and a full queue makes the kernel retry each connect
// after seconds of back-off. The kernel caps it at net.core.somaxconn.
constexpr int kListenBacklog = 4096;
// The device polls in slices this long so its heartbeat thread gets the socket in between.
constexpr std::chrono::milliseconds kDevicePollSlice{50};
// ExpiredClients reads at most this many pending frames, so a flood cannot stall it.
constexpr int kMaxFramesPerDrain = 100'000;
constexpr size_t kRoutingIdBytes = 16;
// ZeroMQ's own frame limit (ZMQ_MAXMSGSIZE): above it the connection is dropped before the
// frame is buffered. It applies to the frame on the wire, which under CURVE carries 33 bytes of
// command, nonce and MAC around our frame, hence the slack; the codec enforces the exact limits.
constexpr int64_t kSocketMaxMessageBytes = static_cast<int64_t>(kMaxFrameBytes) + 1024;

// Hands a finished frame to ZeroMQ without copying it: the message owns the vector and frees
// it when the last queue that holds it lets go (also after zmq_msg_copy to many peers).
zmq::message_t ToZmqMessage(std::vector<uint8_t> frame) {
  auto* owned = new std::vector<uint8_t>(std::move(frame));
  return zmq::message_t(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::vector<uint8_t>*>(hint); }, owned);
}

std::span<const uint8_t> Bytes(const zmq::message_t& message) {
  return {static_cast<const uint8_t*>(message.data()), message.size()};
}

// Milliseconds to wait in one poll: -1 for forever, rounded up so a deadline is not missed by
// polling just short of it and then spinning.
long PollTimeoutMs(const Clock& clock, Clock::Duration deadline) {
  if (deadline == Clock::Duration::max()) return -1;
  const Clock::Duration remaining = deadline - clock.Now();
  if (remaining <= Clock::Duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
  return static_cast<long>(std::min<int64_t>(ms, INT_MAX));
}

std::string Hex(std::string_view bytes, size_t max_bytes = 8) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < std::min(bytes.size(), max_bytes); ++i) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  if (bytes.size() > max_bytes) out += "..";
  return out;
}

// Device-supplied text made safe for one log line.
std::string Printable(std::string_view text) {
  std::string out(text.substr(0, 64));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return out;
}

// A ZeroMQ message property ("Peer-Address", "User-Id"); empty when absent.
std::string Property(zmq::message_t& message, const char* name) {
  const char* value = zmq_msg_gets(message.handle(), name);
  return value != nullptr ? std::string(value) : std::string();
}

bool DeviceMaySend(MessageType type) {
  switch (type) {
    case MessageType::kHello:
    case MessageType::kUpdate:
    case MessageType::kHeartbeat:
    case MessageType::kError:
    case MessageType::kGoodbye:
    case MessageType::kSecAgg:
      return true;
    case MessageType::kWelcome:
    case MessageType::kRoundStart:
    case MessageType::kRoundEnd:
      return false;
  }
  return false;
}

bool CoordinatorMaySend(MessageType type) {
  switch (type) {
    case MessageType::kWelcome:
    case MessageType::kRoundStart:
    case MessageType::kRoundEnd:
    case MessageType::kError:
    case MessageType::kGoodbye:
    case MessageType::kSecAgg:
      return true;
    case MessageType::kHello:
    case MessageType::kUpdate:
    case MessageType::kHeartbeat:
      return false;
  }
  return false;
}

Status ZmqError(std::string_view what, const zmq::error_t& error) {
  return InternalError(std::string(what) + ": " + error.what());
}

Status CheckCurveAvailable() {
  if (zmq_has("curve") == 0) {
    return UnimplementedError(
        "libzmq was built without CURVE; set insecure_plaintext = true to run unencrypted");
  }
  return OkStatus();
}

// The ZAP handler (ZeroMQ RFC 27): a REP socket on its own thread that answers the ROUTER's
// authentication requests, admitting a CURVE client only if its public key is allow-listed.
// The admitted key's Z85 text becomes the connection's User-Id, which the channel checks on
// every message. Stopped by shutting down the context it was made in.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, const std::vector<CurvePublicKey>& allowed)
      : socket_(context, zmq::socket_type::rep) {
    for (const CurvePublicKey& key : allowed) allowed_z85_.insert(key.z85());
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(kZapEndpoint);
    thread_ = std::thread([this] { Run(); });
  }
  ~ZapHandler() {
    if (thread_.joinable()) thread_.join();
  }
  uint64_t num_admitted() const { return num_admitted_.load(std::memory_order_relaxed); }
  uint64_t num_refused() const { return num_refused_.load(std::memory_order_relaxed); }

 private:
  void Run() {
    while (true) {
      std::vector<zmq::message_t> request;
      try {
        if (!zmq::recv_multipart(socket_, std::back_inserter(request))) continue;
        Answer(request);
      } catch (const zmq::error_t& error) {
        if (error.num() == ETERM) break;
        spdlog::error("transport: ZAP handler: {}", error.what());
      }
    }
    socket_.close();
  }

  // Request frames: version, request id, domain, address, routing id, mechanism, credentials.
  // Reply frames: version, request id, status code, status text, user id, metadata.
  void Answer(std::vector<zmq::message_t>& request) {
    const std::string request_id = request.size() > 1 ? request[1].to_string() : std::string();
    const std::string address = request.size() > 3 ? request[3].to_string() : std::string();
    std::string status_code = "400";
    std::string status_text = "malformed ZAP request";
    std::string user_id;
    if (request.size() >= 7 && request[0].to_string_view() == "1.0" &&
        request[5].to_string_view() == "CURVE" && request[6].size() == kCurveKeyBytes) {
      std::array<char, kCurveKeyZ85Chars + 1> z85{};
      zmq_z85_encode(z85.data(), static_cast<const uint8_t*>(request[6].data()), kCurveKeyBytes);
      const std::string key(z85.data(), kCurveKeyZ85Chars);
      if (allowed_z85_.count(key) != 0) {
        status_code = "200";
        status_text = "OK";
        user_id = key;
        num_admitted_.fetch_add(1, std::memory_order_relaxed);
      } else {
        status_text = "public key not allow-listed";
        num_refused_.fetch_add(1, std::memory_order_relaxed);
        // A refused device keeps reconnecting; warn once per key, then stay quiet.
        if (warned_keys_.size() < 10'000 && warned_keys_.insert(key).second) {
          spdlog::warn(
              "transport: refused CURVE handshake from {} with key {} (not on the "
              "allow-list)",
              address, key);
        }
      }
    } else {
      num_refused_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("transport: refused a malformed ZAP request from {}", address);
    }
    std::array<zmq::const_buffer, 6> reply = {zmq::str_buffer("1.0"),   zmq::buffer(request_id),
                                              zmq::buffer(status_code), zmq::buffer(status_text),
                                              zmq::buffer(user_id),     zmq::const_buffer()};
    (void)zmq::send_multipart(socket_, reply);
  }

  zmq::socket_t socket_;
  std::unordered_set<std::string> allowed_z85_;
  std::unordered_set<std::string> warned_keys_;
  std::atomic<uint64_t> num_admitted_{0};
  std::atomic<uint64_t> num_refused_{0};
  std::thread thread_;
};

// The last RoundStart frame sent, so a cohort sharing one weights buffer is encoded once.
// Holding the shared_ptr keeps the buffer (and so its address) alive while cached.
struct CachedRoundStart {
  RoundId round;
  ClientId sender;
  uint64_t model_version = 0;
  TrainingConfig training;
  PrivacySettings privacy;
  std::shared_ptr<const std::vector<float>> weights;
  zmq::message_t frame;

  bool Matches(const Message& message, const RoundStart& start) const {
    const TrainingConfig& t = start.training;
    return weights != nullptr && start.global_weights == weights && message.round == round &&
           message.sender == sender && start.model_version == model_version &&
           t.local_epochs == training.local_epochs && t.local_steps == training.local_steps &&
           t.batch_size == training.batch_size &&
           std::memcmp(&t.learning_rate, &training.learning_rate, sizeof(float)) == 0 &&
           std::memcmp(&t.momentum, &training.momentum, sizeof(float)) == 0 &&
           std::memcmp(&t.weight_decay, &training.weight_decay, sizeof(float)) == 0 &&
           std::memcmp(&t.proximal_mu, &training.proximal_mu, sizeof(float)) == 0 &&
           t.seed == training.seed && SamePrivacy(start.privacy, privacy);
  }

  // Secure-aggregation cohorts differ per member (cohort_index), so they never share a frame.
  static bool SamePrivacy(const PrivacySettings& a, const PrivacySettings& b) {
    return a.dp_mode == b.dp_mode &&
           std::memcmp(&a.clip_norm, &b.clip_norm, sizeof(float)) == 0 &&
           a.secure_aggregation == b.secure_aggregation && a.cohort_index == b.cohort_index &&
           a.cohort_size == b.cohort_size && a.threshold == b.threshold &&
           a.neighbours == b.neighbours && a.graph_seed == b.graph_seed &&
           std::memcmp(&a.encoding_scale, &b.encoding_scale, sizeof(double)) == 0 &&
           std::memcmp(&a.local_noise_stddev, &b.local_noise_stddev, sizeof(double)) == 0;
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Coordinator.

Status ZmqCoordinatorOptions::Validate() const {
  if (endpoint.empty()) return InvalidArgumentError("endpoint is empty");
  if (!insecure_plaintext) {
    if (secret_key_file.empty()) {
      return InvalidArgumentError(
          "secret_key_file is empty (required unless "
          "insecure_plaintext = true)");
    }
    if (allowed_keys_path.empty()) {
      return InvalidArgumentError(
          "allowed_keys_path is empty (required unless "
          "insecure_plaintext = true)");
    }
  }
  if (max_clients < 1 || max_clients > (uint64_t{1} << 32)) {
    return InvalidArgumentError("max_clients " + std::to_string(max_clients) +
                                " is outside [1, 2^32]");
  }
  if (max_queued_messages_per_client < 1 || max_queued_messages_per_client > 1'000'000) {
    return InvalidArgumentError("max_queued_messages_per_client " +
                                std::to_string(max_queued_messages_per_client) +
                                " is outside [1, 1000000]");
  }
  if (max_drop_warnings_per_second < 1 || max_drop_warnings_per_second > 1'000'000) {
    return InvalidArgumentError("max_drop_warnings_per_second " +
                                std::to_string(max_drop_warnings_per_second) +
                                " is outside [1, 1000000]");
  }
  return OkStatus();
}

struct ZmqCoordinatorChannel::Impl {
  struct Client {
    ClientId id;
    std::string routing_id;
    std::string user_id;  // the CURVE public key (Z85) that said Hello; empty in plaintext
    Clock::Duration last_seen{};
  };

  Impl(const Clock& clock, const ZmqCoordinatorOptions& options)
      : clock(clock),
        options(options),
        context(1),
        router(context, zmq::socket_type::router),
        drop_log_limiter(options.max_drop_warnings_per_second) {}

  ~Impl() {
    // Close the ROUTER (lingering briefly for queued replies), then wake the ZAP thread with
    // ETERM and join it; the context is destroyed last.
    router.close();
    context.shutdown();
    zap.reset();
  }

  // Reads at most one message from the ROUTER, waiting up to `timeout_ms` (-1: forever).
  // Returns whether a frame was read (well-formed or not).
  Result<bool> ReadOne(long timeout_ms) {
    LogSuppressedDrops();
    try {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0) return false;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(router, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
        return false;
      }
      uint64_t bytes = 0;
      for (size_t i = 1; i < parts.size(); ++i) bytes += parts[i].size();  // [0]: routing id
      counters.bytes_received.fetch_add(bytes, std::memory_order_relaxed);
      Handle(parts);
      return true;
    } catch (const zmq::error_t& error) {
      if (error.num() == EINTR) return false;
      return ZmqError("receiving on " + options.endpoint, error);
    }
  }

  // `kind` groups reasons for the log limiter: one of a few fixed words, never peer input.
  void Drop(std::string_view kind, std::string_view routing_id, zmq::message_t* frame,
            std::string_view reason) {
    counters.frames_dropped.fetch_add(1, std::memory_order_relaxed);
    if (!drop_log_limiter.Admit(kind, clock.Now())) return;
    std::string peer = "peer " + Hex(routing_id);
    if (auto it = client_by_routing_id.find(std::string(routing_id));
        it != client_by_routing_id.end()) {
      peer += " (client " + std::to_string(it->second.value()) + ")";
    }
    if (frame != nullptr) {
      const std::string address = Property(*frame, "Peer-Address");
      if (!address.empty()) peer += " at " + address;
    }
    spdlog::warn("transport: dropped a frame from {}: {}", peer, reason);
  }

  // One line per kind for the drops the limiter kept out of the log in the window just ended.
  void LogSuppressedDrops() {
    for (const LogLimiter::Suppressed& s : drop_log_limiter.TakeSuppressed(clock.Now())) {
      spdlog::warn(
          "transport: ... and {} more frames dropped ({}) in the last {:.0f} s, not logged",
          s.count, s.reason, ToSeconds(drop_log_limiter.window()));
    }
  }

  void Handle(std::vector<zmq::message_t>& parts) {
    // A DEALER's frame arrives as [routing id][frame]; anything else is not our protocol.
    if (parts.size() != 2) {
      Drop("malformed", parts.empty() ? std::string_view() : parts[0].to_string_view(),
           parts.size() > 1 ? &parts[1] : nullptr,
           "expected one message frame, got " + std::to_string(parts.size() - 1));
      return;
    }
    const std::string routing_id = parts[0].to_string();
    zmq::message_t& frame = parts[1];
    Result<Message> decoded = Decode(Bytes(frame));
    if (!decoded.ok()) {
      Drop("malformed", routing_id, &frame, decoded.status().ToString());
      return;
    }
    Message message = std::move(decoded).value();
    const MessageType type = TypeOf(message.body);
    if (!DeviceMaySend(type)) {
      Drop("wrong_direction", routing_id, &frame,
           std::string(MessageTypeName(type)) + " is not a device-to-coordinator message");
      return;
    }
    const std::string user_id = Property(frame, "User-Id");
    Client* client = nullptr;
    if (auto it = client_by_routing_id.find(routing_id); it != client_by_routing_id.end()) {
      client = &clients.at(it->second);
      if (client->user_id != user_id) {
        Drop("key_mismatch", routing_id, &frame, "public key differs from the one that said Hello");
        return;
      }
    } else {
      if (type != MessageType::kHello) {
        Drop("unknown_peer", routing_id, &frame,
             std::string(MessageTypeName(type)) + " before Hello");
        return;
      }
      if (clients.size() >= options.max_clients) {
        Drop("max_clients", routing_id, &frame,
             "Hello refused: max_clients " + std::to_string(options.max_clients) + " reached");
        return;
      }
      const ClientId id = AssignId(std::get<Hello>(message.body).requested_id);
      client = &clients[id];
      *client = Client{.id = id, .routing_id = routing_id, .user_id = user_id};
      client_by_routing_id[routing_id] = id;
      spdlog::info("transport: client {} joined from peer {} at {} (device \"{}\")", id.value(),
                   Hex(routing_id), Property(frame, "Peer-Address"),
                   Printable(std::get<Hello>(message.body).device_name));
    }
    client->last_seen = clock.Now();
    message.sender = client->id;
    counters.messages_received.fetch_add(1, std::memory_order_relaxed);
    if (type == MessageType::kHeartbeat) {
      counters.heartbeats_received.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    inbox.push_back(std::move(message));
  }

  // A Hello's requested id when no live connection holds it (protocol version 2), so a device
  // keeps its experiment identity whatever order Hellos arrive in; otherwise, or for 0, the
  // lowest never-assigned id that is free. Under CURVE this cannot take over another device:
  // only ids no live connection holds are granted, and the key that said Hello stays bound.
  ClientId AssignId(uint64_t requested) {
    if (requested != 0 && !clients.contains(ClientId(requested))) return ClientId(requested);
    while (clients.contains(ClientId(next_client_id))) ++next_client_id;
    return ClientId(next_client_id++);
  }

  const Clock& clock;
  ZmqCoordinatorOptions options;
  zmq::context_t context;
  std::unique_ptr<ZapHandler> zap;  // before the ROUTER binds; null in plaintext
  zmq::socket_t router;
  std::unordered_map<std::string, ClientId> client_by_routing_id;
  std::unordered_map<ClientId, Client> clients;
  uint64_t next_client_id = 1;
  std::deque<Message> inbox;
  std::optional<CachedRoundStart> cached_round_start;
  // Atomic so that stats() may be read from another thread; written by the driving thread only.
  struct Counters {
    std::atomic<uint64_t> messages_received{0};
    std::atomic<uint64_t> heartbeats_received{0};
    std::atomic<uint64_t> frames_dropped{0};
    std::atomic<uint64_t> bytes_received{0};
    std::atomic<uint64_t> bytes_sent{0};
  } counters;
  LogLimiter drop_log_limiter;
};

ZmqCoordinatorChannel::ZmqCoordinatorChannel(std::unique_ptr<Impl> impl, const Clock& clock,
                                             std::string endpoint)
    : impl_(std::move(impl)), clock_(clock), endpoint_(std::move(endpoint)) {}

ZmqCoordinatorChannel::~ZmqCoordinatorChannel() = default;

Result<std::unique_ptr<ZmqCoordinatorChannel>> ZmqCoordinatorChannel::Create(
    const ZmqCoordinatorOptions& options, const Clock& clock) {
  EDGEFL_RETURN_IF_ERROR(options.Validate().WithContext("ZmqCoordinatorOptions"));
  std::optional<CurveSecretKey> secret_key;
  std::vector<CurvePublicKey> allowed;
  if (options.insecure_plaintext) {
    spdlog::warn(
        "transport: insecure_plaintext: CURVE is off; anyone who reaches {} can join "
        "and read every message",
        options.endpoint);
  } else {
    EDGEFL_RETURN_IF_ERROR(CheckCurveAvailable());
    EDGEFL_ASSIGN_OR_RETURN(CurveSecretKey key, ReadCurveSecretKey(options.secret_key_file));
    secret_key.emplace(std::move(key));
    EDGEFL_ASSIGN_OR_RETURN(allowed, ReadAllowedCurveKeys(options.allowed_keys_path));
  }
  auto impl = std::make_unique<Impl>(clock, options);
  std::string endpoint;
  try {
    zmq::socket_t& router = impl->router;
    if (secret_key) {
      impl->zap = std::make_unique<ZapHandler>(impl->context, allowed);
      router.set(zmq::sockopt::curve_server, true);
      router.set(zmq::sockopt::curve_secretkey, std::string(secret_key->RevealZ85()).c_str());
      router.set(zmq::sockopt::zap_domain, kZapDomain);
    }
    router.set(zmq::sockopt::router_mandatory, true);
    router.set(zmq::sockopt::router_handover, true);
    router.set(zmq::sockopt::sndhwm, options.max_queued_messages_per_client);
    router.set(zmq::sockopt::rcvhwm, options.max_queued_messages_per_client);
    router.set(zmq::sockopt::maxmsgsize, kSocketMaxMessageBytes);
    router.set(zmq::sockopt::linger, kCoordinatorLingerMs);
    router.set(zmq::sockopt::backlog, kListenBacklog);
  } catch (const zmq::error_t& error) {
    return ZmqError("configuring the coordinator socket", error);
  }
  try {
    impl->router.bind(options.endpoint);
    endpoint = impl->router.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& error) {
    return UnavailableError("cannot bind " + options.endpoint + ": " + error.what());
  }
  spdlog::info("transport: coordinator listening on {} ({})", endpoint,
               options.insecure_plaintext ? "plaintext" : "CURVE");
  return std::unique_ptr<ZmqCoordinatorChannel>(
      new ZmqCoordinatorChannel(std::move(impl), clock, std::move(endpoint)));
}

Status ZmqCoordinatorChannel::Send(ClientId to, Message message) {
  auto it = impl_->clients.find(to);
  if (it == impl_->clients.end()) {
    return NotFoundError("no client " + std::to_string(to.value()) + " on this channel");
  }
  const MessageType type = TypeOf(message.body);
  EDGEFL_CHECK(CoordinatorMaySend(type))
      << MessageTypeName(type) << " is not a coordinator-to-device message";
  zmq::message_t frame;
  const auto* start = std::get_if<RoundStart>(&message.body);
  std::optional<CachedRoundStart>& cache = impl_->cached_round_start;
  if (start != nullptr && cache && cache->Matches(message, *start)) {
    frame.copy(cache->frame);  // shares the encoded buffer, reference-counted
  } else {
    EDGEFL_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, Encode(message));
    frame = ToZmqMessage(std::move(bytes));
    if (start != nullptr && start->global_weights != nullptr) {
      cache.emplace();
      cache->round = message.round;
      cache->sender = message.sender;
      cache->model_version = start->model_version;
      cache->training = start->training;
      cache->privacy = start->privacy;
      cache->weights = start->global_weights;
      cache->frame.copy(frame);
    }
  }
  const std::string& routing_id = it->second.routing_id;
  const size_t frame_bytes = frame.size();  // a successful send empties `frame`
  try {
    zmq::message_t address(routing_id.data(), routing_id.size());
    if (!impl_->router.send(address, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return UnavailableError("send queue to client " + std::to_string(to.value()) + " is full");
    }
    // After the routing frame was accepted, ZeroMQ accepts the rest of the message.
    if (!impl_->router.send(frame, zmq::send_flags::dontwait)) {
      return UnavailableError("send queue to client " + std::to_string(to.value()) + " is full");
    }
  } catch (const zmq::error_t& error) {
    if (error.num() == EHOSTUNREACH) {
      return UnavailableError("client " + std::to_string(to.value()) + " is not connected");
    }
    return ZmqError("sending to client " + std::to_string(to.value()), error);
  }
  impl_->counters.bytes_sent.fetch_add(frame_bytes, std::memory_order_relaxed);
  return OkStatus();
}

Result<Message> ZmqCoordinatorChannel::Receive(Clock::Duration deadline) {
  while (true) {
    if (!impl_->inbox.empty()) {
      Message next = std::move(impl_->inbox.front());
      impl_->inbox.pop_front();
      return next;
    }
    EDGEFL_RETURN_IF_ERROR(impl_->ReadOne(PollTimeoutMs(clock_, deadline)).status());
    // Checked after every read, so a stream of dropped frames cannot hold Receive past its
    // deadline.
    if (impl_->inbox.empty() && clock_.Now() >= deadline) {
      return DeadlineExceededError("no device message on " + endpoint_ + " before the deadline");
    }
  }
}

std::vector<ClientId> ZmqCoordinatorChannel::ExpiredClients(Clock::Duration timeout) {
  for (int i = 0; i < kMaxFramesPerDrain; ++i) {
    Result<bool> read = impl_->ReadOne(0);
    if (!read.ok()) {
      spdlog::warn("transport: {}", read.status().ToString());
      break;
    }
    if (!*read) break;
  }
  const Clock::Duration now = clock_.Now();
  std::vector<ClientId> expired;
  for (const auto& [id, client] : impl_->clients) {
    if (now - client.last_seen >= timeout) expired.push_back(id);
  }
  std::sort(expired.begin(), expired.end());
  return expired;
}

void ZmqCoordinatorChannel::Forget(ClientId client) {
  auto it = impl_->clients.find(client);
  if (it == impl_->clients.end()) return;
  impl_->client_by_routing_id.erase(it->second.routing_id);
  impl_->clients.erase(it);
}

size_t ZmqCoordinatorChannel::num_clients() const { return impl_->clients.size(); }

ZmqCoordinatorStats ZmqCoordinatorChannel::stats() const {
  const Impl::Counters& c = impl_->counters;
  ZmqCoordinatorStats stats{
      .num_messages_received = c.messages_received.load(std::memory_order_relaxed),
      .num_heartbeats_received = c.heartbeats_received.load(std::memory_order_relaxed),
      .num_frames_dropped = c.frames_dropped.load(std::memory_order_relaxed),
      .num_bytes_received = c.bytes_received.load(std::memory_order_relaxed),
      .num_bytes_sent = c.bytes_sent.load(std::memory_order_relaxed)};
  if (impl_->zap) {
    stats.num_handshakes_admitted = impl_->zap->num_admitted();
    stats.num_handshakes_refused = impl_->zap->num_refused();
  }
  return stats;
}

// ---------------------------------------------------------------------------------------------
// Device.

Status ZmqDeviceOptions::Validate() const {
  if (endpoint.empty()) return InvalidArgumentError("endpoint is empty");
  if (!insecure_plaintext) {
    if (secret_key_file.empty()) {
      return InvalidArgumentError(
          "secret_key_file is empty (required unless "
          "insecure_plaintext = true)");
    }
    if (server_public_key_file.empty()) {
      return InvalidArgumentError(
          "server_public_key_file is empty (required unless "
          "insecure_plaintext = true)");
    }
  }
  if (heartbeat_interval < std::chrono::milliseconds::zero() ||
      heartbeat_interval > std::chrono::hours(1)) {
    return InvalidArgumentError("heartbeat_interval " + std::to_string(heartbeat_interval.count()) +
                                " ms is outside [0, 1 h]");
  }
  if (max_queued_messages < 1 || max_queued_messages > 1'000'000) {
    return InvalidArgumentError("max_queued_messages " + std::to_string(max_queued_messages) +
                                " is outside [1, 1000000]");
  }
  if (linger < std::chrono::milliseconds::zero() || linger > std::chrono::hours(1)) {
    return InvalidArgumentError("linger " + std::to_string(linger.count()) +
                                " ms is outside [0, 1 h]");
  }
  return OkStatus();
}

struct ZmqContext::Impl {
  zmq::context_t context;
};

ZmqContext::ZmqContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ZmqContext::~ZmqContext() = default;

Result<std::shared_ptr<ZmqContext>> ZmqContext::Create(int io_threads, int max_sockets) {
  if (io_threads < 1 || io_threads > 64) {
    return InvalidArgumentError("io_threads " + std::to_string(io_threads) + " is outside [1, 64]");
  }
  if (max_sockets < 1 || max_sockets > 1'000'000) {
    return InvalidArgumentError("max_sockets " + std::to_string(max_sockets) +
                                " is outside [1, 1000000]");
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->context.set(zmq::ctxopt::io_threads, io_threads);
    impl->context.set(zmq::ctxopt::max_sockets, max_sockets);
  } catch (const zmq::error_t& error) {
    return ResourceExhaustedError("ZeroMQ refused max_sockets " + std::to_string(max_sockets) +
                                  " (its limit follows RLIMIT_NOFILE): " + error.what());
  }
  return std::shared_ptr<ZmqContext>(new ZmqContext(std::move(impl)));
}

struct ZmqDeviceChannel::Impl {
  Impl(const Clock& clock, const ZmqDeviceOptions& options)
      : clock(clock),
        options(options),
        context(options.context ? std::optional<zmq::context_t>()
                                : std::optional<zmq::context_t>(std::in_place, 1)),
        dealer(options.context ? options.context->impl_->context : *context,
               zmq::socket_type::dealer) {}

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      stop = true;
    }
    wake.notify_all();
    if (heartbeat_thread.joinable()) heartbeat_thread.join();
    dealer.close();  // lingers up to options.linger to flush queued messages
  }

  // Sends one encoded frame; false when the queue is full.
  Result<bool> SendFrame(zmq::message_t& frame) {
    std::lock_guard<std::mutex> lock(socket_mutex);
    try {
      return static_cast<bool>(dealer.send(frame, zmq::send_flags::dontwait));
    } catch (const zmq::error_t& error) {
      return ZmqError("sending to " + options.endpoint, error);
    }
  }

  // One Heartbeat with the assigned id; false when the queue is full.
  Result<bool> SendHeartbeatFrame() {
    Message heartbeat{
        .sender = ClientId(assigned_id.load()), .round = RoundId(0), .body = Heartbeat{}};
    EDGEFL_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, Encode(heartbeat));
    zmq::message_t frame = ToZmqMessage(std::move(bytes));
    EDGEFL_ASSIGN_OR_RETURN(bool sent, SendFrame(frame));
    if (sent) num_heartbeats_sent.fetch_add(1, std::memory_order_relaxed);
    return sent;
  }

  void RunHeartbeats() {
    std::unique_lock<std::mutex> lock(state_mutex);
    while (!stop) {
      if (wake.wait_for(lock, options.heartbeat_interval, [this] { return stop; })) break;
      if (!hello_sent) continue;
      lock.unlock();
      Result<bool> sent = SendHeartbeatFrame();
      if (!sent.ok()) spdlog::warn("transport: heartbeat: {}", sent.status().ToString());
      lock.lock();
    }
  }

  const Clock& clock;
  ZmqDeviceOptions options;  // holds a shared context alive until the DEALER has closed
  std::optional<zmq::context_t> context;  // the channel's own; empty with a shared context
  std::mutex socket_mutex;  // the DEALER is shared with the heartbeat thread
  zmq::socket_t dealer;
  std::mutex state_mutex;
  std::condition_variable wake;
  bool stop = false;
  bool hello_sent = false;
  std::atomic<uint64_t> assigned_id{0};
  std::atomic<uint64_t> num_heartbeats_sent{0};
  std::thread heartbeat_thread;
};

ZmqDeviceChannel::ZmqDeviceChannel(std::unique_ptr<Impl> impl, const Clock& clock)
    : impl_(std::move(impl)), clock_(clock) {}

ZmqDeviceChannel::~ZmqDeviceChannel() = default;

Result<std::unique_ptr<ZmqDeviceChannel>> ZmqDeviceChannel::Create(const ZmqDeviceOptions& options,
                                                                   const Clock& clock) {
  EDGEFL_RETURN_IF_ERROR(options.Validate().WithContext("ZmqDeviceOptions"));
  std::optional<CurveSecretKey> secret_key;
  std::optional<CurvePublicKey> public_key;
  std::optional<CurvePublicKey> server_key;
  if (options.insecure_plaintext) {
    spdlog::warn(
        "transport: insecure_plaintext: CURVE is off; messages to {} travel unencrypted "
        "and unauthenticated",
        options.endpoint);
  } else {
    EDGEFL_RETURN_IF_ERROR(CheckCurveAvailable());
    EDGEFL_ASSIGN_OR_RETURN(CurveSecretKey key, ReadCurveSecretKey(options.secret_key_file));
    EDGEFL_ASSIGN_OR_RETURN(CurvePublicKey derived, key.DerivePublicKey());
    EDGEFL_ASSIGN_OR_RETURN(CurvePublicKey server,
                            ReadCurvePublicKey(options.server_public_key_file));
    secret_key.emplace(std::move(key));
    public_key.emplace(std::move(derived));
    server_key.emplace(std::move(server));
  }
  auto impl = std::make_unique<Impl>(clock, options);
  // A random routing id that survives reconnects, so the coordinator (ROUTER_HANDOVER) keeps
  // mapping this device to the same ClientId after a dropped TCP connection. 128 bits from the
  // OS: an identity, not an experiment's randomness, so not from the seeded Rng.
  std::string routing_id(kRoutingIdBytes, '\0');
  std::random_device entropy;
  for (char& c : routing_id) c = static_cast<char>(entropy() & 0xff);
  routing_id[0] = static_cast<char>(routing_id[0] | 0x01);  // ids starting with 0 are reserved
  try {
    zmq::socket_t& dealer = impl->dealer;
    if (secret_key) {
      dealer.set(zmq::sockopt::curve_serverkey, server_key->z85().c_str());
      dealer.set(zmq::sockopt::curve_publickey, public_key->z85().c_str());
      dealer.set(zmq::sockopt::curve_secretkey, std::string(secret_key->RevealZ85()).c_str());
    }
    dealer.set(zmq::sockopt::routing_id, zmq::buffer(routing_id));
    dealer.set(zmq::sockopt::sndhwm, options.max_queued_messages);
    dealer.set(zmq::sockopt::rcvhwm, options.max_queued_messages);
    dealer.set(zmq::sockopt::maxmsgsize, kSocketMaxMessageBytes);
    dealer.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
  } catch (const zmq::error_t& error) {
    return ZmqError("configuring the device socket", error);
  }
  try {
    impl->dealer.connect(options.endpoint);
  } catch (const zmq::error_t& error) {
    return InvalidArgumentError("cannot connect to " + options.endpoint + ": " + error.what());
  }
  if (options.heartbeat_interval > std::chrono::milliseconds::zero()) {
    Impl* raw = impl.get();
    impl->heartbeat_thread = std::thread([raw] { raw->RunHeartbeats(); });
  }
  return std::unique_ptr<ZmqDeviceChannel>(new ZmqDeviceChannel(std::move(impl), clock));
}

Status ZmqDeviceChannel::Send(Message message) {
  const MessageType type = TypeOf(message.body);
  EDGEFL_CHECK(DeviceMaySend(type))
      << MessageTypeName(type) << " is not a device-to-coordinator message";
  EDGEFL_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, Encode(message));
  zmq::message_t frame = ToZmqMessage(std::move(bytes));
  EDGEFL_ASSIGN_OR_RETURN(bool sent, impl_->SendFrame(frame));
  if (!sent) return UnavailableError("send queue to " + impl_->options.endpoint + " is full");
  if (type == MessageType::kHello) {
    std::lock_guard<std::mutex> lock(impl_->state_mutex);
    impl_->hello_sent = true;
  }
  return OkStatus();
}

Result<Message> ZmqDeviceChannel::Receive(Clock::Duration deadline) {
  Impl& impl = *impl_;
  while (true) {
    long timeout_ms = PollTimeoutMs(clock_, deadline);
    if (timeout_ms < 0 || timeout_ms > kDevicePollSlice.count()) {
      timeout_ms = kDevicePollSlice.count();
    }
    std::vector<zmq::message_t> parts;
    try {
      std::lock_guard<std::mutex> lock(impl.socket_mutex);
      zmq::pollitem_t item{impl.dealer.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) > 0) {
        (void)zmq::recv_multipart(impl.dealer, std::back_inserter(parts),
                                  zmq::recv_flags::dontwait);
      }
    } catch (const zmq::error_t& error) {
      if (error.num() != EINTR) return ZmqError("receiving from " + impl.options.endpoint, error);
    }
    if (!parts.empty()) {
      std::string reason;
      if (parts.size() != 1) {
        reason = "expected one message frame, got " + std::to_string(parts.size());
      } else if (Result<Message> decoded = Decode(Bytes(parts[0])); !decoded.ok()) {
        reason = decoded.status().ToString();
      } else if (const MessageType type = TypeOf(decoded->body); !CoordinatorMaySend(type)) {
        reason = std::string(MessageTypeName(type)) + " is not a coordinator-to-device message";
      } else {
        if (const auto* welcome = std::get_if<Welcome>(&decoded->body)) {
          impl.assigned_id.store(welcome->assigned_id.value());
        }
        return std::move(decoded).value();
      }
      spdlog::warn("transport: dropped a frame from the coordinator at {}: {}",
                   impl.options.endpoint, reason);
    }
    if (clock_.Now() >= deadline) {
      return DeadlineExceededError("no coordinator message from " + impl.options.endpoint +
                                   " before the deadline");
    }
  }
}

uint64_t ZmqDeviceChannel::num_heartbeats_sent() const {
  return impl_->num_heartbeats_sent.load(std::memory_order_relaxed);
}

Status ZmqDeviceChannel::SendHeartbeat() {
  {
    std::lock_guard<std::mutex> lock(impl_->state_mutex);
    if (!impl_->hello_sent) return OkStatus();
  }
  EDGEFL_ASSIGN_OR_RETURN(bool sent, impl_->SendHeartbeatFrame());
  if (!sent) return UnavailableError("send queue to " + impl_->options.endpoint + " is full");
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Many devices on one thread.

struct ZmqDevicePoller::Impl {
  std::vector<zmq::pollitem_t> items;
};

ZmqDevicePoller::ZmqDevicePoller() : impl_(std::make_unique<Impl>()) {}

ZmqDevicePoller::~ZmqDevicePoller() = default;

size_t ZmqDevicePoller::Add(ZmqDeviceChannel& channel) {
  impl_->items.push_back(zmq::pollitem_t{channel.impl_->dealer.handle(), 0, ZMQ_POLLIN, 0});
  return impl_->items.size() - 1;
}

size_t ZmqDevicePoller::size() const { return impl_->items.size(); }

Status ZmqDevicePoller::Wait(std::chrono::milliseconds timeout, std::vector<size_t>& ready) {
  ready.clear();
  std::vector<zmq::pollitem_t>& items = impl_->items;
  try {
    if (zmq::poll(items.data(), items.size(), std::max(timeout, std::chrono::milliseconds(0))) ==
        0) {
      return OkStatus();
    }
  } catch (const zmq::error_t& error) {
    if (error.num() == EINTR) return OkStatus();
    return ZmqError("polling device channels", error);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if ((items[i].revents & ZMQ_POLLIN) != 0) ready.push_back(i);
  }
  return OkStatus();
}

}  // namespace edgefl::transport
