/* The example plugin examples/reczero_reward.c as a real process: its rewards over a real socket from
 * the C client, its token, and its exit on SIGTERM and SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "recr1/v1/reward.pb-c.h"

static const char *plugin(void) {
    const char *path = getenv("RECZERO_REWARD");
    if (path == NULL || access(path, X_OK) != 0) {
        fprintf(stderr, "FAILED: RECZERO_REWARD=%s is not the built example (run through make test)\n",
                path ? path : "(unset)");
        exit(1);
    }
    return path;
}

#define WELL(user, item, match, rate)                                                                                 \
    "<analyze user>" user "</analyze user><analyze item>" item "</analyze item><match>" match "</match><rate>" rate   \
    "</rate>"

typedef struct expectation {
    const char *completion;
    const char *metadata;
    double format;
    int rated;       /* a rating was parsed: accuracy, prediction and abs_error are reported */
    double reward;
    const char *why;
} expectation;

/* The rule of clients/python/recr1/rewards/reczero.py; true rating 4 unless the metadata says otherwise. */
static const expectation CASES[] = {
    {WELL("likes sci-fi", "a space opera", "a good fit", "4"), "{\"rating\": 4}", 1, 1, 2.0, "exact"},
    {WELL("u", "i", "m", "2"), "{\"rating\": 4}", 1, 1, 1.0, "off by 2"},
    {WELL("u", "i", "m", "1"), "{\"rating\": 4}", 1, 1, 0.5, "off by 3"},
    {WELL("u", "i", "m", "4.5"), "{\"rating\": 4}", 1, 1, 1.75, "a decimal rating"},
    {WELL("u", "i", "m", "+4."), "{\"rating\": 4}", 1, 1, 2.0, "a rating written +4."},
    {"Let me think.\n<analyze user>\n u \n</analyze user>\n<analyze item> i </analyze item>\n<match> m </match>\n"
     "<rate> 3 </rate>\n",
     "{\"rating\": 4, \"user\": \"x\"}", 1, 1, 1.5, "white space and a preamble"},
    {WELL("u", "i", "m", "5"), "{\"rating\": 5.0}", 1, 1, 2.0, "a float truth"},
    {WELL("u", "i", "  \n", "4"), "{\"rating\": 4}", 1, 1, 2.0, "a blank section still counts"},
    {"<analyze user>u</analyze user><analyze item>i</analyze item><rate>4</rate>", "{\"rating\": 4}", -1, 1, 0.0,
     "no <match>: the format fails, the rating still counts"},
    {"<analyze item>i</analyze item><analyze user>u</analyze user><match>m</match><rate>4</rate>", "{\"rating\": 4}",
     -1, 1, 0.0, "sections out of order"},
    {"<analyze user>u</analyze user><analyze item>i<match>m</match></analyze item><rate>4</rate>", "{\"rating\": 4}",
     -1, 1, 0.0, "nested sections"},
    {WELL("u", "i", "m", "4") "<rate>4</rate>", "{\"rating\": 4}", -1, 0, -1.0, "two rates"},
    {WELL("u", "i", "m", "7"), "{\"rating\": 4}", -1, 0, -1.0, "a rating above the scale"},
    {WELL("u", "i", "m", "0.5"), "{\"rating\": 4}", -1, 0, -1.0, "a rating below the scale"},
    {WELL("u", "i", "m", "four"), "{\"rating\": 4}", -1, 0, -1.0, "a rating in words"},
    {WELL("u", "i", "m", "0x4"), "{\"rating\": 4}", -1, 0, -1.0, "a hex rating"},
    {WELL("u", "i", "m", "1e0"), "{\"rating\": 4}", -1, 0, -1.0, "an exponent"},
    {WELL("u", "i", "m", "nan"), "{\"rating\": 4}", -1, 0, -1.0, "nan"},
    {WELL("u", "i", "m", ""), "{\"rating\": 4}", -1, 0, -1.0, "an empty rating"},
    {"<analyze user>u</analyze user><analyze item>i</analyze item><match>m</match><rate>4", "{\"rating\": 4}", -1, 0,
     -1.0, "an unclosed rate"},
    {"I think 4 stars.", "{\"rating\": 4}", -1, 0, -1.0, "no tags at all"},
    {"", "{\"rating\": 4}", -1, 0, -1.0, "an empty completion"},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static double detail(const Recr1__V1__RewardResult *result, const char *name, int *found) {
    for (size_t i = 0; i < result->n_details; i++) {
        if (strcmp(result->details[i]->key, name) == 0) return *found = 1, result->details[i]->value;
    }
    return *found = 0, 0;
}

/* One RewardRequest of the given items through the SDK's client: the status, and the reply's results. */
static int call(const char *address, const char *token, const expectation *cases, size_t n,
                Recr1__V1__RewardReply **reply, recr1_error *err) {
    Recr1__V1__RewardItem items[N_CASES];
    Recr1__V1__RewardItem *pointers[N_CASES];
    char ids[N_CASES][32];
    for (size_t i = 0; i < n; i++) {
        recr1__v1__reward_item__init(&items[i]);
        snprintf(ids[i], sizeof ids[i], "item-%zu", i);
        items[i].id = ids[i];
        items[i].prompt = "Rate the item for the user.";
        items[i].completion = (char *)cases[i].completion;
        items[i].metadata_json = (char *)cases[i].metadata;
        pointers[i] = &items[i];
    }
    Recr1__V1__RewardRequest request = RECR1__V1__REWARD_REQUEST__INIT;
    request.items = pointers;
    request.n_items = n;
    size_t length = recr1__v1__reward_request__get_packed_size(&request);
    uint8_t *payload = malloc(length + 1);
    recr1__v1__reward_request__pack(&request, payload);

    recr1_client *client = NULL;
    recr1_client_options options = {token, 10000, 0};
    int status = recr1_client_open(&client, address, &options, err);
    void *bytes = NULL;
    size_t reply_length = 0;
    if (status == RECR1_OK) {
        status = recr1_client_call(client, RECR1_REWARD_METHOD, payload, length, 0, &bytes, &reply_length, err);
    }
    *reply = status == RECR1_OK ? recr1__v1__reward_reply__unpack(NULL, reply_length, bytes) : NULL;
    recr1_free(bytes);
    free(payload);
    recr1_client_close(client);
    return status;
}

/* Sends every case in one request and checks each result. */
static void check_cases(const char *address, const char *token) {
    Recr1__V1__RewardReply *reply = NULL;
    recr1_error err;
    int status = call(address, token, CASES, N_CASES, &reply, &err);
    CHECK(status == RECR1_OK, "the plugin answers: %s", err.message);
    CHECK(reply != NULL && reply->n_results == N_CASES, "one result per item");
    for (size_t i = 0; reply != NULL && i < reply->n_results && i < N_CASES; i++) {
        const Recr1__V1__RewardResult *r = reply->results[i];
        const expectation *e = &CASES[i];
        CHECK(r->has_reward && r->reward == (float)e->reward, "%s: reward %g, expected %g", e->why, r->reward,
              e->reward);
        int found;
        double format = detail(r, "format", &found);
        CHECK(found && format == e->format, "%s: format %g", e->why, format);
        double accuracy = detail(r, "accuracy", &found);
        CHECK(found == e->rated, "%s: accuracy reported only with a rating", e->why);
        CHECK(!found || accuracy == e->reward - e->format, "%s: accuracy %g", e->why, accuracy);
        detail(r, "prediction", &found);
        CHECK(found == e->rated, "%s: prediction", e->why);
        detail(r, "abs_error", &found);
        CHECK(found == e->rated, "%s: abs_error", e->why);
    }
    if (reply) recr1__v1__reward_reply__free_unpacked(reply, NULL);
}

/* Metadata without a usable "rating" fails the whole request, naming the item, as in Python. */
static void check_bad_metadata(const char *address, const char *token) {
    struct {
        const char *metadata;
        const char *field;
        const char *words;
    } bad[] = {
        {"{}", "items[1].metadata.rating", "missing"},
        {"{\"rating\": null}", "items[1].metadata.rating", "missing"},
        {"{\"rating\": \"4\"}", "items[1].metadata.rating", "a finite number"},
        {"{\"rating\": true}", "items[1].metadata.rating", "a finite number"},
        {"{\"rating\": 1e999}", "items[1].metadata.rating", "a finite number"},
        {"[4]", "items[1].metadata_json", "a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expectation two[2] = {CASES[0], CASES[0]};
        two[1].metadata = bad[i].metadata;
        Recr1__V1__RewardReply *reply = NULL;
        recr1_error err;
        int status = call(address, token, two, 2, &reply, &err);
        CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 0, bad[i].field);
        CHECK(strstr(err.message, bad[i].words) != NULL, "%s: '%s'", bad[i].metadata, err.message);
        if (reply) recr1__v1__reward_reply__free_unpacked(reply, NULL);
    }
}

static void test_rewards_over_a_socket_and_sigterm(void) {
    char address[160], path[160], log[160], token_file[160];
    harness_ipc(address, sizeof address, "reczero");
    snprintf(path, sizeof path, "%s", address + strlen("ipc://"));
    harness_path(log, sizeof log, "reczero.log");
    harness_path(token_file, sizeof token_file, "token");
    harness_write_file(token_file, "  t0ken\n\n");
    char *argv[] = {(char *)plugin(), address, "--workers", "2", "--token-file", token_file, NULL};
    pid_t pid = harness_spawn(argv, log);
    CHECK(harness_wait_listening(address, pid, 10000), "the plugin listens");

    check_cases(address, "t0ken");
    check_bad_metadata(address, "t0ken");

    recr1_client *client = NULL;
    recr1_error err;
    CHECK(recr1_client_open(&client, address, NULL, &err) == RECR1_OK, "%s", err.message);
    void *bytes = NULL;
    size_t length = 0;
    int status = recr1_client_call(client, RECR1_REWARD_METHOD, NULL, 0, 0, &bytes, &length, &err);
    CHECK_ERROR(status, err, RECR1_UNAUTHENTICATED, 0, "auth_token");
    recr1_client_close(client);

    CHECK(harness_stop(pid, 10000) == 0, "SIGTERM: exit 0");
    struct stat info;
    CHECK(stat(path, &info) != 0, "the socket file is removed");
    CHECK(harness_file_contains(log, "stopped"), "it says so");
}

static void test_sigint_and_tcp(void) {
    char address[64], log[160];
    snprintf(address, sizeof address, "tcp://127.0.0.1:%d", harness_free_port());
    harness_path(log, sizeof log, "reczero-tcp.log");
    char *argv[] = {(char *)plugin(), address, NULL};
    pid_t pid = harness_spawn(argv, log);
    CHECK(harness_wait_listening(address, pid, 10000), "the plugin listens on %s", address);
    check_cases(address, NULL);
    kill(pid, SIGINT);
    CHECK(harness_wait_exit(pid, (int)(harness_slack(5) * 1000)) == 0, "SIGINT stops it: exit 0");
}

static void test_bad_command_lines(void) {
    char log[160];
    harness_path(log, sizeof log, "usage.log");
    char *no_address[] = {(char *)plugin(), NULL};
    int wait_ms = (int)(harness_slack(10) * 1000);
    CHECK(harness_wait_exit(harness_spawn(no_address, log), wait_ms) == 2 && harness_file_contains(log, "usage"),
          "no address: usage, exit 2");
    char *bad_workers[] = {(char *)plugin(), "ipc:///tmp/x.sock", "--workers", "0", NULL};
    CHECK(harness_wait_exit(harness_spawn(bad_workers, log), wait_ms) == 2, "0 workers: exit 2");
    char *missing_token[] = {(char *)plugin(), "ipc:///tmp/x.sock", "--token-file", "/nonexistent/token", NULL};
    CHECK(harness_wait_exit(harness_spawn(missing_token, log), wait_ms) == 2 && harness_file_contains(log, "cannot read"),
          "an unreadable token file: exit 2");
    char *bad_address[] = {(char *)plugin(), "nonsense://here", NULL};
    CHECK(harness_wait_exit(harness_spawn(bad_address, log), wait_ms) == 1 && harness_file_contains(log, "INVALID_ARGUMENT"),
          "a bad address: the error, exit 1");
}

int main(void) {
    RUN(test_rewards_over_a_socket_and_sigterm);
    RUN(test_sigint_and_tcp);
    RUN(test_bad_command_lines);
    return harness_finish("test_reczero_plugin");
}
