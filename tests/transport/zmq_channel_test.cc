#include "edgefl/transport/zmq_channel.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "edgefl/common/random.h"
#include "edgefl/transport/codec.h"
#include "edgefl/transport/keys.h"
#include "edgefl/transport/limits.h"

// GCC 12's -Wextra flags designated initializers that leave fields at their defaults, which
// is how STYLE.md builds values in tests.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace edgefl::transport {
namespace {

using std::chrono::milliseconds;
// Upper bound for things that must happen; reached only when the test fails. Not a timing
// assertion: every wait below ends as soon as its condition holds.
constexpr milliseconds kPatience{10'000};
// How long a test waits to be told that nothing more arrives (after the event that would have
// sent it has provably happened).
constexpr milliseconds kQuietPeriod{200};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "edgefl-zmq-XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Keys on disk as an operator would lay them out: server.key/.pub, devices/<name>.key/.pub
// for allow-listed devices (the allow-list is the devices/ directory), and outsider.key/.pub
// for a device the coordinator does not know.
struct KeyFiles {
  KeyFiles() {
    REQUIRE(WriteCurveKeyPair(GenerateCurveKeyPair().value(), dir / "server", false).ok());
    REQUIRE(WriteCurveKeyPair(GenerateCurveKeyPair().value(), dir / "outsider", false).ok());
    std::filesystem::create_directory(dir / "devices");
    for (int i = 0; i < 4; ++i) {
      REQUIRE(WriteCurveKeyPair(GenerateCurveKeyPair().value(), Device(i), false).ok());
    }
  }
  std::string Device(int i) const { return dir / ("devices/device-" + std::to_string(i)); }

  TempDir dir;
};

std::unique_ptr<ZmqCoordinatorChannel> MakeCoordinator(const KeyFiles& keys, const Clock& clock) {
  Result<std::unique_ptr<ZmqCoordinatorChannel>> channel =
      ZmqCoordinatorChannel::Create({.endpoint = "tcp://127.0.0.1:*",
                                     .secret_key_file = keys.dir / "server.key",
                                     .allowed_keys_path = keys.dir / "devices"},
                                    clock);
  REQUIRE(channel.ok());
  return std::move(channel).value();
}

std::unique_ptr<ZmqDeviceChannel> MakeDevice(const std::string& endpoint,
                                             const std::string& key_prefix, const KeyFiles& keys,
                                             const Clock& clock) {
  Result<std::unique_ptr<ZmqDeviceChannel>> channel =
      ZmqDeviceChannel::Create({.endpoint = endpoint,
                                .secret_key_file = key_prefix + ".key",
                                .server_public_key_file = keys.dir / "server.pub",
                                .linger = milliseconds(0)},
                               clock);
  REQUIRE(channel.ok());
  return std::move(channel).value();
}

template <typename Channel>
Result<Message> ReceiveWithin(Channel& channel, milliseconds patience) {
  return channel.Receive(channel.clock().Now() + patience);
}

// Receives on `coordinator` until `done()` holds, checking that nothing is returned meanwhile.
template <typename Predicate>
void PumpUntil(ZmqCoordinatorChannel& coordinator, Predicate done) {
  const Clock::Duration give_up = coordinator.clock().Now() + kPatience;
  while (!done()) {
    REQUIRE(coordinator.clock().Now() < give_up);
    Result<Message> unexpected = ReceiveWithin(coordinator, milliseconds(20));
    REQUIRE(unexpected.status().code() == StatusCode::kDeadlineExceeded);
  }
}

std::vector<float> RandomFloats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(rng.Normal());
  return values;
}

TEST_CASE("Options are validated field by field") {
  CHECK(ZmqCoordinatorOptions{}.Validate().code() == StatusCode::kInvalidArgument);
  CHECK(ZmqCoordinatorOptions{.insecure_plaintext = true}.Validate().ok());
  CHECK(ZmqCoordinatorOptions{.secret_key_file = "s.key", .allowed_keys_path = "devices"}
            .Validate()
            .ok());
  CHECK(ZmqCoordinatorOptions{.endpoint = "", .insecure_plaintext = true}.Validate().code() ==
        StatusCode::kInvalidArgument);
  CHECK(ZmqCoordinatorOptions{.insecure_plaintext = true, .max_queued_messages_per_client = 0}
            .Validate()
            .code() == StatusCode::kInvalidArgument);

  CHECK(ZmqDeviceOptions{}.Validate().code() == StatusCode::kInvalidArgument);
  CHECK(ZmqDeviceOptions{.endpoint = "tcp://127.0.0.1:1", .insecure_plaintext = true}
            .Validate()
            .ok());
  CHECK(ZmqDeviceOptions{.endpoint = "tcp://127.0.0.1:1", .secret_key_file = "d.key"}
            .Validate()
            .message() ==
        "server_public_key_file is empty (required unless insecure_plaintext = true)");
  CHECK(ZmqDeviceOptions{.endpoint = "tcp://127.0.0.1:1",
                         .insecure_plaintext = true,
                         .heartbeat_interval = milliseconds(-1)}
            .Validate()
            .code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Creating a channel reports missing keys and unusable endpoints" *
          doctest::test_suite("integration")) {
  WallClock clock;
  KeyFiles keys;
  CHECK(ZmqCoordinatorChannel::Create({.endpoint = "tcp://127.0.0.1:*",
                                       .secret_key_file = keys.dir / "nope.key",
                                       .allowed_keys_path = keys.dir / "devices"},
                                      clock)
            .status()
            .code() == StatusCode::kNotFound);
  CHECK(ZmqCoordinatorChannel::Create({.endpoint = "bogus://x", .insecure_plaintext = true}, clock)
            .status()
            .code() == StatusCode::kUnavailable);
  CHECK(ZmqDeviceChannel::Create({.endpoint = "tcp://127.0.0.1:1",
                                  .secret_key_file = keys.Device(0) + ".key",
                                  .server_public_key_file = keys.dir / "missing.pub"},
                                 clock)
            .status()
            .code() == StatusCode::kNotFound);
}

TEST_CASE("A coordinator and three devices exchange Hello, Welcome, RoundStart and Update" *
          doctest::test_suite("integration")) {
  WallClock clock;
  KeyFiles keys;
  auto coordinator = MakeCoordinator(keys, clock);
  const std::string endpoint = coordinator->endpoint();
  CHECK(endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
  CHECK(endpoint.find('*') == std::string::npos);

  constexpr int kNumDevices = 3;
  std::vector<std::unique_ptr<ZmqDeviceChannel>> devices;
  for (int i = 0; i < kNumDevices; ++i) {
    devices.push_back(MakeDevice(endpoint, keys.Device(i), keys, clock));
    REQUIRE(devices.back()
                ->Send(Message{.body = Hello{.device_name = "device-" + std::to_string(i),
                                             .num_examples = 100u * (i + 1)}})
                .ok());
  }

  // Hellos arrive in any order, each with a fresh id the channel assigned.
  std::map<std::string, ClientId> id_of;
  for (int i = 0; i < kNumDevices; ++i) {
    Result<Message> hello = ReceiveWithin(*coordinator, kPatience);
    REQUIRE(hello.ok());
    const auto& body = std::get<Hello>(hello->body);
    id_of[body.device_name] = hello->sender;
    REQUIRE(coordinator
                ->Send(hello->sender, Message{.body = Welcome{.assigned_id = hello->sender,
                                                              .num_parameters = 1'000'000}})
                .ok());
  }
  CHECK(coordinator->num_clients() == 3);
  std::vector<ClientId> ids;
  for (const auto& [name, id] : id_of) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<ClientId>{ClientId(1), ClientId(2), ClientId(3)});

  for (int i = 0; i < kNumDevices; ++i) {
    Result<Message> welcome = ReceiveWithin(*devices[i], kPatience);
    REQUIRE(welcome.ok());
    CHECK(std::get<Welcome>(welcome->body).assigned_id == id_of.at("device-" + std::to_string(i)));
    CHECK(std::get<Welcome>(welcome->body).num_parameters == 1'000'000);
  }

  auto weights = std::make_shared<const std::vector<float>>(RandomFloats(1'000'000, 11));
  const RoundId round(1);
  for (ClientId id : ids) {
    REQUIRE(coordinator
                ->Send(id, Message{.round = round,
                                   .body = RoundStart{.model_version = 4,
                                                      .training = {.local_epochs = 2},
                                                      .global_weights = weights}})
                .ok());
  }
  for (int i = 0; i < kNumDevices; ++i) {
    Result<Message> start = ReceiveWithin(*devices[i], kPatience);
    REQUIRE(start.ok());
    CHECK(start->round == round);
    const auto& body = std::get<RoundStart>(start->body);
    CHECK(body.model_version == 4);
    CHECK(body.training.local_epochs == 2);
    REQUIRE(body.global_weights != nullptr);
    CHECK(*body.global_weights == *weights);
    std::vector<float> delta(body.global_weights->size(), static_cast<float>(i));
    REQUIRE(devices[i]
                ->Send(Message{.sender = id_of.at("device-" + std::to_string(i)),
                               .round = round,
                               .body = Update{.num_examples = 100u * (i + 1),
                                              .train_loss = 0.5f,
                                              .delta = std::move(delta)}})
                .ok());
  }
  for (int i = 0; i < kNumDevices; ++i) {
    Result<Message> update = ReceiveWithin(*coordinator, kPatience);
    REQUIRE(update.ok());
    CHECK(update->round == round);
    const auto& body = std::get<Update>(update->body);
    // The device's index is in its delta; the sender must be the id that device was given.
    const int index = static_cast<int>(body.delta.at(0));
    CHECK(update->sender == id_of.at("device-" + std::to_string(index)));
    CHECK(body.num_examples == 100u * (index + 1));
    CHECK(body.delta == std::vector<float>(1'000'000, static_cast<float>(index)));
  }

  // Goodbye is passed up; after Forget the id is gone.
  REQUIRE(devices[0]->Send(Message{.body = Goodbye{}}).ok());
  Result<Message> goodbye = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(goodbye.ok());
  CHECK(std::holds_alternative<Goodbye>(goodbye->body));
  CHECK(goodbye->sender == id_of.at("device-0"));
  coordinator->Forget(goodbye->sender);
  CHECK(coordinator->num_clients() == 2);
  CHECK(coordinator->Send(goodbye->sender, Message{.body = Goodbye{}}).code() ==
        StatusCode::kNotFound);
  CHECK(coordinator->Send(ClientId(99), Message{.body = Goodbye{}}).code() ==
        StatusCode::kNotFound);
}

TEST_CASE("A device whose key is not allow-listed is refused and its messages never arrive" *
          doctest::test_suite("integration")) {
  WallClock clock;
  KeyFiles keys;
  auto coordinator = MakeCoordinator(keys, clock);
  auto outsider = MakeDevice(coordinator->endpoint(), keys.dir / "outsider", keys, clock);
  REQUIRE(outsider->Send(Message{.body = Hello{.device_name = "outsider"}}).ok());
  PumpUntil(*coordinator, [&] { return coordinator->stats().num_handshakes_refused >= 1; });

  auto member = MakeDevice(coordinator->endpoint(), keys.Device(0), keys, clock);
  REQUIRE(member->Send(Message{.body = Hello{.device_name = "member"}}).ok());
  Result<Message> hello = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(hello.ok());
  CHECK(std::get<Hello>(hello->body).device_name == "member");
  CHECK(ReceiveWithin(*coordinator, kQuietPeriod).status().code() == StatusCode::kDeadlineExceeded);
  CHECK(coordinator->num_clients() == 1);
  CHECK(coordinator->stats().num_handshakes_admitted >= 1);
}

// A raw DEALER with an allow-listed key: it passes CURVE, so only the channel's own checks
// stand between its bytes and the round engine.
zmq::socket_t RawDealer(zmq::context_t& context, const KeyFiles& keys, const std::string& prefix,
                        const std::string& endpoint, const std::string& routing_id = "") {
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  if (!routing_id.empty()) socket.set(zmq::sockopt::routing_id, routing_id);
  const CurveSecretKey secret = ReadCurveSecretKey(prefix + ".key").value();
  socket.set(zmq::sockopt::curve_serverkey, ReadCurvePublicKey(keys.dir / "server.pub")->z85());
  socket.set(zmq::sockopt::curve_publickey, secret.DerivePublicKey()->z85());
  socket.set(zmq::sockopt::curve_secretkey, std::string(secret.RevealZ85()));
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  return socket;
}

void SendRaw(zmq::socket_t& socket, const std::vector<uint8_t>& bytes, bool more = false) {
  REQUIRE(socket.send(zmq::buffer(bytes), more ? zmq::send_flags::sndmore : zmq::send_flags::none));
}

TEST_CASE("Malformed frames from an admitted peer are dropped and the channel keeps serving" *
          doctest::test_suite("integration")) {
  WallClock clock;
  KeyFiles keys;
  auto coordinator = MakeCoordinator(keys, clock);
  zmq::context_t context(1);
  zmq::socket_t raw = RawDealer(context, keys, keys.Device(1), coordinator->endpoint());

  const std::vector<uint8_t> hello =
      Encode(Message{.body = Hello{.device_name = "raw", .num_examples = 1}}).value();
  Rng rng(5);
  std::vector<uint8_t> random_bytes(100);
  for (uint8_t& b : random_bytes) b = static_cast<uint8_t>(rng.UniformInt(256));
  std::vector<uint8_t> truncated(hello.begin(), hello.begin() + 20);
  std::vector<uint8_t> wrong_version = hello;
  wrong_version[4] = static_cast<uint8_t>(kProtocolVersion + 1);
  // A Hello whose payload is over the Hello limit (but under the socket's frame limit).
  std::vector<uint8_t> oversized_hello = hello;
  const uint32_t big = kMaxHelloPayloadBytes + 1;
  for (int i = 0; i < 4; ++i) oversized_hello[24 + i] = static_cast<uint8_t>(big >> (8 * i));
  oversized_hello.resize(kEnvelopeHeaderBytes + big, 0);
  const std::vector<uint8_t> update_before_hello =
      Encode(Message{.body = Update{.num_examples = 1, .delta = {1.0f}}}).value();
  const std::vector<uint8_t> welcome = Encode(Message{.body = Welcome{}}).value();

  // An Update frame one byte over the largest frame: within the socket's limit (which leaves
  // room for CURVE's overhead), so it reaches the codec, which refuses it from the header.
  std::vector<uint8_t> huge_update(kMaxFrameBytes + 1, 0);
  const std::vector<uint8_t> update_header = Encode(Message{.body = Update{}}).value();
  std::copy(update_header.begin(), update_header.begin() + kEnvelopeHeaderBytes,
            huge_update.begin());
  const uint32_t huge = kMaxUpdatePayloadBytes + 1;
  for (int i = 0; i < 4; ++i) huge_update[24 + i] = static_cast<uint8_t>(huge >> (8 * i));

  SendRaw(raw, random_bytes);
  SendRaw(raw, truncated);
  SendRaw(raw, wrong_version);
  SendRaw(raw, oversized_hello);
  SendRaw(raw, huge_update);
  SendRaw(raw, update_before_hello);
  SendRaw(raw, welcome);
  SendRaw(raw, hello, /*more=*/true);  // two frames in one message
  SendRaw(raw, hello);
  SendRaw(raw, {});  // an empty frame
  constexpr uint64_t kNumBad = 9;
  PumpUntil(*coordinator, [&] { return coordinator->stats().num_frames_dropped >= kNumBad; });
  CHECK(coordinator->stats().num_frames_dropped == kNumBad);
  CHECK(coordinator->num_clients() == 0);

  // The same peer, now well-behaved, is served, and so is a regular device.
  SendRaw(raw, hello);
  Result<Message> raw_hello = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(raw_hello.ok());
  CHECK(std::get<Hello>(raw_hello->body).device_name == "raw");

  auto device = MakeDevice(coordinator->endpoint(), keys.Device(0), keys, clock);
  REQUIRE(device->Send(Message{.body = Hello{.device_name = "good"}}).ok());
  Result<Message> good_hello = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(good_hello.ok());
  CHECK(std::get<Hello>(good_hello->body).device_name == "good");
  REQUIRE(
      coordinator
          ->Send(good_hello->sender, Message{.body = Welcome{.assigned_id = good_hello->sender}})
          .ok());
  Result<Message> welcome_back = ReceiveWithin(*device, kPatience);
  REQUIRE(welcome_back.ok());
  CHECK(std::get<Welcome>(welcome_back->body).assigned_id == good_hello->sender);
  CHECK(ReceiveWithin(*coordinator, kQuietPeriod).status().code() == StatusCode::kDeadlineExceeded);
}

TEST_CASE("A peer that takes over a device's routing id with another key is not trusted" *
          doctest::test_suite("integration")) {
  WallClock clock;
  KeyFiles keys;
  auto coordinator = MakeCoordinator(keys, clock);
  zmq::context_t context(1);
  const std::string routing_id = "\x01same-routing-id";
  zmq::socket_t first =
      RawDealer(context, keys, keys.Device(1), coordinator->endpoint(), routing_id);
  SendRaw(first, Encode(Message{.body = Hello{.device_name = "first"}}).value());
  Result<Message> hello = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(hello.ok());

  // Another allow-listed key presents the same routing id; ROUTER_HANDOVER gives it the
  // connection, but the channel sees the key change and drops what it sends.
  zmq::socket_t second =
      RawDealer(context, keys, keys.Device(2), coordinator->endpoint(), routing_id);
  SendRaw(second, Encode(Message{.body = Update{.num_examples = 1, .delta = {1.0f}}}).value());
  PumpUntil(*coordinator, [&] { return coordinator->stats().num_frames_dropped >= 1; });
  CHECK(coordinator->num_clients() == 1);
}

TEST_CASE("A device drops malformed frames from the coordinator and keeps receiving" *
          doctest::test_suite("integration")) {
  WallClock clock;
  zmq::context_t context(1);
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  Result<std::unique_ptr<ZmqDeviceChannel>> device =
      ZmqDeviceChannel::Create({.endpoint = router.get(zmq::sockopt::last_endpoint),
                                .insecure_plaintext = true,
                                .heartbeat_interval = milliseconds(0),
                                .linger = milliseconds(0)},
                               clock);
  REQUIRE(device.ok());
  REQUIRE((*device)->Send(Message{.body = Hello{.device_name = "d"}}).ok());
  std::vector<zmq::message_t> hello;
  REQUIRE(zmq::recv_multipart(router, std::back_inserter(hello)));
  REQUIRE(hello.size() == 2);
  const std::string routing_id = hello[0].to_string();

  const auto send_to_device = [&](const std::vector<uint8_t>& frame) {
    REQUIRE(router.send(zmq::buffer(routing_id), zmq::send_flags::sndmore));
    REQUIRE(router.send(zmq::buffer(frame), zmq::send_flags::none));
  };
  send_to_device({1, 2, 3});
  send_to_device(Encode(Message{.body = Update{}}).value());  // a device-to-coordinator type
  send_to_device(Encode(Message{.body = Welcome{.assigned_id = ClientId(5)}}).value());
  Result<Message> welcome = ReceiveWithin(**device, kPatience);
  REQUIRE(welcome.ok());
  CHECK(std::get<Welcome>(welcome->body).assigned_id == ClientId(5));
}

TEST_CASE("Heartbeats are consumed by the coordinator channel and keep the client alive" *
          doctest::test_suite("integration")) {
  WallClock clock;
  Result<std::unique_ptr<ZmqCoordinatorChannel>> coordinator = ZmqCoordinatorChannel::Create(
      {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock);
  REQUIRE(coordinator.ok());
  Result<std::unique_ptr<ZmqDeviceChannel>> device =
      ZmqDeviceChannel::Create({.endpoint = (*coordinator)->endpoint(),
                                .insecure_plaintext = true,
                                .heartbeat_interval = milliseconds(5),
                                .linger = milliseconds(0)},
                               clock);
  REQUIRE(device.ok());
  REQUIRE((*device)->Send(Message{.body = Hello{.device_name = "beating"}}).ok());
  Result<Message> hello = ReceiveWithin(**coordinator, kPatience);
  REQUIRE(hello.ok());
  const ClientId id = hello->sender;
  REQUIRE((*device)->Send(Message{.body = Hello{.device_name = "beating again"}}).ok());
  Result<Message> second_hello = ReceiveWithin(**coordinator, kPatience);
  REQUIRE(second_hello.ok());
  CHECK(second_hello->sender == id);
  CHECK((*coordinator)->num_clients() == 1);

  // PumpUntil also checks that no Heartbeat is ever returned by Receive.
  PumpUntil(**coordinator, [&] { return (*coordinator)->stats().num_heartbeats_received >= 3; });
  CHECK((*device)->num_heartbeats_sent() >= 3);
  CHECK((*coordinator)->ExpiredClients(std::chrono::hours(1)).empty());
  CHECK((*coordinator)->ExpiredClients(Clock::Duration::zero()) == std::vector<ClientId>{id});
}

TEST_CASE("An Update of the largest size passes through CURVE in both directions" *
          doctest::test_suite("slow")) {
  WallClock clock;
  KeyFiles keys;
  auto coordinator = MakeCoordinator(keys, clock);
  auto device = MakeDevice(coordinator->endpoint(), keys.Device(0), keys, clock);
  REQUIRE(device->Send(Message{.body = Hello{.device_name = "big"}}).ok());
  Result<Message> hello = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(hello.ok());
  auto weights = std::make_shared<const std::vector<float>>(kMaxNumWeights, 0.25f);
  REQUIRE(coordinator->Send(hello->sender, Message{.body = RoundStart{.global_weights = weights}})
              .ok());
  Result<Message> start = ReceiveWithin(*device, kPatience);
  REQUIRE(start.ok());
  CHECK(std::get<RoundStart>(start->body).global_weights->size() == kMaxNumWeights);
  REQUIRE(device
              ->Send(Message{.body = Update{.num_examples = 1,
                                            .delta = std::vector<float>(kMaxNumWeights, 1.0f)}})
              .ok());
  Result<Message> update = ReceiveWithin(*coordinator, kPatience);
  REQUIRE(update.ok());
  CHECK(std::get<Update>(update->body).delta.size() == kMaxNumWeights);
}

}  // namespace
}  // namespace edgefl::transport

namespace edgefl::transport {
namespace {

std::unique_ptr<ZmqDeviceChannel> MakePlaintextDevice(const std::string& endpoint,
                                                      const Clock& clock,
                                                      std::shared_ptr<ZmqContext> context = {}) {
  Result<std::unique_ptr<ZmqDeviceChannel>> channel =
      ZmqDeviceChannel::Create({.endpoint = endpoint,
                                .insecure_plaintext = true,
                                .heartbeat_interval = milliseconds(0),
                                .linger = milliseconds(0),
                                .context = std::move(context)},
                               clock);
  REQUIRE(channel.ok());
  return std::move(channel).value();
}

// Sends a Hello asking for `requested` and returns the id the coordinator channel granted.
ClientId HelloFor(ZmqCoordinatorChannel& coordinator, ZmqDeviceChannel& device,
                  uint64_t requested) {
  REQUIRE(device.Send(Message{.body = Hello{.device_name = "d", .requested_id = requested}}).ok());
  Result<Message> hello = ReceiveWithin(coordinator, kPatience);
  REQUIRE(hello.ok());
  REQUIRE(std::holds_alternative<Hello>(hello->body));
  CHECK(std::get<Hello>(hello->body).requested_id == requested);
  return hello->sender;
}

TEST_CASE("A Hello's requested id is granted unless a live connection holds it" *
          doctest::test_suite("integration")) {
  WallClock clock;
  Result<std::unique_ptr<ZmqCoordinatorChannel>> coordinator = ZmqCoordinatorChannel::Create(
      {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock);
  REQUIRE(coordinator.ok());
  const std::string endpoint = (*coordinator)->endpoint();
  auto a = MakePlaintextDevice(endpoint, clock);
  auto b = MakePlaintextDevice(endpoint, clock);
  auto c = MakePlaintextDevice(endpoint, clock);
  auto d = MakePlaintextDevice(endpoint, clock);
  CHECK(HelloFor(**coordinator, *a, 2) == ClientId(2));
  // Taken: b gets the lowest id never assigned and free, c (asking for none) the next one,
  // skipping the 2 that a holds.
  CHECK(HelloFor(**coordinator, *b, 2) == ClientId(1));
  CHECK(HelloFor(**coordinator, *c, 0) == ClientId(3));
  // A second Hello on a mapped connection keeps its id whatever it asks for.
  CHECK(HelloFor(**coordinator, *a, 7) == ClientId(2));
  // Once the holder is forgotten (Goodbye, expiry) the id can be asked for again.
  (*coordinator)->Forget(ClientId(2));
  CHECK(HelloFor(**coordinator, *d, 2) == ClientId(2));
  CHECK((*coordinator)->num_clients() == 3);
  REQUIRE((*coordinator)
              ->Send(ClientId(2), Message{.body = Welcome{.assigned_id = ClientId(2)}})
              .ok());
  Result<Message> welcome = ReceiveWithin(*d, kPatience);
  REQUIRE(welcome.ok());
  CHECK(std::get<Welcome>(welcome->body).assigned_id == ClientId(2));
}

TEST_CASE("Many device channels share one context, one poller and host-driven heartbeats" *
          doctest::test_suite("integration")) {
  WallClock clock;
  Result<std::unique_ptr<ZmqCoordinatorChannel>> coordinator = ZmqCoordinatorChannel::Create(
      {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock);
  REQUIRE(coordinator.ok());
  CHECK(ZmqContext::Create(0, 10).status().code() == StatusCode::kInvalidArgument);
  CHECK(ZmqContext::Create(1, 0).status().code() == StatusCode::kInvalidArgument);
  Result<std::shared_ptr<ZmqContext>> context = ZmqContext::Create(1, 256);
  REQUIRE(context.ok());
  constexpr size_t kDevices = 50;
  std::vector<std::unique_ptr<ZmqDeviceChannel>> devices;
  ZmqDevicePoller poller;
  for (size_t i = 0; i < kDevices; ++i) {
    devices.push_back(MakePlaintextDevice((*coordinator)->endpoint(), clock, *context));
    CHECK(poller.Add(*devices.back()) == i);
    // Before Hello a heartbeat is not sent.
    REQUIRE(devices.back()->SendHeartbeat().ok());
    CHECK(devices.back()->num_heartbeats_sent() == 0);
    REQUIRE(devices.back()->Send(Message{.body = Hello{.requested_id = 100 + i}}).ok());
  }
  CHECK(poller.size() == kDevices);
  std::vector<ClientId> ids;
  for (size_t i = 0; i < kDevices; ++i) {
    Result<Message> hello = ReceiveWithin(**coordinator, kPatience);
    REQUIRE(hello.ok());
    ids.push_back(hello->sender);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(ids.front() == ClientId(100));
  CHECK(ids.back() == ClientId(100 + kDevices - 1));

  // Nothing to read yet.
  std::vector<size_t> ready;
  REQUIRE(poller.Wait(milliseconds(0), ready).ok());
  CHECK(ready.empty());
  // Messages to devices 7 and 31 (ids 107, 131) wake the poller for exactly those two.
  for (uint64_t id : {107u, 131u}) {
    REQUIRE((*coordinator)
                ->Send(ClientId(id), Message{.body = Welcome{.assigned_id = ClientId(id)}})
                .ok());
  }
  const Clock::Duration give_up = clock.Now() + kPatience;
  std::vector<size_t> seen;
  while (seen.size() < 2) {
    REQUIRE(clock.Now() < give_up);
    REQUIRE(poller.Wait(milliseconds(50), ready).ok());
    for (size_t i : ready) {
      Result<Message> welcome = devices[i]->Receive(clock.Now());
      REQUIRE(welcome.ok());
      CHECK(std::get<Welcome>(welcome->body).assigned_id == ClientId(100 + i));
      seen.push_back(i);
    }
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<size_t>{7, 31});

  // The host drives the heartbeats of every device.
  for (auto& device : devices) REQUIRE(device->SendHeartbeat().ok());
  PumpUntil(**coordinator,
            [&] { return (*coordinator)->stats().num_heartbeats_received >= kDevices; });
  for (auto& device : devices) CHECK(device->num_heartbeats_sent() == 1);
}

}  // namespace
}  // namespace edgefl::transport
