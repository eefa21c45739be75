// Metadata micro-benchmark used by tools/bench.
//
//   metaops PHASE DIR COUNT [FILE_BYTES]
//
// PHASE is one of:
//   create   openat(O_CREAT|O_EXCL) + write FILE_BYTES + close, COUNT files
//   stat     fstatat() of every file (the caller drops caches first)
//   readdir  getdents64() over the whole directory, 3 passes
//   unlink   unlinkat() of every file
//
// Every operation is timed with CLOCK_MONOTONIC; one JSON object is printed:
//   {"phase":..., "ops":N, "seconds":S, "lat_mean_ns":M, "lat_p99_ns":P}
// For readdir "ops" counts directory entries and the latencies are per
// getdents64 call.  Exit status is non-zero on the first failing call.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void name_of(char *buf, size_t len, long i) {
  snprintf(buf, len, "f%07ld", i);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s create|stat|readdir|unlink DIR COUNT [FILE_BYTES]\n", argv[0]);
    return 2;
  }
  const char *phase = argv[1];
  const char *dir = argv[2];
  long count = strtol(argv[3], NULL, 10);
  long fbytes = argc > 4 ? strtol(argv[4], NULL, 10) : 1024;
  if (count <= 0 || fbytes < 0) {
    fprintf(stderr, "metaops: bad COUNT or FILE_BYTES\n");
    return 2;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0) {
    fprintf(stderr, "metaops: open %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char *data = malloc(fbytes ? (size_t)fbytes : 1);
  memset(data, 'k', fbytes ? (size_t)fbytes : 1);
  size_t cap = (size_t)count + 16;
  uint64_t *lat = malloc(cap * sizeof(uint64_t));
  size_t nlat = 0;
  long ops = 0;
  char name[64];
  uint64_t t0 = now_ns();

  if (!strcmp(phase, "create")) {
    for (long i = 0; i < count; i++) {
      name_of(name, sizeof name, i);
      uint64_t a = now_ns();
      int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) { fprintf(stderr, "metaops: create %s: %s\n", name, strerror(errno)); return 1; }
      if (fbytes && write(fd, data, (size_t)fbytes) != fbytes) {
        fprintf(stderr, "metaops: write %s: %s\n", name, strerror(errno)); return 1;
      }
      if (close(fd) < 0) { fprintf(stderr, "metaops: close %s: %s\n", name, strerror(errno)); return 1; }
      lat[nlat++] = now_ns() - a;
      ops++;
    }
  } else if (!strcmp(phase, "stat")) {
    struct stat st;
    for (long i = 0; i < count; i++) {
      name_of(name, sizeof name, i);
      uint64_t a = now_ns();
      if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        fprintf(stderr, "metaops: stat %s: %s\n", name, strerror(errno)); return 1;
      }
      lat[nlat++] = now_ns() - a;
      ops++;
    }
  } else if (!strcmp(phase, "readdir")) {
    static char buf[32768];
    for (int pass = 0; pass < 3; pass++) {
      int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) { fprintf(stderr, "metaops: opendir: %s\n", strerror(errno)); return 1; }
      for (;;) {
        uint64_t a = now_ns();
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        uint64_t d = now_ns() - a;
        if (n < 0) { fprintf(stderr, "metaops: getdents64: %s\n", strerror(errno)); return 1; }
        if (n == 0) break;
        if (nlat == cap) { cap *= 2; lat = realloc(lat, cap * sizeof(uint64_t)); }
        lat[nlat++] = d;
        for (long off = 0; off < n;) {
          struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *e =
              (void *)(buf + off);
          if (strcmp(e->name, ".") && strcmp(e->name, "..")) ops++;
          off += e->reclen;
        }
      }
      close(fd);
    }
    if (ops != 3 * count) {
      fprintf(stderr, "metaops: readdir saw %ld entries, expected %ld\n", ops, 3 * count);
      return 1;
    }
  } else if (!strcmp(phase, "unlink")) {
    for (long i = 0; i < count; i++) {
      name_of(name, sizeof name, i);
      uint64_t a = now_ns();
      if (unlinkat(dfd, name, 0) < 0) {
        fprintf(stderr, "metaops: unlink %s: %s\n", name, strerror(errno)); return 1;
      }
      lat[nlat++] = now_ns() - a;
      ops++;
    }
  } else {
    fprintf(stderr, "metaops: unknown phase %s\n", phase);
    return 2;
  }
  uint64_t total = now_ns() - t0;
  double sum = 0;
  for (size_t i = 0; i < nlat; i++) sum += (double)lat[i];
  qsort(lat, nlat, sizeof(uint64_t), cmp_u64);
  uint64_t p99 = nlat ? lat[(size_t)((nlat - 1) * 0.99)] : 0;
  printf("{\"phase\": \"%s\", \"ops\": %ld, \"seconds\": %.9f, \"lat_mean_ns\": %.1f, \"lat_p99_ns\": %llu}\n",
         phase, ops, total / 1e9, nlat ? sum / (double)nlat : 0.0, (unsigned long long)p99);
  return 0;
}
