// The machine's floor, measured by tools/bench at the start of every run.
//
//   floor [ROUND_TRIPS [FAULT_PAGES [MEMCPY_MIB]]]
//
// Four numbers that bound what any FUSE daemon can reach on this machine:
//
//   pipe round trip, same CPU   Two processes pinned to one CPU pass a byte
//                               back and forth over two pipes.  A round trip
//                               is two context switches with a wake-up each,
//                               the same work as one synchronous FUSE request
//                               whose caller and server share a CPU.
//   pipe round trip, cross CPU  The same with the processes pinned to two
//                               different CPUs: two cross-CPU wake-ups (IPIs,
//                               idle exits) per round trip, like a FUSE
//                               request served on another CPU than the
//                               caller's.  Absent on a one-CPU machine.
//   first-touch page fault      mmap of FAULT_PAGES anonymous pages (THP off
//                               for the range), one write per page: the cost
//                               of a fault that allocates and zeroes a page.
//   memcpy bandwidth            memcpy between two pre-faulted MEMCPY_MIB
//                               buffers (bigger than the caches).
//
// Each is measured in 7 batches (a ping-pong batch stops after ROUND_TRIPS
// or 60 ms, whichever comes first); the median, best and worst batch are
// printed as one JSON object on stdout.  Defaults: 2000 round trips, 8192
// pages, 64 MiB.  Exit status is non-zero when a system call
// fails.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kBatches = 7 };
static const uint64_t kBatchNs = 60 * 1000 * 1000;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// Sorts v and returns its median.
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static void full_read(int fd, char *c) {
  for (;;) {
    ssize_t n = read(fd, c, 1);
    if (n == 1) return;
    if (n < 0 && errno == EINTR) continue;
    die("read from pipe");
  }
}

static void full_write(int fd, const char *c) {
  for (;;) {
    ssize_t n = write(fd, c, 1);
    if (n == 1) return;
    if (n < 0 && errno == EINTR) continue;
    die("write to pipe");
  }
}

// Pipe ping-pong between this process on cpu_a and a child on cpu_b.
// Fills per-batch microseconds per round trip into us[kBatches] and adds
// the round trips timed to *done.
static void ping_pong(int cpu_a, int cpu_b, long trips, double *us, long *done) {
  int there[2], back[2];
  if (pipe(there) != 0 || pipe(back) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    pin(cpu_b);
    close(there[1]);
    close(back[0]);
    char c;
    for (;;) {
      ssize_t n = read(there[0], &c, 1);
      if (n == 0) _exit(0);
      if (n < 0) {
        if (errno == EINTR) continue;
        _exit(1);
      }
      full_write(back[1], &c);
    }
  }
  pin(cpu_a);
  close(there[0]);
  close(back[1]);
  char c = 'k';
  for (long i = 0; i < 200; i++) {  // warm-up: both sides settled
    full_write(there[1], &c);
    full_read(back[0], &c);
  }
  for (int b = 0; b < kBatches; b++) {
    uint64_t t0 = now_ns(), t = t0;
    long i = 0;
    // A batch ends after `trips` round trips or kBatchNs, whichever is
    // first, so a loaded machine does not stretch the run.
    while (i < trips && t - t0 < kBatchNs) {
      full_write(there[1], &c);
      full_read(back[0], &c);
      if (++i % 16 == 0) t = now_ns();
    }
    us[b] = (double)(now_ns() - t0) / 1e3 / (double)i;
    *done += i;
  }
  close(there[1]);
  close(back[0]);
  int status;
  if (waitpid(child, &status, 0) < 0) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "floor: ping-pong child failed\n");
    exit(1);
  }
}

static void page_faults(long pages, double *us) {
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (size_t)pages * (size_t)page;
  for (int b = 0; b < kBatches; b++) {
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    // Without THP one fault maps one base page, which is what a fresh
    // per-request buffer costs.
    madvise(p, len, MADV_NOHUGEPAGE);
    uint64_t t0 = now_ns();
    for (long i = 0; i < pages; i++) ((volatile char *)p)[(size_t)i * (size_t)page] = 1;
    us[b] = (double)(now_ns() - t0) / 1e3 / (double)pages;
    if (munmap(p, len) != 0) die("munmap");
  }
}

static void copy_bandwidth(long mib, double *mbps) {
  size_t len = (size_t)mib << 20;
  char *src = malloc(len), *dst = malloc(len);
  if (!src || !dst) die("malloc");
  memset(src, 'k', len);
  memset(dst, 0, len);
  memcpy(dst, src, len);  // warm-up
  for (int b = 0; b < kBatches; b++) {
    uint64_t t0 = now_ns();
    memcpy(dst, src, len);
    uint64_t ns = now_ns() - t0;
    // Read the copy back so the compiler keeps it.
    if (((volatile char *)dst)[len - 1 - (size_t)b] != 'k') {
      fprintf(stderr, "floor: memcpy produced wrong data\n");
      exit(1);
    }
    mbps[b] = (double)len / ((double)ns / 1e9) / 1e6;
  }
  free(src);
  free(dst);
}

static void print_stat(const char *name, const char *unit, double *v, int best_is_max) {
  double lo = v[0], hi = v[0];
  for (int i = 1; i < kBatches; i++) {
    if (v[i] < lo) lo = v[i];
    if (v[i] > hi) hi = v[i];
  }
  printf("\"%s\": {\"median\": %.4f, \"best\": %.4f, \"worst\": %.4f, \"unit\": \"%s\"", name,
         median(v, kBatches), best_is_max ? hi : lo, best_is_max ? lo : hi, unit);
}

int main(int argc, char **argv) {
  long trips = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
  long pages = argc > 2 ? strtol(argv[2], NULL, 10) : 8192;
  long mib = argc > 3 ? strtol(argv[3], NULL, 10) : 64;
  if (trips <= 0 || pages <= 0 || mib <= 0) {
    fprintf(stderr, "usage: %s [ROUND_TRIPS [FAULT_PAGES [MEMCPY_MIB]]]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  // The CPUs this process may use; the first two are used.
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) die("sched_getaffinity");
  int cpus[2] = {-1, -1}, ncpus = 0;
  for (int c = 0; c < CPU_SETSIZE && ncpus < 2; c++)
    if (CPU_ISSET(c, &allowed)) cpus[ncpus++] = c;
  if (ncpus == 0) {
    fprintf(stderr, "floor: no CPU in the affinity mask\n");
    return 1;
  }

  double same[kBatches], cross[kBatches], fault[kBatches], copy[kBatches];
  long same_done = 0, cross_done = 0;
  ping_pong(cpus[0], cpus[0], trips, same, &same_done);
  if (ncpus > 1) ping_pong(cpus[0], cpus[1], trips, cross, &cross_done);
  // Faults and copies on the first CPU too, so they do not migrate.
  page_faults(pages, fault);
  copy_bandwidth(mib, copy);

  printf("{");
  print_stat("pipe_rtt_same_cpu", "us", same, 0);
  printf(", \"cpus\": [%d, %d], \"round_trips\": %ld}, ", cpus[0], cpus[0], same_done);
  if (ncpus > 1) {
    print_stat("pipe_rtt_cross_cpu", "us", cross, 0);
    printf(", \"cpus\": [%d, %d], \"round_trips\": %ld}, ", cpus[0], cpus[1], cross_done);
  } else {
    printf("\"pipe_rtt_cross_cpu\": null, ");
  }
  print_stat("page_fault", "us", fault, 0);
  printf(", \"pages\": %ld, \"page_bytes\": %ld}, ", pages * kBatches, sysconf(_SC_PAGESIZE));
  print_stat("memcpy", "MB/s", copy, 1);
  printf(", \"bytes\": %zu}, \"batches\": %d}\n", (size_t)mib << 20, kBatches);
  return 0;
}
