/* A reward plugin in 30 lines: 1 when the completion names the item's "target", else 0. */
#include <stdio.h>
#include <string.h>
#include <recr1.h>

static int reward(const recr1_reward_item *items, size_t n, recr1_reward_result *results,
                  void *user_data, recr1_error *error) {
    (void)user_data, (void)error;
    for (size_t i = 0; i < n; i++) {
        char *target = NULL; /* from the metadata, e.g. {"target": "Paris"} */
        if (recr1_json_get_string(items[i].metadata_json, "target", &target) != RECR1_OK) {
            recr1_result_skip(&results[i], "no \"target\" in the metadata");
            continue;
        }
        recr1_result_set(&results[i], strstr(items[i].completion, target) ? 1.0 : 0.0);
        recr1_result_detail(&results[i], "length", (double)strlen(items[i].completion));
        recr1_free(target);
    }
    return RECR1_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: %s ADDRESS\n", argv[0]), 2;
    recr1_error error;
    if (recr1_serve_reward(argv[1], reward, NULL, NULL, &error) != RECR1_OK) {
        fprintf(stderr, "%s: %s\n", recr1_code_name(error.code), error.message);
        return 1;
    }
    return 0; /* SIGTERM or SIGINT: stopped after answering the requests in flight */
}
