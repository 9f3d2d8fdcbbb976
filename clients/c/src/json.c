/* Strict JSON (RFC 8259): a validator, and the lookup of one member of a top-level object.
 *
 * Reward plugins need exactly this: the server refuses metadata that is not JSON (as the Python
 * plugin server does), and a plugin reads its ground truth from one member. A full parser would be
 * more code than the SDK itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Deeper nesting is refused rather than recursed into: the validator must not run out of stack on
 * hostile input such as a million '['. */
#define MAX_DEPTH 256

typedef struct cursor {
    const char *p;
    const char *end;
    const char *why; /* the first reason the text is not JSON */
    int depth;
} cursor;

static int fail(cursor *c, const char *why) {
    if (c->why == NULL) c->why = why;
    return 0;
}

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int at(const cursor *c, char ch) { return c->p < c->end && *c->p == ch; }

static int is_digit(const cursor *c) { return c->p < c->end && *c->p >= '0' && *c->p <= '9'; }

static int skip_value(cursor *c);

/* ------------------------------------------------------------------------------------------------
 * Strings
 */

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape (c->p is after the 'u'). */
static int read_hex4(cursor *c, unsigned int *code_unit) {
    if (c->end - c->p < 4) return fail(c, "a \\u escape needs 4 hex digits");
    unsigned int value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(c->p[i]);
        if (digit < 0) return fail(c, "a \\u escape needs 4 hex digits");
        value = value * 16 + (unsigned int)digit;
    }
    c->p += 4;
    *code_unit = value;
    return 1;
}

static size_t put_utf8(char *out, unsigned int point) {
    if (point < 0x80) {
        out[0] = (char)point;
        return 1;
    }
    if (point < 0x800) {
        out[0] = (char)(0xC0 | (point >> 6));
        out[1] = (char)(0x80 | (point & 0x3F));
        return 2;
    }
    if (point < 0x10000) {
        out[0] = (char)(0xE0 | (point >> 12));
        out[1] = (char)(0x80 | ((point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (point >> 18));
    out[1] = (char)(0x80 | ((point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (point & 0x3F));
    return 4;
}

/* A \u escape (c->p after the 'u'), joined with a following low surrogate when it is a high one.
 * Lone surrogates are valid JSON but not Unicode; they decode as U+FFFD. */
static int read_unicode_escape(cursor *c, unsigned int *point) {
    unsigned int unit;
    if (!read_hex4(c, &unit)) return 0;
    *point = unit;
    if (unit >= 0xDC00 && unit <= 0xDFFF) *point = 0xFFFD;
    if (unit >= 0xD800 && unit <= 0xDBFF) {
        *point = 0xFFFD;
        if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
            cursor ahead = *c;
            ahead.p += 2;
            unsigned int low;
            if (read_hex4(&ahead, &low) && low >= 0xDC00 && low <= 0xDFFF) {
                *point = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                c->p = ahead.p;
            }
        }
    }
    return 1;
}

/* Reads a string (c->p at its opening quote). With out, writes the unescaped UTF-8 there: never
 * longer than the escaped text, so a buffer of the text's length is enough. */
static int read_string(cursor *c, char *out, size_t *out_length) {
    size_t n = 0;
    c->p++;
    for (;;) {
        if (c->p >= c->end) return fail(c, "a string is not closed");
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            break;
        }
        if (ch < 0x20) return fail(c, "a control character in a string must be escaped");
        if (ch != '\\') {
            if (out) out[n] = (char)ch;
            n++;
            c->p++;
            continue;
        }
        c->p++;
        if (c->p >= c->end) return fail(c, "a string is not closed");
        char escape = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", escape);
        if (escape != '\0' && simple != NULL) {
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            if (out) out[n] = decoded[simple - "\"\\/bfnrt"];
            n++;
        } else if (escape == 'u') {
            unsigned int point;
            if (!read_unicode_escape(c, &point)) return 0;
            char bytes[4];
            size_t length = put_utf8(bytes, point);
            if (out) memcpy(out + n, bytes, length);
            n += length;
        } else {
            return fail(c, "an unknown escape in a string");
        }
    }
    if (out_length) *out_length = n;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Numbers
 */

/* One more digit of the significand. Up to 19 significant digits are kept (they fit in 64 bits);
 * further ones only move the decimal exponent. */
static void add_digit(uint64_t *significand, int *kept, int *exponent, int digit, int in_fraction) {
    if (*kept < 19) {
        *significand = *significand * 10 + (uint64_t)digit;
        if (*significand != 0) (*kept)++;
        if (in_fraction) (*exponent)--;
    } else if (!in_fraction) {
        (*exponent)++;
    }
}

/* Reads a number by the JSON grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. The value is
 * computed here rather than by strtod, which reads "4.5" as 4 under a locale with a decimal comma. */
static int read_number(cursor *c, double *value) {
    uint64_t significand = 0;
    int kept = 0, exponent = 0;
    int negative = at(c, '-');
    if (negative) c->p++;
    if (!is_digit(c)) return fail(c, "a number needs a digit");
    if (*c->p == '0') {
        c->p++;
    } else {
        while (is_digit(c)) add_digit(&significand, &kept, &exponent, *c->p++ - '0', 0);
    }
    if (at(c, '.')) {
        c->p++;
        if (!is_digit(c)) return fail(c, "a number needs a digit after the '.'");
        while (is_digit(c)) add_digit(&significand, &kept, &exponent, *c->p++ - '0', 1);
    }
    if (at(c, 'e') || at(c, 'E')) {
        c->p++;
        int exponent_negative = at(c, '-');
        if (at(c, '-') || at(c, '+')) c->p++;
        if (!is_digit(c)) return fail(c, "a number needs a digit in its exponent");
        int written = 0;
        while (is_digit(c)) {
            if (written < 100000) written = written * 10 + (*c->p - '0');
            c->p++;
        }
        exponent += exponent_negative ? -written : written;
    }
    // Exact for the usual numbers: a significand below 2^53 and a power of ten up to 1e22 are both
    // exact doubles, and one multiplication or division rounds once.
    double result = (double)significand;
    if (exponent > 0) result *= pow(10.0, exponent);
    if (exponent < 0) result /= pow(10.0, -exponent);
    if (value) *value = negative ? -result : result;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Values
 */

static int skip_literal(cursor *c, const char *word) {
    size_t length = strlen(word);
    if ((size_t)(c->end - c->p) < length || memcmp(c->p, word, length) != 0) return fail(c, "not a JSON value");
    c->p += length;
    return 1;
}

/* The members of an object or the elements of an array (c->p at the '{' or '['). */
static int skip_container(cursor *c, char close, int is_object) {
    if (++c->depth > MAX_DEPTH) return fail(c, "nested too deeply");
    c->p++;
    skip_space(c);
    if (at(c, close)) {
        c->p++;
        c->depth--;
        return 1;
    }
    for (;;) {
        if (is_object) {
            if (!at(c, '"')) return fail(c, "an object member needs a string key");
            if (!read_string(c, NULL, NULL)) return 0;
            skip_space(c);
            if (!at(c, ':')) return fail(c, "a ':' must follow an object key");
            c->p++;
            skip_space(c);
        }
        if (!skip_value(c)) return 0;
        skip_space(c);
        if (at(c, close)) break;
        if (!at(c, ',')) return fail(c, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        c->p++;
        skip_space(c);
    }
    c->p++;
    c->depth--;
    return 1;
}

static int skip_value(cursor *c) {
    if (c->p >= c->end) return fail(c, "a value is missing");
    switch (*c->p) {
    case '{': return skip_container(c, '}', 1);
    case '[': return skip_container(c, ']', 0);
    case '"': return read_string(c, NULL, NULL);
    case 't': return skip_literal(c, "true");
    case 'f': return skip_literal(c, "false");
    case 'n': return skip_literal(c, "null");
    case '-': return read_number(c, NULL);
    default: return is_digit(c) ? read_number(c, NULL) : fail(c, "not a JSON value");
    }
}

int recr1i_json_valid(const char *text, size_t length, size_t *error_offset, const char **reason) {
    cursor c = {text, text + length, NULL, 0};
    skip_space(&c);
    if (skip_value(&c)) {
        skip_space(&c);
        if (c.p == c.end) return 1;
        fail(&c, "text follows the value");
    }
    if (error_offset) *error_offset = (size_t)(c.p - text);
    if (reason) *reason = c.why;
    return 0;
}

int recr1_json_check(const char *json, size_t length, recr1_error *err) {
    recr1i_error_clear(err);
    if (json == NULL) return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "json", "no text (NULL)");
    size_t offset = 0;
    const char *why = NULL;
    if (recr1i_json_valid(json, length, &offset, &why)) return RECR1_OK;
    return recr1_error_set(err, RECR1_INVALID_ARGUMENT, "json", "not JSON (%s at offset %zu)", why, offset);
}

/* ------------------------------------------------------------------------------------------------
 * Member lookup
 */

/* Points *value at the member named key of the object json; the last one when the key repeats, as
 * Python's json module reads it. */
static int find_member(const char *json, const char *key, cursor *value) {
    if (json == NULL || key == NULL) return RECR1_INVALID_ARGUMENT;
    size_t length = strlen(json);
    if (!recr1i_json_valid(json, length, NULL, NULL)) return RECR1_INVALID_ARGUMENT;
    cursor c = {json, json + length, NULL, 0};
    skip_space(&c);
    if (!at(&c, '{')) return RECR1_INVALID_ARGUMENT;
    c.p++;
    skip_space(&c);
    // The text is valid JSON, so the walk below cannot fail; the keys are unescaped to compare them.
    char *name = malloc(length + 1);
    if (name == NULL) return RECR1_RESOURCE_EXHAUSTED;
    size_t key_length = strlen(key);
    int found = 0;
    while (at(&c, '"')) {
        size_t name_length = 0;
        read_string(&c, name, &name_length);
        skip_space(&c);
        c.p++; // ':'
        skip_space(&c);
        if (name_length == key_length && memcmp(name, key, key_length) == 0) {
            *value = c;
            found = 1;
        }
        skip_value(&c);
        skip_space(&c);
        if (at(&c, ',')) c.p++;
        skip_space(&c);
    }
    free(name);
    return found ? RECR1_OK : RECR1_NOT_FOUND;
}

int recr1_json_get_number(const char *json, const char *key, double *value) {
    cursor member;
    int status = find_member(json, key, &member);
    if (status != RECR1_OK) return status;
    if (at(&member, 'n')) return RECR1_NOT_FOUND; // null, as absent (the text is valid JSON)
    if (!(at(&member, '-') || is_digit(&member))) return RECR1_INVALID_ARGUMENT;
    return read_number(&member, value) ? RECR1_OK : RECR1_INVALID_ARGUMENT;
}

int recr1_json_get_string(const char *json, const char *key, char **value) {
    if (value == NULL) return RECR1_INVALID_ARGUMENT;
    *value = NULL;
    cursor member;
    int status = find_member(json, key, &member);
    if (status != RECR1_OK) return status;
    if (at(&member, 'n')) return RECR1_NOT_FOUND;
    if (!at(&member, '"')) return RECR1_INVALID_ARGUMENT;
    char *text = malloc((size_t)(member.end - member.p) + 1);
    if (text == NULL) return RECR1_RESOURCE_EXHAUSTED;
    size_t length = 0;
    read_string(&member, text, &length);
    text[length] = '\0';
    *value = text;
    return RECR1_OK;
}
