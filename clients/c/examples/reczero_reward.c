/* reczero_reward: the RecZero rating reward as a recr1 Reward plugin, in C.
 *
 *   reczero_reward ADDRESS [--workers N] [--token-file FILE]
 *
 * RecZero (Kong et al., "Think before Recommendation", arXiv 2510.23077) has the policy reason in four
 * tagged steps and then rate the item:
 *
 *   <analyze user>...</analyze user><analyze item>...</analyze item><match>...</match><rate>N</rate>
 *
 * The rule is the one of the Python plugin (clients/python/recr1/rewards/reczero.py and formats.py),
 * so that the two give the same reward for the same completion:
 *
 *   format   = +1 when the eight tags each appear exactly once, in that order, and the rating is
 *              parsed; else -1
 *   accuracy = 1 - |N - truth| / 2 when a rating N is parsed: exactly one <rate>...</rate> holding an
 *              unsigned decimal number from 1 to 5 (white space around it allowed); else no term
 *   reward   = format + accuracy (from -2 to +2)
 *
 * The true rating is the metadata's "rating" ({"rating": 4}). Metadata without one is the request's
 * fault: the whole request fails with INVALID_ARGUMENT naming "items[i].metadata.rating", as the
 * Python plugins answer. SIGTERM or SIGINT stop the plugin after the requests in flight are answered;
 * it exits 0. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <recr1.h>

#define MIN_RATING 1.0
#define MAX_RATING 5.0

static const char *const TAGS[] = {"<analyze user>", "</analyze user>", "<analyze item>", "</analyze item>",
                                   "<match>",        "</match>",        "<rate>",         "</rate>"};
#define N_TAGS (sizeof TAGS / sizeof TAGS[0])

/* ------------------------------------------------------------------------------------------------
 * The completion
 */

static int count(const char *text, const char *tag) {
    int n = 0;
    for (const char *p = strstr(text, tag); p != NULL; p = strstr(p + strlen(tag), tag)) n++;
    return n;
}

/* 1 for an unsigned decimal number: digits with an optional fraction, or a fraction alone ("4",
 * "4.", "4.5", ".5", "+4"). strtod alone would also take "0x4", "1e0", "inf" and "nan". */
static int is_decimal(const char *begin, const char *end) {
    const char *p = begin;
    if (p < end && *p == '+') p++;
    const char *digits = p;
    while (p < end && isdigit((unsigned char)*p)) p++;
    int before = (int)(p - digits), after = 0;
    if (p < end && *p == '.') {
        p++;
        while (p < end && isdigit((unsigned char)*p)) p++, after++;
    }
    return p == end && (before > 0 || after > 0);
}

/* The rating inside the one <rate>...</rate> (each <rate> closed by the next </rate>, left to right). */
static int parse_rating(const char *completion, double *rating) {
    const char *content = NULL, *content_end = NULL;
    int pairs = 0;
    for (const char *p = strstr(completion, "<rate>"); p != NULL; p = strstr(p, "<rate>")) {
        const char *close = strstr(p + strlen("<rate>"), "</rate>");
        if (close == NULL) break;
        if (pairs++ == 0) content = p + strlen("<rate>"), content_end = close;
        p = close + strlen("</rate>");
    }
    if (pairs != 1) return 0;
    while (content < content_end && isspace((unsigned char)*content)) content++;
    while (content_end > content && isspace((unsigned char)content_end[-1])) content_end--;
    char text[64];
    size_t length = (size_t)(content_end - content);
    if (length >= sizeof text || !is_decimal(content, content_end)) return 0;
    memcpy(text, content, length);
    text[length] = '\0';
    double value = strtod(text, NULL);
    if (value < MIN_RATING || value > MAX_RATING) return 0;
    *rating = value;
    return 1;
}

/* Each tag exactly once, each after the one before it. */
static int tags_in_order(const char *completion) {
    const char *previous = completion;
    for (size_t i = 0; i < N_TAGS; i++) {
        if (count(completion, TAGS[i]) != 1) return 0;
        const char *at = strstr(completion, TAGS[i]);
        if (at < previous) return 0;
        previous = at;
    }
    return 1;
}

static void score(const char *completion, double truth, recr1_reward_result *result) {
    double predicted = 0;
    int rated = parse_rating(completion, &predicted);
    double format = rated && tags_in_order(completion) ? 1.0 : -1.0;
    recr1_result_detail(result, "format", format);
    if (!rated) {
        recr1_result_set(result, format);
        return;
    }
    double error = fabs(predicted - truth);
    double accuracy = 1.0 - error / 2.0;
    recr1_result_set(result, format + accuracy);
    recr1_result_detail(result, "accuracy", accuracy);
    recr1_result_detail(result, "prediction", predicted);
    recr1_result_detail(result, "abs_error", error);
}

/* ------------------------------------------------------------------------------------------------
 * The reward function
 */

/* The item's true rating, or the status that fails the request (bad metadata is the request's fault). */
static int read_truth(const recr1_reward_item *item, size_t index, double *truth, recr1_error *error) {
    char field[64];
    const char *json = item->metadata_json;
    while (isspace((unsigned char)*json)) json++;
    if (*json != '{') {
        snprintf(field, sizeof field, "items[%zu].metadata_json", index);
        return recr1_error_set(error, RECR1_INVALID_ARGUMENT, field, "a JSON object, got %.40s", json);
    }
    snprintf(field, sizeof field, "items[%zu].metadata.rating", index);
    int status = recr1_json_get_number(item->metadata_json, "rating", truth);
    if (status == RECR1_NOT_FOUND) return recr1_error_set(error, RECR1_INVALID_ARGUMENT, field, "missing");
    if (status != RECR1_OK || !isfinite(*truth)) {
        return recr1_error_set(error, RECR1_INVALID_ARGUMENT, field, "a finite number");
    }
    return RECR1_OK;
}

static int reczero_reward(const recr1_reward_item *items, size_t n_items, recr1_reward_result *results,
                          void *user_data, recr1_error *error) {
    (void)user_data;
    double *truths = malloc((n_items ? n_items : 1) * sizeof *truths);
    if (truths == NULL) return recr1_error_set(error, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    // Every item's metadata first: one bad item fails the request before any is scored.
    for (size_t i = 0; i < n_items; i++) {
        int status = read_truth(&items[i], i, &truths[i], error);
        if (status != RECR1_OK) {
            free(truths);
            return status;
        }
    }
    for (size_t i = 0; i < n_items; i++) score(items[i].completion, truths[i], &results[i]);
    free(truths);
    return RECR1_OK;
}

/* ------------------------------------------------------------------------------------------------
 * The command
 */

static int usage(void) {
    fprintf(stderr, "usage: reczero_reward ADDRESS [--workers N] [--token-file FILE]\n"
                    "  ADDRESS: ipc:///path/reward.sock or tcp://127.0.0.1:PORT\n");
    return 2;
}

/* The token file's text without surrounding white space, as recr1d reads its token_file; NULL when
 * the file cannot be read or holds no token. */
static char *read_token(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return NULL;
    char text[4096];
    size_t length = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[length] = '\0';
    char *start = text;
    while (isspace((unsigned char)*start)) start++;
    char *end = start + strlen(start);
    while (end > start && isspace((unsigned char)end[-1])) end--;
    *end = '\0';
    if (*start == '\0') return NULL;
    char *token = malloc(strlen(start) + 1);
    if (token != NULL) strcpy(token, start);
    return token;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') return usage();
    recr1_reward_options options = {0};
    char *token = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            options.workers = atoi(argv[++i]);
            if (options.workers < 1) return usage();
        } else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc) {
            free(token);
            token = read_token(argv[++i]);
            if (token == NULL) {
                fprintf(stderr, "reczero_reward: cannot read a token from %s\n", argv[i]);
                return 2;
            }
            options.token = token;
        } else {
            free(token);
            return usage();
        }
    }

    fprintf(stderr, "reczero_reward: serving %s until SIGTERM or SIGINT\n", argv[1]);
    recr1_error error;
    int status = recr1_serve_reward(argv[1], reczero_reward, NULL, &options, &error);
    free(token);
    if (status != RECR1_OK) {
        fprintf(stderr, "reczero_reward: %s: %s\n", recr1_code_name(status), error.message);
        return 1;
    }
    fprintf(stderr, "reczero_reward: stopped\n");
    return 0;
}
