// The metadata storm of tests/fault/soak_test.cc, as a program that runs
// against any directory (tools/soak points it at a mounted kmfused):
// THREADS threads each loop create+write, stat, rename across directories,
// stat, mkdir, rmdir, unlink over 32 shared directories under DIR, until
// SECONDS have passed or SIGTERM/SIGINT arrives. Every 2 s, and at the end,
// STATUS_FILE is rewritten as "ops errors" (atomically, by rename). The
// first error goes to stderr; the exit status is 1 if any operation failed.
//
//   storm DIR THREADS SECONDS STATUS_FILE
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { kDirs = 32 };

static const char* root;
static atomic_int stop;
static atomic_ulong ops, errors;
static atomic_flag reported = ATOMIC_FLAG_INIT;

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&stop, 1);
}

static void fail(const char* what, const char* path) {
  int e = errno;
  atomic_fetch_add(&errors, 1);
  if (!atomic_flag_test_and_set(&reported)) {
    fprintf(stderr, "storm: first error: %s %s: %s\n", what, path, strerror(e));
  }
}

static void* loop(void* arg) {
  long id = (long)arg;
  char a[4096], b[4096], sub[4096];
  for (unsigned long i = 0; !atomic_load(&stop); i++) {
    snprintf(a, sizeof a, "%s/d%lu/t%ld-%lu", root, i % kDirs, id, i);
    snprintf(b, sizeof b, "%s/d%lu/r%ld-%lu", root, (i * 7 + 3) % kDirs, id, i);
    snprintf(sub, sizeof sub, "%s/d%lu/s%ld-%lu", root, (i + 5) % kDirs, id, i);
    size_t len = strlen(a);
    int fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      fail("create", a);
    } else {
      if (write(fd, a, len) != (ssize_t)len) fail("write", a);
      if (close(fd) != 0) fail("close", a);
    }
    struct stat st;
    if (stat(a, &st) != 0 || st.st_size != (off_t)len) fail("stat", a);
    if (rename(a, b) != 0) fail("rename", a);
    if (stat(b, &st) != 0) fail("stat", b);
    if (mkdir(sub, 0755) != 0) fail("mkdir", sub);
    if (rmdir(sub) != 0) fail("rmdir", sub);
    if (unlink(b) != 0) fail("unlink", b);
    atomic_fetch_add(&ops, 7);
  }
  return NULL;
}

static void report(const char* status) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", status);
  FILE* f = fopen(tmp, "w");
  if (f == NULL) return;
  fprintf(f, "%lu %lu\n", atomic_load(&ops), atomic_load(&errors));
  if (fclose(f) == 0) rename(tmp, status);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: storm DIR THREADS SECONDS STATUS_FILE\n");
    return 2;
  }
  root = argv[1];
  int threads = atoi(argv[2]);
  long seconds = atol(argv[3]);
  if (threads < 1 || threads > 256 || seconds < 1) {
    fprintf(stderr, "storm: THREADS must be 1..256 and SECONDS >= 1\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  char dir[4096];
  for (int i = 0; i < kDirs; i++) {
    snprintf(dir, sizeof dir, "%s/d%d", root, i);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "storm: mkdir %s: %s\n", dir, strerror(errno));
      return 2;
    }
  }
  pthread_t tids[256];
  for (long t = 0; t < threads; t++) {
    if (pthread_create(&tids[t], NULL, loop, (void*)t) != 0) {
      fprintf(stderr, "storm: pthread_create failed\n");
      return 2;
    }
  }
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int tick = 0; !atomic_load(&stop); tick++) {
    usleep(100 * 1000);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec >= seconds) atomic_store(&stop, 1);
    if (tick % 20 == 0) report(argv[4]);
  }
  for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
  // Everything the storm created was removed again: the directories must be empty.
  for (int i = 0; i < kDirs; i++) {
    snprintf(dir, sizeof dir, "%s/d%d", root, i);
    if (rmdir(dir) != 0) fail("rmdir (not empty after the storm?)", dir);
  }
  report(argv[4]);
  return atomic_load(&errors) == 0 ? 0 : 1;
}
