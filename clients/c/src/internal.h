/* What the library's source files share and its users do not see (hidden from the shared library). */
#ifndef RECR1_INTERNAL_H
#define RECR1_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "recr1.h"

#define RECR1_DEFAULT_MAX_MESSAGE_BYTES ((size_t)16 << 20)

/* --- errors (util.c) --------------------------------------------------------------------------- */

/* Clears err (when not NULL) to "no error". */
void recr1i_error_clear(recr1_error *err);
/* recr1_error_set with a va_list. */
int recr1i_error_setv(recr1_error *err, int code, const char *field, const char *format, va_list args);

/* --- text (util.c) ----------------------------------------------------------------------------- */

/* Replaces, in place, every byte that is not part of a well-formed UTF-8 sequence with '?': protobuf
 * strings must be UTF-8, and Python's protobuf refuses a whole reply over one stray byte. */
void recr1i_utf8_repair(char *text);
/* A copy of text fit for a message: at most max_bytes, control and non-ASCII bytes as '?'. */
void recr1i_printable(char *out, size_t out_size, const char *text, size_t max_bytes);
/* strdup, which C11 does not have. */
char *recr1i_strdup(const char *text);
/* vasprintf, which C11 does not have: a new string, or NULL when out of memory. */
char *recr1i_vformat(const char *format, va_list args);

/* --- time (util.c) ----------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: deadlines must not move with the wall clock. */
int64_t recr1i_now_ns(void);
void recr1i_sleep_ms(int milliseconds);

/* --- scratch memory (util.c) ------------------------------------------------------------------- */

/* A bag of allocations freed together: building a nested protobuf message takes many small
 * pieces, and one free at the end is easier to get right than a free per piece. */
typedef struct recr1i_scratch {
    void **blocks;
    size_t count;
    size_t capacity;
} recr1i_scratch;

/* Zeroed memory that lives until recr1i_scratch_free; NULL when out of memory. */
void *recr1i_scratch_alloc(recr1i_scratch *scratch, size_t count, size_t size);
void recr1i_scratch_free(recr1i_scratch *scratch);

/* --- protobuf (util.c) ------------------------------------------------------------------------- */

/* The message serialized into a new buffer (free with free); NULL when out of memory. An empty
 * message gives a 1-byte buffer and *length 0, so that NULL always means failure. */
uint8_t *recr1i_pack(const ProtobufCMessage *message, size_t *length);

/* --- JSON (json.c) ----------------------------------------------------------------------------- */

/* 1 when text[0..length) is one JSON value; else 0, with where and why it stops being JSON. */
int recr1i_json_valid(const char *text, size_t length, size_t *error_offset, const char **reason);

/* --- the client's transport (client.c), used by policy.c ---------------------------------------- */

typedef struct Recr1__V1__Reply Recr1__V1__Reply;

/* Sends payload to method inside the envelope and returns the decoded Reply, whose status is OK
 * (a non-OK status becomes the returned code and err). *reply is freed with
 * recr1__v1__reply__free_unpacked. */
int recr1i_client_roundtrip(recr1_client *client, const char *method, const void *payload, size_t payload_len,
                            uint32_t timeout_ms, Recr1__V1__Reply **reply, recr1_error *err);

#endif
