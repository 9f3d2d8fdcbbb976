/*
 * recr1.h: the C SDK of recr1 (clients/c in the recr1 repository; guide: docs/c-sdk.md).
 *
 * Two halves over one wire format (proto/recr1/v1/envelope.proto, nng REQ/REP):
 *
 *   - a reward plugin server: recr1_serve_reward() answers "recr1.v1.Reward/Reward" with a C function,
 *     applying the same envelope, status codes, deadline, size limit and token rule as recr1d;
 *   - a policy client: recr1_client_open() and one function per call of recr1d (info, health,
 *     tokenize, generate, score), plus recr1_client_call() for any other method.
 *
 * Errors. Every function that can fail returns an int status: RECR1_OK (0) or one of the recr1_code
 * values below, numbered as gRPC numbers them. It also fills the caller's recr1_error, when one is
 * given (pass NULL to ignore the details): the code, a message, the offending field, and whether the
 * failure came from the server's Status or arose here (transport, decoding, arguments). Nothing in
 * this library aborts or exits on bad input, bad replies or a vanished peer. Local failures use:
 *
 *   RECR1_INVALID_ARGUMENT  a bad argument (NULL where a value is needed, a prompt in two forms,
 *                           a request larger than the client's max_message_bytes, ...)
 *   RECR1_UNAVAILABLE       cannot connect, not connected within the timeout, or the connection
 *                           closed while a call waited
 *   RECR1_DEADLINE_EXCEEDED no reply within the call's timeout
 *   RECR1_DATA_LOSS         a reply that is truncated, malformed or does not fit the request
 *   RECR1_RESOURCE_EXHAUSTED out of memory, or a reply larger than the client's max_message_bytes
 *   RECR1_INTERNAL          an nng failure that fits none of the above
 *
 * Ownership. Strings and arrays passed in are only read, and only during the call. Every result a
 * function returns through a pointer is owned by the caller and freed by that result type's own
 * free function (recr1_info_result_free, ...); freeing NULL is allowed. The pointers inside a
 * result stay valid until it is freed. Strings in results are never NULL (empty is ""); an array
 * whose count is 0 may be NULL.
 *
 * Threads. A recr1_client may be used from several threads at once: every call runs on its own nng
 * context. A reward function runs on the server's worker threads, several at once when
 * options.workers > 1.
 *
 * From C++ this header is used as it is (extern "C"). From other languages, every type here is a
 * plain C struct or an opaque pointer; see docs/c-sdk.md for ctypes, bindgen and cgo notes.
 */
#ifndef RECR1_H
#define RECR1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RECR1_BUILDING) && defined(__GNUC__)
#define RECR1_API __attribute__((visibility("default")))
#else
#define RECR1_API
#endif

#if defined(__GNUC__)
#define RECR1_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RECR1_PRINTF(fmt, args)
#endif

#define RECR1_VERSION "0.1.0"

/* The SDK's version, "0.1.0"; compare with RECR1_VERSION to catch a header/library mismatch. */
RECR1_API const char *recr1_version(void);

/* ------------------------------------------------------------------------------------------------
 * Status codes and errors
 */

/* The codes of proto/recr1/v1/envelope.proto (google.rpc.Code numbering). */
typedef enum recr1_code {
    RECR1_OK = 0,
    RECR1_CANCELLED = 1,
    RECR1_UNKNOWN = 2,
    RECR1_INVALID_ARGUMENT = 3,
    RECR1_DEADLINE_EXCEEDED = 4,
    RECR1_NOT_FOUND = 5,
    RECR1_ALREADY_EXISTS = 6,
    RECR1_PERMISSION_DENIED = 7,
    RECR1_RESOURCE_EXHAUSTED = 8,
    RECR1_FAILED_PRECONDITION = 9,
    RECR1_ABORTED = 10,
    RECR1_OUT_OF_RANGE = 11,
    RECR1_UNIMPLEMENTED = 12,
    RECR1_INTERNAL = 13,
    RECR1_UNAVAILABLE = 14,
    RECR1_DATA_LOSS = 15,
    RECR1_UNAUTHENTICATED = 16
} recr1_code;

/* "INVALID_ARGUMENT" for 3, ...; "UNKNOWN_CODE" for a number outside 0..16. */
RECR1_API const char *recr1_code_name(int code);

/* What went wrong, filled by any function that takes a recr1_error *. Fixed-size buffers, so that an
 * error never needs freeing; longer texts are cut. */
typedef struct recr1_error {
    int code;                /* a recr1_code; RECR1_OK after success */
    int local;               /* 1: arose in this process; 0: the server's Status */
    uint32_t retry_after_ms; /* the server's suggested wait (RESOURCE_EXHAUSTED, UNAVAILABLE) */
    uint64_t request_id;     /* the request id of the call, 0 when none was sent */
    char field[128];         /* the offending field's path or the limit's name, or "" */
    char message[512];       /* for humans; for INVALID_ARGUMENT it starts with the field */
} recr1_error;

/* Fills err (when not NULL) with a local error and returns code: the helper a reward function uses
 * to fail a whole request with a status. field may be NULL or "". Like recr1d, the message is
 * prefixed with "field: " unless it already starts with the field. */
RECR1_API int recr1_error_set(recr1_error *err, int code, const char *field, const char *format, ...)
    RECR1_PRINTF(4, 5);

/* Frees memory this library handed out as a plain buffer (recr1_json_get_string,
 * recr1_client_call's reply). */
RECR1_API void recr1_free(void *pointer);

/* ------------------------------------------------------------------------------------------------
 * Reward plugins
 *
 * recr1d sends "recr1.v1.Reward/Reward" with a batch of items; the plugin answers one result per item,
 * in order. The server checks each request frame as recr1d does, in this order:
 *   1. size <= max_message_bytes                 else INVALID_ARGUMENT, field "max_message_bytes"
 *   2. the envelope decodes                       else INVALID_ARGUMENT, field "envelope"
 *   3. a method is named                          else INVALID_ARGUMENT, field "method"
 *   4. the token matches (constant time), when one is configured   else UNAUTHENTICATED, "auth_token"
 *   5. the method is "recr1.v1.Reward/Reward"     else UNIMPLEMENTED
 *   6. the payload decodes as a RewardRequest     else INVALID_ARGUMENT, field "payload"
 *   7. every item's metadata_json is JSON ("" counts as {})  else INVALID_ARGUMENT, "items[i].metadata_json"
 *   8. the deadline (receipt + timeout_ms, when not 0) is ahead, before and after the reward function
 *                                                 else DEADLINE_EXCEEDED, field "timeout_ms"
 * Frames larger than max(2 * max_message_bytes, max_message_bytes + 16 MiB) are dropped by nng
 * without a reply, as recr1d does.
 */

#define RECR1_REWARD_METHOD "recr1.v1.Reward/Reward"

typedef struct recr1_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} recr1_chat_message;

/* One item to score: views into the request, valid during the reward function's call only. */
typedef struct recr1_reward_item {
    const char *id;                            /* the rollout id when recr1d asks */
    const char *prompt;                        /* the prompt as rendered text */
    const recr1_chat_message *prompt_messages; /* its messages, when it was a conversation */
    size_t n_prompt_messages;
    const char *completion;                    /* the policy's completion */
    const char *metadata_json;                 /* the record's metadata: a JSON value, "{}" when none */
} recr1_reward_item;

typedef struct recr1_detail {
    char *name;
    double value;
} recr1_detail;

/* One item's answer. The server hands the reward function one zeroed result per item; the function
 * fills it with the helpers below (or sets reward and has_reward itself). The server frees what the
 * helpers allocate. An item left without a reward gets the error "the reward function gave no reward
 * for this item"; a reward that is NaN or infinite is turned into no reward with an error, so that it
 * cannot reach a training step. */
typedef struct recr1_reward_result {
    float reward;
    int has_reward;          /* 0: recr1d leaves the item out of the update, and counts it */
    char *error;             /* why there is no reward (set by recr1_result_skip) */
    recr1_detail *details;   /* named parts of the reward, logged as metrics (recr1_result_detail) */
    size_t n_details;
    size_t details_capacity_;
} recr1_reward_result;

/* Sets the reward (has_reward = 1). */
RECR1_API void recr1_result_set(recr1_reward_result *result, double reward);
/* No reward for this item, with the reason (printf format). */
RECR1_API void recr1_result_skip(recr1_reward_result *result, const char *format, ...) RECR1_PRINTF(2, 3);
/* Adds or replaces a named detail. RECR1_OK, RECR1_INVALID_ARGUMENT (NULL name) or
 * RECR1_RESOURCE_EXHAUSTED. */
RECR1_API int recr1_result_detail(recr1_reward_result *result, const char *name, double value);

/* The reward function: fills results[0..n_items) and returns RECR1_OK, or fails the whole request by
 * returning a code, best with recr1_error_set(error, code, field, ...) so that the caller learns why.
 * Called on a worker thread; concurrently from several when options.workers > 1. */
typedef int (*recr1_reward_fn)(const recr1_reward_item *items, size_t n_items, recr1_reward_result *results,
                               void *user_data, recr1_error *error);

/* Zero means the default for every field. */
typedef struct recr1_reward_options {
    const char *token;        /* when set (not NULL, not ""), every request must carry it */
    size_t max_message_bytes; /* largest request served; default 16 MiB, as recr1d */
    int workers;              /* requests handled at once (nng contexts, one thread each); default 1 */
    int listener_check_ms;    /* how often the listener is checked, default 5000; -1: never. libnng 1.5.2
                                 (Debian 12's) stops a listener for good when a peer hangs up during the
                                 handshake (nng issue #1518); a check connects as a client would and, when
                                 that never arrives twice in a row, listens again */
} recr1_reward_options;

typedef struct recr1_reward_server recr1_reward_server;

/* Listens on address and starts the workers; returns at once. ipc:// socket files are created
 * owner-only (a missing directory is created 0700). A tcp:// address with an empty or '*' host,
 * tcp://:PORT, listens on 127.0.0.1 only, as recr1d does. *server is NULL on failure. */
RECR1_API int recr1_reward_server_start(recr1_reward_server **server, const char *address, recr1_reward_fn fn,
                                        void *user_data, const recr1_reward_options *options, recr1_error *err);

/* Asks the server to stop and returns at once. Safe from any thread and from a signal handler
 * (it sets a flag and writes one byte to a pipe), and more than once. */
RECR1_API void recr1_reward_server_stop(recr1_reward_server *server);

/* Blocks until recr1_reward_server_stop, then stops gracefully: idle workers stop receiving, requests
 * in flight are answered, the socket closes (removing an ipc socket file). Call it once. */
RECR1_API void recr1_reward_server_wait(recr1_reward_server *server);

/* Stops (as stop + wait, unless already waited for) and frees the server. NULL is allowed. */
RECR1_API void recr1_reward_server_free(recr1_reward_server *server);

/* The one-call plugin: start, serve until SIGTERM or SIGINT, stop gracefully, free. It installs its
 * own SIGTERM and SIGINT handlers for the duration and restores the previous ones afterwards, so run
 * one at a time. Once listening it prints "recr1 reward plugin: listening on ADDRESS" on stderr. Returns
 * RECR1_OK after a signal, or the error that kept it from starting. */
RECR1_API int recr1_serve_reward(const char *address, recr1_reward_fn fn, void *user_data,
                                 const recr1_reward_options *options, recr1_error *err);

/* ------------------------------------------------------------------------------------------------
 * JSON metadata
 *
 * The metadata of an item is a JSON text. These read one top-level member of a JSON object, for the
 * common case of a plugin that needs its ground truth ("rating", "target", ...). They accept only
 * strict JSON (RFC 8259) and return RECR1_OK, RECR1_NOT_FOUND (no such member, or null: as Python's
 * dict.get reads it) or RECR1_INVALID_ARGUMENT (not JSON, not an object, or the member has another
 * type).
 */

/* A number member; numbers are read without the C locale's help, so setlocale() cannot change them. */
RECR1_API int recr1_json_get_number(const char *json, const char *key, double *value);
/* A string member, unescaped to UTF-8 in a new buffer: free *value with recr1_free. */
RECR1_API int recr1_json_get_string(const char *json, const char *key, char **value);
/* RECR1_OK when the whole text is one JSON value (leading and trailing white space allowed). */
RECR1_API int recr1_json_check(const char *json, size_t length, recr1_error *err);

/* ------------------------------------------------------------------------------------------------
 * Policy client
 */

/* A call waits this long for its reply when the options say 0. */
#define RECR1_DEFAULT_TIMEOUT_MS 60000u
/* A timeout_ms that means: no deadline, wait for ever. A server that closes the connection still ends
 * the wait (UNAVAILABLE); with no connection at all, the call waits for one. */
#define RECR1_WAIT_FOREVER UINT32_MAX

/* Zero means the default for every field. */
typedef struct recr1_client_options {
    const char *token;        /* sent with every request (recr1d's token_file) */
    uint32_t timeout_ms;      /* per call, sent as the deadline too; 0 = 60 s; RECR1_WAIT_FOREVER */
    size_t max_message_bytes; /* larger requests are not sent (INVALID_ARGUMENT), larger replies are
                                 refused (RESOURCE_EXHAUSTED); 0 = no limit (the server has its own) */
} recr1_client_options;

typedef struct recr1_client recr1_client;

/* Connects to address (ipc://..., tcp://host:port), waiting for the connection; fails with
 * RECR1_UNAVAILABLE when no server listens there. Reconnects by itself afterwards. nng's automatic
 * resend is off: a repeated Update would be applied twice. */
RECR1_API int recr1_client_open(recr1_client **client, const char *address, const recr1_client_options *options,
                                recr1_error *err);
/* Closes the connection and frees the client; no call may be in progress. NULL is allowed. */
RECR1_API void recr1_client_close(recr1_client *client);

/* Any method, with a serialized request message as payload: for the calls without a helper here
 * (Detokenize, Update, ...; build their messages with the protobuf-c code installed beside this
 * header, <recr1/v1/policy.pb-c.h>), and for any recr1 endpoint (a reward plugin too). On RECR1_OK,
 * *reply (free with recr1_free; NULL when empty) holds the serialized reply message. timeout_ms: 0 =
 * the client's. */
RECR1_API int recr1_client_call(recr1_client *client, const char *method, const void *payload, size_t payload_len,
                                uint32_t timeout_ms, void **reply, size_t *reply_len, recr1_error *err);

/* Info ---------------------------------------------------------------------------------------- */

typedef struct recr1_info_result {
    const char *server_version;
    uint64_t policy_version;
    int model_loaded;
    const char *model_name;
    const char *model_source;
    const char *model_architecture;
    uint64_t model_parameters;
    uint32_t model_vocab_size;
    uint32_t model_context_length;
    const char *blas_core;
    const char *cpu_features;
    uint64_t max_message_bytes;
    uint32_t max_prompts_per_request;
    uint32_t max_samples_per_prompt;
    uint32_t max_new_tokens;
    uint32_t max_sequence_tokens;
    uint32_t workers;
    int auth_required;
    uint64_t pid;
    void *reply_; /* private: the decoded reply the strings point into */
} recr1_info_result;

RECR1_API int recr1_info(recr1_client *client, recr1_info_result **result, recr1_error *err);
RECR1_API void recr1_info_result_free(recr1_info_result *result);

/* Health -------------------------------------------------------------------------------------- */

typedef enum recr1_serving_status {
    RECR1_SERVING_UNSPECIFIED = 0,
    RECR1_SERVING = 1,
    RECR1_NOT_SERVING = 2,
    RECR1_STOPPING = 3
} recr1_serving_status;

typedef struct recr1_health_result {
    int status; /* a recr1_serving_status */
    double uptime_seconds;
    uint64_t policy_version;
    uint32_t in_flight;
    uint64_t requests_served;
    uint64_t requests_failed;
    const char *running_job;
    void *reply_;
} recr1_health_result;

RECR1_API int recr1_health(recr1_client *client, recr1_health_result **result, recr1_error *err);
RECR1_API void recr1_health_result_free(recr1_health_result *result);

/* Tokenize ------------------------------------------------------------------------------------ */

typedef struct recr1_token_ids {
    const uint32_t *ids;
    size_t n_ids;
} recr1_token_ids;

typedef struct recr1_tokenize_result {
    const recr1_token_ids *tokens; /* one per text, in order */
    size_t n_tokens;
    void *reply_;
} recr1_tokenize_result;

/* add_special_tokens: prepend the model's beginning-of-sequence token where it has one. */
RECR1_API int recr1_tokenize(recr1_client *client, const char *const *texts, size_t n_texts, int add_special_tokens,
                             recr1_tokenize_result **result, recr1_error *err);
RECR1_API void recr1_tokenize_result_free(recr1_tokenize_result *result);

/* Prompts ------------------------------------------------------------------------------------- */

/* A prompt in exactly one of three forms: set text, or messages (a conversation, rendered with the
 * model's chat template and the generation prompt), or token_ids. */
typedef struct recr1_prompt {
    const char *text;
    const recr1_chat_message *messages;
    size_t n_messages;
    const uint32_t *token_ids;
    size_t n_token_ids;
} recr1_prompt;

/* Generate ------------------------------------------------------------------------------------ */

/* Zeroed parameters are valid: one greedy sample (temperature 0) of the server's default length. */
typedef struct recr1_generate_params {
    uint32_t n;              /* samples per prompt; 0 means 1; they share one prefill */
    float temperature;       /* 0 = greedy */
    uint32_t top_k;          /* 0 = off */
    float top_p;             /* 0 or 1 = off */
    int has_seed;            /* 1: use seed (same request and seed, same output) */
    uint64_t seed;
    uint32_t max_new_tokens; /* 0 = the server's default */
    const uint32_t *stop_token_ids;
    size_t n_stop_token_ids;
    const char *const *stop_strings;
    size_t n_stop_strings;
    int no_store;            /* 1: do not keep the rollouts for Update (no rollout ids) */
    uint32_t timeout_ms;     /* 0 = the client's */
} recr1_generate_params;

typedef enum recr1_finish_reason {
    RECR1_FINISH_UNSPECIFIED = 0,
    RECR1_FINISH_STOP = 1,        /* an end-of-sequence or stop token (included) */
    RECR1_FINISH_LENGTH = 2,      /* max_new_tokens or the context */
    RECR1_FINISH_STOP_STRING = 3  /* a stop string appeared (kept) */
} recr1_finish_reason;

typedef struct recr1_completion {
    const char *text;
    const char *rollout_id;     /* "" when no_store */
    const uint32_t *token_ids;
    size_t n_token_ids;
    const float *logprobs;      /* of each sampled token under the policy that sampled it */
    size_t n_logprobs;
    int finish_reason;          /* a recr1_finish_reason */
} recr1_completion;

typedef struct recr1_prompt_completions {
    const uint32_t *prompt_token_ids;
    size_t n_prompt_token_ids;
    const recr1_completion *completions;
    size_t n_completions;
} recr1_prompt_completions;

typedef struct recr1_generate_result {
    const recr1_prompt_completions *results; /* one per prompt, in order */
    size_t n_results;
    uint64_t policy_version;
    void *reply_;
} recr1_generate_result;

/* params may be NULL (all defaults). */
RECR1_API int recr1_generate(recr1_client *client, const recr1_prompt *prompts, size_t n_prompts,
                             const recr1_generate_params *params, recr1_generate_result **result, recr1_error *err);
RECR1_API void recr1_generate_result_free(recr1_generate_result *result);

/* Score --------------------------------------------------------------------------------------- */

typedef enum recr1_score_with {
    RECR1_SCORE_WITH_POLICY = 0,
    RECR1_SCORE_WITH_REFERENCE = 1,
    RECR1_SCORE_WITH_BOTH = 2
} recr1_score_with;

/* A (prompt, completion) pair; the completion as completion_text or as completion_token_ids. */
typedef struct recr1_score_item {
    recr1_prompt prompt;
    const char *completion_text;
    const uint32_t *completion_token_ids;
    size_t n_completion_token_ids;
} recr1_score_item;

typedef struct recr1_score_entry {
    const uint32_t *completion_token_ids;
    size_t n_completion_token_ids;
    const float *policy_logprobs;    /* one per completion token */
    size_t n_policy_logprobs;
    const float *reference_logprobs;
    size_t n_reference_logprobs;
} recr1_score_entry;

typedef struct recr1_score_result {
    const recr1_score_entry *results; /* one per item, in order */
    size_t n_results;
    uint64_t policy_version;
    void *reply_;
} recr1_score_result;

/* Teacher-forced per-token log-probs of each item's completion. timeout_ms: 0 = the client's. */
RECR1_API int recr1_score(recr1_client *client, const recr1_score_item *items, size_t n_items, int score_with,
                          uint32_t timeout_ms, recr1_score_result **result, recr1_error *err);
RECR1_API void recr1_score_result_free(recr1_score_result *result);

#ifdef __cplusplus
}
#endif

#endif /* RECR1_H */
