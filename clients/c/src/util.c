/* Small things every part of the library needs: errors, text, time, scratch memory, packing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

const char *recr1_version(void) { return RECR1_VERSION; }

const char *recr1_code_name(int code) {
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN_CODE";
    return names[code];
}

void recr1_free(void *pointer) { free(pointer); }

/* ------------------------------------------------------------------------------------------------
 * Errors
 */

void recr1i_error_clear(recr1_error *err) {
    if (err != NULL) memset(err, 0, sizeof *err);
}

int recr1i_error_setv(recr1_error *err, int code, const char *field, const char *format, va_list args) {
    if (err == NULL) return code;
    memset(err, 0, sizeof *err);
    err->code = code;
    err->local = 1;
    if (field == NULL) field = "";
    snprintf(err->field, sizeof err->field, "%s", field);

    char text[sizeof err->message];
    text[0] = '\0';
    if (format != NULL) vsnprintf(text, sizeof text, format, args);
    // recr1d's rule (RPCError): a message names its field first, so that it reads well on its own.
    size_t field_length = strlen(field), used = 0;
    if (field_length > 0 && strncmp(text, field, field_length) != 0) {
        used = (size_t)snprintf(err->message, sizeof err->message, "%s: ", err->field);
    }
    // Longer texts are cut: an error never needs freeing.
    if (used < sizeof err->message) snprintf(err->message + used, sizeof err->message - used, "%s", text);
    // Cutting a long text may split a UTF-8 sequence; the message travels in a protobuf string.
    recr1i_utf8_repair(err->field);
    recr1i_utf8_repair(err->message);
    return code;
}

int recr1_error_set(recr1_error *err, int code, const char *field, const char *format, ...) {
    va_list args;
    va_start(args, format);
    recr1i_error_setv(err, code, field, format, args);
    va_end(args);
    return code;
}

/* ------------------------------------------------------------------------------------------------
 * Text
 */

/* The length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when it is not one. */
static size_t utf8_sequence_length(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t length;
    unsigned int lowest;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2, lowest = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3, lowest = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4, lowest = 0x10000;
    } else {
        return 0;
    }
    unsigned int point = c & (0x7F >> length);
    for (size_t i = 1; i < length; i++) {
        // A NUL ends the string before the sequence does, and fails here too.
        if ((s[i] & 0xC0) != 0x80) return 0;
        point = (point << 6) | (s[i] & 0x3F);
    }
    if (point < lowest || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) return 0;
    return length;
}

void recr1i_utf8_repair(char *text) {
    if (text == NULL) return;
    unsigned char *s = (unsigned char *)text;
    while (*s != '\0') {
        size_t length = utf8_sequence_length(s);
        if (length == 0) {
            *s++ = '?';
        } else {
            s += length;
        }
    }
}

void recr1i_printable(char *out, size_t out_size, const char *text, size_t max_bytes) {
    if (out_size == 0) return;
    size_t n = 0;
    for (; text != NULL && text[n] != '\0' && n < max_bytes && n + 1 < out_size; n++) {
        unsigned char c = (unsigned char)text[n];
        out[n] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    out[n] = '\0';
}

char *recr1i_strdup(const char *text) {
    size_t length = strlen(text);
    char *copy = malloc(length + 1);
    if (copy != NULL) memcpy(copy, text, length + 1);
    return copy;
}

char *recr1i_vformat(const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int length = vsnprintf(NULL, 0, format, args);
    char *text = length < 0 ? NULL : malloc((size_t)length + 1);
    if (text != NULL) vsnprintf(text, (size_t)length + 1, format, again);
    va_end(again);
    return text;
}

/* ------------------------------------------------------------------------------------------------
 * Time
 */

int64_t recr1i_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

void recr1i_sleep_ms(int milliseconds) {
    struct timespec wait = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
    while (nanosleep(&wait, &wait) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------------------------------------------
 * Scratch memory
 */

void *recr1i_scratch_alloc(recr1i_scratch *scratch, size_t count, size_t size) {
    if (scratch->count == scratch->capacity) {
        size_t capacity = scratch->capacity ? scratch->capacity * 2 : 16;
        void **blocks = realloc(scratch->blocks, capacity * sizeof *blocks);
        if (blocks == NULL) return NULL;
        scratch->blocks = blocks;
        scratch->capacity = capacity;
    }
    // calloc(0, ...) may return NULL, which would read as "out of memory".
    void *block = calloc(count ? count : 1, size ? size : 1);
    if (block != NULL) scratch->blocks[scratch->count++] = block;
    return block;
}

void recr1i_scratch_free(recr1i_scratch *scratch) {
    for (size_t i = 0; i < scratch->count; i++) free(scratch->blocks[i]);
    free(scratch->blocks);
    memset(scratch, 0, sizeof *scratch);
}

/* ------------------------------------------------------------------------------------------------
 * Protobuf
 */

uint8_t *recr1i_pack(const ProtobufCMessage *message, size_t *length) {
    size_t size = protobuf_c_message_get_packed_size(message);
    uint8_t *buffer = malloc(size ? size : 1);
    if (buffer == NULL) return NULL;
    *length = protobuf_c_message_pack(message, buffer);
    return buffer;
}
