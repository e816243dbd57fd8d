#include "edgefl/client.h"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

TEST_CASE("the C API status values are stable") {
  CHECK(EDGEFL_OK == 0);
  CHECK(EDGEFL_INVALID_ARGUMENT == 1);
  CHECK(EDGEFL_NOT_FOUND == 2);
  CHECK(EDGEFL_FAILED_PRECONDITION == 3);
  CHECK(EDGEFL_UNAVAILABLE == 4);
  CHECK(EDGEFL_DEADLINE_EXCEEDED == 5);
  CHECK(EDGEFL_INTERNAL == 6);
  CHECK(EDGEFL_UNKNOWN == 7);
}

TEST_CASE("creating a client with bad arguments fails with a reason and no client") {
  edgefl_client_t* client = reinterpret_cast<edgefl_client_t*>(0x1);
  CHECK(edgefl_client_create(nullptr, &client) == EDGEFL_INVALID_ARGUMENT);
  edgefl_client_config config = edgefl_client_default_config();
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
  CHECK(std::string(edgefl_client_last_error(nullptr)).find("endpoint") != std::string::npos);
  config.endpoint = "tcp://127.0.0.1:1";
  config.insecure_plaintext = 1;
  config.model = "no-such-model";
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
  config.model = "logreg";
  config.insecure_plaintext = 0;  // CURVE without key files
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
}

TEST_CASE("a client validates its data and refuses to run without it") {
  edgefl_client_config config = edgefl_client_default_config();
  config.endpoint = "tcp://127.0.0.1:1";
  config.insecure_plaintext = 1;
  config.model = "logreg";
  config.input_size = 2;
  config.num_classes = 2;
  edgefl_client_t* client = nullptr;
  REQUIRE(edgefl_client_create(&config, &client) == EDGEFL_OK);
  REQUIRE(client != nullptr);
  CHECK(std::strlen(edgefl_client_last_error(client)) == 0);
  uint64_t rounds = 99;
  CHECK(edgefl_client_run(client, 1, &rounds) == EDGEFL_FAILED_PRECONDITION);
  CHECK(rounds == 0);
  CHECK(std::string(edgefl_client_last_error(client)).find("set_data") != std::string::npos);
  const std::vector<float> features = {1, 0, 0, 1};
  const std::vector<uint8_t> bad_labels = {0, 2};
  CHECK(edgefl_client_set_data(client, features.data(), bad_labels.data(), 2) ==
        EDGEFL_INVALID_ARGUMENT);
  CHECK(edgefl_client_set_data(client, nullptr, bad_labels.data(), 2) == EDGEFL_INVALID_ARGUMENT);
  const std::vector<uint8_t> labels = {0, 1};
  CHECK(edgefl_client_set_data(client, features.data(), labels.data(), 2) == EDGEFL_OK);
  edgefl_client_stop(client);
  edgefl_client_free(client);
  edgefl_client_free(nullptr);
  CHECK(edgefl_client_run(nullptr, 1, nullptr) == EDGEFL_INVALID_ARGUMENT);
}

}  // namespace
