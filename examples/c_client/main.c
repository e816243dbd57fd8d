/* A device in plain C, through the edgefl C API, in either of its two ways to train:
 *   builtin   edgefl trains its built-in "logreg" model on the examples handed to it;
 *   callback  the host trains its own model in plain C (below: softmax regression with SGD)
 *             and edgefl only runs the privacy pipeline on the delta and sends it.
 * Both use 100 synthetic examples of 4 inputs and 2 classes. The host model's 10 weights are laid
 * out as the built-in logreg's (W[class][input], then b[class]), so devices of either kind can
 * join one coordinator serving model = "logreg", input_size = 4, num_classes = 2.
 *
 * Usage: c_client ENDPOINT [ROUNDS [builtin|callback]]. Without ROUNDS it connects nowhere: it
 * only checks that the library links and that both kinds of client can be set up, and exits 0. */
#include <edgefl/client.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kExamples = 100, kInputs = 4, kClasses = 2, kWeights = kClasses * kInputs + kClasses };

static float features[kExamples * kInputs];
static uint8_t labels[kExamples];

/* The host's training: softmax regression from the global weights, minibatch SGD with the
 * round's learning rate, epochs and batch size; delta = trained - global. */
static int TrainSoftmax(void* user, const edgefl_round_info* round, const float* global_weights,
                        size_t num_weights, float* delta_out, uint64_t* num_examples_out,
                        float* train_loss_out) {
  (void)user;
  if (num_weights != kWeights) return 1; /* not our model: decline the round */
  float w[kWeights];
  memcpy(w, global_weights, sizeof w);
  const unsigned epochs = round->local_epochs > 0 ? round->local_epochs : 1;
  const unsigned batch = round->batch_size > 0 ? round->batch_size : 10;
  double loss_sum = 0.0;
  unsigned num_batches = 0;
  for (unsigned epoch = 0; epoch < epochs; ++epoch) {
    for (unsigned start = 0; start < kExamples; start += batch) {
      const unsigned end = start + batch < kExamples ? start + batch : kExamples;
      float grad[kWeights] = {0};
      double batch_loss = 0.0;
      for (unsigned i = start; i < end; ++i) {
        const float* x = &features[i * kInputs];
        float logits[kClasses], max_logit = -INFINITY, sum = 0.0f;
        for (int c = 0; c < kClasses; ++c) {
          logits[c] = w[kClasses * kInputs + c];
          for (int j = 0; j < kInputs; ++j) logits[c] += w[c * kInputs + j] * x[j];
          if (logits[c] > max_logit) max_logit = logits[c];
        }
        for (int c = 0; c < kClasses; ++c) sum += (logits[c] = expf(logits[c] - max_logit));
        batch_loss -= log(logits[labels[i]] / sum);
        for (int c = 0; c < kClasses; ++c) {
          const float d = logits[c] / sum - (c == labels[i] ? 1.0f : 0.0f); /* dLoss/dlogit */
          for (int j = 0; j < kInputs; ++j) grad[c * kInputs + j] += d * x[j];
          grad[kClasses * kInputs + c] += d;
        }
      }
      for (int k = 0; k < kWeights; ++k) w[k] -= round->learning_rate * grad[k] / (end - start);
      loss_sum += batch_loss / (end - start);
      ++num_batches;
    }
  }
  for (int k = 0; k < kWeights; ++k) delta_out[k] = w[k] - global_weights[k];
  *num_examples_out = kExamples;
  *train_loss_out = (float)(loss_sum / num_batches);
  return 0;
}

int main(int argc, char** argv) {
  for (int i = 0; i < kExamples; ++i) {
    const float sign = (i % 2 == 0) ? 1.0f : -1.0f;
    for (int j = 0; j < kInputs; ++j) features[i * kInputs + j] = sign * (0.5f + 0.1f * j);
    labels[i] = (uint8_t)(i % 2);
  }
  const int use_callback = argc > 3 && strcmp(argv[3], "callback") == 0;
  edgefl_client_config config = edgefl_client_default_config();
  config.endpoint = argc > 1 ? argv[1] : "tcp://127.0.0.1:7878";
  config.insecure_plaintext = 1;
  config.model = "logreg";
  config.input_size = kInputs;
  config.num_classes = kClasses;
  config.device_name = use_callback ? "c-example-callback" : "c-example";

  /* Both kinds of client; the one not chosen is only set up, as a check, and freed. */
  edgefl_client_t* builtin = NULL;
  edgefl_client_t* hosted = NULL;
  if (edgefl_client_create(&config, &builtin) != EDGEFL_OK ||
      edgefl_client_create(&config, &hosted) != EDGEFL_OK) {
    fprintf(stderr, "create: %s\n", edgefl_client_last_error(NULL));
    edgefl_client_free(builtin);
    return 1;
  }
  int ok = edgefl_client_set_data(builtin, features, labels, kExamples) == EDGEFL_OK;
  if (!ok) fprintf(stderr, "set_data: %s\n", edgefl_client_last_error(builtin));
  if (ok && edgefl_client_set_train_callback(hosted, TrainSoftmax, NULL, kWeights, kExamples) !=
                EDGEFL_OK) {
    fprintf(stderr, "set_train_callback: %s\n", edgefl_client_last_error(hosted));
    ok = 0;
  }
  edgefl_client_t* client = use_callback ? hosted : builtin;
  uint64_t rounds = 0;
  if (ok && argc > 2) {
    if (edgefl_client_run(client, strtoull(argv[2], NULL, 10), &rounds) != EDGEFL_OK) {
      fprintf(stderr, "run: %s\n", edgefl_client_last_error(client));
      ok = 0;
    }
  }
  if (ok) {
    printf("c_client: trained %llu rounds (%s)\n", (unsigned long long)rounds,
           use_callback ? "callback" : "builtin");
  }
  edgefl_client_free(builtin);
  edgefl_client_free(hosted);
  return ok ? 0 : 1;
}
