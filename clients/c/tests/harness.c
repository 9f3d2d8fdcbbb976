#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int checks, failures;
static char directory[64];

/* The processes this suite started, and how they ended once reaped. */
typedef struct child {
    pid_t pid;
    int reaped;
    int status;
} child;
static child children[32];
static int n_children;

/* ------------------------------------------------------------------------------------------------
 * Checks
 */

void harness_check(int ok, const char *expression, const char *file, int line, const char *format, ...) {
    checks++;
    if (ok) return;
    failures++;
    fprintf(stderr, "%s:%d: FAILED %s: ", file, line, expression);
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

void harness_check_error(int status, const recr1_error *err, int code, int local, const char *field, const char *file,
                         int line) {
    harness_check(status == code && err->code == code, "status == code", file, line, "expected %s, got %s (%s: %s)",
                  recr1_code_name(code), recr1_code_name(status), recr1_code_name(err->code), err->message);
    harness_check(err->local == local, "err.local", file, line, "expected local=%d for '%s'", local, err->message);
    if (field != NULL) {
        harness_check(strcmp(err->field, field) == 0, "err.field", file, line, "expected field '%s', got '%s' (%s)",
                      field, err->field, err->message);
    }
    harness_check(err->message[0] != '\0', "err.message", file, line, "an error needs a message");
}

double harness_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

void harness_sleep_ms(int milliseconds) {
    struct timespec wait = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
    while (nanosleep(&wait, &wait) != 0 && errno == EINTR) {
    }
}

double harness_slack(double seconds) { return getenv("RECR1_TEST_SLOW") ? seconds * 5 : seconds; }

/* A test that hangs must not hang the build: after the alarm, the suite kills what it started and
 * fails. Only async-signal-safe calls here. */
static const char *current_test = "";
static void on_alarm(int signal_number) {
    (void)signal_number;
    const char *what = "\nTIMEOUT: a test hung: ";
    ssize_t ignored = write(2, what, strlen(what));
    ignored = write(2, current_test, strlen(current_test));
    ignored = write(2, "\n", 1);
    (void)ignored;
    for (int i = 0; i < n_children; i++) {
        if (!children[i].reaped) kill(children[i].pid, SIGKILL);
    }
    _exit(1);
}

void harness_run(const char *name, void (*test)(void)) {
    int before = failures;
    double start = harness_seconds();
    current_test = name;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)harness_slack(120));
    test();
    alarm(0);
    fprintf(stderr, "  %-44s %s (%.2f s)\n", name, failures == before ? "ok" : "FAILED", harness_seconds() - start);
}

/* ------------------------------------------------------------------------------------------------
 * Files
 */

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw) {
    (void)info, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    for (int i = 0; i < n_children; i++) {
        if (!children[i].reaped) harness_kill(children[i].pid);
    }
    if (directory[0]) nftw(directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *harness_dir(void) {
    if (directory[0] == '\0') {
        // Short, for ipc paths (at most 107 bytes).
        snprintf(directory, sizeof directory, "/tmp/recr1-c-XXXXXX");
        if (mkdtemp(directory) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup);
    }
    return directory;
}

void harness_path(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", harness_dir(), name); }

void harness_ipc(char *out, size_t size, const char *name) {
    snprintf(out, size, "ipc://%s/%s.sock", harness_dir(), name);
}

int harness_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&address, sizeof address) == 0 &&
        getsockname(fd, (struct sockaddr *)&address, &length) == 0) {
        port = ntohs(address.sin_port);
    }
    if (fd >= 0) close(fd);
    return port;
}

void harness_write_file(const char *path, const char *text) {
    FILE *file = fopen(path, "w");
    if (file == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, file);
    fclose(file);
}

int harness_file_contains(const char *path, const char *text) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return 0;
    static char buffer[1 << 20];
    size_t n = fread(buffer, 1, sizeof buffer - 1, file);
    buffer[n] = '\0';
    fclose(file);
    return strstr(buffer, text) != NULL;
}

void harness_print_log(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return;
    fprintf(stderr, "---- %s\n", path);
    char line[1024];
    while (fgets(line, sizeof line, file)) fputs(line, stderr);
    fprintf(stderr, "----\n");
    fclose(file);
}

/* ------------------------------------------------------------------------------------------------
 * Processes
 */

pid_t harness_spawn(char *const argv[], const char *log_path) {
    harness_dir();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    int rv = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rv != 0) {
        fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(rv));
        return -1;
    }
    if (n_children < (int)(sizeof children / sizeof children[0])) {
        child started = {pid, 0, 0};
        children[n_children++] = started;
    }
    return pid;
}

static child *find_child(pid_t pid) {
    for (int i = 0; i < n_children; i++) {
        if (children[i].pid == pid) return &children[i];
    }
    return NULL;
}

/* 1 once pid has ended (reaping it, and keeping its status); with block, waits for that. */
static int reap(pid_t pid, int block) {
    child *c = find_child(pid);
    if (c == NULL) return 1;
    if (c->reaped) return 1;
    if (waitpid(pid, &c->status, block ? 0 : WNOHANG) == pid) c->reaped = 1;
    return c->reaped;
}

static int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

int harness_stop(pid_t pid, int timeout_ms) {
    child *c = find_child(pid);
    if (c == NULL) return -1;
    if (!c->reaped) kill(pid, SIGTERM);
    double deadline = harness_seconds() + timeout_ms / 1000.0;
    while (!reap(pid, 0)) {
        if (harness_seconds() > deadline) {
            fprintf(stderr, "process %d did not stop within %d ms: killing it\n", (int)pid, timeout_ms);
            kill(pid, SIGKILL);
            reap(pid, 1);
            break;
        }
        harness_sleep_ms(10);
    }
    return exit_code(c->status);
}

int harness_wait_exit(pid_t pid, int timeout_ms) {
    child *c = find_child(pid);
    if (c == NULL) return -1;
    double deadline = harness_seconds() + timeout_ms / 1000.0;
    while (!reap(pid, 0)) {
        if (harness_seconds() > deadline) {
            harness_kill(pid);
            return -1;
        }
        harness_sleep_ms(10);
    }
    return exit_code(c->status);
}

void harness_kill(pid_t pid) {
    if (reap(pid, 0)) return;
    kill(pid, SIGKILL);
    reap(pid, 1);
}

int harness_running(pid_t pid) { return !reap(pid, 0); }

const char *harness_recr1d(void) {
    const char *path = getenv("RECR1D");
    if (path == NULL || access(path, X_OK) != 0) {
        fprintf(stderr, "FAILED: recr1d is not at RECR1D=%s: build it (scripts/build.sh) or set RECR1D\n",
                path ? path : "(unset)");
        exit(1);
    }
    return path;
}

int harness_wait_health(const char *address, const char *token, pid_t pid, int timeout_ms) {
    recr1_client_options options = {token, 2000, 0};
    double deadline = harness_seconds() + timeout_ms / 1000.0;
    while (harness_seconds() < deadline) {
        if (pid > 0 && !harness_running(pid)) return 0;
        recr1_client *client = NULL;
        recr1_health_result *health = NULL;
        int ok = recr1_client_open(&client, address, &options, NULL) == RECR1_OK &&
                 recr1_health(client, &health, NULL) == RECR1_OK && health->status == RECR1_SERVING;
        recr1_health_result_free(health);
        recr1_client_close(client);
        if (ok) return 1;
        harness_sleep_ms(20);
    }
    return 0;
}

int harness_wait_listening(const char *address, pid_t pid, int timeout_ms) {
    double deadline = harness_seconds() + timeout_ms / 1000.0;
    while (harness_seconds() < deadline) {
        if (pid > 0 && !harness_running(pid)) return 0;
        recr1_client *client = NULL;
        int ok = recr1_client_open(&client, address, NULL, NULL) == RECR1_OK;
        recr1_client_close(client);
        if (ok) return 1;
        harness_sleep_ms(20);
    }
    return 0;
}

pid_t harness_start_recr1d(const char *address, const char *const extra[], const char *token, const char *log_path,
                           int timeout_ms) {
    const char *argv[24] = {harness_recr1d(), "serve", "--listen", address};
    int argc = 4;
    for (int i = 0; extra != NULL && extra[i] != NULL && argc < 23; i++) argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = harness_spawn((char *const *)argv, log_path);
    if (pid < 0) return -1;
    if (!harness_wait_health(address, token, pid, timeout_ms)) {
        fprintf(stderr, "recr1d did not become ready on %s\n", address);
        harness_print_log(log_path);
        harness_kill(pid);
        return -1;
    }
    return pid;
}

int harness_finish(const char *suite) {
    fprintf(stderr, "%s: %d checks, %d failed\n", suite, checks, failures);
    return failures == 0 ? 0 : 1;
}
