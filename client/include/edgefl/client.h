/* edgefl client C API: embed an edgefl device in software written in C (or anything with a C
 * FFI). Plain C99; nothing throws across it; every call returns an edgefl_status, and
 * edgefl_client_last_error() says why the last call on a client failed.
 *
 * A client owns a copy of its local data and a built-in model; edgefl_client_run connects to the
 * coordinator, trains each round it is selected for with the same device code as `edgefl client`
 * (privacy pipeline and secure aggregation included), reconnects with backoff, and returns after
 * max_rounds rounds, a Goodbye, or edgefl_client_stop().
 *
 * Thread-safety: drive a client from one thread; edgefl_client_stop may be called from any thread.
 *
 *   edgefl_client_config config = edgefl_client_default_config();
 *   config.endpoint = "tcp://127.0.0.1:7878"; config.insecure_plaintext = 1;
 *   edgefl_client_t* client = NULL;
 *   if (edgefl_client_create(&config, &client) != EDGEFL_OK) { ... }
 *   edgefl_client_set_data(client, features, labels, n);
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

/* Copies num_examples examples (input_size floats each, row-major) and their labels.
 * EDGEFL_INVALID_ARGUMENT for NULL pointers, num_examples == 0 or a label >= num_classes. */
edgefl_status edgefl_client_set_data(edgefl_client_t* client, const float* features,
                                     const uint8_t* labels, size_t num_examples);

/* Connects and answers rounds until max_rounds (0 = no limit) rounds were trained, the
 * coordinator says Goodbye, or edgefl_client_stop() is called. *rounds_trained (may be NULL)
 * receives the rounds answered. EDGEFL_FAILED_PRECONDITION without data. */
edgefl_status edgefl_client_run(edgefl_client_t* client, uint64_t max_rounds,
                                uint64_t* rounds_trained);

/* Asks a running edgefl_client_run to return soon. Safe from any thread and signal handlers. */
void edgefl_client_stop(edgefl_client_t* client);

/* The message of the last failed call on `client` ("" if none); with NULL, of the last failed
 * edgefl_client_create on this thread. Valid until the next call on the same client. */
const char* edgefl_client_last_error(const edgefl_client_t* client);

/* Frees the client; NULL is a no-op. */
void edgefl_client_free(edgefl_client_t* client);

#ifdef __cplusplus
}
#endif

#endif /* EDGEFL_CLIENT_H_ */
