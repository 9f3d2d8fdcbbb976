/* The client against peers that misbehave: garbage, truncated and mismatched replies, silence, a
 * vanished peer, oversized replies; and bad arguments. Every one must come back as an error code
 * with a message, never as a crash or a hang. The peers are real nng REP sockets on a thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "harness.h"
#include "recr1/v1/envelope.pb-c.h"
#include "recr1/v1/policy.pb-c.h"

/* ------------------------------------------------------------------------------------------------
 * Peers
 */

typedef enum behaviour {
    GARBAGE,        /* replies with bytes that are not a Reply */
    TRUNCATED,      /* replies with the first half of a good Reply */
    WRONG_PAYLOAD,  /* an OK Reply whose payload is not the expected message */
    WRONG_ID,       /* a Reply for another request */
    STATUS,         /* a failure status with every field set */
    SILENT,         /* never replies */
    HANG_UP,        /* closes its socket on receiving the request */
    HUGE,           /* an OK Reply of 100 kB */
    WRONG_COUNT,    /* a TokenizeReply with one list, whatever was asked */
} behaviour;

typedef struct peer {
    char address[160];
    behaviour behaviour;
    nng_socket socket;
    pthread_t thread;
    atomic_int received;
    atomic_int closed;
    int hang_up_after_ms;
} peer;

static uint8_t *pack_reply(uint64_t id, int code, const uint8_t *payload, size_t payload_length, size_t *length) {
    Recr1__V1__Status status = RECR1__V1__STATUS__INIT;
    status.code = (Recr1__V1__Code)code;
    if (code != RECR1_OK) {
        status.message = "overloaded: try later";
        status.field = "workers";
        status.retry_after_ms = 250;
    }
    Recr1__V1__Reply reply = RECR1__V1__REPLY__INIT;
    reply.request_id = id;
    reply.status = &status;
    reply.payload.data = (uint8_t *)payload;
    reply.payload.len = payload_length;
    *length = recr1__v1__reply__get_packed_size(&reply);
    uint8_t *bytes = malloc(*length + 1);
    recr1__v1__reply__pack(&reply, bytes);
    return bytes;
}

/* The reply bytes for a request, by the peer's behaviour; NULL: no reply. */
static uint8_t *reply_for(const peer *p, const Recr1__V1__Request *request, size_t *length) {
    uint64_t id = request ? request->request_id : 0;
    switch (p->behaviour) {
    case GARBAGE: {
        uint8_t *bytes = malloc(4);
        memcpy(bytes, "\xff\xff\xff\xff", 4);
        *length = 4;
        return bytes;
    }
    case TRUNCATED: {
        Recr1__V1__InfoReply info = RECR1__V1__INFO_REPLY__INIT;
        info.server_version = "0.1.0-with-a-long-version-string-to-cut-in-the-middle";
        uint8_t payload[256];
        size_t payload_length = recr1__v1__info_reply__pack(&info, payload);
        uint8_t *bytes = pack_reply(id, RECR1_OK, payload, payload_length, length);
        *length /= 2;
        return bytes;
    }
    case WRONG_PAYLOAD: return pack_reply(id, RECR1_OK, (const uint8_t *)"\x0a\xff\xff", 3, length);
    case WRONG_ID: return pack_reply(id + 1000, RECR1_OK, NULL, 0, length);
    case STATUS: return pack_reply(id, RECR1_RESOURCE_EXHAUSTED, NULL, 0, length);
    case HUGE: {
        uint8_t *payload = calloc(1, 100000);
        uint8_t *bytes = pack_reply(id, RECR1_OK, payload, 100000, length);
        free(payload);
        return bytes;
    }
    case WRONG_COUNT: {
        Recr1__V1__TokenIds ids = RECR1__V1__TOKEN_IDS__INIT;
        uint32_t one[1] = {42};
        ids.ids = one, ids.n_ids = 1;
        Recr1__V1__TokenIds *lists[1] = {&ids};
        Recr1__V1__TokenizeReply tokens = RECR1__V1__TOKENIZE_REPLY__INIT;
        tokens.tokens = lists, tokens.n_tokens = 1;
        uint8_t payload[64];
        size_t payload_length = recr1__v1__tokenize_reply__pack(&tokens, payload);
        return pack_reply(id, RECR1_OK, payload, payload_length, length);
    }
    case SILENT:
    case HANG_UP: return NULL;
    }
    return NULL;
}

static void *peer_main(void *arg) {
    peer *p = arg;
    for (;;) {
        nng_msg *message = NULL;
        if (nng_recvmsg(p->socket, &message, 0) != 0) break; // closed
        atomic_fetch_add(&p->received, 1);
        Recr1__V1__Request *request = recr1__v1__request__unpack(NULL, nng_msg_len(message), nng_msg_body(message));
        size_t length = 0;
        uint8_t *reply = reply_for(p, request, &length);
        recr1__v1__request__free_unpacked(request, NULL);
        if (p->behaviour == HANG_UP) {
            harness_sleep_ms(p->hang_up_after_ms);
            nng_msg_free(message);
            atomic_store(&p->closed, 1);
            nng_close(p->socket);
            break;
        }
        if (reply == NULL) {
            nng_msg_free(message); // silent: drop the request, keep listening
            continue;
        }
        nng_msg_clear(message);
        nng_msg_append(message, reply, length);
        free(reply);
        if (nng_sendmsg(p->socket, message, 0) != 0) nng_msg_free(message);
    }
    return NULL;
}

static peer *peer_start(behaviour b, const char *name) {
    peer *p = calloc(1, sizeof *p);
    p->behaviour = b;
    harness_ipc(p->address, sizeof p->address, name);
    int rv = nng_rep0_open(&p->socket);
    if (rv == 0) rv = nng_listen(p->socket, p->address, NULL, 0);
    CHECK(rv == 0, "peer listens on %s: %s", p->address, nng_strerror(rv));
    pthread_create(&p->thread, NULL, peer_main, p);
    return p;
}

static void peer_stop(peer *p) {
    if (!atomic_load(&p->closed)) nng_close(p->socket);
    pthread_join(p->thread, NULL);
    free(p);
}

static recr1_client *connect_to(const peer *p, uint32_t timeout_ms, size_t max_message_bytes) {
    recr1_client *client = NULL;
    recr1_client_options options = {"token", timeout_ms, max_message_bytes};
    recr1_error err;
    CHECK(recr1_client_open(&client, p->address, &options, &err) == RECR1_OK, "connects: %s", err.message);
    return client;
}

/* ------------------------------------------------------------------------------------------------
 * Bad replies
 */

static void test_bad_replies_are_data_loss(void) {
    struct {
        behaviour b;
        const char *name;
        const char *field;
        const char *words;
    } cases[] = {
        {GARBAGE, "garbage", "", "not a recr1.v1.Reply"},
        {TRUNCATED, "truncated", "", "not a recr1.v1.Reply"},
        {WRONG_PAYLOAD, "payload", "payload", "is not a recr1.v1.InfoReply"},
        {WRONG_ID, "wrong-id", "", "answers request"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        peer *p = peer_start(cases[i].b, cases[i].name);
        recr1_client *client = connect_to(p, 5000, 0);
        recr1_info_result *info = (recr1_info_result *)&info;
        recr1_error err;
        int status = recr1_info(client, &info, &err);
        CHECK_ERROR(status, err, RECR1_DATA_LOSS, 1, cases[i].field);
        CHECK(strstr(err.message, cases[i].words) != NULL, "%s: '%s'", cases[i].name, err.message);
        CHECK(info == NULL, "%s: no result", cases[i].name);
        CHECK(err.request_id != 0, "%s: the error names the request", cases[i].name);
        // A NULL error pointer is fine too.
        CHECK(recr1_info(client, &info, NULL) == RECR1_DATA_LOSS, "%s: without an error struct", cases[i].name);
        recr1_client_close(client);
        peer_stop(p);
    }
}

static void test_a_status_is_copied_whole(void) {
    peer *p = peer_start(STATUS, "status");
    recr1_client *client = connect_to(p, 5000, 0);
    recr1_health_result *health = NULL;
    recr1_error err;
    int status = recr1_health(client, &health, &err);
    CHECK_ERROR(status, err, RECR1_RESOURCE_EXHAUSTED, 0, "workers");
    CHECK(err.retry_after_ms == 250, "retry_after_ms %u", err.retry_after_ms);
    CHECK(strcmp(err.message, "workers: overloaded: try later") == 0, "'%s'", err.message);
    recr1_client_close(client);
    peer_stop(p);
}

static void test_reply_shape_must_fit_the_request(void) {
    peer *p = peer_start(WRONG_COUNT, "count");
    recr1_client *client = connect_to(p, 5000, 0);
    const char *texts[] = {"a", "b"};
    recr1_tokenize_result *tokens = NULL;
    recr1_error err;
    int status = recr1_tokenize(client, texts, 2, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_DATA_LOSS, 1, "");
    CHECK(strstr(err.message, "1 token lists for 2") != NULL, "'%s'", err.message);
    CHECK(tokens == NULL, "no result");
    // One text, one list: fine.
    status = recr1_tokenize(client, texts, 1, 0, &tokens, &err);
    CHECK(status == RECR1_OK && tokens && tokens->n_tokens == 1 && tokens->tokens[0].n_ids == 1 &&
              tokens->tokens[0].ids[0] == 42,
          "one list of [42]");
    recr1_tokenize_result_free(tokens);
    recr1_client_close(client);
    peer_stop(p);
}

/* ------------------------------------------------------------------------------------------------
 * Silence, vanishing, size
 */

static void test_silence_is_a_deadline(void) {
    peer *p = peer_start(SILENT, "silent");
    recr1_client *client = connect_to(p, 200, 0);
    recr1_info_result *info = NULL;
    recr1_error err;
    double start = harness_seconds();
    int status = recr1_info(client, &info, &err);
    double took = harness_seconds() - start;
    CHECK_ERROR(status, err, RECR1_DEADLINE_EXCEEDED, 1, "");
    // 200 ms, plus the second left for the server's own DEADLINE_EXCEEDED.
    CHECK(took >= 1.1 && took < harness_slack(3), "gave up after %.2f s", took);
    CHECK(strstr(err.message, p->address) != NULL, "names the address: %s", err.message);
    recr1_client_close(client);
    peer_stop(p);
}

/* A server that goes away ends a call at once, even one that would wait for ever. */
static void test_a_vanished_peer_ends_the_wait(void) {
    peer *p = peer_start(HANG_UP, "vanish");
    p->hang_up_after_ms = 300;
    recr1_client *client = connect_to(p, RECR1_WAIT_FOREVER, 0);
    recr1_info_result *info = NULL;
    recr1_error err;
    double start = harness_seconds();
    int status = recr1_info(client, &info, &err);
    double took = harness_seconds() - start;
    CHECK_ERROR(status, err, RECR1_UNAVAILABLE, 1, "");
    CHECK(strstr(err.message, "closed before the reply") != NULL, "'%s'", err.message);
    CHECK(took >= 0.25 && took < harness_slack(3), "ended %.2f s after the call", took);

    // Nobody listens any more: the next call cannot be sent.
    void *reply = NULL;
    size_t length = 0;
    status = recr1_client_call(client, "recr1.v1.Policy/Info", NULL, 0, 300, &reply, &length, &err);
    CHECK_ERROR(status, err, RECR1_UNAVAILABLE, 1, "");
    CHECK(strstr(err.message, "not connected") != NULL, "'%s'", err.message);
    recr1_client_close(client);
    peer_stop(p);
}

static void test_oversized_replies_and_requests(void) {
    peer *p = peer_start(HUGE, "huge");
    recr1_client *client = connect_to(p, 5000, 4096);
    recr1_info_result *info = NULL;
    recr1_error err;
    int status = recr1_info(client, &info, &err);
    CHECK_ERROR(status, err, RECR1_RESOURCE_EXHAUSTED, 1, "max_message_bytes");
    CHECK(strstr(err.message, "reply of 100") != NULL && strstr(err.message, "exceeds max_message_bytes (4096)") != NULL,
          "'%s'", err.message);
    CHECK(info == NULL, "no result");
    // The connection stays up: the next call is answered (and refused again).
    status = recr1_info(client, &info, &err);
    CHECK_ERROR(status, err, RECR1_RESOURCE_EXHAUSTED, 1, "max_message_bytes");
    CHECK(atomic_load(&p->received) == 2, "both requests reached the peer");

    // A request over the client's own limit is refused before it is sent.
    int received = atomic_load(&p->received);
    char *text = malloc(5000);
    memset(text, 'x', 4999);
    text[4999] = '\0';
    const char *texts[] = {text};
    recr1_tokenize_result *tokens = NULL;
    status = recr1_tokenize(client, texts, 1, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "max_message_bytes");
    CHECK(strstr(err.message, "exceeds max_message_bytes (4096)") != NULL, "'%s'", err.message);
    CHECK(atomic_load(&p->received) == received, "nothing was sent");
    free(text);
    recr1_client_close(client);

    // Without a limit, the same reply is read.
    client = connect_to(p, 5000, 0);
    void *reply = NULL;
    size_t length = 0;
    status = recr1_client_call(client, "recr1.v1.Policy/Info", NULL, 0, 0, &reply, &length, &err);
    CHECK(status == RECR1_OK && length == 100000, "100 kB read (%zu): %s", length, err.message);
    recr1_free(reply);
    recr1_client_close(client);
    peer_stop(p);
}

/* ------------------------------------------------------------------------------------------------
 * Bad arguments and bad addresses
 */

static void test_connecting_to_nothing(void) {
    char address[160];
    harness_ipc(address, sizeof address, "nobody-here");
    recr1_client *client = (recr1_client *)&client;
    recr1_error err;
    int status = recr1_client_open(&client, address, NULL, &err);
    CHECK_ERROR(status, err, RECR1_UNAVAILABLE, 1, "");
    CHECK(strstr(err.message, address) && strstr(err.message, "is the server running"), "'%s'", err.message);
    CHECK(client == NULL, "no client");
    char tcp[64];
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", harness_free_port());
    status = recr1_client_open(&client, tcp, NULL, &err);
    CHECK_ERROR(status, err, RECR1_UNAVAILABLE, 1, "");
    status = recr1_client_open(&client, "nonsense", NULL, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "address");
    status = recr1_client_open(&client, NULL, NULL, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "address");
    status = recr1_client_open(NULL, address, NULL, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "client");
}

static void test_bad_arguments_are_refused_before_sending(void) {
    peer *p = peer_start(STATUS, "arguments");
    recr1_client *client = connect_to(p, 5000, 0);
    recr1_error err;
    int status = recr1_info(client, NULL, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "result");
    recr1_info_result *info = NULL;
    status = recr1_info(NULL, &info, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "client");

    recr1_generate_result *generated = NULL;
    uint32_t ids[] = {1, 2};
    recr1_prompt prompts[2] = {{"fine", NULL, 0, NULL, 0}, {"two forms", NULL, 0, ids, 2}};
    status = recr1_generate(client, prompts, 2, NULL, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "prompts[1]");
    recr1_prompt none = {NULL, NULL, 0, NULL, 0};
    status = recr1_generate(client, &none, 1, NULL, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "prompts[0]");
    recr1_chat_message half[] = {{"user", NULL}};
    recr1_prompt chat = {NULL, half, 1, NULL, 0};
    status = recr1_generate(client, &chat, 1, NULL, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "prompts[0]");
    status = recr1_generate(client, NULL, 3, NULL, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "prompts");
    const char *stops[] = {"a", NULL};
    recr1_generate_params params = {0};
    params.stop_strings = stops, params.n_stop_strings = 2;
    status = recr1_generate(client, prompts, 1, &params, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "sampling.stop_strings");

    recr1_score_item items[1] = {{{"prompt", NULL, 0, NULL, 0}, NULL, NULL, 0}};
    recr1_score_result *scores = NULL;
    status = recr1_score(client, items, 1, RECR1_SCORE_WITH_POLICY, 0, &scores, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "items[0].completion");
    items[0].completion_text = "x", items[0].completion_token_ids = ids;
    status = recr1_score(client, items, 1, RECR1_SCORE_WITH_POLICY, 0, &scores, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "items[0].completion");
    items[0].completion_token_ids = NULL, items[0].prompt.text = NULL;
    status = recr1_score(client, items, 1, RECR1_SCORE_WITH_POLICY, 0, &scores, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "items[0].prompt");

    const char *texts[] = {"a", NULL};
    recr1_tokenize_result *tokens = NULL;
    status = recr1_tokenize(client, texts, 2, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "texts");
    void *reply = NULL;
    size_t length = 0;
    status = recr1_client_call(client, "", NULL, 0, 0, &reply, &length, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "method");
    status = recr1_client_call(client, "x", NULL, 5, 0, &reply, &length, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "payload");
    status = recr1_client_call(client, "x", NULL, 0, 0, NULL, &length, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "reply");
    CHECK(atomic_load(&p->received) == 0, "no bad request was sent (%d)", atomic_load(&p->received));

    // Freeing NULL results is allowed.
    recr1_info_result_free(NULL);
    recr1_health_result_free(NULL);
    recr1_tokenize_result_free(NULL);
    recr1_generate_result_free(NULL);
    recr1_score_result_free(NULL);
    recr1_client_close(NULL);
    recr1_free(NULL);
    recr1_client_close(client);
    peer_stop(p);
}

static void test_codes_have_names(void) {
    CHECK(strcmp(recr1_code_name(RECR1_OK), "OK") == 0, "OK");
    CHECK(strcmp(recr1_code_name(RECR1_INVALID_ARGUMENT), "INVALID_ARGUMENT") == 0, "3");
    CHECK(strcmp(recr1_code_name(RECR1_UNAUTHENTICATED), "UNAUTHENTICATED") == 0, "16");
    CHECK(strcmp(recr1_code_name(17), "UNKNOWN_CODE") == 0 && strcmp(recr1_code_name(-1), "UNKNOWN_CODE") == 0, "?");
    CHECK(strcmp(recr1_version(), RECR1_VERSION) == 0, "header and library agree");
    recr1_error err;
    char long_text[2000];
    memset(long_text, 'a', sizeof long_text - 2);
    long_text[sizeof long_text - 2] = '\xc3'; // a UTF-8 sequence cut at the end
    long_text[sizeof long_text - 1] = '\0';
    CHECK(recr1_error_set(&err, RECR1_ABORTED, "f", "%s", long_text) == RECR1_ABORTED, "returns the code");
    CHECK(strlen(err.message) == sizeof err.message - 1 && strncmp(err.message, "f: aaa", 6) == 0,
          "long messages are cut, after the field");
    CHECK(recr1_error_set(&err, RECR1_ABORTED, "f", "bad \xc3") == RECR1_ABORTED && strcmp(err.message, "f: bad ?") == 0,
          "a broken UTF-8 sequence is repaired: '%s'", err.message);
    CHECK(recr1_error_set(&err, RECR1_ABORTED, "f", "f is wrong") == RECR1_ABORTED &&
              strcmp(err.message, "f is wrong") == 0,
          "no second prefix");
    CHECK(recr1_error_set(NULL, RECR1_ABORTED, "f", "x") == RECR1_ABORTED, "NULL error");
}

int main(void) {
    RUN(test_bad_replies_are_data_loss);
    RUN(test_a_status_is_copied_whole);
    RUN(test_reply_shape_must_fit_the_request);
    RUN(test_silence_is_a_deadline);
    RUN(test_a_vanished_peer_ends_the_wait);
    RUN(test_oversized_replies_and_requests);
    RUN(test_connecting_to_nothing);
    RUN(test_bad_arguments_are_refused_before_sending);
    RUN(test_codes_have_names);
    return harness_finish("test_client_errors");
}
