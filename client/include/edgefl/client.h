/* edgefl client C API: embed an edgefl device in software written in C (or anything with a C
 * FFI). Plain C99; nothing throws across it; every call returns an edgefl_status, and
 * edgefl_client_last_error() says why the last call on a client failed.
 *
 * A client trains either with a built-in model on a copy of its local data
 * (edgefl_client_set_data) or with a training callback of the host application
 * (edgefl_client_set_train_callback: the host's own model, data and training loop). Either way
 * edgefl_client_run connects to the coordinator, trains each round it is selected for, runs the
 * update through the same device code as `edgefl client` (validation, clipping, distributed DP
 * noise, secure-aggregation masking), reconnects with backoff, and returns after max_rounds
 * rounds, a Goodbye, or edgefl_client_stop().
 *
 * Thread-safety: drive a client from one thread; edgefl_client_stop may be called from any thread.
 * The training callback is called on the thread running edgefl_client_run.
 *
 *   edgefl_client_config config = edgefl_client_default_config();
 *   config.endpoint = "tcp://127.0.0.1:7878"; config.insecure_plaintext = 1;
 *   edgefl_client_t* client = NULL;
 *   if (edgefl_client_create(&config, &client) != EDGEFL_OK) { ... }
 *   edgefl_client_set_data(client, features, labels, n);
 *     (or: edgefl_client_set_train_callback(client, my_train, &my_state, num_weights, n);)
 *   edgefl_client_run(client, 5, &rounds);
 *   edgefl_client_free(client);
 */
#ifndef EDGEFL_CLIENT_H_
#define EDGEFL_CLIENT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values are part of the ABI: never renumbered, only appended. */
typedef enum edgefl_status {
  EDGEFL_OK = 0,
  EDGEFL_INVALID_ARGUMENT = 1,
  EDGEFL_NOT_FOUND = 2,
  EDGEFL_FAILED_PRECONDITION = 3,
  EDGEFL_UNAVAILABLE = 4,
  EDGEFL_DEADLINE_EXCEEDED = 5,
  EDGEFL_INTERNAL = 6,
  EDGEFL_UNKNOWN = 7
} edgefl_status;

typedef struct edgefl_client edgefl_client_t;

typedef struct edgefl_client_config {
  const char* endpoint;               /* required, e.g. "tcp://10.0.0.1:7878" */
  int insecure_plaintext;             /* 1: no CURVE (loopback tests only) */
  const char* secret_key_file;        /* device CURVE secret key (edgefl keygen) */
  const char* server_public_key_file; /* coordinator public key */
  const char* device_name;            /* for the coordinator's logs; may be NULL */
  const char* model;                  /* built-in model name, e.g. "mlp" or "logreg" */
  size_t input_size;                  /* floats per example */
  size_t num_classes;                 /* labels are < num_classes */
  double heartbeat_seconds;           /* default 5 */
  double silence_timeout_seconds;     /* reconnect after this silence; default 30 */
} edgefl_client_config;

/* Defaults: model "mlp", 784 inputs, 10 classes, heartbeat 5 s, silence 30 s, CURVE on. */
edgefl_client_config edgefl_client_default_config(void);

/* Creates a client (no connection yet). EDGEFL_INVALID_ARGUMENT for NULL arguments, a missing
 * endpoint or an unknown model; then *out is NULL and edgefl_client_last_error(NULL) says
 * why. */
edgefl_status edgefl_client_create(const edgefl_client_config* config, edgefl_client_t** out);

/* Copies num_examples examples (input_size floats each, row-major) and their labels, to train
 * the built-in model on. Replaces an earlier training callback.
 * EDGEFL_INVALID_ARGUMENT for NULL pointers, num_examples == 0 or a label >= num_classes. */
edgefl_status edgefl_client_set_data(edgefl_client_t* client, const float* features,
                                     const uint8_t* labels, size_t num_examples);

/* What a round asks of the training callback: the coordinator's hyper-parameters, which the
 * host may follow or ignore. Owned by the library, valid during the call. Fields are only ever
 * appended. */
typedef struct edgefl_round_info {
  uint64_t round;      /* round number, from 1 */
  uint64_t client_id;  /* the id the coordinator assigned this device */
  uint64_t seed;       /* training seed; shuffle from (seed, round, client_id) to be reproducible */
  uint32_t local_epochs;
  uint32_t local_steps; /* > 0: this many optimizer steps instead of local_epochs */
  uint32_t batch_size;
  float learning_rate;
  float momentum;
  float weight_decay;
  float proximal_mu; /* FedProx; 0 = off */
} edgefl_round_info;

/* The host's local training for one round. Start from global_weights (num_weights floats, the
 * num_parameters given to edgefl_client_set_train_callback), train, and write
 * trained - global_weights into delta_out (num_weights floats, zeroed on entry). On entry
 * *num_examples_out holds the num_examples given at registration and *train_loss_out is 0; set
 * them to the examples trained on (> 0, the update's FedAvg weight) and the mean training loss.
 *
 * Return 0 to send the update: the library then checks it (every value and the loss finite,
 * num_examples > 0) and runs the privacy pipeline the coordinator asked for on it (clip to the
 * round's norm, distributed DP noise, secure-aggregation masks). Return non-zero to decline the
 * round: the coordinator gets an error reply naming the value, the round goes on without this
 * device, and the client waits for the next round. To say why, call
 * edgefl_train_set_error(round, "...") before returning. An update that fails the checks is
 * declined the same way, and so is a round in which a C++ exception escapes the callback (it
 * never reaches the caller of edgefl_client_run). The callback must not call edgefl_client_run or
 * edgefl_client_free on its client; edgefl_client_stop is fine. */
typedef int (*edgefl_train_fn)(void* user, const edgefl_round_info* round,
                               const float* global_weights, size_t num_weights, float* delta_out,
                               uint64_t* num_examples_out, float* train_loss_out);

/* Makes the client train with `train` (called with `user` each round) instead of the built-in
 * model: the config's model, input_size and num_classes are then not used. num_parameters is the
 * length of the host model's trainable weights; a round whose global weights have another length
 * is declined without calling `train`. num_examples is reported to the coordinator on connecting
 * and preset in *num_examples_out. Replaces earlier edgefl_client_set_data (and vice versa: the
 * last call decides). EDGEFL_INVALID_ARGUMENT for a NULL train or num_parameters == 0. */
edgefl_status edgefl_client_set_train_callback(edgefl_client_t* client, edgefl_train_fn train,
                                               void* user, size_t num_parameters,
                                               uint64_t num_examples);

/* Says why the training callback declines its round. Call it from inside the callback, with
 * the `round` pointer the callback was given, then return non-zero:
 *
 *   if (battery_low()) { edgefl_train_set_error(round, "battery below 20%"); return 1; }
 *
 * The reason the coordinator records for this device's round, and the device logs as a
 * round_error warning, then ends in "the training callback declined round 3 (returned 1):
 * battery below 20%" rather than at the return value. The round is declined even if the callback
 * returns 0 after setting an error. The message is copied (the caller's buffer may be freed at
 * once); a second call in the same callback replaces it; a reason longer than the 1 KiB limit
 * of an error reply is cut, ending in " [...]".
 * EDGEFL_INVALID_ARGUMENT for a NULL message. EDGEFL_FAILED_PRECONDITION when `round` is not the
 * round of a training callback running on this thread (e.g. called after the callback
 * returned, or from another thread); the call then has no effect. On failure
 * edgefl_client_last_error(NULL) says why. */
edgefl_status edgefl_train_set_error(const edgefl_round_info* round, const char* message);

/* Connects and answers rounds until max_rounds (0 = no limit) rounds were answered, the
 * coordinator says Goodbye, or edgefl_client_stop() is called. *rounds_trained (may be NULL)
 * receives the rounds answered, declined ones included. EDGEFL_FAILED_PRECONDITION without data
 * or a training callback. */
edgefl_status edgefl_client_run(edgefl_client_t* client, uint64_t max_rounds,
                                uint64_t* rounds_trained);

/* Asks a running edgefl_client_run to return soon. Safe from any thread and signal handlers. */
void edgefl_client_stop(edgefl_client_t* client);

/* The message of the last failed call on `client` ("" if none); with NULL, of the last failed
 * edgefl_client_create or edgefl_train_set_error on this thread. Valid until the next call on
 * the same client (with NULL: until the next of those calls on this thread). */
const char* edgefl_client_last_error(const edgefl_client_t* client);

/* Frees the client; NULL is a no-op. */
void edgefl_client_free(edgefl_client_t* client);

#ifdef __cplusplus
}
#endif

#endif /* EDGEFL_CLIENT_H_ */
