#include "edgefl/coordinator/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace edgefl::coordinator {
namespace {

// "EFLCKPT" and the format as one ASCII digit. Format 2 added the accountant's steps and RDP,
// format 3 its orders.
constexpr char kMagicPrefix[7] = {'E', 'F', 'L', 'C', 'K', 'P', 'T'};
constexpr size_t kMagicSize = sizeof(kMagicPrefix) + 1;
static_assert(kCheckpointFormat <= 9, "the format is one digit of the magic");
// The orders whose RDP format 2 wrote, without the orders themselves: privacy::DefaultRdpOrders()
// as it was then (1.1 to 10.9 in steps of 0.1, then 12 to 63). Pinned here, values and all, so
// that a later change of the default grid cannot pair old values with other orders.
std::vector<double> Format2RdpOrders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1.0 + x / 10.0);
  for (int x = 12; x < 64; ++x) orders.push_back(static_cast<double>(x));
  return orders;
}

uint64_t Fnv1a(const std::string& bytes) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

void PutU64(std::string& out, uint64_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

template <typename T>
void PutValues(std::string& out, const std::vector<T>& values) {
  PutU64(out, values.size());
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

Status Errno(const std::string& what) {
  return InternalError(what + ": " + std::strerror(errno));
}

Status WriteAll(int fd, const std::string& bytes, const std::string& path) {
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("writing " + path);
    }
    written += static_cast<size_t>(n);
  }
  return OkStatus();
}

class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  bool U64(uint64_t& value) {
    if (bytes_.size() - pos_ < sizeof(value)) return false;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(value));
    pos_ += sizeof(value);
    return true;
  }
  template <typename T>
  bool Values(std::vector<T>& values) {
    uint64_t n = 0;
    if (!U64(n) || n > (bytes_.size() - pos_) / sizeof(T)) return false;
    values.resize(n);
    std::memcpy(values.data(), bytes_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& bytes_;
  size_t pos_ = kMagicSize;
};

}  // namespace

Status SaveCheckpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  if (checkpoint.accountant.rdp.size() != checkpoint.accountant.orders.size()) {
    return InvalidArgumentError("checkpoint '" + path.string() + "': the privacy accountant has " +
                                std::to_string(checkpoint.accountant.rdp.size()) +
                                " RDP values for " +
                                std::to_string(checkpoint.accountant.orders.size()) + " orders");
  }
  std::string bytes(kMagicPrefix, sizeof(kMagicPrefix));
  bytes.push_back(static_cast<char>('0' + kCheckpointFormat));
  PutU64(bytes, checkpoint.round);
  PutValues(bytes, checkpoint.weights);
  PutValues(bytes, checkpoint.strategy_state);
  PutU64(bytes, checkpoint.accountant.num_steps);
  PutValues(bytes, checkpoint.accountant.rdp);
  PutValues(bytes, checkpoint.accountant.orders);
  PutU64(bytes, Fnv1a(bytes));

  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("opening " + tmp);
  Status status = WriteAll(fd, bytes, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = Errno("fsync " + tmp);
  if (::close(fd) != 0 && status.ok()) status = Errno("closing " + tmp);
  if (!status.ok()) return status;
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming " + tmp);
  std::filesystem::path folder = path.parent_path();
  if (folder.empty()) folder = ".";
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);  // best effort: some file systems refuse fsync on folders
    ::close(dir);
  }
  return OkStatus();
}

Result<Checkpoint> LoadCheckpoint(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("checkpoint '" + path.string() + "' not found");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string bad = "checkpoint '" + path.string() + "' is ";
  if (bytes.size() < kMagicSize + 8 ||
      std::memcmp(bytes.data(), kMagicPrefix, sizeof(kMagicPrefix)) != 0) {
    return DataLossError(bad + "not an edgefl checkpoint");
  }
  const char format_digit = bytes[sizeof(kMagicPrefix)];
  if (format_digit < '1' || format_digit > static_cast<char>('0' + kCheckpointFormat)) {
    return DataLossError(bad + "of format '" + std::string(1, format_digit) +
                         "'; this edgefl reads formats 1 to " + std::to_string(kCheckpointFormat));
  }
  Checkpoint checkpoint;
  checkpoint.format = static_cast<uint32_t>(format_digit - '0');
  privacy::RdpAccountantState& accountant = checkpoint.accountant;
  Reader reader(bytes);
  uint64_t checksum = 0;
  bool complete = reader.U64(checkpoint.round) && reader.Values(checkpoint.weights) &&
                  reader.Values(checkpoint.strategy_state);
  if (checkpoint.format >= 2) {
    complete = complete && reader.U64(accountant.num_steps) && reader.Values(accountant.rdp);
  }
  if (checkpoint.format >= 3) complete = complete && reader.Values(accountant.orders);
  if (!complete) return DataLossError(bad + "truncated");
  const size_t body = reader.pos();
  if (!reader.U64(checksum) || reader.pos() != bytes.size()) {
    return DataLossError(bad + "truncated or has trailing bytes");
  }
  if (checksum != Fnv1a(bytes.substr(0, body))) return DataLossError(bad + "corrupted");
  if (checkpoint.format == 2 && !accountant.rdp.empty()) {
    std::vector<double> orders = Format2RdpOrders();
    if (accountant.rdp.size() != orders.size()) {
      return DataLossError(bad + "of format 2 with " + std::to_string(accountant.rdp.size()) +
                           " RDP values; that format has " + std::to_string(orders.size()));
    }
    accountant.orders = std::move(orders);
  }
  if (accountant.rdp.size() != accountant.orders.size()) {
    return DataLossError(bad + "inconsistent: its privacy accountant has " +
                         std::to_string(accountant.rdp.size()) + " RDP values for " +
                         std::to_string(accountant.orders.size()) + " orders");
  }
  return checkpoint;
}

Checkpoint MakeCheckpoint(const RoundEngine& engine) {
  return Checkpoint{.round = engine.last_round().value(),
                    .weights = {engine.global_weights().begin(), engine.global_weights().end()},
                    .strategy_state = engine.strategy().SaveState(),
                    .accountant = engine.accountant_state()};
}

Status ResumeFromCheckpoint(RoundEngine& engine, Checkpoint checkpoint) {
  EDGEFL_RETURN_IF_ERROR(engine.Restore(checkpoint.weights, RoundId{checkpoint.round}));
  EDGEFL_RETURN_IF_ERROR(engine.strategy().LoadState(checkpoint.strategy_state));
  return engine.RestoreAccountant(std::move(checkpoint.accountant));
}

}  // namespace edgefl::coordinator
