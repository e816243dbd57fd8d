#include "edgefl/simulations/profiles.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "edgefl/common/random.h"

namespace edgefl::simulations {
namespace {

constexpr const char* kTraceHeader =
    "device_id,examples_per_second,downlink_bytes_per_second,uplink_bytes_per_second,"
    "latency_ms,available_from_hour,available_to_hour,dropout";
constexpr size_t kTraceColumns = 8;

double LogNormal(Rng& rng, double median, double sigma) {
  return median * std::exp(sigma * rng.Normal());
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  const size_t end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

}  // namespace

bool IsAvailable(const DeviceProfile& profile, Clock::Duration now) {
  const double from = profile.available_from_hour;
  const double to = profile.available_to_hour;
  if (from <= 0.0 && to >= 24.0) return true;
  const double hour = std::fmod(ToSeconds(now) / 3600.0, 24.0);
  if (from < to) return hour >= from && hour < to;
  if (from > to) return hour >= from || hour < to;
  return false;
}

Clock::Duration NextAvailableTime(const DeviceProfile& profile, Clock::Duration now) {
  if (IsAvailable(profile, now)) return now;
  const double from = profile.available_from_hour;
  const double to = profile.available_to_hour;
  if (from == to) return Clock::Duration::max();
  // Offline means before the window's start (`from`) of today or of tomorrow, also for windows
  // across midnight. The start is rounded up to whole nanoseconds, and nudged past any
  // rounding in IsAvailable's hour arithmetic.
  constexpr Clock::Duration kDay = std::chrono::hours(24);
  const auto offset = std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(std::ceil(from * 3600.0 * 1e9) / 1e9));
  Clock::Duration start = (now / kDay) * kDay + offset;
  if (start < now) start += kDay;
  for (int nudge = 0; nudge < 16 && !IsAvailable(profile, start); ++nudge) {
    start += std::chrono::microseconds(1);
  }
  return start;
}

Clock::Duration NextAvailableTime(std::span<const DeviceProfile> profiles, Clock::Duration now) {
  Clock::Duration earliest = Clock::Duration::max();
  for (const DeviceProfile& profile : profiles) {
    earliest = std::min(earliest, NextAvailableTime(profile, now));
    if (earliest == now) break;
  }
  return earliest;
}

Clock::Duration RoundTripTime(const DeviceProfile& profile, double model_bytes, double examples) {
  const double seconds = model_bytes / profile.downlink_bytes_per_second +
                         examples / profile.examples_per_second +
                         model_bytes / profile.uplink_bytes_per_second;
  return 2 * profile.latency +
         std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(seconds));
}

Result<std::vector<DeviceProfile>> DrawProfiles(const std::string& distribution, size_t count,
                                                uint64_t seed) {
  if (distribution == "uniform") return std::vector<DeviceProfile>(count);
  if (distribution != "lognormal") {
    return InvalidArgumentError("device_profiles must be one of uniform, lognormal; got '" +
                                distribution + "'");
  }
  std::vector<DeviceProfile> profiles(count);
  for (size_t i = 0; i < count; ++i) {
    Rng rng(DeriveSeed(seed, 0x9f0f11eULL, i + 1));
    DeviceProfile& p = profiles[i];
    p.examples_per_second = LogNormal(rng, 2000.0, 0.8);
    p.downlink_bytes_per_second = LogNormal(rng, 12.5e6, 1.0);
    p.uplink_bytes_per_second = LogNormal(rng, 2.5e6, 1.0);
    p.latency = std::chrono::duration_cast<Clock::Duration>(
        std::chrono::duration<double>(LogNormal(rng, 0.050, 0.5)));
    if (rng.Uniform01() >= 0.3) {
      p.available_from_hour = 24.0 * rng.Uniform01();
      p.available_to_hour = std::fmod(p.available_from_hour + 4.0 + 12.0 * rng.Uniform01(), 24.0);
    }
  }
  return profiles;
}

Result<std::vector<DeviceProfile>> LoadDeviceTrace(const std::filesystem::path& path,
                                                   size_t count) {
  std::ifstream in(path);
  if (!in) return NotFoundError("device trace '" + path.string() + "' not found");
  const std::string name = path.string();
  std::vector<DeviceProfile> rows;
  std::string line;
  size_t line_number = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++line_number;
    const std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    const std::string where = name + ":" + std::to_string(line_number);
    if (!have_header) {
      std::string header;
      for (char c : trimmed) {
        if (c != ' ' && c != '\t') header += c;
      }
      if (header != kTraceHeader) {
        return InvalidArgumentError(where + ": expected the header '" + kTraceHeader +
                                    "', got '" + trimmed + "'");
      }
      have_header = true;
      continue;
    }
    const std::vector<std::string> fields = SplitCsv(trimmed);
    if (fields.size() != kTraceColumns) {
      return InvalidArgumentError(where + ": expected " + std::to_string(kTraceColumns) +
                                  " fields, got " + std::to_string(fields.size()));
    }
    static const char* const kNames[kTraceColumns] = {
        "device_id", "examples_per_second", "downlink_bytes_per_second",
        "uplink_bytes_per_second", "latency_ms", "available_from_hour", "available_to_hour",
        "dropout"};
    double values[kTraceColumns];
    for (size_t c = 0; c < kTraceColumns; ++c) {
      const std::string field = Trim(fields[c]);
      const std::string column = where + ", column " + std::to_string(c + 1) + " (" +
                                 kNames[c] + ")";
      const auto [end, error] =
          std::from_chars(field.data(), field.data() + field.size(), values[c]);
      if (field.empty() || error != std::errc() || end != field.data() + field.size() ||
          !std::isfinite(values[c])) {
        return InvalidArgumentError(column + ": expected a number, got '" + field + "'");
      }
      bool ok = true;
      std::string range;
      switch (c) {
        case 0: ok = values[c] == static_cast<double>(rows.size() + 1);
                range = "the next id, " + std::to_string(rows.size() + 1); break;
        case 1: case 2: case 3: ok = values[c] > 0; range = "> 0"; break;
        case 4: ok = values[c] >= 0; range = ">= 0"; break;
        case 5: ok = values[c] >= 0 && values[c] < 24; range = "in [0, 24)"; break;
        case 6: ok = values[c] >= 0 && values[c] <= 24; range = "in [0, 24]"; break;
        case 7: ok = values[c] >= 0 && values[c] < 1; range = "in [0, 1)"; break;
      }
      if (!ok) {
        return InvalidArgumentError(column + ": must be " + range + ", got '" + field + "'");
      }
    }
    DeviceProfile p;
    p.examples_per_second = values[1];
    p.downlink_bytes_per_second = values[2];
    p.uplink_bytes_per_second = values[3];
    p.latency = std::chrono::duration_cast<Clock::Duration>(
        std::chrono::duration<double>(values[4] / 1000.0));
    p.available_from_hour = values[5];
    p.available_to_hour = values[6];
    p.dropout = values[7];
    rows.push_back(p);
  }
  if (!have_header) return InvalidArgumentError(name + ": empty trace (no header)");
  if (rows.empty()) return InvalidArgumentError(name + ": the trace has no devices");
  std::vector<DeviceProfile> profiles(count);
  for (size_t i = 0; i < count; ++i) profiles[i] = rows[i % rows.size()];
  return profiles;
}

}  // namespace edgefl::simulations
