// The ZeroMQ channel: CoordinatorChannel and DeviceChannel over real sockets, for deployments.
//
// The coordinator binds a ROUTER socket, each device connects a DEALER; every Message travels
// as one frame in the envelope of docs/protocol.md (codec.h). Connections are authenticated
// and encrypted with CURVE: the coordinator holds a server key pair and admits, through a ZAP
// handler thread, only the device public keys of its allow-list. `insecure_plaintext` turns
// CURVE off for tests on loopback and logs a warning.
//
// Identity: a device's first message must be a Hello. On it the coordinator channel assigns
// the device a ClientId: the Hello's requested_id when it is non-zero and no live connection
// holds it, else the lowest id never assigned and not in use (1, 2, 3, ... in order of
// arrival when nobody requests one); it keeps the mapping
// from the connection's routing id, and reports the Hello with `sender` set to that id; the
// round engine answers with Welcome{.assigned_id = hello.sender}. The channel overwrites the
// sender of every later message with the mapped id, so a device cannot speak for another, and
// under CURVE it also drops messages whose public key differs from the one that said Hello.
//
// Liveness: a device sends a Heartbeat every `heartbeat_interval` from a background thread,
// starting after its Hello. The coordinator channel consumes Heartbeats (they are never
// returned by Receive), records when each client was last heard from, and reports silent
// clients through ExpiredClients().
//
// Malformed, oversized, unauthenticated or misdirected input is dropped and never returned. It
// is logged with a spdlog warning naming the peer and the reason, at most a few lines per second
// for each kind of reason (log_limiter.h); the rest are summed into one line per second, so a
// flood cannot flood the log. stats() counts every drop.
//
// Ownership: each channel owns its ZeroMQ context (unless given a shared ZmqContext), sockets
// and threads; the Clock is borrowed and must outlive the channel and advance with real time
// (a WallClock). Thread-safety: each channel is driven by one thread (its background threads
// synchronise internally).
//
//   auto coordinator = ZmqCoordinatorChannel::Create({.endpoint = "tcp://*:7878",
//       .secret_key_file = "server.key", .allowed_keys_path = "devices/"}, clock);
//   Result<Message> hello = (*coordinator)->Receive(clock.Now() + std::chrono::seconds(30));
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgefl/common/clock.h"
#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/transport/channel.h"

namespace edgefl::transport {

struct ZmqCoordinatorOptions {
  // Where the ROUTER binds. "tcp://*:7878" listens on every interface; a port of "*"
  // ("tcp://127.0.0.1:*") picks a free port, read it back with endpoint().
  std::string endpoint = "tcp://*:7878";
  // true: no CURVE, no allow-list; anyone who reaches the endpoint can join and read every
  // message. For tests on loopback only; logs a warning. Default false.
  bool insecure_plaintext = false;
  // The coordinator's CURVE secret key file (`edgefl keygen` PREFIX.key). Required unless
  // insecure_plaintext.
  std::string secret_key_file;
  // The device public keys admitted: a directory of *.pub files or a file of Z85 keys, one per
  // line (keys.h, ReadAllowedCurveKeys). Required unless insecure_plaintext. Read once, at
  // Create.
  std::string allowed_keys_path;
  // Most clients the channel will map; Hellos beyond it are dropped. Range [1, 2^32].
  uint64_t max_clients = 1'000'000;
  // Messages queued per device in each direction (ZeroMQ high-water mark); a Send to a device
  // whose queue is full fails with kUnavailable. Range [1, 1'000'000]. Default 64.
  int max_queued_messages_per_client = 64;
  // Warnings logged per second for each kind of dropped frame (malformed, unknown peer, ...);
  // the rest are counted and summed up in one line per second. Range [1, 1'000'000].
  // Default 5: a flood of junk cannot flood the log.
  uint32_t max_drop_warnings_per_second = 5;

  // kInvalidArgument naming the field: empty endpoint, missing key paths without
  // insecure_plaintext, a count out of range.
  [[nodiscard]] Status Validate() const;
};

// Counters since Create. Byte counts are of our frames (envelope + payload, docs/protocol.md),
// without ZeroMQ's framing or CURVE's overhead.
struct ZmqCoordinatorStats {
  uint64_t num_handshakes_admitted = 0;  // CURVE handshakes the ZAP handler accepted
  uint64_t num_handshakes_refused = 0;   // ... refused (key not allow-listed)
  uint64_t num_messages_received = 0;    // well-formed messages from known clients (+ Hellos)
  uint64_t num_heartbeats_received = 0;  // part of num_messages_received
  uint64_t num_frames_dropped = 0;       // malformed, unknown peer, wrong direction, ...
  uint64_t num_bytes_received = 0;       // every frame read, dropped ones included
  uint64_t num_bytes_sent = 0;           // frames queued by successful Sends, once per recipient
};

class ZmqCoordinatorChannel final : public CoordinatorChannel {
 public:
  // Binds the ROUTER socket and, with CURVE, starts the ZAP handler.
  //   kInvalidArgument  options.Validate() fails;
  //   kNotFound, kInvalidArgument from reading the key files (keys.h);
  //   kUnavailable      the endpoint cannot be bound (in use, bad address);
  //   kUnimplemented    libzmq was built without CURVE and insecure_plaintext is false.
  [[nodiscard]] static Result<std::unique_ptr<ZmqCoordinatorChannel>> Create(
      const ZmqCoordinatorOptions& options, const Clock& clock);
  ~ZmqCoordinatorChannel() override;
  ZmqCoordinatorChannel(const ZmqCoordinatorChannel&) = delete;
  ZmqCoordinatorChannel& operator=(const ZmqCoordinatorChannel&) = delete;

  // Queues `message` for client `to`; never blocks. Its `sender` should be ClientId{0}.
  //   kNotFound         `to` was never assigned or was forgotten;
  //   kUnavailable      the device's connection is gone or its queue is full;
  //   kInvalidArgument  the message exceeds a protocol limit (codec.h Encode).
  // Several RoundStarts sharing one global_weights buffer, round and config are encoded once.
  [[nodiscard]] Status Send(ClientId to, Message message) override;
  // The next well-formed message from any admitted device, with `sender` set to the client's
  // id; Heartbeats are consumed, not returned. Waits until `deadline` (absolute time on
  // clock(); Clock::Duration::max() waits forever). kDeadlineExceeded when the deadline passes
  // first; kInternal on a ZeroMQ failure.
  [[nodiscard]] Result<Message> Receive(Clock::Duration deadline) override;
  const Clock& clock() const override { return clock_; }

  // The bound endpoint with the port resolved, e.g. "tcp://127.0.0.1:40123".
  const std::string& endpoint() const { return endpoint_; }
  // Clients not heard from (any message, heartbeats included) for `timeout` or longer, in id
  // order. Reads pending input first (without waiting), keeping non-heartbeat messages for the
  // next Receive, so a busy engine does not mistake queued heartbeats for silence.
  std::vector<ClientId> ExpiredClients(Clock::Duration timeout);
  // Forgets the mapping of `client` (after a Goodbye or a timeout): later sends to it fail with
  // kNotFound, and the device must say Hello again, getting a new id. No-op for unknown ids.
  void Forget(ClientId client);
  // Number of clients currently mapped.
  size_t num_clients() const;
  // Thread-safe: may be read from any thread (e.g. a metrics endpoint) while the driving thread
  // runs; each counter is exact, the set is not one atomic snapshot.
  ZmqCoordinatorStats stats() const;

 private:
  struct Impl;
  ZmqCoordinatorChannel(std::unique_ptr<Impl> impl, const Clock& clock, std::string endpoint);
  std::unique_ptr<Impl> impl_;
  const Clock& clock_;
  std::string endpoint_;
};

// A ZeroMQ context (its I/O threads and socket table) that many device channels of one process
// share, so a process hosting thousands of virtual devices (`edgefl sim-worker`) runs one I/O
// thread instead of one per device. Shared through std::shared_ptr; the last owner (a channel
// or the host) waits for every socket to close. Thread-safe.
class ZmqContext {
 public:
  // `io_threads` in [1, 64]; `max_sockets` in [1, 1'000'000] (each channel takes one; the OS's
  // open-file limit must cover about two per channel). kInvalidArgument out of range;
  // kResourceExhausted when ZeroMQ refuses max_sockets (above its limit for RLIMIT_NOFILE).
  [[nodiscard]] static Result<std::shared_ptr<ZmqContext>> Create(int io_threads,
                                                                  int max_sockets);
  ~ZmqContext();
  ZmqContext(const ZmqContext&) = delete;
  ZmqContext& operator=(const ZmqContext&) = delete;

 private:
  friend class ZmqDeviceChannel;
  struct Impl;
  explicit ZmqContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct ZmqDeviceOptions {
  // The coordinator's endpoint, e.g. "tcp://coordinator.local:7878". Required.
  std::string endpoint;
  // true: no CURVE (the coordinator must be insecure_plaintext too). Logs a warning.
  bool insecure_plaintext = false;
  // This device's CURVE secret key file (PREFIX.key); its public key, derived from it, must be
  // on the coordinator's allow-list. Required unless insecure_plaintext.
  std::string secret_key_file;
  // The coordinator's public key file (its PREFIX.pub). Required unless insecure_plaintext.
  std::string server_public_key_file;
  // How often to send a Heartbeat once Hello was sent. Zero disables heartbeats. Default 5 s;
  // range [0, 1 h].
  std::chrono::milliseconds heartbeat_interval{5000};
  // Messages queued towards the coordinator (ZeroMQ high-water mark); a Send beyond it fails
  // with kUnavailable. Range [1, 1'000'000]. Default 64.
  int max_queued_messages = 64;
  // How long destruction waits to flush queued messages (e.g. a final Goodbye). Default 1 s.
  std::chrono::milliseconds linger{1000};
  // A context shared with other channels; null (the default) gives the channel its own. The
  // channel keeps it alive.
  std::shared_ptr<ZmqContext> context;

  // kInvalidArgument naming the field.
  [[nodiscard]] Status Validate() const;
};

class ZmqDeviceChannel final : public DeviceChannel {
 public:
  // Connects the DEALER socket (the connection itself is made in the background and retried;
  // messages queue until it is up).
  //   kInvalidArgument  options.Validate() fails or the endpoint is malformed;
  //   kNotFound, kInvalidArgument from reading the key files (keys.h);
  //   kUnimplemented    libzmq was built without CURVE and insecure_plaintext is false.
  [[nodiscard]] static Result<std::unique_ptr<ZmqDeviceChannel>> Create(
      const ZmqDeviceOptions& options, const Clock& clock);
  ~ZmqDeviceChannel() override;
  ZmqDeviceChannel(const ZmqDeviceChannel&) = delete;
  ZmqDeviceChannel& operator=(const ZmqDeviceChannel&) = delete;

  // Queues `message` for the coordinator; never blocks. The first message must be a Hello;
  // heartbeats start after it. kUnavailable when the queue is full; kInvalidArgument when the
  // message exceeds a protocol limit.
  [[nodiscard]] Status Send(Message message) override;
  // The next well-formed message from the coordinator, waiting until `deadline` on clock().
  // kDeadlineExceeded when it passes first; kInternal on a ZeroMQ failure. A Welcome also sets
  // the sender id that heartbeats carry.
  [[nodiscard]] Result<Message> Receive(Clock::Duration deadline) override;
  const Clock& clock() const override { return clock_; }

  // Heartbeats sent so far.
  uint64_t num_heartbeats_sent() const;
  // Sends one Heartbeat now (after Hello; before it, does nothing), for hosts that drive the
  // heartbeats of many channels themselves (heartbeat_interval = 0). Call it from the thread
  // that drives the channel. kUnavailable when the queue is full.
  [[nodiscard]] Status SendHeartbeat();

 private:
  friend class ZmqDevicePoller;
  struct Impl;
  ZmqDeviceChannel(std::unique_ptr<Impl> impl, const Clock& clock);
  std::unique_ptr<Impl> impl_;
  const Clock& clock_;
};

// Waits for input on many device channels at once (one zmq_poll over their sockets), so one
// thread can drive thousands of them. The channels are borrowed and must outlive the poller;
// the poller and its channels must be driven by one thread, so give them heartbeat_interval = 0
// and call SendHeartbeat from that thread.
//
//   ZmqDevicePoller poller;
//   for (auto& channel : channels) poller.Add(*channel);
//   EDGEFL_RETURN_IF_ERROR(poller.Wait(std::chrono::milliseconds(50), ready));
class ZmqDevicePoller {
 public:
  ZmqDevicePoller();
  ~ZmqDevicePoller();
  ZmqDevicePoller(const ZmqDevicePoller&) = delete;
  ZmqDevicePoller& operator=(const ZmqDevicePoller&) = delete;

  // Adds `channel` and returns its index (0, 1, 2, ... in order of Add).
  size_t Add(ZmqDeviceChannel& channel);
  size_t size() const;
  // Waits up to `timeout` (>= 0) until some channel has input, then sets `ready` to the indices
  // of every channel with input, ascending (empty when the timeout passed). Read each with
  // Receive(clock.Now()). kInternal on a ZeroMQ failure.
  [[nodiscard]] Status Wait(std::chrono::milliseconds timeout, std::vector<size_t>& ready);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgefl::transport
