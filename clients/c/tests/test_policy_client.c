/* The policy client against the real recr1d ($RECR1D): first without a model (envelope, token, size
 * limits, threads), then with the default model (SmolLM2) for tokenize, generate and score, and last
 * a recr1d killed in the middle of a call. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "recr1/v1/policy.pb-c.h"

static recr1_client *open_client(const char *address, const char *token, uint32_t timeout_ms, size_t max_bytes) {
    recr1_client *client = NULL;
    recr1_client_options options = {token, timeout_ms, max_bytes};
    recr1_error err;
    CHECK(recr1_client_open(&client, address, &options, &err) == RECR1_OK, "connects to %s: %s", address, err.message);
    return client;
}

/* ------------------------------------------------------------------------------------------------
 * recr1d --model none, with a token and a 4 kB message limit
 */

static char none_address[160];
static const char *TOKEN = "c-sdk-token";
static pid_t none_pid = -1;

static void test_info_and_health(void) {
    recr1_client *client = open_client(none_address, TOKEN, 0, 0);
    recr1_info_result *info = NULL;
    recr1_error err;
    int status = recr1_info(client, &info, &err);
    CHECK(status == RECR1_OK && info != NULL, "info: %s", err.message);
    if (info != NULL) {
        CHECK(strcmp(info->server_version, "") != 0, "a server version");
        CHECK(!info->model_loaded && strcmp(info->model_name, "") == 0, "no model");
        CHECK(info->max_message_bytes == 4096, "the limit it was given: %llu", (unsigned long long)info->max_message_bytes);
        CHECK(info->max_new_tokens > 0 && info->max_prompts_per_request > 0, "limits");
        CHECK(info->auth_required, "a token is required");
        CHECK(info->pid == (uint64_t)none_pid, "the pid of the process we started");
        CHECK(info->workers == 4, "4 workers by default: %u", info->workers);
    }
    recr1_info_result_free(info);

    recr1_health_result *health = NULL;
    status = recr1_health(client, &health, &err);
    CHECK(status == RECR1_OK && health && health->status == RECR1_SERVING && health->uptime_seconds > 0,
          "health: %s", err.message);
    CHECK(health && health->requests_served >= 1 && strcmp(health->running_job, "") == 0, "counts served requests");
    recr1_health_result_free(health);
    recr1_client_close(client);
}

static void test_server_errors_arrive_as_statuses(void) {
    recr1_error err;
    // No token.
    recr1_client *client = open_client(none_address, NULL, 0, 0);
    recr1_info_result *info = NULL;
    int status = recr1_info(client, &info, &err);
    CHECK_ERROR(status, err, RECR1_UNAUTHENTICATED, 0, "auth_token");
    CHECK(info == NULL, "no result");
    recr1_client_close(client);

    client = open_client(none_address, TOKEN, 0, 0);
    // No model.
    const char *texts[] = {"Hello"};
    recr1_tokenize_result *tokens = NULL;
    status = recr1_tokenize(client, texts, 1, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_FAILED_PRECONDITION, 0, NULL);
    CHECK(strstr(err.message, "model") != NULL, "'%s'", err.message);
    CHECK(err.request_id > 0, "the request id");
    // A request over recr1d's limit (4096), refused by recr1d.
    char *text = malloc(6000);
    memset(text, 'x', 5999);
    text[5999] = '\0';
    const char *big[] = {text};
    status = recr1_tokenize(client, big, 1, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 0, "max_message_bytes");
    CHECK(strstr(err.message, "exceeds max_message_bytes (4096)") != NULL, "'%s'", err.message);
    free(text);
    // An unknown method.
    void *reply = NULL;
    size_t length = 0;
    status = recr1_client_call(client, "recr1.v1.Policy/Nothing", NULL, 0, 0, &reply, &length, &err);
    CHECK_ERROR(status, err, RECR1_UNIMPLEMENTED, 0, "");
    // A payload that is not the method's request.
    status = recr1_client_call(client, "recr1.v1.Policy/Health", "\x0a\xff\xff", 3, 0, &reply, &length, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 0, "payload");
    // recr1_client_call with a message built from the installed protobuf-c code.
    status = recr1_client_call(client, "recr1.v1.Policy/Health", NULL, 0, 0, &reply, &length, &err);
    Recr1__V1__HealthReply *health = status == RECR1_OK ? recr1__v1__health_reply__unpack(NULL, length, reply) : NULL;
    CHECK(health && health->status == RECR1__V1__HEALTH_REPLY__SERVING_STATUS__SERVING, "Health by name: %s",
          err.message);
    if (health) recr1__v1__health_reply__free_unpacked(health, NULL);
    recr1_free(reply);
    recr1_client_close(client);
}

static void test_client_side_limits(void) {
    recr1_error err;
    // Requests over the client's own limit never leave.
    recr1_client *client = open_client(none_address, TOKEN, 0, 200);
    char text[300];
    memset(text, 'y', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    const char *texts[] = {text};
    recr1_tokenize_result *tokens = NULL;
    int status = recr1_tokenize(client, texts, 1, 0, &tokens, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "max_message_bytes");
    recr1_client_close(client);

    // A reply over the client's limit is refused, and the connection stays usable.
    client = open_client(none_address, TOKEN, 5000, 100);
    recr1_info_result *info = NULL;
    status = recr1_info(client, &info, &err);
    CHECK_ERROR(status, err, RECR1_RESOURCE_EXHAUSTED, 1, "max_message_bytes");
    CHECK(strstr(err.message, "exceeds max_message_bytes (100)") != NULL, "'%s'", err.message);
    recr1_health_result *health = NULL;
    status = recr1_health(client, &health, &err);
    CHECK(status == RECR1_OK && health->status == RECR1_SERVING, "a small reply still comes: %s", err.message);
    recr1_health_result_free(health);
    recr1_client_close(client);
}

typedef struct hammer {
    recr1_client *client;
    int ok;
} hammer;

static void *call_many(void *arg) {
    hammer *h = arg;
    for (int i = 0; i < 25; i++) {
        recr1_info_result *info = NULL;
        recr1_error err;
        if (recr1_info(h->client, &info, &err) == RECR1_OK && info->pid == (uint64_t)none_pid) h->ok++;
        recr1_info_result_free(info);
    }
    return NULL;
}

/* One client, four threads: every call on its own context. */
static void test_one_client_many_threads(void) {
    recr1_client *client = open_client(none_address, TOKEN, 0, 0);
    hammer hammers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        hammers[i].client = client, hammers[i].ok = 0;
        pthread_create(&threads[i], NULL, call_many, &hammers[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(hammers[i].ok == 25, "thread %d: %d of 25 calls", i, hammers[i].ok);
    }
    recr1_client_close(client);
}

/* recr1d drains and exits 0 on SIGTERM; a call afterwards fails cleanly. */
static void test_a_stopped_server(void) {
    recr1_client *client = open_client(none_address, TOKEN, 400, 0);
    CHECK(harness_stop(none_pid, 15000) == 0, "recr1d exits 0 on SIGTERM");
    recr1_info_result *info = NULL;
    recr1_error err;
    double start = harness_seconds();
    int status = recr1_info(client, &info, &err);
    CHECK_ERROR(status, err, RECR1_UNAVAILABLE, 1, "");
    CHECK(harness_seconds() - start < harness_slack(2), "within the timeout");
    recr1_client_close(client);
}

/* ------------------------------------------------------------------------------------------------
 * recr1d with the default model
 */

static char model_address[160];
static pid_t model_pid = -1;

static int all_valid_logprobs(const float *logprobs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(logprobs[i]) || logprobs[i] > 0) return 0;
    }
    return 1;
}

static void test_tokenize(void) {
    recr1_client *client = open_client(model_address, NULL, 0, 0);
    recr1_info_result *info = NULL;
    recr1_error err;
    CHECK(recr1_info(client, &info, &err) == RECR1_OK && info->model_loaded && info->model_vocab_size > 0,
          "a model is loaded: %s", err.message);
    uint32_t vocab = info ? info->model_vocab_size : 0;
    recr1_info_result_free(info);

    const char *texts[] = {"Hello world", "The capital of France is", ""};
    recr1_tokenize_result *tokens = NULL;
    int status = recr1_tokenize(client, texts, 3, 0, &tokens, &err);
    CHECK(status == RECR1_OK && tokens && tokens->n_tokens == 3, "three token lists: %s", err.message);
    if (tokens && tokens->n_tokens == 3) {
        CHECK(tokens->tokens[0].n_ids >= 2 && tokens->tokens[1].n_ids >= 4, "words become tokens");
        CHECK(tokens->tokens[2].n_ids == 0, "no text, no tokens");
        for (size_t i = 0; i < tokens->tokens[1].n_ids; i++) {
            CHECK(tokens->tokens[1].ids[i] < vocab, "token %u within the vocabulary", tokens->tokens[1].ids[i]);
        }
    }
    recr1_tokenize_result_free(tokens);
    recr1_client_close(client);
}

/* Greedy samples of one prompt agree; their log-probs are what Score says for the same tokens. */
static void test_generate_then_score(void) {
    recr1_client *client = open_client(model_address, NULL, 0, 0);
    recr1_error err;
    recr1_prompt prompt = {"The capital of France is", NULL, 0, NULL, 0};
    recr1_generate_params params = {0};
    params.n = 2;
    params.max_new_tokens = 6;
    params.has_seed = 1, params.seed = 7;
    recr1_generate_result *generated = NULL;
    int status = recr1_generate(client, &prompt, 1, &params, &generated, &err);
    CHECK(status == RECR1_OK && generated && generated->n_results == 1, "generate: %s", err.message);
    if (status != RECR1_OK || generated == NULL || generated->n_results != 1) {
        recr1_generate_result_free(generated);
        recr1_client_close(client);
        return;
    }
    const recr1_prompt_completions *group = &generated->results[0];
    CHECK(group->n_prompt_token_ids >= 4, "the prompt's tokens come back");
    CHECK(group->n_completions == 2, "n = 2 completions");
    for (size_t i = 0; i < group->n_completions; i++) {
        const recr1_completion *c = &group->completions[i];
        CHECK(c->n_token_ids >= 1 && c->n_token_ids <= 6, "1 to 6 tokens: %zu", c->n_token_ids);
        CHECK(c->n_logprobs == c->n_token_ids && all_valid_logprobs(c->logprobs, c->n_logprobs),
              "one log-prob <= 0 per token");
        CHECK(c->finish_reason == RECR1_FINISH_LENGTH || c->finish_reason == RECR1_FINISH_STOP, "finish reason %d",
              c->finish_reason);
        CHECK(strlen(c->rollout_id) > 0, "stored rollouts have ids");
    }
    if (group->n_completions == 2) {
        const recr1_completion *a = &group->completions[0], *b = &group->completions[1];
        CHECK(strcmp(a->text, b->text) == 0 && a->n_token_ids == b->n_token_ids, "greedy samples agree: '%s' '%s'",
              a->text, b->text);
        CHECK(strcmp(a->rollout_id, b->rollout_id) != 0, "distinct rollout ids");
    }

    // Score the first completion, once as token ids and once as its text.
    const recr1_completion *c = &group->completions[0];
    recr1_score_item items[2] = {
        {{"The capital of France is", NULL, 0, NULL, 0}, NULL, c->token_ids, c->n_token_ids},
        {{NULL, NULL, 0, group->prompt_token_ids, group->n_prompt_token_ids}, NULL, c->token_ids, c->n_token_ids},
    };
    recr1_score_result *scores = NULL;
    status = recr1_score(client, items, 2, RECR1_SCORE_WITH_POLICY, 0, &scores, &err);
    CHECK(status == RECR1_OK && scores && scores->n_results == 2, "score: %s", err.message);
    for (size_t k = 0; status == RECR1_OK && scores && k < scores->n_results; k++) {
        const recr1_score_entry *e = &scores->results[k];
        CHECK(e->n_completion_token_ids == c->n_token_ids && e->n_policy_logprobs == c->n_token_ids,
              "item %zu: one log-prob per completion token", k);
        for (size_t i = 0; i < e->n_policy_logprobs && i < c->n_logprobs; i++) {
            CHECK(e->completion_token_ids[i] == c->token_ids[i], "item %zu: the same tokens", k);
            // The same numbers up to the matmul backend's rounding: Score's large products may run in
            // bf16 (onednn-bf16, recr1d's default with AMX) where generation's skinny ones run in f32.
            float tolerance = 0.05f + 0.02f * fabsf(c->logprobs[i]);
            CHECK(fabsf(e->policy_logprobs[i] - c->logprobs[i]) < tolerance, "item %zu token %zu: score %g, generate %g",
                  k, i, e->policy_logprobs[i], c->logprobs[i]);
        }
        CHECK(e->n_reference_logprobs == 0, "no reference log-probs asked for");
    }
    CHECK(scores && scores->policy_version == generated->policy_version, "the same policy version");
    recr1_score_result_free(scores);
    recr1_generate_result_free(generated);
    recr1_client_close(client);
}

static void test_chat_prompts_and_stop_strings(void) {
    recr1_client *client = open_client(model_address, NULL, 0, 0);
    recr1_error err;
    recr1_chat_message messages[] = {{"user", "Name one fruit."}};
    recr1_prompt prompts[2] = {{NULL, messages, 1, NULL, 0}, {"Count: one, two,", NULL, 0, NULL, 0}};
    const char *stops[] = {","};
    recr1_generate_params params = {0};
    params.max_new_tokens = 8;
    params.temperature = 0.7f, params.top_k = 20, params.top_p = 0.9f;
    params.no_store = 1;
    params.stop_strings = stops, params.n_stop_strings = 1;
    recr1_generate_result *generated = NULL;
    int status = recr1_generate(client, prompts, 2, &params, &generated, &err);
    CHECK(status == RECR1_OK && generated && generated->n_results == 2, "two prompts: %s", err.message);
    for (size_t i = 0; status == RECR1_OK && i < generated->n_results; i++) {
        const recr1_completion *c = &generated->results[i].completions[0];
        CHECK(generated->results[i].n_completions == 1, "n = 0 means 1");
        CHECK(strcmp(c->rollout_id, "") == 0, "no_store: no rollout id");
        if (c->finish_reason == RECR1_FINISH_STOP_STRING) {
            CHECK(strchr(c->text, ',') != NULL, "a stop string is kept: '%s'", c->text);
        }
    }
    recr1_generate_result_free(generated);

    // recr1d checks the sampling parameters: its field path arrives.
    params.top_p = 2;
    status = recr1_generate(client, prompts, 1, &params, &generated, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 0, "sampling.top_p");
    CHECK(generated == NULL, "no result");
    recr1_client_close(client);
}

static void test_deadline_of_a_long_generation(void) {
    recr1_client *client = open_client(model_address, NULL, 0, 0);
    recr1_error err;
    recr1_prompt prompt = {"Once upon a time", NULL, 0, NULL, 0};
    recr1_generate_params params = {0};
    params.max_new_tokens = 400;
    params.timeout_ms = 150;
    recr1_generate_result *generated = NULL;
    double start = harness_seconds();
    int status = recr1_generate(client, &prompt, 1, &params, &generated, &err);
    double took = harness_seconds() - start;
    CHECK(status == RECR1_DEADLINE_EXCEEDED && err.code == RECR1_DEADLINE_EXCEEDED, "deadline exceeded: %s %s",
          recr1_code_name(status), err.message);
    CHECK(took < harness_slack(1.5), "within the deadline and its grace second (%.2f s)", took);
    recr1_client_close(client);
}

typedef struct long_call {
    recr1_client *client;
    int status;
    recr1_error err;
    double ended;
} long_call;

static void *generate_long(void *arg) {
    long_call *call = arg;
    recr1_prompt prompt = {"1, 2, 3, 4, 5, 6, 7,", NULL, 0, NULL, 0}; // greedy counting goes on and on
    recr1_generate_params params = {0};
    params.max_new_tokens = 1000;
    params.timeout_ms = RECR1_WAIT_FOREVER;
    recr1_generate_result *generated = NULL;
    call->status = recr1_generate(call->client, &prompt, 1, &params, &generated, &call->err);
    call->ended = harness_seconds();
    recr1_generate_result_free(generated);
    return NULL;
}

/* recr1d dies (SIGKILL) while generating: the waiting call, which has no deadline, ends at once. */
static void test_a_killed_server_ends_the_call(void) {
    recr1_client *client = open_client(model_address, NULL, 0, 0);
    long_call call = {client, -1, {0}, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, generate_long, &call);
    // Let recr1d start on it (1000 tokens take it many seconds). Health cannot tell: it waits for the
    // policy while a Generate runs.
    harness_sleep_ms(500);
    double killed = harness_seconds();
    harness_kill(model_pid);
    pthread_join(thread, NULL);
    CHECK(call.status == RECR1_UNAVAILABLE && call.err.local, "the call fails with UNAVAILABLE: %s %s",
          recr1_code_name(call.status), call.err.message);
    CHECK(call.ended - killed < harness_slack(2), "at once (%.2f s after the kill)", call.ended - killed);
    recr1_client_close(client);
}

int main(void) {
    char log[160], token_file[160];
    harness_ipc(none_address, sizeof none_address, "none");
    harness_path(log, sizeof log, "recr1d-none.log");
    harness_path(token_file, sizeof token_file, "token");
    harness_write_file(token_file, TOKEN);
    const char *none_args[] = {"--model", "none", "--token-file", token_file, "--max-message-bytes", "4096", NULL};
    none_pid = harness_start_recr1d(none_address, none_args, TOKEN, log, 30000);
    CHECK(none_pid > 0, "recr1d --model none starts");
    if (none_pid > 0) {
        RUN(test_info_and_health);
        RUN(test_server_errors_arrive_as_statuses);
        RUN(test_client_side_limits);
        RUN(test_one_client_many_threads);
        RUN(test_a_stopped_server);
    }

    harness_ipc(model_address, sizeof model_address, "model");
    harness_path(log, sizeof log, "recr1d-model.log");
    const char *model_args[] = {"--workers", "2", NULL};
    model_pid = harness_start_recr1d(model_address, model_args, NULL, log, 120000);
    CHECK(model_pid > 0, "recr1d with the default model starts");
    if (model_pid > 0) {
        RUN(test_tokenize);
        RUN(test_generate_then_score);
        RUN(test_chat_prompts_and_stop_strings);
        RUN(test_deadline_of_a_long_generation);
        RUN(test_a_killed_server_ends_the_call);
    }
    return harness_finish("test_policy_client");
}
