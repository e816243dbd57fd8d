// Trains one round of a device against weights it made itself, using only the installed
// client library: the smallest program that proves find_package(edgefl) works.
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "edgefl/client/device.h"
#include "edgefl/models/model.h"

int main() {
  using namespace edgefl;
  models::Dataset data;
  data.num_examples = 4;
  data.example_size = 2;
  data.example_shape = {2};
  data.num_classes = 2;
  data.features = {1, 0, 0, 1, 1, 0.1f, 0.1f, 1};
  data.labels = {0, 1, 0, 1};
  std::vector<uint32_t> indices = {0, 1, 2, 3};

  auto model = models::CreateModel({.name = "logreg", .input_size = 2, .num_classes = 2});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  client::Workspace workspace(std::move(model).value());
  client::Device device(ClientId{1}, client::LocalData{&data, indices});
  auto weights = std::make_shared<const std::vector<float>>(workspace.model().num_parameters(), 0.0f);
  auto replies = device.Handle(
      transport::Message{.round = RoundId{1},
                         .body = transport::RoundStart{.training = {.batch_size = 2, .learning_rate = 0.5f},
                                                       .global_weights = weights}},
      workspace);
  const auto* update = replies.empty() ? nullptr : std::get_if<transport::Update>(&replies[0].body);
  if (update == nullptr) return 1;
  std::printf("consumer: update of %zu values from %llu examples, loss %.4f\n", update->delta.size(),
              static_cast<unsigned long long>(update->num_examples), update->train_loss);
  return 0;
}
