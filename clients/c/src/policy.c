/* The calls of recr1d's Policy service (proto/recr1/v1/policy.proto): requests built from plain C
 * arguments, replies turned into the result structs of recr1.h.
 *
 * A result is one allocation (the struct and its arrays) plus the decoded reply message, which its
 * strings and numeric arrays point into: no copying, and one free function per result type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "recr1/v1/envelope.pb-c.h"
#include "recr1/v1/policy.pb-c.h"

#define SERVICE "recr1.v1.Policy/"

/* ------------------------------------------------------------------------------------------------
 * Calling
 */

/* Calls SERVICE + name with a request message and decodes the reply's payload as reply_type. */
static int call(recr1_client *client, const char *name, const ProtobufCMessage *request,
                const ProtobufCMessageDescriptor *reply_type, uint32_t timeout_ms, ProtobufCMessage **reply,
                recr1_error *err) {
    *reply = NULL;
    char method[64];
    snprintf(method, sizeof method, SERVICE "%s", name);
    size_t length = 0;
    uint8_t *payload = recr1i_pack(request, &length);
    if (payload == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    Recr1__V1__Reply *envelope = NULL;
    int status = recr1i_client_roundtrip(client, method, payload, length, timeout_ms, &envelope, err);
    free(payload);
    if (status != RECR1_OK) return status;

    *reply = protobuf_c_message_unpack(reply_type, NULL, envelope->payload.len, envelope->payload.data);
    size_t reply_length = envelope->payload.len;
    uint64_t request_id = envelope->request_id;
    recr1__v1__reply__free_unpacked(envelope, NULL);
    if (*reply == NULL) {
        status = recr1_error_set(err, RECR1_DATA_LOSS, "payload", "the reply to %s is not a %s (%zu bytes)", method,
                                 reply_type->name, reply_length);
        if (err) err->request_id = request_id;
        return status;
    }
    return RECR1_OK;
}

/* A reply whose shape does not fit the request (fewer results than prompts, ...). */
static int misfit(recr1_error *err, const char *what, size_t got, size_t expected) {
    return recr1_error_set(err, RECR1_DATA_LOSS, "", "the reply has %zu %s for %zu in the request", got, what, expected);
}

static size_t aligned(size_t size) {
    size_t unit = _Alignof(max_align_t);
    return (size + unit - 1) / unit * unit;
}

/* One zeroed block for a result struct and up to two arrays after it. */
static void *alloc_result(size_t head, size_t first, void **first_array, size_t second, void **second_array) {
    char *block = calloc(1, aligned(head) + aligned(first) + second);
    if (block == NULL) return NULL;
    if (first_array) *first_array = block + aligned(head);
    if (second_array) *second_array = block + aligned(head) + aligned(first);
    return block;
}

static void free_result(void *result, void *reply) {
    if (reply != NULL) protobuf_c_message_free_unpacked(reply, NULL);
    free(result);
}

static int out_of_memory(recr1_error *err, ProtobufCMessage *reply) {
    if (reply != NULL) protobuf_c_message_free_unpacked(reply, NULL);
    return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
}

static int no_place(recr1_error *err) {
    recr1i_error_clear(err);
    return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "result", "no place for the result (NULL)");
}

/* ------------------------------------------------------------------------------------------------
 * Info, Health
 */

int recr1_info(recr1_client *client, recr1_info_result **result, recr1_error *err) {
    if (result == NULL) return no_place(err);
    *result = NULL;
    Recr1__V1__InfoRequest request = RECR1__V1__INFO_REQUEST__INIT;
    ProtobufCMessage *decoded;
    int status = call(client, "Info", &request.base, &recr1__v1__info_reply__descriptor, 0, &decoded, err);
    if (status != RECR1_OK) return status;
    Recr1__V1__InfoReply *reply = (Recr1__V1__InfoReply *)decoded;
    recr1_info_result *r = calloc(1, sizeof *r);
    if (r == NULL) return out_of_memory(err, decoded);

    // Absent sub-messages (no model loaded) read as their defaults, as in every protobuf runtime.
    static const Recr1__V1__ModelInfo no_model = RECR1__V1__MODEL_INFO__INIT;
    static const Recr1__V1__Limits no_limits = RECR1__V1__LIMITS__INIT;
    const Recr1__V1__ModelInfo *model = reply->model ? reply->model : &no_model;
    const Recr1__V1__Limits *limits = reply->limits ? reply->limits : &no_limits;
    r->server_version = reply->server_version;
    r->policy_version = reply->policy_version;
    r->model_loaded = model->loaded;
    r->model_name = model->name;
    r->model_source = model->source;
    r->model_architecture = model->architecture;
    r->model_parameters = model->parameters;
    r->model_vocab_size = model->vocab_size;
    r->model_context_length = model->context_length;
    r->blas_core = reply->blas_core;
    r->cpu_features = reply->cpu_features;
    r->max_message_bytes = limits->max_message_bytes;
    r->max_prompts_per_request = limits->max_prompts_per_request;
    r->max_samples_per_prompt = limits->max_samples_per_prompt;
    r->max_new_tokens = limits->max_new_tokens;
    r->max_sequence_tokens = limits->max_sequence_tokens;
    r->workers = reply->workers;
    r->auth_required = reply->auth_required;
    r->pid = reply->pid;
    r->reply_ = reply;
    *result = r;
    return RECR1_OK;
}

void recr1_info_result_free(recr1_info_result *result) {
    if (result != NULL) free_result(result, result->reply_);
}

int recr1_health(recr1_client *client, recr1_health_result **result, recr1_error *err) {
    if (result == NULL) return no_place(err);
    *result = NULL;
    Recr1__V1__HealthRequest request = RECR1__V1__HEALTH_REQUEST__INIT;
    ProtobufCMessage *decoded;
    int status = call(client, "Health", &request.base, &recr1__v1__health_reply__descriptor, 0, &decoded, err);
    if (status != RECR1_OK) return status;
    Recr1__V1__HealthReply *reply = (Recr1__V1__HealthReply *)decoded;
    recr1_health_result *r = calloc(1, sizeof *r);
    if (r == NULL) return out_of_memory(err, decoded);
    r->status = (int)reply->status;
    r->uptime_seconds = reply->uptime_seconds;
    r->policy_version = reply->policy_version;
    r->in_flight = reply->in_flight;
    r->requests_served = reply->requests_served;
    r->requests_failed = reply->requests_failed;
    r->running_job = reply->running_job;
    r->reply_ = reply;
    *result = r;
    return RECR1_OK;
}

void recr1_health_result_free(recr1_health_result *result) {
    if (result != NULL) free_result(result, result->reply_);
}

/* ------------------------------------------------------------------------------------------------
 * Tokenize
 */

static recr1_token_ids token_ids(const Recr1__V1__TokenIds *message) {
    recr1_token_ids ids = {NULL, 0};
    if (message != NULL) ids.ids = message->ids, ids.n_ids = message->n_ids;
    return ids;
}

int recr1_tokenize(recr1_client *client, const char *const *texts, size_t n_texts, int add_special_tokens,
                   recr1_tokenize_result **result, recr1_error *err) {
    if (result == NULL) return no_place(err);
    *result = NULL;
    for (size_t i = 0; i < n_texts; i++) {
        if (texts == NULL || texts[i] == NULL) {
            recr1i_error_clear(err);
            return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "texts", "texts[%zu] is NULL", i);
        }
    }
    Recr1__V1__TokenizeRequest request = RECR1__V1__TOKENIZE_REQUEST__INIT;
    request.n_texts = n_texts;
    request.texts = (char **)texts;
    request.add_special_tokens = add_special_tokens != 0;
    ProtobufCMessage *decoded;
    int status = call(client, "Tokenize", &request.base, &recr1__v1__tokenize_reply__descriptor, 0, &decoded, err);
    if (status != RECR1_OK) return status;
    Recr1__V1__TokenizeReply *reply = (Recr1__V1__TokenizeReply *)decoded;
    if (reply->n_tokens != n_texts) {
        size_t got = reply->n_tokens;
        protobuf_c_message_free_unpacked(decoded, NULL);
        return misfit(err, "token lists", got, n_texts);
    }
    recr1_token_ids *lists;
    recr1_tokenize_result *r = alloc_result(sizeof *r, n_texts * sizeof *lists, (void **)&lists, 0, NULL);
    if (r == NULL) return out_of_memory(err, decoded);
    for (size_t i = 0; i < n_texts; i++) lists[i] = token_ids(reply->tokens[i]);
    r->tokens = lists;
    r->n_tokens = n_texts;
    r->reply_ = reply;
    *result = r;
    return RECR1_OK;
}

void recr1_tokenize_result_free(recr1_tokenize_result *result) {
    if (result != NULL) free_result(result, result->reply_);
}

/* ------------------------------------------------------------------------------------------------
 * Building prompts and completions
 */

/* Fills out from a recr1_prompt, which must name exactly one form. field is "prompts[3]" or
 * "items[3].prompt", for the error. */
static int build_prompt(recr1i_scratch *scratch, const recr1_prompt *in, Recr1__V1__Prompt *out, const char *field,
                        recr1_error *err) {
    recr1__v1__prompt__init(out);
    int forms = (in->text != NULL) + (in->messages != NULL) + (in->token_ids != NULL);
    if (forms != 1) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, field, "give exactly one of text, messages, token_ids (%d given)",
                               forms);
    }
    if (in->text != NULL) {
        out->kind_case = RECR1__V1__PROMPT__KIND_TEXT;
        out->text = (char *)in->text;
        return RECR1_OK;
    }
    if (in->token_ids != NULL) {
        Recr1__V1__TokenIds *tokens = recr1i_scratch_alloc(scratch, 1, sizeof *tokens);
        if (tokens == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
        recr1__v1__token_ids__init(tokens);
        tokens->ids = (uint32_t *)in->token_ids;
        tokens->n_ids = in->n_token_ids;
        out->kind_case = RECR1__V1__PROMPT__KIND_TOKENS;
        out->tokens = tokens;
        return RECR1_OK;
    }
    Recr1__V1__Conversation *chat = recr1i_scratch_alloc(scratch, 1, sizeof *chat);
    Recr1__V1__ChatMessage *messages = recr1i_scratch_alloc(scratch, in->n_messages, sizeof *messages);
    Recr1__V1__ChatMessage **pointers = recr1i_scratch_alloc(scratch, in->n_messages, sizeof *pointers);
    if (chat == NULL || messages == NULL || pointers == NULL) {
        return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    }
    recr1__v1__conversation__init(chat);
    for (size_t i = 0; i < in->n_messages; i++) {
        if (in->messages[i].role == NULL || in->messages[i].content == NULL) {
            return recr1_error_set(err, RECR1_INVALID_ARGUMENT, field, "messages[%zu] has a NULL role or content", i);
        }
        recr1__v1__chat_message__init(&messages[i]);
        messages[i].role = (char *)in->messages[i].role;
        messages[i].content = (char *)in->messages[i].content;
        pointers[i] = &messages[i];
    }
    chat->messages = pointers;
    chat->n_messages = in->n_messages;
    out->kind_case = RECR1__V1__PROMPT__KIND_CHAT;
    out->chat = chat;
    return RECR1_OK;
}

/* An array of n prompts for a request: the messages and the pointer array protobuf-c wants. */
static int build_prompts(recr1i_scratch *scratch, const recr1_prompt *prompts, size_t n, Recr1__V1__Prompt ***out,
                         recr1_error *err) {
    if (prompts == NULL && n > 0) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "prompts", "%zu prompts at NULL", n);
    Recr1__V1__Prompt *messages = recr1i_scratch_alloc(scratch, n, sizeof *messages);
    Recr1__V1__Prompt **pointers = recr1i_scratch_alloc(scratch, n, sizeof *pointers);
    if (messages == NULL || pointers == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "prompts[%zu]", i);
        int status = build_prompt(scratch, &prompts[i], &messages[i], field, err);
        if (status != RECR1_OK) return status;
        pointers[i] = &messages[i];
    }
    *out = pointers;
    return RECR1_OK;
}

static int build_continuation(recr1i_scratch *scratch, const recr1_score_item *item, Recr1__V1__Continuation *out,
                              const char *field, recr1_error *err) {
    recr1__v1__continuation__init(out);
    if ((item->completion_text != NULL) == (item->completion_token_ids != NULL)) {
        return recr1_error_set(err, RECR1_INVALID_ARGUMENT, field,
                               "give exactly one of completion_text, completion_token_ids");
    }
    if (item->completion_text != NULL) {
        out->kind_case = RECR1__V1__CONTINUATION__KIND_TEXT;
        out->text = (char *)item->completion_text;
        return RECR1_OK;
    }
    Recr1__V1__TokenIds *tokens = recr1i_scratch_alloc(scratch, 1, sizeof *tokens);
    if (tokens == NULL) return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    recr1__v1__token_ids__init(tokens);
    tokens->ids = (uint32_t *)item->completion_token_ids;
    tokens->n_ids = item->n_completion_token_ids;
    out->kind_case = RECR1__V1__CONTINUATION__KIND_TOKENS;
    out->tokens = tokens;
    return RECR1_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Generate
 */

static void build_sampling(const recr1_generate_params *p, Recr1__V1__SamplingParams *sampling,
                           Recr1__V1__UInt64Value *seed) {
    recr1__v1__sampling_params__init(sampling);
    recr1__v1__uint64_value__init(seed);
    sampling->temperature = p->temperature;
    sampling->top_k = p->top_k;
    sampling->top_p = p->top_p;
    if (p->has_seed) {
        seed->value = p->seed;
        sampling->seed = seed;
    }
    sampling->max_new_tokens = p->max_new_tokens;
    sampling->stop_token_ids = (uint32_t *)p->stop_token_ids;
    sampling->n_stop_token_ids = p->stop_token_ids ? p->n_stop_token_ids : 0;
    sampling->stop_strings = (char **)p->stop_strings;
    sampling->n_stop_strings = p->stop_strings ? p->n_stop_strings : 0;
}

static int check_stop_strings(const recr1_generate_params *p, recr1_error *err) {
    for (size_t i = 0; p->stop_strings != NULL && i < p->n_stop_strings; i++) {
        if (p->stop_strings[i] == NULL) {
            return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "sampling.stop_strings", "stop_strings[%zu] is NULL", i);
        }
    }
    return RECR1_OK;
}

static recr1_completion completion_view(const Recr1__V1__Completion *c) {
    recr1_completion view = {c->text, c->rollout_id, c->token_ids, c->n_token_ids,
                             c->logprobs, c->n_logprobs, (int)c->finish_reason};
    return view;
}

/* The result views of a GenerateReply that has one entry per prompt. */
static recr1_generate_result *generate_views(Recr1__V1__GenerateReply *reply) {
    size_t total = 0;
    for (size_t i = 0; i < reply->n_results; i++) total += reply->results[i]->n_completions;
    recr1_prompt_completions *groups;
    recr1_completion *completions;
    recr1_generate_result *r = alloc_result(sizeof *r, reply->n_results * sizeof *groups, (void **)&groups,
                                            total * sizeof *completions, (void **)&completions);
    if (r == NULL) return NULL;
    size_t next = 0;
    for (size_t i = 0; i < reply->n_results; i++) {
        const Recr1__V1__PromptCompletions *group = reply->results[i];
        recr1_token_ids prompt = token_ids(group->prompt_tokens);
        groups[i].prompt_token_ids = prompt.ids;
        groups[i].n_prompt_token_ids = prompt.n_ids;
        groups[i].completions = completions + next;
        groups[i].n_completions = group->n_completions;
        for (size_t j = 0; j < group->n_completions; j++) completions[next++] = completion_view(group->completions[j]);
    }
    r->results = groups;
    r->n_results = reply->n_results;
    r->policy_version = reply->policy_version;
    r->reply_ = reply;
    return r;
}

int recr1_generate(recr1_client *client, const recr1_prompt *prompts, size_t n_prompts,
                   const recr1_generate_params *params, recr1_generate_result **result, recr1_error *err) {
    if (result == NULL) return no_place(err);
    *result = NULL;
    recr1i_error_clear(err);
    static const recr1_generate_params defaults;
    if (params == NULL) params = &defaults;
    int status = check_stop_strings(params, err);
    if (status != RECR1_OK) return status;

    recr1i_scratch scratch = {0};
    Recr1__V1__GenerateRequest request = RECR1__V1__GENERATE_REQUEST__INIT;
    Recr1__V1__SamplingParams sampling;
    Recr1__V1__UInt64Value seed;
    build_sampling(params, &sampling, &seed);
    request.sampling = &sampling;
    request.n = params->n;
    request.no_store = params->no_store != 0;
    request.n_prompts = n_prompts;
    status = build_prompts(&scratch, prompts, n_prompts, &request.prompts, err);
    ProtobufCMessage *decoded = NULL;
    if (status == RECR1_OK) {
        status = call(client, "Generate", &request.base, &recr1__v1__generate_reply__descriptor, params->timeout_ms,
                      &decoded, err);
    }
    recr1i_scratch_free(&scratch);
    if (status != RECR1_OK) return status;

    Recr1__V1__GenerateReply *reply = (Recr1__V1__GenerateReply *)decoded;
    if (reply->n_results != n_prompts) {
        size_t got = reply->n_results;
        protobuf_c_message_free_unpacked(decoded, NULL);
        return misfit(err, "results", got, n_prompts);
    }
    *result = generate_views(reply);
    return *result ? RECR1_OK : out_of_memory(err, decoded);
}

void recr1_generate_result_free(recr1_generate_result *result) {
    if (result != NULL) free_result(result, result->reply_);
}

/* ------------------------------------------------------------------------------------------------
 * Score
 */

static int build_score_items(recr1i_scratch *scratch, const recr1_score_item *items, size_t n,
                             Recr1__V1__ScoreItem ***out, recr1_error *err) {
    if (items == NULL && n > 0) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "items", "%zu items at NULL", n);
    Recr1__V1__ScoreItem *messages = recr1i_scratch_alloc(scratch, n, sizeof *messages);
    Recr1__V1__ScoreItem **pointers = recr1i_scratch_alloc(scratch, n, sizeof *pointers);
    Recr1__V1__Prompt *prompts = recr1i_scratch_alloc(scratch, n, sizeof *prompts);
    Recr1__V1__Continuation *completions = recr1i_scratch_alloc(scratch, n, sizeof *completions);
    if (!messages || !pointers || !prompts || !completions) {
        return recr1_error_set(err, RECR1_RESOURCE_EXHAUSTED, "", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char field[48];
        snprintf(field, sizeof field, "items[%zu].prompt", i);
        int status = build_prompt(scratch, &items[i].prompt, &prompts[i], field, err);
        if (status != RECR1_OK) return status;
        snprintf(field, sizeof field, "items[%zu].completion", i);
        status = build_continuation(scratch, &items[i], &completions[i], field, err);
        if (status != RECR1_OK) return status;
        recr1__v1__score_item__init(&messages[i]);
        messages[i].prompt = &prompts[i];
        messages[i].completion = &completions[i];
        pointers[i] = &messages[i];
    }
    *out = pointers;
    return RECR1_OK;
}

int recr1_score(recr1_client *client, const recr1_score_item *items, size_t n_items, int score_with,
                uint32_t timeout_ms, recr1_score_result **result, recr1_error *err) {
    if (result == NULL) return no_place(err);
    *result = NULL;
    recr1i_error_clear(err);
    recr1i_scratch scratch = {0};
    Recr1__V1__ScoreRequest request = RECR1__V1__SCORE_REQUEST__INIT;
    request.score_with = (Recr1__V1__ScoreWith)score_with;
    request.n_items = n_items;
    int status = build_score_items(&scratch, items, n_items, &request.items, err);
    ProtobufCMessage *decoded = NULL;
    if (status == RECR1_OK) {
        status = call(client, "Score", &request.base, &recr1__v1__score_reply__descriptor, timeout_ms, &decoded, err);
    }
    recr1i_scratch_free(&scratch);
    if (status != RECR1_OK) return status;

    Recr1__V1__ScoreReply *reply = (Recr1__V1__ScoreReply *)decoded;
    if (reply->n_results != n_items) {
        size_t got = reply->n_results;
        protobuf_c_message_free_unpacked(decoded, NULL);
        return misfit(err, "results", got, n_items);
    }
    recr1_score_entry *entries;
    recr1_score_result *r = alloc_result(sizeof *r, n_items * sizeof *entries, (void **)&entries, 0, NULL);
    if (r == NULL) return out_of_memory(err, decoded);
    for (size_t i = 0; i < n_items; i++) {
        const Recr1__V1__ScoreResult *s = reply->results[i];
        recr1_score_entry entry = {s->completion_token_ids, s->n_completion_token_ids, s->policy_logprobs,
                                   s->n_policy_logprobs, s->reference_logprobs, s->n_reference_logprobs};
        entries[i] = entry;
    }
    r->results = entries;
    r->n_results = n_items;
    r->policy_version = reply->policy_version;
    r->reply_ = reply;
    *result = r;
    return RECR1_OK;
}

void recr1_score_result_free(recr1_score_result *result) {
    if (result != NULL) free_result(result, result->reply_);
}
