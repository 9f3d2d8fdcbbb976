/* The JSON helpers: what is JSON and what is not (hostile input included), and member lookup. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int is_json(const char *text) { return recr1_json_check(text, strlen(text), NULL) == RECR1_OK; }

static void test_valid_texts_are_accepted(void) {
    const char *valid[] = {
        "{}", "[]", "\"\"", "0", "-0", "-0.5e+3", "1E-2", "true", "false", "null", " \t\r\n{} \n",
        "{\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\\ud83d\\ude00\", \"d\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "[[[[[[[[[[1]]]]]]]]]]", "12345678901234567890123456789",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) CHECK(is_json(valid[i]), "'%s' is JSON", valid[i]);
}

static void test_invalid_texts_are_refused(void) {
    const char *invalid[] = {
        "", "   ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "01", "1.", ".5", "+1", "-",
        "1e", "1e+", "\"\x01\"", "\"\\q\"", "\"abc", "\"\\u12\"", "\"\\u12g4\"", "tru", "nul", "{} {}", "NaN",
        "Infinity", "'a'", "{a: 1}", "[\"a\" \"b\"]", "{\"a\" 1}", "\"\\",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        CHECK(!is_json(invalid[i]), "'%s' is not JSON", invalid[i]);
    }
}

static void test_errors_say_where_and_why(void) {
    recr1_error err;
    const char *text = "{\"a\": [1, 2,]}";
    int status = recr1_json_check(text, strlen(text), &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "json");
    CHECK(strstr(err.message, "offset 12") != NULL, "the offset of the bad ']': %s", err.message);
    status = recr1_json_check(NULL, 0, &err);
    CHECK_ERROR(status, err, RECR1_INVALID_ARGUMENT, 1, "json");
}

/* A million '[' would overflow the stack of a naive recursive parser. */
static void test_deep_nesting_is_refused_not_recursed(void) {
    size_t n = 1000000;
    char *text = malloc(n + 1);
    memset(text, '[', n);
    text[n] = '\0';
    recr1_error err;
    CHECK(recr1_json_check(text, n, &err) == RECR1_INVALID_ARGUMENT, "refused");
    CHECK(strstr(err.message, "nested too deeply") != NULL, "%s", err.message);
    double value;
    CHECK(recr1_json_get_number(text, "a", &value) == RECR1_INVALID_ARGUMENT, "lookup in it refused");
    free(text);
    // 200 levels are fine.
    char nested[512];
    memset(nested, '[', 200);
    memset(nested + 200, ']', 200);
    nested[400] = '\0';
    CHECK(is_json(nested), "200 levels");
}

/* The length bounds the text: a NUL-free buffer must not be read past its end. */
static void test_check_stays_within_length(void) {
    char buffer[4] = {'[', '1', ',', '2'}; // no terminating NUL
    CHECK(recr1_json_check(buffer, sizeof buffer, NULL) == RECR1_INVALID_ARGUMENT, "unclosed array");
    char number[2] = {'4', '2'};
    CHECK(recr1_json_check(number, sizeof number, NULL) == RECR1_OK, "42 without a NUL");
}

static void test_numbers_are_read_exactly(void) {
    struct {
        const char *json;
        double expected;
    } cases[] = {
        {"{\"rating\": 4}", 4.0},
        {"{\"rating\": -1.25e1}", -12.5},
        {"{\"rating\": 0.1}", 0.1},
        {"{\"rating\": 4.5}", 4.5},
        {"{\"rating\": 1E2}", 100.0},
        {"{\"rating\": 0}", 0.0},
        {"{\"rating\": 3.0000000000000000000001}", 3.0},
        {"{\"rating\": 0.000000000000000000001234}", 1.234e-21},
        {"{\"rating\": 12345678901234567890123}", 1.2345678901234568e22},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double value = -999;
        int status = recr1_json_get_number(cases[i].json, "rating", &value);
        double tolerance = fabs(cases[i].expected) * 1e-15;
        CHECK(status == RECR1_OK && fabs(value - cases[i].expected) <= tolerance, "%s -> %.17g (status %d)",
              cases[i].json, value, status);
    }
}

static void test_member_lookup(void) {
    double value = 0;
    CHECK(recr1_json_get_number("{\"r\": 1, \"rating\": 2, \"rating\": 3}", "rating", &value) == RECR1_OK && value == 3,
          "the last of repeated keys wins, as in Python: %g", value);
    CHECK(recr1_json_get_number("{\"ra\\u0074ing\": 5}", "rating", &value) == RECR1_OK && value == 5,
          "escaped keys are unescaped before comparing");
    CHECK(recr1_json_get_number("{\"a\": {\"rating\": 1}}", "rating", &value) == RECR1_NOT_FOUND, "top level only");
    CHECK(recr1_json_get_number("{\"x\": 1}", "rating", &value) == RECR1_NOT_FOUND, "absent");
    CHECK(recr1_json_get_number("{}", "rating", &value) == RECR1_NOT_FOUND, "empty object");
    CHECK(recr1_json_get_number("{\"rating\": \"4\"}", "rating", &value) == RECR1_INVALID_ARGUMENT, "a string");
    CHECK(recr1_json_get_number("{\"rating\": null}", "rating", &value) == RECR1_NOT_FOUND, "null reads as absent");
    CHECK(recr1_json_get_number("{\"rating\": true}", "rating", &value) == RECR1_INVALID_ARGUMENT, "a boolean");
    CHECK(recr1_json_get_number("[1]", "rating", &value) == RECR1_INVALID_ARGUMENT, "not an object");
    CHECK(recr1_json_get_number("{\"rating\": 4", "rating", &value) == RECR1_INVALID_ARGUMENT, "not JSON");
    CHECK(recr1_json_get_number(NULL, "rating", &value) == RECR1_INVALID_ARGUMENT, "NULL text");
    CHECK(recr1_json_get_number("{}", NULL, &value) == RECR1_INVALID_ARGUMENT, "NULL key");
}

static void test_strings_are_unescaped(void) {
    char *value = NULL;
    int status = recr1_json_get_string("{\"target\": \"Pa\\\"ris\\n\\u00e9\\ud83d\\ude00/\"}", "target", &value);
    CHECK(status == RECR1_OK && value && strcmp(value, "Pa\"ris\n\xc3\xa9\xf0\x9f\x98\x80/") == 0, "got '%s'",
          value ? value : "(null)");
    recr1_free(value);
    status = recr1_json_get_string("{\"t\": \"\\ud800x\"}", "t", &value);
    CHECK(status == RECR1_OK && value && strcmp(value, "\xef\xbf\xbdx") == 0, "a lone surrogate reads as U+FFFD");
    recr1_free(value);
    status = recr1_json_get_string("{\"t\": \"caf\xc3\xa9\"}", "t", &value);
    CHECK(status == RECR1_OK && value && strcmp(value, "caf\xc3\xa9") == 0, "raw UTF-8 passes through");
    recr1_free(value);
    value = (char *)1;
    CHECK(recr1_json_get_string("{\"t\": 5}", "t", &value) == RECR1_INVALID_ARGUMENT && value == NULL,
          "a number is not a string, and the out value is cleared");
    CHECK(recr1_json_get_string("{\"t\": \"x\"}", "t", NULL) == RECR1_INVALID_ARGUMENT, "NULL out");
    CHECK(recr1_json_get_string("{\"t\": null}", "t", &value) == RECR1_NOT_FOUND && value == NULL, "null");
}

int main(void) {
    RUN(test_valid_texts_are_accepted);
    RUN(test_invalid_texts_are_refused);
    RUN(test_errors_say_where_and_why);
    RUN(test_deep_nesting_is_refused_not_recursed);
    RUN(test_check_stays_within_length);
    RUN(test_numbers_are_read_exactly);
    RUN(test_member_lookup);
    RUN(test_strings_are_unescaped);
    return harness_finish("test_json");
}
