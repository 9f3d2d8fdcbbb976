/* The tests' small harness: checks that count and go on, a temporary directory, and the real
 * processes (recr1d, the example plugin) the tests start, stop and kill. */
#ifndef RECR1_TEST_HARNESS_H
#define RECR1_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "recr1.h"

/* Records a check; a failed one prints where and why, and the suite goes on. */
#define CHECK(condition, ...) harness_check((condition) != 0, #condition, __FILE__, __LINE__, __VA_ARGS__)
void harness_check(int ok, const char *expression, const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

/* Checks that a call failed with code and that its error says so (code, local, field). */
#define CHECK_ERROR(status, err, expected_code, expected_local, expected_field)                                       \
    harness_check_error((status), &(err), (expected_code), (expected_local), (expected_field), __FILE__, __LINE__)
void harness_check_error(int status, const recr1_error *err, int code, int local, const char *field, const char *file,
                         int line);

#define RUN(test) harness_run(#test, test)
void harness_run(const char *name, void (*test)(void));
/* Prints "<suite>: N checks, M failed" and returns the exit code. */
int harness_finish(const char *suite);

double harness_seconds(void);
void harness_sleep_ms(int milliseconds);
/* Scaled for slow runs (valgrind: RECR1_TEST_SLOW=1), for bounds on how long something may take. */
double harness_slack(double seconds);

/* A directory of this process, removed at exit with all it holds; and paths in it. */
const char *harness_dir(void);
void harness_path(char *out, size_t size, const char *name);
/* "ipc://<dir>/<name>.sock" */
void harness_ipc(char *out, size_t size, const char *name);
/* "tcp://127.0.0.1:<a free port>" and the port. */
int harness_free_port(void);
void harness_write_file(const char *path, const char *text);
int harness_file_contains(const char *path, const char *text);

/* Starts argv with stdout and stderr in log_path; killed at exit if still running. */
pid_t harness_spawn(char *const argv[], const char *log_path);
/* SIGTERM, then up to timeout_ms for the exit (SIGKILL after). Returns the exit code, or 128 + the
 * signal that ended it. */
int harness_stop(pid_t pid, int timeout_ms);
/* Waits up to timeout_ms for the process to end by itself; its exit code, or -1 (then killed). */
int harness_wait_exit(pid_t pid, int timeout_ms);
void harness_kill(pid_t pid);
int harness_running(pid_t pid);
void harness_print_log(const char *path);

/* $RECR1D; a suite that needs recr1d fails at once, with a clear message, without it. */
const char *harness_recr1d(void);
/* recr1d serve --listen address [extra...], ready (Health answers) within timeout_ms, else -1. */
pid_t harness_start_recr1d(const char *address, const char *const extra[], const char *token, const char *log_path,
                           int timeout_ms);
/* Polls until a client can connect to address and call Health (recr1d) or connect (a plugin). */
int harness_wait_health(const char *address, const char *token, pid_t pid, int timeout_ms);
int harness_wait_listening(const char *address, pid_t pid, int timeout_ms);

#endif
