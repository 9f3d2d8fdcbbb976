/* The Reward service (proto/recr1/v1/reward.proto) served by a C function: an nng REP socket, worker
 * threads with one nng context each, and the envelope rules of recr1d's Dispatcher. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>

#include "internal.h"
#include "recr1/v1/envelope.pb-c.h"
#include "recr1/v1/reward.pb-c.h"

/* When the stop leaves replies just handed to nng, the socket stays open this long so that they
 * leave the process (closing the socket drops what is still queued). */
#define LINGER_MS 100

typedef struct worker {
    struct recr1_reward_server *server;
    nng_ctx context;
    nng_aio *aio;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;    /* guards the three flags below */
    int receiving;           /* a receive is in progress: a stop cancels it */
    int stopping;            /* start no new receive */
    int answered_after_stop; /* replied after the stop was asked: linger before closing */
} worker;

struct recr1_reward_server {
    nng_socket socket;
    recr1_reward_fn fn;
    void *user_data;
    char *token; /* NULL: no token required */
    size_t max_message_bytes;
    worker *workers;
    int n_workers;
    /* The listener and what it takes to start it again (see the watchdog below). */
    nng_listener listener;
    char *url;
    size_t transport_limit;
    atomic_int arrivals;      /* connections handed to the socket (nng's pipe notification) */
    int check_ms;             /* the watchdog's period; 0: no watchdog */
    pthread_t watchdog;
    int watchdog_started;
    atomic_int watchdog_stop;
    /* recr1_reward_server_stop runs in signal handlers, where neither locks nor condition variables
     * may be used: it sets this flag and writes a byte to the pipe that wait() reads. */
    atomic_int stop_asked;
    int wake[2];
    int waited;
};

/* ------------------------------------------------------------------------------------------------
 * Results: the helpers a reward function fills them with
 */

void recr1_result_set(recr1_reward_result *result, double reward) {
    if (result == NULL) return;
    result->reward = (float)reward;
    result->has_reward = 1;
}

void recr1_result_skip(recr1_reward_result *result, const char *format, ...) {
    if (result == NULL) return;
    result->has_reward = 0;
    result->reward = 0;
    free(result->error);
    va_list args;
    va_start(args, format);
    result->error = recr1i_vformat(format ? format : "", args);
    va_end(args);
    recr1i_utf8_repair(result->error);
}

int recr1_result_detail(recr1_reward_result *result, const char *name, double value) {
    if (result == NULL || name == NULL) return RECR1_INVALID_ARGUMENT;
    for (size_t i = 0; i < result->n_details; i++) {
        if (strcmp(result->details[i].name, name) == 0) {
            result->details[i].value = value;
            return RECR1_OK;
        }
    }
    if (result->n_details == result->details_capacity_) {
        size_t capacity = result->details_capacity_ ? result->details_capacity_ * 2 : 4;
        recr1_detail *details = realloc(result->details, capacity * sizeof *details);
        if (details == NULL) return RECR1_RESOURCE_EXHAUSTED;
        result->details = details;
        result->details_capacity_ = capacity;
    }
    char *copy = recr1i_strdup(name);
    if (copy == NULL) return RECR1_RESOURCE_EXHAUSTED;
    recr1i_utf8_repair(copy);
    result->details[result->n_details].name = copy;
    result->details[result->n_details].value = value;
    result->n_details++;
    return RECR1_OK;
}

static void free_results(recr1_reward_result *results, size_t n) {
    for (size_t i = 0; results != NULL && i < n; i++) {
        free(results[i].error);
        for (size_t j = 0; j < results[i].n_details; j++) free(results[i].details[j].name);
        free(results[i].details);
    }
    free(results);
}

/* ------------------------------------------------------------------------------------------------
 * One request: the envelope checks, then the reward function
 */

/* What a request's reply will say: its id, its status, and (when OK) the RewardReply bytes. */
typedef struct outcome {
    uint64_t request_id;
    recr1_error status;
    uint8_t *payload;
    size_t payload_length;
} outcome;

static int deadline_passed(int64_t deadline_ns) { return deadline_ns != 0 && recr1i_now_ns() >= deadline_ns; }

static void deadline_exceeded(outcome *out) {
    recr1_error_set(&out->status, RECR1_DEADLINE_EXCEEDED, "timeout_ms", "the request's deadline passed");
}

/* Compares without an early exit, so that the time taken does not tell how much of a token matched
 * (as recr1d's constantTimeEqual). */
static int same_token(const char *given, const char *expected) {
    size_t a = strlen(given), b = strlen(expected);
    size_t n = a > b ? a : b;
    unsigned char difference = a != b;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a ? (unsigned char)given[i] : 0;
        unsigned char y = i < b ? (unsigned char)expected[i] : 0;
        difference |= x ^ y;
    }
    return difference == 0;
}

/* The items as the reward function sees them: views into the decoded request. */
static recr1_reward_item *item_views(const Recr1__V1__RewardRequest *batch, recr1i_scratch *scratch) {
    recr1_reward_item *items = recr1i_scratch_alloc(scratch, batch->n_items, sizeof *items);
    if (items == NULL) return NULL;
    for (size_t i = 0; i < batch->n_items; i++) {
        const Recr1__V1__RewardItem *item = batch->items[i];
        recr1_chat_message *messages = recr1i_scratch_alloc(scratch, item->n_prompt_messages, sizeof *messages);
        if (messages == NULL) return NULL;
        for (size_t j = 0; j < item->n_prompt_messages; j++) {
            messages[j].role = item->prompt_messages[j]->role;
            messages[j].content = item->prompt_messages[j]->content;
        }
        items[i].id = item->id;
        items[i].prompt = item->prompt;
        items[i].prompt_messages = messages;
        items[i].n_prompt_messages = item->n_prompt_messages;
        items[i].completion = item->completion;
        items[i].metadata_json = item->metadata_json[0] != '\0' ? item->metadata_json : "{}";
    }
    return items;
}

/* One RewardResult message from what the function left in a result. */
static int encode_result(recr1_reward_result *r, Recr1__V1__RewardResult *message, recr1i_scratch *scratch) {
    recr1__v1__reward_result__init(message);
    if (r->has_reward && !isfinite(r->reward)) {
        // A NaN in a GRPO group turns every advantage of the group into NaN.
        recr1_result_skip(r, "the reward function returned a non-finite reward (%g)", (double)r->reward);
    }
    if (!r->has_reward && r->error == NULL) recr1_result_skip(r, "the reward function gave no reward for this item");
    if (!r->has_reward && r->error == NULL) return 0; // out of memory for the text
    message->has_reward = r->has_reward != 0;
    message->reward = r->has_reward ? r->reward : 0;
    message->error = r->error ? r->error : "";
    Recr1__V1__RewardResult__DetailsEntry *entries = recr1i_scratch_alloc(scratch, r->n_details, sizeof *entries);
    Recr1__V1__RewardResult__DetailsEntry **pointers = recr1i_scratch_alloc(scratch, r->n_details, sizeof *pointers);
    if (entries == NULL || pointers == NULL) return 0;
    for (size_t i = 0; i < r->n_details; i++) {
        recr1__v1__reward_result__details_entry__init(&entries[i]);
        entries[i].key = r->details[i].name;
        entries[i].value = r->details[i].value;
        pointers[i] = &entries[i];
    }
    message->details = pointers;
    message->n_details = r->n_details;
    return 1;
}

static void encode_results(recr1_reward_result *results, size_t n, outcome *out) {
    recr1i_scratch scratch = {0};
    Recr1__V1__RewardReply reply = RECR1__V1__REWARD_REPLY__INIT;
    Recr1__V1__RewardResult *messages = recr1i_scratch_alloc(&scratch, n, sizeof *messages);
    Recr1__V1__RewardResult **pointers = recr1i_scratch_alloc(&scratch, n, sizeof *pointers);
    int ok = messages != NULL && pointers != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        ok = encode_result(&results[i], &messages[i], &scratch);
        pointers[i] = &messages[i];
    }
    if (ok) {
        reply.results = pointers;
        reply.n_results = n;
        out->payload = recr1i_pack(&reply.base, &out->payload_length);
    }
    if (out->payload == NULL) recr1_error_set(&out->status, RECR1_RESOURCE_EXHAUSTED, "", "the plugin ran out of memory");
    recr1i_scratch_free(&scratch);
}

/* The status of a request the reward function failed. */
static void function_failed(int code, const recr1_error *said, outcome *out) {
    if (code < 1 || code > RECR1_UNAUTHENTICATED) {
        recr1_error_set(&out->status, RECR1_INTERNAL, "", "the reward function returned %d, which is not a status code",
                        code);
    } else if (said->message[0] == '\0') {
        recr1_error_set(&out->status, code, said->field, "the reward function failed with %s", recr1_code_name(code));
    } else {
        out->status = *said;
        out->status.code = code;
    }
}

/* Runs the reward function on a decoded batch whose metadata is JSON. */
static void score_batch(const recr1_reward_server *s, const Recr1__V1__RewardRequest *batch, int64_t deadline_ns,
                        outcome *out) {
    size_t n = batch->n_items;
    recr1i_scratch scratch = {0};
    recr1_reward_item *items = item_views(batch, &scratch);
    recr1_reward_result *results = calloc(n ? n : 1, sizeof *results);
    if (items == NULL || results == NULL) {
        recr1_error_set(&out->status, RECR1_RESOURCE_EXHAUSTED, "", "the plugin ran out of memory");
    } else {
        recr1_error said;
        recr1i_error_clear(&said);
        int code = s->fn(items, n, results, s->user_data, &said);
        if (code != RECR1_OK) {
            function_failed(code, &said, out);
        } else if (deadline_passed(deadline_ns)) {
            deadline_exceeded(out); // the caller has given up: say so rather than send stale rewards
        } else {
            encode_results(results, n, out);
        }
    }
    free_results(results, n);
    recr1i_scratch_free(&scratch);
}

/* Steps 3 to 8 of the rules in recr1.h, on a decoded envelope. */
static void serve_request(const recr1_reward_server *s, const Recr1__V1__Request *request, int64_t received_ns,
                          outcome *out) {
    if (request->method[0] == '\0') {
        recr1_error_set(&out->status, RECR1_INVALID_ARGUMENT, "method", "no method named");
        return;
    }
    if (s->token != NULL && !same_token(request->auth_token, s->token)) {
        recr1_error_set(&out->status, RECR1_UNAUTHENTICATED, "auth_token", "%s",
                        request->auth_token[0] ? "wrong token" : "this server requires a token");
        return;
    }
    if (strcmp(request->method, RECR1_REWARD_METHOD) != 0) {
        char method[160];
        recr1i_printable(method, sizeof method, request->method, 120);
        recr1_error_set(&out->status, RECR1_UNIMPLEMENTED, "", "unknown method '%s' (this plugin serves %s)", method,
                        RECR1_REWARD_METHOD);
        return;
    }
    int64_t deadline_ns = request->timeout_ms ? received_ns + (int64_t)request->timeout_ms * 1000000 : 0;
    Recr1__V1__RewardRequest *batch =
        recr1__v1__reward_request__unpack(NULL, request->payload.len, request->payload.data);
    if (batch == NULL) {
        recr1_error_set(&out->status, RECR1_INVALID_ARGUMENT, "payload", "cannot decode recr1.v1.RewardRequest (%zu bytes)",
                        request->payload.len);
        return;
    }
    for (size_t i = 0; i < batch->n_items && out->status.code == RECR1_OK; i++) {
        const char *metadata = batch->items[i]->metadata_json;
        size_t offset = 0;
        const char *why = NULL;
        if (metadata[0] != '\0' && !recr1i_json_valid(metadata, strlen(metadata), &offset, &why)) {
            char field[48];
            snprintf(field, sizeof field, "items[%zu].metadata_json", i);
            recr1_error_set(&out->status, RECR1_INVALID_ARGUMENT, field, "not JSON (%s at offset %zu)", why, offset);
        }
    }
    if (out->status.code == RECR1_OK) {
        if (deadline_passed(deadline_ns)) {
            deadline_exceeded(out);
        } else {
            score_batch(s, batch, deadline_ns, out);
        }
    }
    recr1__v1__reward_request__free_unpacked(batch, NULL);
}

/* One request frame in, one reply frame out (NULL only when out of memory). */
static uint8_t *answer(const recr1_reward_server *s, const uint8_t *frame, size_t length, size_t *reply_length) {
    int64_t received_ns = recr1i_now_ns();
    outcome out;
    memset(&out, 0, sizeof out);
    if (length > s->max_message_bytes) {
        recr1_error_set(&out.status, RECR1_INVALID_ARGUMENT, "max_message_bytes",
                        "request of %zu bytes exceeds max_message_bytes (%zu)", length, s->max_message_bytes);
    } else {
        Recr1__V1__Request *request = recr1__v1__request__unpack(NULL, length, frame);
        if (request == NULL) {
            recr1_error_set(&out.status, RECR1_INVALID_ARGUMENT, "envelope",
                            "malformed request envelope (%zu bytes that are not a recr1.v1.Request)", length);
        } else {
            out.request_id = request->request_id;
            serve_request(s, request, received_ns, &out);
            recr1__v1__request__free_unpacked(request, NULL);
        }
    }

    Recr1__V1__Status status = RECR1__V1__STATUS__INIT;
    status.code = (Recr1__V1__Code)out.status.code;
    status.message = out.status.message;
    status.field = out.status.field;
    status.retry_after_ms = out.status.retry_after_ms;
    Recr1__V1__Reply reply = RECR1__V1__REPLY__INIT;
    reply.request_id = out.request_id;
    reply.status = &status;
    if (out.status.code == RECR1_OK) {
        reply.payload.data = out.payload;
        reply.payload.len = out.payload_length;
    }
    uint8_t *bytes = recr1i_pack(&reply.base, reply_length);
    free(out.payload);
    return bytes;
}

/* ------------------------------------------------------------------------------------------------
 * Workers
 */

/* Sends the reply on the context the request came from. The request's message is reused: its header
 * holds the route back to the requester. */
static void send_reply(worker *w, nng_msg *message) {
    size_t length = 0;
    uint8_t *reply = answer(w->server, nng_msg_body(message), nng_msg_len(message), &length);
    nng_msg_clear(message);
    if (reply == NULL || nng_msg_append(message, reply, length) != 0) {
        free(reply);
        nng_msg_free(message); // no reply: the requester's own timeout ends its wait
        return;
    }
    free(reply);
    nng_aio_set_msg(w->aio, message);
    nng_ctx_send(w->context, w->aio);
    nng_aio_wait(w->aio);
    if (nng_aio_result(w->aio) != 0) nng_msg_free(message); // a failed send leaves the message with us
}

/* Receive, answer, send, until stopped. */
static void *worker_main(void *arg) {
    worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int stop = w->stopping;
        if (!stop) {
            w->receiving = 1;
            nng_ctx_recv(w->context, w->aio);
        }
        pthread_mutex_unlock(&w->lock);
        if (stop) break;

        nng_aio_wait(w->aio);
        pthread_mutex_lock(&w->lock);
        w->receiving = 0;
        pthread_mutex_unlock(&w->lock);
        int rv = nng_aio_result(w->aio);
        if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) break;
        if (rv != 0) {
            recr1i_sleep_ms(10); // a transient failure; do not spin on it
            continue;
        }
        send_reply(w, nng_aio_get_msg(w->aio));

        pthread_mutex_lock(&w->lock);
        if (w->stopping) w->answered_after_stop = 1;
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* Stops every started worker: idle ones stop receiving, busy ones finish and reply first. */
static int stop_workers(recr1_reward_server *s) {
    int linger = 0;
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        pthread_mutex_lock(&w->lock);
        w->stopping = 1;
        if (w->receiving) nng_aio_cancel(w->aio);
        pthread_mutex_unlock(&w->lock);
    }
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (w->thread_started) pthread_join(w->thread, NULL);
        w->thread_started = 0;
        linger |= w->answered_after_stop;
    }
    return linger;
}

/* Frees the workers' nng resources and closes the socket (which removes an ipc socket file). */
static void close_transport(recr1_reward_server *s) {
    for (int i = 0; s->workers != NULL && i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (w->aio != NULL) nng_aio_free(w->aio);
        if (nng_ctx_id(w->context) > 0) nng_ctx_close(w->context);
        pthread_mutex_destroy(&w->lock);
    }
    free(s->workers);
    s->workers = NULL;
    s->n_workers = 0;
    if (nng_socket_id(s->socket) > 0) nng_close(s->socket);
    nng_socket closed = NNG_SOCKET_INITIALIZER;
    s->socket = closed;
}

/* ------------------------------------------------------------------------------------------------
 * Listening
 */

/* Creates the missing directories of an ipc socket's path, 0700, as recr1d does (an existing
 * directory is left alone). */
static void prepare_ipc_directory(const char *path) {
    char *directory = recr1i_strdup(path);
    if (directory == NULL) return;
    char *slash = strrchr(directory, '/');
    if (slash != NULL && slash != directory) {
        *slash = '\0';
        for (char *p = directory + 1; *p; p++) {
            if (*p != '/') continue;
            *p = '\0';
            mkdir(directory, 0700);
            *p = '/';
        }
        mkdir(directory, 0700);
    }
    free(directory);
}

/* A tcp address with an empty or '*' host means loopback, never every interface (recr1d's rule). */
static char *listen_url(const char *address) {
    const char *port = NULL;
    if (strncmp(address, "tcp://:", 7) == 0) port = address + 7;
    if (strncmp(address, "tcp://*:", 8) == 0) port = address + 8;
    if (port == NULL) return recr1i_strdup(address);
    char *url = malloc(strlen(port) + sizeof "tcp://127.0.0.1:");
    if (url != NULL) sprintf(url, "tcp://127.0.0.1:%s", port);
    return url;
}

static int listen_error(const char *address, int rv, recr1_error *err) {
    if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP || rv == NNG_EINVAL) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "address", "cannot use '%s': %s", address, nng_strerror(rv));
    }
    return recr1_error_set(err, RECR1_FAILED_PRECONDITION, "address", "cannot listen on %s: %s", address,
                           nng_strerror(rv));
}

/* Creates and starts the listener on s->url. */
static int open_listener(recr1_reward_server *s) {
    int is_ipc = strncmp(s->url, "ipc://", 6) == 0;
    if (is_ipc) prepare_ipc_directory(s->url + 6);
    nng_listener listener;
    int rv = nng_listener_create(&listener, s->socket, s->url);
    if (rv != 0) return rv;
    rv = nng_listener_set_size(listener, NNG_OPT_RECVMAXSZ, s->transport_limit);
    if (rv == 0 && is_ipc) rv = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS, 0600);
    if (rv == 0) rv = nng_listener_start(listener, 0);
    if (rv != 0) {
        nng_listener_close(listener);
        return rv;
    }
    s->listener = listener;
    return 0;
}

static void count_arrival(nng_pipe pipe, nng_pipe_ev event, void *arg) {
    (void)pipe;
    (void)event;
    atomic_fetch_add(&((recr1_reward_server *)arg)->arrivals, 1);
}

static int start_listening(recr1_reward_server *s, const char *address, recr1_error *err) {
    // Frames up to twice the limit (at least 16 MiB more) are read and refused with a status; larger
    // ones nng drops unread, so that a huge frame cannot make the plugin allocate it.
    size_t limit = s->max_message_bytes;
    s->transport_limit = limit > SIZE_MAX / 2 ? SIZE_MAX : limit * 2;
    if (s->transport_limit < limit + RECR1_DEFAULT_MAX_MESSAGE_BYTES && limit < SIZE_MAX - RECR1_DEFAULT_MAX_MESSAGE_BYTES) {
        s->transport_limit = limit + RECR1_DEFAULT_MAX_MESSAGE_BYTES;
    }
    if ((s->url = listen_url(address)) == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    int rv = nng_socket_set_size(s->socket, NNG_OPT_RECVMAXSZ, s->transport_limit);
    if (rv == 0) rv = nng_pipe_notify(s->socket, NNG_PIPE_EV_ADD_POST, count_arrival, s);
    if (rv == 0) rv = open_listener(s);
    return rv == 0 ? RECR1_OK : listen_error(address, rv, err);
}

/* ------------------------------------------------------------------------------------------------
 * The listener's watchdog. libnng 1.5.2 stops a listener from handing connections to its socket, for
 * good, once a peer hangs up during the SP handshake (nng issue #1518, fixed in nng 1.6.0): a port probe
 * or a client closed while it reconnects leaves the plugin deaf. Every check_ms the watchdog connects as
 * a client would; when no connection reaches the socket within CHECK_PATIENCE_MS twice in a row, it
 * starts the listener again (which closes the connections stuck on the old one).
 */

#define CHECK_PATIENCE_MS 3000

/* Sleeps up to ms, in short steps, unless the watchdog is told to stop; 0 when told. */
static int watchdog_sleep(recr1_reward_server *s, int ms) {
    for (int slept = 0; slept < ms; slept += 10) {
        if (atomic_load(&s->watchdog_stop)) return 0;
        recr1i_sleep_ms(10);
    }
    return !atomic_load(&s->watchdog_stop);
}

/* Whether a connection (the check's own, or anyone's) reaches the socket within the patience. */
static int listener_reachable(recr1_reward_server *s) {
    int before = atomic_load(&s->arrivals);
    nng_socket probe;
    if (nng_req0_open(&probe) != 0) return 1; // cannot check now: no evidence of the bug
    int reached = nng_dial(probe, s->url, NULL, NNG_FLAG_NONBLOCK) != 0;
    for (int waited = 0; !reached && waited < CHECK_PATIENCE_MS && !atomic_load(&s->watchdog_stop); waited += 10) {
        recr1i_sleep_ms(10);
        reached = atomic_load(&s->arrivals) > before;
    }
    nng_close(probe);
    return reached || atomic_load(&s->arrivals) > before || atomic_load(&s->watchdog_stop);
}

static void *watchdog_main(void *arg) {
    recr1_reward_server *s = arg;
    int misses = 0;
    while (watchdog_sleep(s, s->check_ms)) {
        if (listener_reachable(s)) {
            misses = 0;
            continue;
        }
        if (++misses < 2) continue;
        misses = 0;
        nng_listener_close(s->listener);
        int rv = open_listener(s);
        fprintf(stderr, "recr1 reward server: %s stopped accepting connections (libnng 1.5.2, nng issue #1518); %s%s\n",
                s->url, rv == 0 ? "listening again" : "cannot listen again: ", rv == 0 ? "" : nng_strerror(rv));
    }
    return NULL;
}

static void stop_watchdog(recr1_reward_server *s) {
    atomic_store(&s->watchdog_stop, 1);
    if (s->watchdog_started) pthread_join(s->watchdog, NULL);
    s->watchdog_started = 0;
}

/* ------------------------------------------------------------------------------------------------
 * The server's life
 */

static int open_pipe(int fds[2]) {
    if (pipe(fds) != 0) return -1;
    for (int i = 0; i < 2; i++) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    // A full pipe must not block a signal handler; one byte in it is enough to wake wait().
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return 0;
}

static int create_workers(recr1_reward_server *s, int count, recr1_error *err) {
    s->workers = calloc((size_t)count, sizeof *s->workers);
    if (s->workers == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    for (int i = 0; i < count; i++) {
        worker *w = &s->workers[i];
        w->server = s;
        pthread_mutex_init(&w->lock, NULL);
        s->n_workers++;
        int rv = nng_ctx_open(&w->context, s->socket);
        if (rv == 0) rv = nng_aio_alloc(&w->aio, NULL, NULL);
        if (rv != 0) return recr1_error_set(err, RECR1_INTERNAL, "", "cannot open an nng context: %s", nng_strerror(rv));
    }
    return RECR1_OK;
}

static int start_threads(recr1_reward_server *s, recr1_error *err) {
    for (int i = 0; i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "cannot start worker thread %d", i);
        }
        w->thread_started = 1;
    }
    if (s->check_ms > 0) {
        if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
            return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "cannot start the listener's watchdog thread");
        }
        s->watchdog_started = 1;
    }
    return RECR1_OK;
}

static int check_start_arguments(recr1_reward_server **server, const char *address, recr1_reward_fn fn,
                                 const recr1_reward_options *options, recr1_error *err) {
    if (server == NULL) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "server", "no place for the server (NULL)");
    *server = NULL;
    if (address == NULL || address[0] == '\0') return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "address", "no address given");
    if (fn == NULL) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "fn", "no reward function (NULL)");
    if (options != NULL && options->workers < 0) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "workers", "must be 0 (the default, 1) or more, not %d",
                               options->workers);
    }
    if (options != NULL && options->listener_check_ms < -1) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "listener_check_ms",
                               "must be -1 (never), 0 (the default, 5000) or more, not %d", options->listener_check_ms);
    }
    return RECR1_OK;
}

int recr1_reward_server_start(recr1_reward_server **server, const char *address, recr1_reward_fn fn, void *user_data,
                              const recr1_reward_options *options, recr1_error *err) {
    recr1i_error_clear(err);
    int status = check_start_arguments(server, address, fn, options, err);
    if (status != RECR1_OK) return status;
    recr1_reward_server *s = calloc(1, sizeof *s);
    if (s == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    s->wake[0] = s->wake[1] = -1;
    s->fn = fn;
    s->user_data = user_data;
    s->max_message_bytes = options && options->max_message_bytes ? options->max_message_bytes
                                                                  : RECR1_DEFAULT_MAX_MESSAGE_BYTES;
    int workers = options && options->workers > 0 ? options->workers : 1;
    s->check_ms = !options || options->listener_check_ms == 0 ? 5000 : options->listener_check_ms < 0 ? 0
                                                                                                       : options->listener_check_ms;
    atomic_init(&s->stop_asked, 0);
    atomic_init(&s->arrivals, 0);
    atomic_init(&s->watchdog_stop, 0);

    int rv = 0;
    if (options && options->token && options->token[0] && (s->token = recr1i_strdup(options->token)) == NULL) {
        status = recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    } else if (open_pipe(s->wake) != 0) {
        status = recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "cannot create a pipe: %s", strerror(errno));
    } else if ((rv = nng_rep0_open(&s->socket)) != 0) {
        status = recr1_error_set(err, RECR1_INTERNAL, "", "cannot open an nng REP socket: %s", nng_strerror(rv));
    } else {
        // Contexts first: a request that arrives as soon as the listener starts finds a worker.
        status = create_workers(s, workers, err);
        if (status == RECR1_OK) status = start_listening(s, address, err);
        if (status == RECR1_OK) status = start_threads(s, err);
    }
    if (status != RECR1_OK) {
        recr1_reward_server_stop(s);
        recr1_reward_server_free(s);
        return status;
    }
    *server = s;
    return RECR1_OK;
}

void recr1_reward_server_stop(recr1_reward_server *server) {
    if (server == NULL) return;
    int saved_errno = errno; // a signal handler must leave errno as it found it
    atomic_store(&server->stop_asked, 1);
    if (server->wake[1] >= 0) {
        ssize_t written = write(server->wake[1], "x", 1);
        (void)written; // a full pipe already holds a wake-up
    }
    errno = saved_errno;
}

void recr1_reward_server_wait(recr1_reward_server *server) {
    if (server == NULL || server->waited) return;
    server->waited = 1;
    while (!atomic_load(&server->stop_asked)) {
        char byte;
        ssize_t n = read(server->wake[0], &byte, 1);
        if (n < 0 && errno != EINTR) break; // a broken pipe cannot wake us later: stop now
    }
    stop_watchdog(server);
    if (stop_workers(server)) recr1i_sleep_ms(LINGER_MS);
    close_transport(server);
}

void recr1_reward_server_free(recr1_reward_server *server) {
    if (server == NULL) return;
    if (!server->waited) {
        recr1_reward_server_stop(server);
        recr1_reward_server_wait(server);
    }
    for (int i = 0; i < 2; i++) {
        if (server->wake[i] >= 0) close(server->wake[i]);
    }
    free(server->token);
    free(server->url);
    free(server);
}

/* ------------------------------------------------------------------------------------------------
 * The one-call plugin, stopped by SIGTERM or SIGINT
 */

static recr1_reward_server *_Atomic signalled_server;

static void on_stop_signal(int signal_number) {
    (void)signal_number;
    recr1_reward_server_stop(atomic_load(&signalled_server));
}

int recr1_serve_reward(const char *address, recr1_reward_fn fn, void *user_data, const recr1_reward_options *options,
                       recr1_error *err) {
    recr1_reward_server *server = NULL;
    int status = recr1_reward_server_start(&server, address, fn, user_data, options, err);
    if (status != RECR1_OK) return status;

    struct sigaction action, old_term, old_int;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    atomic_store(&signalled_server, server);
    sigaction(SIGTERM, &action, &old_term);
    sigaction(SIGINT, &action, &old_int);
    // The one-call plugin is a program: it says where it listens, as recr1's Python plugins do.
    fprintf(stderr, "recr1 reward plugin: listening on %s\n", address);
    fflush(stderr);

    recr1_reward_server_wait(server);

    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    atomic_store(&signalled_server, NULL);
    recr1_reward_server_free(server);
    return RECR1_OK;
}
