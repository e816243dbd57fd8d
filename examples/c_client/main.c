/* A device in plain C: trains a logistic regression on 100 synthetic examples through the
 * edgefl C API. Usage: c_client ENDPOINT [ROUNDS]. With no coordinator listening it only
 * checks that the library links and validates input, then exits 0. */
#include <edgefl/client.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  enum { kExamples = 100, kInputs = 4 };
  static float features[kExamples * kInputs];
  static uint8_t labels[kExamples];
  for (int i = 0; i < kExamples; ++i) {
    const float sign = (i % 2 == 0) ? 1.0f : -1.0f;
    for (int j = 0; j < kInputs; ++j) features[i * kInputs + j] = sign * (0.5f + 0.1f * j);
    labels[i] = (uint8_t)(i % 2);
  }
  edgefl_client_config config = edgefl_client_default_config();
  config.endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:7878";
  config.insecure_plaintext = 1;
  config.model = "logreg";
  config.input_size = kInputs;
  config.num_classes = 2;
  config.device_name = "c-example";
  edgefl_client_t* client = NULL;
  if (edgefl_client_create(&config, &client) != EDGEFL_OK) {
    fprintf(stderr, "create: %s\n", edgefl_client_last_error(NULL));
    return 1;
  }
  if (edgefl_client_set_data(client, features, labels, kExamples) != EDGEFL_OK) {
    fprintf(stderr, "set_data: %s\n", edgefl_client_last_error(client));
    edgefl_client_free(client);
    return 1;
  }
  uint64_t rounds = 0;
  if (argc > 2) {
    const edgefl_status status = edgefl_client_run(client, strtoull(argv[2], NULL, 10), &rounds);
    if (status != EDGEFL_OK) {
      fprintf(stderr, "run: %s\n", edgefl_client_last_error(client));
      edgefl_client_free(client);
      return 1;
    }
  }
  printf("c_client: trained %llu rounds\n", (unsigned long long)rounds);
  edgefl_client_free(client);
  return 0;
}
