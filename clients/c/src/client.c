/* The client's transport: one REQ socket dialled to one address; every call sends one Request frame
 * on its own nng context and waits for one Reply frame (proto/recr1/v1/envelope.proto). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal.h"
#include "recr1/v1/envelope.pb-c.h"

/* Beyond the call's deadline, the client waits this much longer for the reply, so that the server's
 * own DEADLINE_EXCEEDED (which says where the time went) can arrive. As the Python client does. */
#define REPLY_SLACK_MS 1000

/* How long after nng's own timeout a wait gives up by itself (see wait_for). */
#define BACKSTOP_MS 2000

struct recr1_client {
    nng_socket socket;
    char *address;
    char *token;
    uint32_t timeout_ms;
    size_t max_message_bytes;
    pthread_mutex_t lock; /* guards next_request_id */
    uint64_t next_request_id;
};

/* ------------------------------------------------------------------------------------------------
 * The connection
 */

static int open_error(recr1_client *client, int rv, recr1_error *err) {
    if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP || rv == NNG_EINVAL) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "address", "cannot use '%s': %s", client->address,
                               nng_strerror(rv));
    }
    if (rv == NNG_ENOMEM) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    return recr1_error_set(err, RECR1_UNAVAILABLE, "", "cannot connect to %s: %s (is the server running?)",
                           client->address, nng_strerror(rv));
}

/* Opens the REQ socket with the options every recr1 client uses, and dials. */
static int connect_socket(recr1_client *client, recr1_error *err) {
    int rv = nng_req0_open(&client->socket);
    if (rv != 0) return recr1_error_set(err, RECR1_INTERNAL, "", "cannot open an nng REQ socket: %s", nng_strerror(rv));
    // No automatic resend: an Update sent twice would be applied twice.
    if ((rv = nng_socket_set_ms(client->socket, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
        // nng's default cap on received messages is 1 MiB; 0 lifts it (a Generate reply can be larger).
        // The client's own limit is checked on the reply instead (read_reply): when nng enforces it, it
        // drops the connection mid-reply, and after a few to a few dozen of those a libnng 1.5.2 server
        // stops serving new connections (recr1d and this SDK's reward server alike).
        (rv = nng_socket_set_size(client->socket, NNG_OPT_RECVMAXSZ, 0)) != 0) {
        return recr1_error_set(err, RECR1_INTERNAL, "", "cannot configure the nng socket: %s", nng_strerror(rv));
    }
    // Blocking: fails now, rather than at the first call, when nothing listens.
    rv = nng_dial(client->socket, client->address, NULL, 0);
    return rv == 0 ? RECR1_OK : open_error(client, rv, err);
}

int recr1_client_open(recr1_client **out, const char *address, const recr1_client_options *options,
                      recr1_error *err) {
    recr1i_error_clear(err);
    if (out == NULL) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "client", "no place for the client (NULL)");
    *out = NULL;
    if (address == NULL || address[0] == '\0') {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "address", "no address given");
    }
    recr1_client *client = calloc(1, sizeof *client);
    if (client == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    pthread_mutex_init(&client->lock, NULL);
    client->next_request_id = 1;
    client->timeout_ms = options && options->timeout_ms ? options->timeout_ms : RECR1_DEFAULT_TIMEOUT_MS;
    client->max_message_bytes = options ? options->max_message_bytes : 0;
    client->address = recr1i_strdup(address);
    client->token = recr1i_strdup(options && options->token ? options->token : "");
    if (client->address == NULL || client->token == NULL) {
        recr1_client_close(client);
        return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    }
    int status = connect_socket(client, err);
    if (status != RECR1_OK) {
        recr1_client_close(client);
        return status;
    }
    *out = client;
    return RECR1_OK;
}

void recr1_client_close(recr1_client *client) {
    if (client == NULL) return;
    if (nng_socket_id(client->socket) > 0) nng_close(client->socket);
    pthread_mutex_destroy(&client->lock);
    free(client->address);
    free(client->token);
    free(client);
}

/* ------------------------------------------------------------------------------------------------
 * Errors of an exchange
 */

/* Says why an nng operation of a call failed, as a recr1 status. */
static int exchange_error(const recr1_client *client, int rv, int sending, uint32_t timeout_ms, recr1_error *err) {
    // With resend off, nng fails a request whose connection closed with ECONNRESET, at once, instead
    // of keeping it for the next connection: a vanished server ends even a call without a deadline.
    if (rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT || rv == NNG_ECONNABORTED) {
        return recr1_error_set(err, RECR1_UNAVAILABLE, "", "the connection to %s closed before the reply came",
                               client->address);
    }
    // A REQ context's send waits for a connection to send on.
    if (rv == NNG_ETIMEDOUT && sending) {
        return recr1_error_set(err, RECR1_UNAVAILABLE, "", "could not send to %s within %u ms: not connected",
                               client->address, (unsigned)timeout_ms);
    }
    if (rv == NNG_ETIMEDOUT) {
        return recr1_error_set(err, RECR1_DEADLINE_EXCEEDED, "", "no reply from %s within %u ms", client->address,
                               (unsigned)timeout_ms);
    }
    if (rv == NNG_ECLOSED) return recr1_error_set(err, RECR1_CANCELLED, "", "the client was closed");
    if (rv == NNG_ENOMEM) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    if (rv == NNG_EMSGSIZE) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "max_message_bytes", "the request is larger than nng allows");
    }
    return recr1_error_set(err, RECR1_INTERNAL, "", "nng %s failed: %s", sending ? "send" : "receive",
                           nng_strerror(rv));
}

/* A timeout as nng wants it: milliseconds in an int32, or infinite. */
static nng_duration duration(uint32_t timeout_ms, int64_t extra_ms) {
    if (timeout_ms == RECR1_WAIT_FOREVER) return NNG_DURATION_INFINITE;
    int64_t total = (int64_t)timeout_ms + extra_ms;
    return total > INT32_MAX ? NNG_DURATION_INFINITE : (nng_duration)total;
}

/* ------------------------------------------------------------------------------------------------
 * Waiting for an nng operation, with a bound of our own
 *
 * nng's aio timeout should end every operation in time, but libnng 1.5.x can lose aio expirations
 * (nng issue #1486), and calls were seen here, on Debian 12, stuck for minutes past their timeout. So a call also
 * waits on its own monotonic clock, and BACKSTOP_MS after nng's timeout it cancels the operation and
 * counts it as timed out.
 */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    int done;
} waiter;

/* The aio's completion callback (on an nng thread). */
static void on_finished(void *arg) {
    waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->finished);
    pthread_mutex_unlock(&w->lock);
}

static int waiter_init(waiter *w) {
    pthread_condattr_t attributes;
    if (pthread_condattr_init(&attributes) != 0) return NNG_ENOMEM;
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    int failed = pthread_cond_init(&w->finished, &attributes) != 0;
    pthread_condattr_destroy(&attributes);
    if (failed) return NNG_ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    w->done = 0;
    return 0;
}

static void waiter_destroy(waiter *w) {
    pthread_cond_destroy(&w->finished);
    pthread_mutex_destroy(&w->lock);
}

/* Waits for the operation just started on aio and returns its result. */
static int wait_for(nng_aio *aio, waiter *w, nng_duration timeout) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t bound_ms = (int64_t)timeout + BACKSTOP_MS;
    until.tv_sec += (time_t)(bound_ms / 1000);
    until.tv_nsec += (long)(bound_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    int timed_out = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        if (timeout == NNG_DURATION_INFINITE || timed_out) {
            pthread_cond_wait(&w->finished, &w->lock);
        } else if (pthread_cond_timedwait(&w->finished, &w->lock, &until) == ETIMEDOUT && !w->done) {
            timed_out = 1;
            pthread_mutex_unlock(&w->lock);
            nng_aio_cancel(aio); // completes the operation (NNG_ECANCELED), which calls on_finished
            pthread_mutex_lock(&w->lock);
        }
    }
    w->done = 0;
    pthread_mutex_unlock(&w->lock);
    int rv = nng_aio_result(aio);
    return timed_out && rv == NNG_ECANCELED ? NNG_ETIMEDOUT : rv;
}

/* ------------------------------------------------------------------------------------------------
 * One exchange of frames
 */

/* Sends frame on its own context and waits for the reply (a new nng message, or NULL on failure). */
static int exchange(recr1_client *client, const uint8_t *frame, size_t length, uint32_t timeout_ms, nng_msg **reply,
                    recr1_error *err) {
    *reply = NULL;
    waiter w;
    nng_ctx context = NNG_CTX_INITIALIZER;
    nng_aio *aio = NULL;
    nng_msg *message = NULL;
    int rv = waiter_init(&w);
    if (rv != 0) return exchange_error(client, rv, 1, timeout_ms, err);
    rv = nng_ctx_open(&context, client->socket);
    if (rv == 0) rv = nng_aio_alloc(&aio, on_finished, &w);
    if (rv == 0) rv = nng_msg_alloc(&message, 0);
    if (rv == 0) rv = nng_msg_append(message, frame, length);
    int sending = 1;
    if (rv == 0) {
        nng_aio_set_msg(aio, message);
        message = NULL; // nng's once sent; back with us (below) if the send fails
        nng_duration timeout = duration(timeout_ms, 0);
        nng_aio_set_timeout(aio, timeout);
        nng_ctx_send(context, aio);
        rv = wait_for(aio, &w, timeout);
        if (rv != 0) message = nng_aio_get_msg(aio);
    }
    if (rv == 0) {
        sending = 0;
        nng_duration timeout = duration(timeout_ms, REPLY_SLACK_MS);
        nng_aio_set_timeout(aio, timeout);
        nng_ctx_recv(context, aio);
        rv = wait_for(aio, &w, timeout);
        if (rv == 0) *reply = nng_aio_get_msg(aio);
    }
    if (message != NULL) nng_msg_free(message);
    if (aio != NULL) nng_aio_free(aio); // waits for on_finished to return: w may go after it
    if (nng_ctx_id(context) > 0) nng_ctx_close(context);
    waiter_destroy(&w);
    return rv == 0 ? RECR1_OK : exchange_error(client, rv, sending, timeout_ms, err);
}

/* ------------------------------------------------------------------------------------------------
 * The envelope
 */

static uint64_t new_request_id(recr1_client *client) {
    pthread_mutex_lock(&client->lock);
    uint64_t id = client->next_request_id++;
    pthread_mutex_unlock(&client->lock);
    return id;
}

/* Decodes a reply frame and checks that it answers this request. */
static int read_reply(const recr1_client *client, const nng_msg *message, uint64_t request_id,
                      Recr1__V1__Reply **out, recr1_error *err) {
    size_t length = nng_msg_len(message);
    if (client->max_message_bytes && length > client->max_message_bytes) {
        return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "max_message_bytes",
                               "reply of %zu bytes exceeds max_message_bytes (%zu)", length, client->max_message_bytes);
    }
    Recr1__V1__Reply *reply = recr1__v1__reply__unpack(NULL, length, nng_msg_body((nng_msg *)message));
    if (reply == NULL) {
        return recr1_error_set(err, RECR1_DATA_LOSS, "", "malformed reply from %s: %zu bytes that are not a recr1.v1.Reply",
                               client->address, length);
    }
    // recr1d answers 0 when it could not read the request's id (an oversized or malformed frame).
    if (reply->request_id != 0 && reply->request_id != request_id) {
        uint64_t other = reply->request_id;
        recr1__v1__reply__free_unpacked(reply, NULL);
        return recr1_error_set(err, RECR1_DATA_LOSS, "", "the reply from %s answers request %llu, not %llu",
                               client->address, (unsigned long long)other, (unsigned long long)request_id);
    }
    const Recr1__V1__Status *status = reply->status;
    if (status != NULL && status->code != RECR1__V1__CODE__OK) {
        int code = (int)status->code;
        recr1_error_set(err, code, status->field, "%s", status->message);
        if (err) {
            err->local = 0;
            err->retry_after_ms = status->retry_after_ms;
        }
        recr1__v1__reply__free_unpacked(reply, NULL);
        return code == RECR1_OK ? RECR1_UNKNOWN : code;
    }
    *out = reply;
    return RECR1_OK;
}

int recr1i_client_roundtrip(recr1_client *client, const char *method, const void *payload, size_t payload_len,
                            uint32_t timeout_ms, Recr1__V1__Reply **reply, recr1_error *err) {
    recr1i_error_clear(err);
    *reply = NULL;
    if (client == NULL) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "client", "no client (NULL)");
    if (method == NULL || method[0] == '\0') return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "method", "no method named");
    if (payload == NULL && payload_len > 0) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "payload", "%zu bytes at NULL", payload_len);
    }
    if (timeout_ms == 0) timeout_ms = client->timeout_ms;

    Recr1__V1__Request request = RECR1__V1__REQUEST__INIT;
    request.method = (char *)method; // protobuf-c's fields are not const; packing only reads them
    request.request_id = new_request_id(client);
    request.timeout_ms = timeout_ms == RECR1_WAIT_FOREVER ? 0 : timeout_ms;
    request.auth_token = client->token;
    request.payload.data = (uint8_t *)payload;
    request.payload.len = payload_len;
    size_t length = 0;
    uint8_t *frame = recr1i_pack(&request.base, &length);
    if (frame == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    if (client->max_message_bytes && length > client->max_message_bytes) {
        free(frame);
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "max_message_bytes",
                               "request of %zu bytes exceeds max_message_bytes (%zu)", length, client->max_message_bytes);
    }

    nng_msg *message = NULL;
    int status = exchange(client, frame, length, timeout_ms, &message, err);
    free(frame);
    if (status == RECR1_OK) {
        status = read_reply(client, message, request.request_id, reply, err);
        nng_msg_free(message);
    }
    if (err) err->request_id = request.request_id;
    return status;
}

int recr1_client_call(recr1_client *client, const char *method, const void *payload, size_t payload_len,
                      uint32_t timeout_ms, void **reply, size_t *reply_len, recr1_error *err) {
    if (reply == NULL || reply_len == NULL) {
        recr1i_error_clear(err);
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "reply", "no place for the reply (NULL)");
    }
    *reply = NULL;
    *reply_len = 0;
    Recr1__V1__Reply *envelope = NULL;
    int status = recr1i_client_roundtrip(client, method, payload, payload_len, timeout_ms, &envelope, err);
    if (status != RECR1_OK) return status;
    if (envelope->payload.len > 0) {
        *reply = malloc(envelope->payload.len);
        if (*reply == NULL) {
            recr1__v1__reply__free_unpacked(envelope, NULL);
            return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
        }
        memcpy(*reply, envelope->payload.data, envelope->payload.len);
        *reply_len = envelope->payload.len;
    }
    recr1__v1__reply__free_unpacked(envelope, NULL);
    return RECR1_OK;
}
