#include "device_host.h"

#include <omp.h>

#include <algorithm>

#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "edgefl/privacy/secagg_wire.h"

namespace edgefl::simulations {
namespace {

// Devices run per call to RunPending. A constant, not the thread count, so that the order in
// which replies reach the engine is the same on any machine.
constexpr size_t kChunkSize = 32;

}  // namespace

VirtualDeviceHost::VirtualDeviceHost(std::vector<client::Device> devices,
                                     std::vector<DeviceProfile> profiles,
                                     std::vector<std::unique_ptr<client::Workspace>> workspaces,
                                     DropoutOptions dropout)
    : devices_(std::move(devices)),
      profiles_(std::move(profiles)),
      workspaces_(std::move(workspaces)),
      dropout_(dropout) {
  EDGEFL_CHECK_EQ(devices_.size(), profiles_.size());
  EDGEFL_CHECK(!workspaces_.empty());
  for (size_t i = 0; i < devices_.size(); ++i) EDGEFL_CHECK_EQ(devices_[i].id().value(), i + 1);
}

void VirtualDeviceHost::RegisterAll() {
  EDGEFL_CHECK(channel_ != nullptr);
  for (const client::Device& device : devices_) {
    channel_->Deliver(device.MakeHello("virtual-" + std::to_string(device.id().value())),
                      Clock::Duration(0));
  }
}

Clock::Duration VirtualDeviceHost::PredictArrival(const transport::Addressed& addressed) const {
  const size_t index = addressed.to.value() - 1;
  const DeviceProfile& profile = profiles_[index];
  if (const auto* start = std::get_if<transport::RoundStart>(&addressed.message.body)) {
    const double bytes = start->global_weights ? 4.0 * start->global_weights->size() : 0.0;
    const double epochs = start->training.local_steps > 0
                              ? static_cast<double>(start->training.local_steps) *
                                    start->training.batch_size /
                                    std::max<double>(1.0, devices_[index].num_examples())
                              : start->training.local_epochs;
    return addressed.sent_at +
           RoundTripTime(profile, bytes, epochs * devices_[index].num_examples());
  }
  return addressed.sent_at + 2 * profile.latency;
}

bool VirtualDeviceHost::DropsBefore(const transport::Addressed& addressed) const {
  const double probability =
      std::max(dropout_.probability, profiles_[addressed.to.value() - 1].dropout);
  if (probability <= 0.0) return false;
  // Protocol steps at which a device can vanish: 0 = before answering RoundStart, 1..3 = before
  // the key directory, the relayed shares or the unmask request of secure aggregation.
  int step = -1;
  bool secure = false;
  if (const auto* start = std::get_if<transport::RoundStart>(&addressed.message.body)) {
    step = 0;
    secure = start->privacy.secure_aggregation;
  } else if (const auto* p = std::get_if<transport::SecAggPayload>(&addressed.message.body)) {
    using privacy::SecAggStep;
    const auto received = static_cast<SecAggStep>(p->step);
    step = received == SecAggStep::kKeyDirectory    ? 1
           : received == SecAggStep::kShareKeysRelay ? 2
           : received == SecAggStep::kUnmaskRequest  ? 3
                                                     : -1;
    secure = true;
  }
  if (step < 0) return false;
  Rng rng(DeriveSeed(dropout_.seed, addressed.message.round.value(), addressed.to.value()));
  if (rng.Uniform01() >= probability) return false;
  const int drop_step = static_cast<int>(rng.UniformInt(secure ? 4 : 1));
  return step >= drop_step;
}

bool VirtualDeviceHost::RunPending() {
  EDGEFL_CHECK(channel_ != nullptr);
  const auto earlier = [](const Pending& a, const Pending& b) {
    return a.arrival != b.arrival ? a.arrival < b.arrival : a.addressed.to < b.addressed.to;
  };
  std::vector<transport::Addressed> outgoing = channel_->TakeOutgoing();
  if (!outgoing.empty()) {
    std::vector<Pending> fresh;
    fresh.reserve(outgoing.size());
    for (transport::Addressed& addressed : outgoing) {
      const uint64_t id = addressed.to.value();
      if (id == 0 || id > devices_.size()) continue;  // no such device: the message is lost
      if (DropsBefore(addressed)) continue;             // the device is gone
      const Clock::Duration arrival = PredictArrival(addressed);
      fresh.push_back(Pending{std::move(addressed), arrival});
    }
    std::stable_sort(fresh.begin(), fresh.end(), earlier);
    const auto middle = static_cast<std::ptrdiff_t>(pending_.size());
    for (Pending& p : fresh) pending_.push_back(std::move(p));
    std::inplace_merge(pending_.begin(), pending_.begin() + middle, pending_.end(), earlier);
  }
  // Deliver the earliest computed reply once no pending work can arrive before it.
  if (!ready_.empty() && (pending_.empty() || ready_.front().arrival <= pending_.front().arrival)) {
    channel_->Deliver(std::move(ready_.front().message), ready_.front().arrival);
    ready_.pop_front();
    return true;
  }
  if (pending_.empty()) return false;

  const size_t count = std::min(kChunkSize, pending_.size());
  std::vector<std::vector<transport::Message>> replies(count);
  const int num_threads = static_cast<int>(workspaces_.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (size_t i = 0; i < count; ++i) {
    const Pending& work = pending_[i];
    client::Workspace& workspace = *workspaces_[omp_get_thread_num()];
    replies[i] = devices_[work.addressed.to.value() - 1].Handle(work.addressed.message, workspace);
  }
  const auto middle = static_cast<std::ptrdiff_t>(ready_.size());
  for (size_t i = 0; i < count; ++i) {
    for (transport::Message& reply : replies[i]) {
      ready_.push_back(Ready{pending_[i].arrival, next_sequence_++, std::move(reply)});
    }
  }
  std::inplace_merge(ready_.begin(), ready_.begin() + middle, ready_.end(),
                     [](const Ready& a, const Ready& b) {
                       return a.arrival != b.arrival ? a.arrival < b.arrival
                                                     : a.sequence < b.sequence;
                     });
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
  return true;
}

}  // namespace edgefl::simulations
