// kmfused's command line (daemon/options.h): every flag, every -o option,
// the values each accepts and refuses with a message naming the option, and
// --help. Pure parsing: nothing is mounted or opened.
#include "daemon/options.h"

#include <unistd.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/select.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmfuse {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

absl::StatusOr<CommandLine> Parse(std::initializer_list<std::string> args) {
  std::vector<std::string> argv = {"kmfused"};
  argv.insert(argv.end(), args);
  return ParseCommandLine(argv);
}

// Parses `kmfused src mnt -o <opts>`; fails the test if it does not parse.
CommandLine ParseOk(const std::string& opts) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-o", opts});
  EXPECT_TRUE(o.ok()) << "-o " << opts << ": " << o.status();
  return o.ok() ? *o : CommandLine{};
}

// The message of `kmfused src mnt -o <opts>`, which must be InvalidArgument.
std::string ParseError(const std::string& opts) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-o", opts});
  if (o.ok()) {
    ADD_FAILURE() << "-o " << opts << " parsed";
    return "";
  }
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << "-o " << opts;
  return std::string(o.status().message());
}

// --- positional arguments and flags ---

TEST(OptionsTest, SourceAndMountpointWithDefaults) {
  absl::StatusOr<CommandLine> o = Parse({"/srv/data", "/mnt/data"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->source, "/srv/data");
  EXPECT_EQ(o->server.mountpoint, "/mnt/data");
  EXPECT_EQ(o->fs.source, "/srv/data");
  EXPECT_EQ(o->server.fsname, "/srv/data");  // fsname defaults to SOURCE
  EXPECT_EQ(o->server.subtype, "kmfused");
  EXPECT_FALSE(o->server.allow_other);
  EXPECT_FALSE(o->server.default_permissions);
  EXPECT_FALSE(o->server.read_only);
  EXPECT_TRUE(o->server.nosuid);
  EXPECT_TRUE(o->server.nodev);
  EXPECT_FALSE(o->server.noexec);
  EXPECT_FALSE(o->server.noatime);
  EXPECT_FALSE(o->server.nonempty);
  EXPECT_EQ(o->server.transport, TransportKind::kAuto);
  EXPECT_EQ(o->server.queue_depth, 16u);
  EXPECT_EQ(o->server.max_write, 0u);  // kDefaultMaxWrite, shrinkable (select.h)
  EXPECT_EQ(o->server.max_background, 64u);
  EXPECT_EQ(o->server.zero_copy, -1);
  EXPECT_EQ(o->server.queue_sched, QueueSched::kIdle);
  EXPECT_FALSE(o->server.debug);
  EXPECT_FALSE(o->foreground);
  EXPECT_EQ(o->fs.cache, CacheMode::kAuto);
  EXPECT_FALSE(o->fs.writeback_cache);
  EXPECT_FALSE(o->fs.passthrough);
  EXPECT_FALSE(o->fs.readonly);
  EXPECT_TRUE(o->fs.posix_locks);
  EXPECT_TRUE(o->fs.flock_locks);
  EXPECT_EQ(o->fs.fd_budget, 0u);
  EXPECT_FALSE(o->fs.run_as_caller);
  EXPECT_FALSE(o->help);
  EXPECT_FALSE(o->version);
  EXPECT_FALSE(o->probe);
}

// 0: the server resolves it for the transport it picks (online CPUs for
// read and ring-read, min(4, CPUs) rings for the io_uring transports).
TEST(OptionsTest, ThreadsDefaultToTheTransportsOwnDefault) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server.threads, 0u);
}

TEST(OptionsTest, WrongNumberOfPositionalArguments) {
  for (auto args : std::vector<std::vector<std::string>>{{"kmfused"},
                                                         {"kmfused", "src"},
                                                         {"kmfused", "a", "b", "c"}}) {
    absl::StatusOr<CommandLine> o = ParseCommandLine(args);
    ASSERT_FALSE(o.ok()) << args.size();
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(o.status().message(), "expected SOURCE and MOUNTPOINT, got " +
                                        std::to_string(args.size() - 1) + " argument(s)");
  }
}

TEST(OptionsTest, HelpVersionAndProbeNeedNoPositionalArguments) {
  for (const char* flag : {"-h", "--help"}) {
    absl::StatusOr<CommandLine> o = Parse({flag});
    ASSERT_TRUE(o.ok()) << flag << ": " << o.status();
    EXPECT_TRUE(o->help) << flag;
  }
  for (const char* flag : {"-V", "--version"}) {
    absl::StatusOr<CommandLine> o = Parse({flag});
    ASSERT_TRUE(o.ok()) << flag << ": " << o.status();
    EXPECT_TRUE(o->version) << flag;
  }
  absl::StatusOr<CommandLine> o = Parse({"--probe"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->probe);
  // --help still wins over a bad positional count.
  o = Parse({"a", "b", "c", "--help"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->help);
}

TEST(OptionsTest, ForegroundDebugAndSingleThreadFlags) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-f"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->foreground);
  EXPECT_FALSE(o->server.debug);

  o = Parse({"src", "mnt", "-d"});  // -d implies -f
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->server.debug);
  EXPECT_TRUE(o->foreground);

  o = Parse({"-o", "debug", "src", "mnt"});  // -o debug does not
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->server.debug);
  EXPECT_FALSE(o->foreground);

  o = Parse({"src", "-s", "mnt"});  // libfuse's -s: accepted, changes nothing
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->source, "src");
  EXPECT_EQ(o->server.mountpoint, "mnt");
}

TEST(OptionsTest, UnknownFlagIsNamed) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-x"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status().message(), "unknown flag '-x' (see kmfused --help)");
  o = Parse({"--foreground", "src", "mnt"});
  ASSERT_FALSE(o.ok());
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("'--foreground'"));
}

// --- how -o lists are given ---

TEST(OptionsTest, OptionListSeparateJoinedRepeatedAndWithEmptyItems) {
  absl::StatusOr<CommandLine> o =
      Parse({"-o", "ro,noexec", "src", "-oqueue_depth=8", "mnt", "-o", ",,noatime,"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->server.read_only);
  EXPECT_TRUE(o->server.noexec);
  EXPECT_EQ(o->server.queue_depth, 8u);
  EXPECT_TRUE(o->server.noatime);
  EXPECT_EQ(o->source, "src");
  EXPECT_EQ(o->server.mountpoint, "mnt");
}

TEST(OptionsTest, MountFuse3OrderOptionsAfterPositionals) {
  // mount.fuse3 runs `kmfused SOURCE MOUNTPOINT -o opts` for fstab entries.
  absl::StatusOr<CommandLine> o = Parse({"/srv", "/mnt", "-o", "rw,nodev,nosuid,defaults"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_FALSE(o->server.read_only);
}

TEST(OptionsTest, DashOWithoutAListIsAnError) {
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-o"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(o.status().message(), "-o needs an option list");
}

TEST(OptionsTest, LaterOptionsOverrideEarlierOnes) {
  CommandLine o = ParseOk("ro,rw,queue_depth=2,queue_depth=3,transport=read,transport=uring");
  EXPECT_FALSE(o.server.read_only);
  EXPECT_FALSE(o.fs.readonly);
  EXPECT_EQ(o.server.queue_depth, 3u);
  EXPECT_EQ(o.server.transport, TransportKind::kUring);
}

TEST(OptionsTest, UnknownOptionIsNamedWithItsValue) {
  EXPECT_EQ(ParseError("bogus"), "unknown option 'bogus' (see kmfused --help)");
  EXPECT_EQ(ParseError("ro,bogus=1"), "unknown option 'bogus=1' (see kmfused --help)");
  // Prefixes and case variants of real options are not options.
  EXPECT_THAT(ParseError("queue"), HasSubstr("unknown option 'queue'"));
  EXPECT_THAT(ParseError("RO"), HasSubstr("unknown option 'RO'"));
}

TEST(OptionsTest, SourceOptionIsRefused) {
  EXPECT_EQ(ParseError("source=/etc"), "option source: give the source directory as SOURCE");
}

// --- daemon options ---

TEST(OptionsTest, TransportTakesAutoOrANameFromTheOrder) {
  EXPECT_EQ(ParseOk("transport=auto").server.transport, TransportKind::kAuto);
  for (TransportKind t : kTransportOrder) {
    EXPECT_EQ(ParseOk(std::string("transport=") + TransportName(t)).server.transport, t);
  }
  EXPECT_EQ(ParseOk("transport=ring-read").server.transport, TransportKind::kRingRead);
  EXPECT_EQ(ParseError("transport=fast"),
            "option transport=fast: expected auto, kmbuf, bufpool, uring, ring-read or read");
  EXPECT_THAT(ParseError("transport"), StartsWith("option transport=: expected auto"));
  EXPECT_THAT(ParseError("transport=READ"), StartsWith("option transport=READ: expected"));
}

// A numeric option: both ends of its range parse, one past each end and
// non-numbers are refused naming the option and the range; K and M suffixes
// multiply by 1024 and 1024*1024.
void ExpectRange(const std::string& key, uint64_t lo, uint64_t hi,
                 const std::function<uint64_t(const CommandLine&)>& get) {
  EXPECT_EQ(get(ParseOk(key + "=" + std::to_string(lo))), lo) << key;
  EXPECT_EQ(get(ParseOk(key + "=" + std::to_string(hi))), hi) << key;
  const std::string range = ": expected a number from " + std::to_string(lo) + " to " +
                            std::to_string(hi);
  for (const std::string& bad :
       {std::to_string(lo - 1), std::to_string(hi + 1), std::string("abc"), std::string(""),
        std::string("-1"), std::string("1.5"), std::string("K"), std::string("4G")}) {
    EXPECT_EQ(ParseError(key + "=" + bad), "option " + key + "=" + bad + range) << bad;
  }
}

TEST(OptionsTest, QueueDepthRange) {
  ExpectRange("queue_depth", 1, 4096,
              [](const CommandLine& o) { return uint64_t{o.server.queue_depth}; });
  EXPECT_EQ(ParseOk("queue_depth=4k").server.queue_depth, 4096u);
  EXPECT_EQ(ParseOk("queue_depth=1K").server.queue_depth, 1024u);
}

TEST(OptionsTest, ThreadsRange) {
  ExpectRange("threads", 1, 256,
              [](const CommandLine& o) { return uint64_t{o.server.threads}; });
}

TEST(OptionsTest, MaxWriteRangeAndSuffixes) {
  ExpectRange("max_write", 4096, 1u << 20,
              [](const CommandLine& o) { return uint64_t{o.server.max_write}; });
  EXPECT_EQ(ParseOk("max_write=4K").server.max_write, 4096u);
  EXPECT_EQ(ParseOk("max_write=128k").server.max_write, 128u * 1024);
  EXPECT_EQ(ParseOk("max_write=1M").server.max_write, 1u << 20);
  EXPECT_EQ(ParseOk("max_write=1m").server.max_write, 1u << 20);
  EXPECT_THAT(ParseError("max_write=2M"), HasSubstr("expected a number from 4096 to 1048576"));
  EXPECT_THAT(ParseError("max_write=3K"), HasSubstr("expected a number from 4096 to 1048576"));
}

// A number whose product with its suffix wraps around 2^64 must not land
// back inside the range: 2^54 + 16 kibibytes is 16 KiB modulo 2^64.
TEST(OptionsTest, SuffixOverflowIsRefusedNotWrapped) {
  EXPECT_THAT(ParseError("max_write=18014398509481988K"),
              HasSubstr("expected a number from 4096 to 1048576"));
  EXPECT_THAT(ParseError("queue_depth=17592186044417M"),  // 2^44 + 1 MiB: 1 MiB mod 2^64
              HasSubstr("expected a number from 1 to 4096"));
  EXPECT_THAT(ParseError("threads=18446744073709551617"),  // 2^64 + 1
              HasSubstr("expected a number from 1 to 256"));
}

TEST(OptionsTest, MaxBackgroundRange) {
  ExpectRange("max_background", 1, 65535,
              [](const CommandLine& o) { return uint64_t{o.server.max_background}; });
}

TEST(OptionsTest, ZeroCopyOnOrOff) {
  EXPECT_EQ(ParseOk("zero_copy=on").server.zero_copy, 1);
  EXPECT_EQ(ParseOk("zero_copy=off").server.zero_copy, 0);
  EXPECT_EQ(ParseError("zero_copy=yes"), "option zero_copy=yes: expected on or off");
  EXPECT_EQ(ParseError("zero_copy"), "option zero_copy=: expected on or off");
  EXPECT_EQ(ParseOk("queue_sched=normal").server.queue_sched, QueueSched::kNormal);
  EXPECT_EQ(ParseOk("queue_sched=idle").server.queue_sched, QueueSched::kIdle);
  EXPECT_EQ(ParseError("queue_sched=fifo"), "option queue_sched=fifo: expected idle or normal");
}

TEST(OptionsTest, DebugOption) {
  EXPECT_TRUE(ParseOk("debug").server.debug);
  EXPECT_EQ(ParseError("debug=1"), "option debug takes no value");
}

// --- mount options ---

TEST(OptionsTest, MountFlagPairs) {
  struct Pair {
    const char* on;
    const char* off;
    bool ServerOptions::*field;
  } pairs[] = {
      {"ro", "rw", &ServerOptions::read_only},
      {"nosuid", "suid", &ServerOptions::nosuid},
      {"nodev", "dev", &ServerOptions::nodev},
      {"noexec", "exec", &ServerOptions::noexec},
      {"noatime", "atime", &ServerOptions::noatime},
  };
  for (const Pair& p : pairs) {
    EXPECT_TRUE(ParseOk(std::string(p.off) + "," + p.on).server.*p.field) << p.on;
    EXPECT_FALSE(ParseOk(std::string(p.on) + "," + p.off).server.*p.field) << p.off;
    for (const char* key : {p.on, p.off}) {
      EXPECT_EQ(ParseError(std::string(key) + "=1"), std::string("option ") + key + " takes no value");
    }
  }
}

TEST(OptionsTest, ReadOnlyReachesTheFilesystemToo) {
  CommandLine o = ParseOk("ro");
  EXPECT_TRUE(o.server.read_only);
  EXPECT_TRUE(o.fs.readonly);
  o = ParseOk("ro,rw");
  EXPECT_FALSE(o.fs.readonly);
}

TEST(OptionsTest, SingleMountFlags) {
  EXPECT_TRUE(ParseOk("nonempty").server.nonempty);
  EXPECT_TRUE(ParseOk("default_permissions").server.default_permissions);
  EXPECT_FALSE(ParseOk("default_permissions").fs.run_as_caller);
  for (const char* key : {"nonempty", "default_permissions", "allow_other"}) {
    EXPECT_EQ(ParseError(std::string(key) + "=yes"), std::string("option ") + key + " takes no value");
  }
}

TEST(OptionsTest, AllowOtherImpliesDefaultPermissionsAndRunAsCaller) {
  CommandLine o = ParseOk("allow_other");
  EXPECT_TRUE(o.server.allow_other);
  EXPECT_TRUE(o.server.default_permissions);
  EXPECT_TRUE(o.fs.run_as_caller);
  // Even when run_as_caller is switched off explicitly: every user would
  // otherwise act with the daemon's credentials.
  o = ParseOk("run_as_caller=false,allow_other");
  EXPECT_TRUE(o.fs.run_as_caller);
  o = ParseOk("allow_other,run_as_caller=no");
  EXPECT_TRUE(o.fs.run_as_caller);
}

TEST(OptionsTest, FsnameAndSubtype) {
  CommandLine o = ParseOk("fsname=backup,subtype=mirror");
  EXPECT_EQ(o.server.fsname, "backup");
  EXPECT_EQ(o.server.subtype, "mirror");
  EXPECT_EQ(o.source, "src");  // fsname does not change the source
  EXPECT_EQ(ParseError("fsname="), "option fsname needs a non-empty value without commas");
  EXPECT_EQ(ParseError("fsname"), "option fsname needs a non-empty value without commas");
}

TEST(OptionsTest, FstabAndSystemdOptionsAreAcceptedAndIgnored) {
  CommandLine plain = ParseOk("ro");
  for (const char* opt :
       {"defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev", "relatime",
        "strictatime", "sync", "async", "comment=systemd.automount", "x-systemd.automount",
        "x-systemd.device-timeout=10", "x-gvfs-show"}) {
    CommandLine o = ParseOk(std::string("ro,") + opt);
    EXPECT_EQ(o.server.transport, plain.server.transport) << opt;  // "auto" is mount(8)'s
    EXPECT_TRUE(o.server.read_only) << opt;
  }
  // Only the patterns: neighbours of ignored options are still unknown.
  for (const char* opt : {"commentary=1", "x", "xsystemd", "default", "_netdevs"}) {
    EXPECT_THAT(ParseError(opt), StartsWith("unknown option '")) << opt;
  }
}

// --- passthrough filesystem options (parsed by fs/passthrough.cc) ---

TEST(OptionsTest, CacheModes) {
  EXPECT_EQ(ParseOk("cache=none").fs.cache, CacheMode::kNone);
  EXPECT_EQ(ParseOk("cache=always,cache=auto").fs.cache, CacheMode::kAuto);
  EXPECT_EQ(ParseOk("cache=always").fs.cache, CacheMode::kAlways);
  EXPECT_EQ(ParseError("cache=sometimes"),
            "option cache: expected none, auto or always, got 'sometimes'");
}

TEST(OptionsTest, BooleanFilesystemOptions) {
  struct Bool {
    const char* key;
    bool PassthroughOptions::*field;
  } bools[] = {
      {"writeback_cache", &PassthroughOptions::writeback_cache},
      {"passthrough", &PassthroughOptions::passthrough},
      {"posix_locks", &PassthroughOptions::posix_locks},
      {"flock_locks", &PassthroughOptions::flock_locks},
      {"run_as_caller", &PassthroughOptions::run_as_caller},
  };
  for (const Bool& b : bools) {
    const std::string k = b.key;
    EXPECT_TRUE(ParseOk(k + "=0," + k).fs.*b.field) << k;  // bare means true
    for (const char* t : {"1", "true", "yes", "on"}) {
      EXPECT_TRUE(ParseOk(k + "=0," + k + "=" + t).fs.*b.field) << k << "=" << t;
    }
    for (const char* f : {"0", "false", "no", "off"}) {
      EXPECT_FALSE(ParseOk(k + "," + k + "=" + f).fs.*b.field) << k << "=" << f;
    }
    EXPECT_EQ(ParseError(k + "=maybe"),
              "option " + k + ": expected no value or true/false, got 'maybe'");
  }
}

TEST(OptionsTest, FdBudget) {
  EXPECT_EQ(ParseOk("fd_budget=4096").fs.fd_budget, 4096u);
  EXPECT_EQ(ParseOk("fd_budget=0").fs.fd_budget, 0u);
  EXPECT_EQ(ParseError("fd_budget=many"), "option fd_budget: expected a number of fds, got 'many'");
  EXPECT_EQ(ParseError("fd_budget"), "option fd_budget: expected a number of fds, got ''");
}

// --- --help ---

// The "  tag   help" rows of one section of UsageText().
std::vector<std::string> SectionTags(const std::string& usage, const std::string& heading) {
  std::vector<std::string> tags;
  size_t start = usage.find(heading);
  if (start == std::string::npos) return tags;
  std::vector<std::string> lines = absl::StrSplit(usage.substr(start), '\n');
  for (size_t i = 1; i < lines.size() && !lines[i].empty(); i++) {
    absl::string_view line = lines[i];
    if (!absl::ConsumePrefix(&line, "  ") || line.empty() || line[0] == ' ') continue;
    tags.emplace_back(line.substr(0, line.find("  ")));
  }
  return tags;
}

TEST(UsageTextTest, StartsWithUsageAndEndsWithExitStatus) {
  const std::string usage = UsageText();
  EXPECT_THAT(usage, StartsWith("usage: kmfused SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"));
  EXPECT_THAT(usage, HasSubstr("kmfused --probe"));
  EXPECT_THAT(usage, HasSubstr("Exit status: 0 stopped cleanly"));
  EXPECT_EQ(usage.back(), '\n');
}

TEST(UsageTextTest, ListsEveryFlagTheParserTakes) {
  std::vector<std::string> tags = SectionTags(UsageText(), "Flags:");
  for (const char* flag : {"-f", "-d", "-s", "-o OPT[,OPT...]", "--probe", "-h, --help",
                           "-V, --version"}) {
    EXPECT_THAT(tags, testing::Contains(flag));
  }
}

// Every option --help lists is known to the parser (with some value it is
// never "unknown option"), so the text cannot name an option that was
// renamed or dropped.
TEST(UsageTextTest, EveryListedMountOptionIsKnownToTheParser) {
  std::vector<std::string> tags = SectionTags(UsageText(), "Mount options");
  ASSERT_GE(tags.size(), 20u);
  for (const std::string& tag : tags) {
    for (absl::string_view alt : absl::StrSplit(tag, ", ")) {
      std::string key(alt.substr(0, alt.find_first_of("=[")));
      absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-o", key + "=1"});
      if (o.ok()) continue;
      EXPECT_THAT(std::string(o.status().message()), testing::Not(HasSubstr("unknown option")))
          << tag;
    }
  }
}

TEST(UsageTextTest, EveryListedIgnoredOptionIsAccepted) {
  const std::string usage = UsageText();
  size_t at = usage.find("Accepted and ignored");
  ASSERT_NE(at, std::string::npos);
  size_t line = usage.find('\n', at) + 1;
  std::string list = usage.substr(line, usage.find('\n', line) - line);
  int n = 0;
  for (absl::string_view pattern : absl::StrSplit(list, ' ', absl::SkipEmpty())) {
    std::string opt(pattern);
    if (absl::EndsWith(opt, "*")) opt.back() = 'z';  // "x-*" -> "x-z", "comment=*" -> "comment=z"
    ParseOk(opt);
    n++;
  }
  EXPECT_GE(n, 10);
}

// --- threads and buffer_memory for the io_uring transports (PlanUringBuffers) ---

TEST(UringPlanTest, ThreadsOptionSetsBothThreadCounts) {
  CommandLine o = ParseOk("threads=3");
  EXPECT_EQ(o.server.threads, 3u);
  EXPECT_THAT(ParseError("threads=0"), HasSubstr("option threads=0: expected a number from 1 to 256"));
}

TEST(UringPlanTest, BufferMemoryRangeAndSuffixes) {
  EXPECT_EQ(ParseOk("buffer_memory=64M,transport=read").server.buffer_memory, uint64_t{64} << 20);
  EXPECT_EQ(ParseOk("buffer_memory=1G,transport=read").server.buffer_memory, uint64_t{1} << 30);
  EXPECT_EQ(ParseOk("buffer_memory=65536,transport=read").server.buffer_memory, 65536u);
  EXPECT_THAT(ParseError("buffer_memory=2K"), HasSubstr("expected a number from 4096 to"));
  EXPECT_THAT(ParseError("buffer_memory=17G"), HasSubstr("expected a number from 4096 to"));
  EXPECT_THAT(ParseError("buffer_memory=lots"), HasSubstr("option buffer_memory=lots"));
}

TEST(UringPlanTest, DefaultsKeepSixteenMiBEntriesOnTwoCpus) {
  ServerOptions d;
  absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, 2, 4096, 2);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->budget, kDefaultBufferMemory);
  EXPECT_EQ(p->max_write, 1u << 20);
  EXPECT_EQ(p->payload, size_t{1} << 20);
  EXPECT_EQ(p->entries, 16u);
  EXPECT_EQ(p->threads, 2u);
}

TEST(UringPlanTest, ManyQueuesShrinkMaxWriteToTwoEntriesWithinTheBudget) {
  ServerOptions d;
  for (unsigned queues : {16u, 64u, 192u, 1024u}) {
    absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, queues, 4096, queues);
    ASSERT_TRUE(p.ok()) << queues << ": " << p.status();
    EXPECT_GE(p->entries, 2u) << queues;
    EXPECT_LE(uint64_t{queues} * p->entries * p->payload, kDefaultBufferMemory) << queues;
    EXPECT_EQ(p->threads, kDefaultUringThreads) << queues;
    // The largest max_write (halving from 1 MiB) that keeps two entries.
    EXPECT_GT(uint64_t{queues} * 2 * (uint64_t{p->payload} * 2), kDefaultBufferMemory) << queues;
  }
  absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, 192, 4096, 192);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_write, 64u << 10);  // 192 x 2 x 64 KiB = 24 MiB
  EXPECT_EQ(p->entries, 2u);
  p = PlanUringBuffers(d, 64, 4096, 64);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_write, 256u << 10);  // 64 x 2 x 256 KiB = 32 MiB
}

TEST(UringPlanTest, QueueDepthIsTheMostEntries) {
  ServerOptions d;
  d.queue_depth = 4;
  d.buffer_memory = uint64_t{1} << 30;
  absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, 8, 4096, 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->entries, 4u);
  EXPECT_EQ(p->max_write, 1u << 20);
  d.queue_depth = 1;  // one entry is all it asks for: max_write stays
  d.buffer_memory = uint64_t{8} << 20;
  p = PlanUringBuffers(d, 8, 4096, 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->entries, 1u);
  EXPECT_EQ(p->max_write, 1u << 20);
}

TEST(UringPlanTest, ExplicitMaxWriteIsKeptAndTooSmallABudgetNamesTheMinimum) {
  ServerOptions d;
  d.max_write = 1u << 20;  // given: kept
  d.buffer_memory = uint64_t{32} << 20;
  absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, 24, 4096, 24);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->max_write, 1u << 20);
  EXPECT_EQ(p->entries, 1u);
  p = PlanUringBuffers(d, 64, 4096, 64);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(),
            "option buffer_memory=32M: 64 io_uring queue(s) (one per possible CPU) need at least "
            "64M for one entry of 1M each (lower -o max_write or raise -o buffer_memory)");
  // Without -o buffer_memory the default grows to one entry per queue.
  d.buffer_memory = 0;
  p = PlanUringBuffers(d, 64, 4096, 64);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->entries, 1u);
  EXPECT_EQ(p->budget, uint64_t{64} << 20);
  // Without -o max_write the floor is 8 KiB per queue.
  ServerOptions small;
  small.buffer_memory = 64 << 10;
  p = PlanUringBuffers(small, 192, 4096, 192);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "option buffer_memory=64K: 192 io_uring queue(s) (one per possible CPU) need at least "
            "1536K for one entry of 8K each (raise -o buffer_memory)");
  p = PlanUringBuffers(small, 8, 4096, 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->payload, 8192u);
  EXPECT_EQ(p->entries, 1u);
}

TEST(UringPlanTest, ThreadsAreCappedByTheQueues) {
  ServerOptions d;
  d.threads = 16;
  absl::StatusOr<UringBufferPlan> p = PlanUringBuffers(d, 4, 4096, 4);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->threads, 4u);
  d.threads = 0;
  p = PlanUringBuffers(d, 192, 4096, 1);  // one CPU online of 192 possible
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->threads, 1u);
}

TEST(UringPlanTest, TheParserRefusesABudgetBelowOneEntryPerPossibleCpu) {
  // 8 KiB per possible CPU is the floor; 64K fits only up to 8 CPUs.
  const size_t cpus = PossibleCpus().size();
  absl::StatusOr<CommandLine> o = Parse({"src", "mnt", "-o", "buffer_memory=64K"});
  if (cpus <= 8) {
    EXPECT_TRUE(o.ok()) << o.status();
  } else {
    ASSERT_FALSE(o.ok());
    EXPECT_THAT(std::string(o.status().message()), HasSubstr("need at least"));
  }
  // read and ring-read have no io_uring queues: no check.
  EXPECT_TRUE(Parse({"src", "mnt", "-o", "buffer_memory=64K,transport=read"}).ok());
  absl::StatusOr<CommandLine> big =
      Parse({"src", "mnt", "-o", "max_write=1M,buffer_memory=64K,transport=uring"});
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(std::string(big.status().message()),
              HasSubstr("for one entry of 1M each (lower -o max_write or raise -o buffer_memory)"));
}

}  // namespace
}  // namespace kmfuse
