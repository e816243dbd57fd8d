// Test tool for issue 5's hostile-input test (hostile_input_test.sh): a raw ZeroMQ DEALER that
// speaks to a running `edgefl coordinator` the way a broken or malicious device would. Valid
// frames come from transport's own Encode and are then corrupted, so the tool follows the real
// wire format (docs/protocol.md) as it changes.
//
// Each mode runs on a fresh connection, one after another, and prints one line
// "hostile_peer: mode=NAME ..."; the exit status is 1 when a mode saw something a coordinator
// must never do (e.g. a Welcome for a frame it should have refused) or did not get the answers
// it needed (no Welcome, no RoundStart within --timeout-seconds).
//
//   edgefl_hostile_peer --endpoint tcp://127.0.0.1:7878 --secret-key dev.key
//       --server-key coordinator.pub --modes random,magic,version
//
// Modes (what the coordinator must do is in parentheses):
//   random        a two-part message, an empty frame, then random byte frames, half of them
//                 behind a valid magic and version, all before any Hello (drop each, no Welcome)
//   magic         a Hello whose magic is "XDFL" (drop, no Welcome)
//   version       a Hello with protocol version kProtocolVersion + 1 (drop, no Welcome)
//   unknown-type  envelopes of message types 0, 10 and 0xffff, a RoundStart and a Welcome sent
//                 by a device, an Update before any Hello (drop each, no Welcome)
//   oversized     a Hello and a Heartbeat whose payloads exceed their type limits, an Update one
//                 byte over its limit (drop each, no Welcome)
//   huge          a frame over the socket's limit, which libzmq refuses by closing the
//                 connection before the codec sees it (no Welcome; the coordinator goes on)
//   truncated     a valid Hello (Welcome expected), then an Update cut at every prefix, with the
//                 header's length left alone or rewritten to match (drop each), then Goodbye
//   wrong-round   Hello; after the Welcome an Update for round 1000000; after the next
//                 RoundStart an Update for a later round, an ErrorReply for the round, then an
//                 Update for it (the engine refuses both Updates: a round not started, a second
//                 answer); then Goodbye
//   cohort        Hello, then answers its RoundStarts with an Update holding NaN, one holding
//                 +Inf, one with a parameter too few and one with a parameter too many (the
//                 engine rejects each); later RoundStarts get a valid zero Update after
//                 --answer-delay-ms (none once --fast-after-file exists), so the rounds last as
//                 long as a test needs. Runs until the coordinator's Goodbye.
// Modes that said Hello leave with a Goodbye, and answer a RoundStart that crossed it with an
// ErrorReply, so no round waits for them until its deadline.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "edgefl/transport/codec.h"
#include "edgefl/transport/keys.h"
#include "edgefl/transport/limits.h"
#include "edgefl/transport/messages.h"

namespace {

using namespace edgefl;
using namespace edgefl::transport;
using Frame = std::vector<uint8_t>;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string endpoint;
  std::string secret_key_file;  // empty: plaintext
  std::string server_key_file;
  std::vector<std::string> modes;
  std::chrono::milliseconds timeout{20000};
  std::chrono::milliseconds answer_delay{0};
  // cohort mode: once this file exists, answer without the delay (lets a test end its run).
  std::string fast_after_file;
  // Pause between modes. The coordinator logs only the first few drops of each kind per window
  // (transport/log_limiter.h), so a test that wants each mode's own log lines spaces them.
  std::chrono::milliseconds pause{0};
  // How long a mode listens after its last bad frame for an answer it must not get.
  std::chrono::milliseconds quiet_window{300};
};

[[noreturn]] void Usage(const std::string& error) {
  std::cerr << "edgefl_hostile_peer: " << error << "\n"
            << "usage: edgefl_hostile_peer --endpoint E --modes M1,M2 [--secret-key FILE "
               "--server-key FILE] [--timeout-seconds S] [--pause-ms MS] [--answer-delay-ms MS "
               "[--fast-after-file FILE]]\n";
  std::exit(2);
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      if (flag == "--endpoint") {
        options.endpoint = value;
      } else if (flag == "--secret-key") {
        options.secret_key_file = value;
      } else if (flag == "--server-key") {
        options.server_key_file = value;
      } else if (flag == "--modes") {
        options.modes = Split(value);
      } else if (flag == "--timeout-seconds") {
        options.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::stod(value) * 1000));
      } else if (flag == "--answer-delay-ms") {
        options.answer_delay = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--fast-after-file") {
        options.fast_after_file = value;
      } else if (flag == "--pause-ms") {
        options.pause = std::chrono::milliseconds(std::stoll(value));
      } else {
        Usage("unknown flag " + flag);
      }
    } catch (const std::exception&) {
      Usage("bad value '" + value + "' for " + flag);
    }
  }
  if (options.endpoint.empty()) Usage("--endpoint is required");
  if (options.modes.empty()) Usage("--modes is required");
  if (options.secret_key_file.empty() != options.server_key_file.empty()) {
    Usage("--secret-key and --server-key go together");
  }
  return options;
}

Frame MustEncode(const Message& message) {
  Result<Frame> frame = Encode(message);
  if (!frame.ok()) {
    std::cerr << "edgefl_hostile_peer: Encode failed: " << frame.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(frame).value();
}

void StoreLittleEndian(Frame& frame, size_t offset, uint64_t value, int num_bytes) {
  for (int i = 0; i < num_bytes; ++i) frame[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

// Header offsets of docs/protocol.md: magic 0, version 4, type 6, round 8, sender 16,
// payload length 24.
constexpr size_t kVersionOffset = 4;
constexpr size_t kTypeOffset = 6;
constexpr size_t kPayloadBytesOffset = 24;

// A frame whose header announces `payload_bytes` and carries that many bytes after a valid
// little-endian marker: the codec must refuse it on the length alone.
Frame FrameWithPayload(MessageType type, size_t payload_bytes) {
  Frame frame = MustEncode(Message{.sender = ClientId{0}, .round = RoundId{0}, .body = Goodbye{}});
  StoreLittleEndian(frame, kTypeOffset, static_cast<uint16_t>(type), 2);
  frame.resize(kEnvelopeHeaderBytes + payload_bytes, 0xab);
  frame[kEnvelopeHeaderBytes] = 1;
  StoreLittleEndian(frame, kPayloadBytesOffset, payload_bytes, 4);
  return frame;
}

Message HelloMessage(const std::string& name) {
  return Message{.sender = ClientId{0}, .round = RoundId{0}, .body = Hello{name, 600}};
}

Message UpdateMessage(RoundId round, std::vector<float> delta) {
  return Message{
      .sender = ClientId{0},
      .round = round,
      .body = Update{.num_examples = 600, .train_loss = 0.5f, .delta = std::move(delta)}};
}

class Peer {
 public:
  Peer(zmq::context_t& context, const Options& options, const std::string& mode)
      : options_(options), mode_(mode), socket_(context, zmq::socket_type::dealer) {
    // Closing a mode's socket must not discard what it still has to send (a 64 MiB frame
    // takes a while on a loaded machine); the context waits for it at exit, at most this long.
    socket_.set(zmq::sockopt::linger, 30000);
    if (!options.secret_key_file.empty()) {
      Result<CurveSecretKey> secret = ReadCurveSecretKey(options.secret_key_file);
      Result<CurvePublicKey> server = ReadCurvePublicKey(options.server_key_file);
      if (!secret.ok() || !server.ok()) {
        Fail(!secret.ok() ? secret.status().ToString() : server.status().ToString());
      }
      Result<CurvePublicKey> mine = secret->DerivePublicKey();
      if (!mine.ok()) Fail(mine.status().ToString());
      socket_.set(zmq::sockopt::curve_serverkey, server->z85());
      socket_.set(zmq::sockopt::curve_publickey, mine->z85());
      socket_.set(zmq::sockopt::curve_secretkey, std::string(secret->RevealZ85()));
    }
    socket_.connect(options.endpoint);
  }

  void Send(const Frame& frame) {
    zmq::message_t message(frame.data(), frame.size());
    if (!socket_.send(message, zmq::send_flags::none)) Fail("send failed");
    ++num_frames_sent_;
  }
  void Send(const Message& message) { Send(MustEncode(message)); }
  void SendMultipart(const Frame& first, const Frame& second) {
    zmq::message_t a(first.data(), first.size()), b(second.data(), second.size());
    if (!socket_.send(a, zmq::send_flags::sndmore) || !socket_.send(b, zmq::send_flags::none)) {
      Fail("send failed");
    }
    ++num_frames_sent_;
  }

  // The next decodable message from the coordinator within `wait`; nullopt when none came.
  // Undecodable frames from the coordinator are a failure: it must speak the protocol.
  std::optional<Message> Receive(std::chrono::milliseconds wait) {
    const auto deadline = SteadyClock::now() + wait;
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() < 0) return std::nullopt;
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, left) == 0) return std::nullopt;
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      Result<Message> message =
          Decode(std::span(static_cast<const uint8_t*>(frame.data()), frame.size()));
      if (!message.ok())
        Fail("undecodable frame from the coordinator: " + message.status().ToString());
      return std::move(message).value();
    }
  }

  // Waits for a message of type T, skipping others (keep-alive RoundEnds); fails on timeout.
  template <typename T>
  Message Await(const char* what) {
    const auto deadline = SteadyClock::now() + options_.timeout;
    while (SteadyClock::now() < deadline) {
      std::optional<Message> message = Receive(std::chrono::milliseconds(100));
      if (message && std::holds_alternative<T>(message->body)) return std::move(*message);
      if (message && std::holds_alternative<Goodbye>(message->body)) {
        Fail(std::string("Goodbye while waiting for ") + what);
      }
    }
    Fail(std::string("no ") + what + " within " + std::to_string(options_.timeout.count()) + " ms");
  }

  // Refused input must get no Welcome (nor anything else) back.
  void ExpectSilence() {
    if (std::optional<Message> reply = Receive(options_.quiet_window)) {
      Fail(std::string("coordinator answered refused input with a ") +
           MessageTypeName(TypeOf(reply->body)));
    }
  }

  // Says Goodbye. A RoundStart that crossed it (the device was selected just before) gets an
  // ErrorReply, so that round does not wait for this device until its deadline.
  void Leave() {
    Send(Message{.sender = ClientId{0}, .round = RoundId{0}, .body = Goodbye{}});
    while (std::optional<Message> message = Receive(options_.quiet_window)) {
      if (std::holds_alternative<RoundStart>(message->body)) {
        Send(Message{.sender = ClientId{0},
                     .round = message->round,
                     .body = ErrorReply{StatusCode::kUnavailable, "hostile peer leaving"}});
      }
    }
  }

  void Done(const std::string& detail) {
    std::cout << "hostile_peer: mode=" << mode_ << " frames=" << num_frames_sent_ << " " << detail
              << std::endl;
  }

  [[noreturn]] void Fail(const std::string& why) {
    std::cout << "hostile_peer: mode=" << mode_ << " FAIL: " << why << std::endl;
    std::exit(1);
  }

 private:
  const Options& options_;
  std::string mode_;
  zmq::socket_t socket_;
  uint64_t num_frames_sent_ = 0;
};

void RunRandom(Peer& peer) {
  // The two structural oddities first, within the coordinator's per-window log allowance.
  peer.SendMultipart(MustEncode(HelloMessage("two-part")), Frame{1, 2, 3});
  peer.Send(Frame{});
  std::mt19937_64 rng(0x5eed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(1, 300);
  for (int i = 0; i < 16; ++i) {
    Frame frame(length(rng));
    for (uint8_t& b : frame) b = static_cast<uint8_t>(byte(rng));
    // Every other frame carries the magic and a valid version, so the noise reaches past the
    // first check of the header.
    if (i % 2 == 1 && frame.size() >= kEnvelopeHeaderBytes) {
      std::memcpy(frame.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size());
      StoreLittleEndian(frame, kVersionOffset, kProtocolVersion, 2);
    }
    peer.Send(frame);
  }
  peer.ExpectSilence();
  peer.Done("refused=random-bytes");
}

void RunMagic(Peer& peer) {
  Frame frame = MustEncode(HelloMessage("wrong-magic"));
  frame[0] = 'X';
  peer.Send(frame);
  peer.ExpectSilence();
  peer.Done("refused=wrong-magic");
}

void RunVersion(Peer& peer) {
  Frame frame = MustEncode(HelloMessage("wrong-version"));
  StoreLittleEndian(frame, kVersionOffset, kProtocolVersion + 1, 2);
  peer.Send(frame);
  peer.ExpectSilence();
  peer.Done("refused=wrong-version");
}

void RunUnknownType(Peer& peer) {
  for (uint16_t type : {uint16_t{0}, uint16_t{10}, uint16_t{0xffff}}) {
    Frame frame = MustEncode(HelloMessage("unknown-type"));
    StoreLittleEndian(frame, kTypeOffset, type, 2);
    peer.Send(frame);
  }
  RoundStart start;
  start.global_weights = std::make_shared<const std::vector<float>>(std::vector<float>{1, 2, 3});
  peer.Send(Message{.sender = ClientId{0}, .round = RoundId{1}, .body = start});
  peer.Send(Message{.sender = ClientId{0}, .round = RoundId{0}, .body = Welcome{ClientId{1}, 3}});
  peer.Send(UpdateMessage(RoundId{1}, {1, 2, 3}));
  peer.ExpectSilence();
  peer.Done("refused=unknown-type,coordinator-type,before-hello");
}

void RunOversized(Peer& peer) {
  peer.Send(FrameWithPayload(MessageType::kHello, kMaxHelloPayloadBytes + 1));
  peer.Send(FrameWithPayload(MessageType::kHeartbeat, kMaxHeartbeatPayloadBytes + 1));
  peer.Send(FrameWithPayload(MessageType::kUpdate, kMaxUpdatePayloadBytes + 1));
  peer.ExpectSilence();
  peer.Done("refused=oversized");
}

// Past ZMQ_MAXMSGSIZE libzmq closes the connection before buffering the frame: nothing reaches
// the codec, and the coordinator must simply go on. On its own connection, because closing it
// also discards what that connection had queued but the coordinator had not read yet.
void RunHuge(Peer& peer) {
  peer.Send(FrameWithPayload(MessageType::kUpdate, kMaxFrameBytes + 4 * kKiB));
  peer.ExpectSilence();
  peer.Done("refused=over-socket-limit");
}

void RunTruncated(Peer& peer) {
  peer.Send(HelloMessage("truncated"));
  const Message welcome = peer.Await<Welcome>("Welcome");
  const size_t num_parameters = std::get<Welcome>(welcome.body).num_parameters;
  const Frame update = MustEncode(UpdateMessage(RoundId{1000000}, std::vector<float>(8, 0.25f)));
  // A prefix of `cut` bytes, its header's length left alone or rewritten to agree with it (then
  // the payload decoder, not the header check, must catch the field that runs past the end).
  auto send_prefix = [&](size_t cut, bool rewrite_length) {
    Frame prefix(update.begin(), update.begin() + static_cast<ptrdiff_t>(cut));
    if (rewrite_length)
      StoreLittleEndian(prefix, kPayloadBytesOffset, cut - kEnvelopeHeaderBytes, 4);
    peer.Send(prefix);
  };
  // First one of each failure, within the coordinator's per-window log allowance: shorter than
  // the header, header and frame disagree, float vector cut, scalar cut, no payload marker.
  send_prefix(4, false);
  send_prefix(update.size() - 1, false);
  send_prefix(update.size() - 1, true);
  send_prefix(kEnvelopeHeaderBytes + 9, true);
  send_prefix(kEnvelopeHeaderBytes, true);
  // Then every prefix, both ways.
  for (size_t cut = 0; cut < update.size(); ++cut) {
    send_prefix(cut, false);
    if (cut >= kEnvelopeHeaderBytes) send_prefix(cut, true);
  }
  peer.Leave();
  peer.Done("refused=truncated welcome_parameters=" + std::to_string(num_parameters));
}

void RunWrongRound(Peer& peer) {
  peer.Send(HelloMessage("wrong-round"));
  const Message welcome = peer.Await<Welcome>("Welcome");
  const size_t num_parameters = std::get<Welcome>(welcome.body).num_parameters;
  const std::vector<float> zeros(num_parameters, 0.0f);
  peer.Send(UpdateMessage(RoundId{1000000}, zeros));
  const Message start = peer.Await<RoundStart>("RoundStart");
  const RoundId round = start.round;
  peer.Send(UpdateMessage(RoundId{round.value() + 5}, zeros));
  // An answer that does not complete the round (an update might, and close it before the
  // second answer arrives), then a second answer to the same round.
  peer.Send(Message{.sender = ClientId{0},
                    .round = round,
                    .body = ErrorReply{StatusCode::kUnavailable, "hostile peer: no update"}});
  peer.Send(UpdateMessage(round, zeros));
  peer.Leave();
  peer.Done("refused=wrong-round round=" + std::to_string(round.value()));
}

void RunCohort(Peer& peer, const Options& options) {
  peer.Send(HelloMessage("cohort"));
  peer.Await<Welcome>("Welcome");
  const char* kBadAnswers[] = {"nan", "inf", "too-few", "too-many"};
  size_t num_rounds = 0;
  auto last_heartbeat = SteadyClock::now();
  const auto deadline = SteadyClock::now() + 10 * options.timeout;
  while (SteadyClock::now() < deadline) {
    // Without heartbeats the coordinator would forget this device between answers.
    if (SteadyClock::now() - last_heartbeat > std::chrono::milliseconds(500)) {
      peer.Send(Message{.sender = ClientId{0}, .round = RoundId{0}, .body = Heartbeat{}});
      last_heartbeat = SteadyClock::now();
    }
    std::optional<Message> message = peer.Receive(std::chrono::milliseconds(100));
    if (!message) continue;
    if (std::holds_alternative<Goodbye>(message->body)) {
      peer.Done("rounds=" + std::to_string(num_rounds) + " goodbye=1");
      return;
    }
    const auto* start = std::get_if<RoundStart>(&message->body);
    if (start == nullptr) continue;
    const size_t n = start->global_weights->size();
    std::vector<float> delta(n, 0.0f);
    std::string answer = "valid";
    if (num_rounds < std::size(kBadAnswers)) {
      answer = kBadAnswers[num_rounds];
      if (answer == "nan") delta[n / 2] = std::numeric_limits<float>::quiet_NaN();
      if (answer == "inf") delta[0] = std::numeric_limits<float>::infinity();
      if (answer == "too-few") delta.resize(n - 1);
      if (answer == "too-many") delta.resize(n + 1);
    } else {
      const auto answer_at = SteadyClock::now() + options.answer_delay;
      while (
          SteadyClock::now() < answer_at &&
          (options.fast_after_file.empty() || !std::filesystem::exists(options.fast_after_file))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    peer.Send(UpdateMessage(message->round, std::move(delta)));
    std::cout << "hostile_peer: mode=cohort round=" << message->round.value()
              << " answer=" << answer << std::endl;
    ++num_rounds;
  }
  peer.Fail("no Goodbye from the coordinator");
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = ParseOptions(argc, argv);
  zmq::context_t context(1);
  for (size_t i = 0; i < options.modes.size(); ++i) {
    const std::string& mode = options.modes[i];
    if (i > 0) std::this_thread::sleep_for(options.pause);
    Peer peer(context, options, mode);
    if (mode == "random") {
      RunRandom(peer);
    } else if (mode == "magic") {
      RunMagic(peer);
    } else if (mode == "version") {
      RunVersion(peer);
    } else if (mode == "unknown-type") {
      RunUnknownType(peer);
    } else if (mode == "oversized") {
      RunOversized(peer);
    } else if (mode == "huge") {
      RunHuge(peer);
    } else if (mode == "truncated") {
      RunTruncated(peer);
    } else if (mode == "wrong-round") {
      RunWrongRound(peer);
    } else if (mode == "cohort") {
      RunCohort(peer, options);
    } else {
      Usage("unknown mode '" + mode + "'");
    }
  }
  return 0;
}
