// Transport selection without a kernel: every branch of
// TransportAvailability and ChooseTransport (daemon/select.h), driven by
// hand-made KernelOffers.
#include "daemon/select.h"

#include <iterator>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "kmfuse/server_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmfuse {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// A kernel offering everything: FUSE-over-io_uring enabled, INIT known with
// both io_uring flags, multishot reads, URING_CMD and kmbuf registration.
KernelOffer Everything() {
  KernelOffer o;
  o.enable_uring_param_exists = true;
  o.enable_uring = true;
  o.init_known = true;
  o.init_over_io_uring = true;
  o.init_bufpool = true;
  o.read_multishot = true;
  o.uring_cmd = true;
  o.kmbuf = absl::OkStatus();
  return o;
}

// A kernel offering nothing beyond read(2) on /dev/fuse.
KernelOffer Nothing() { return KernelOffer{}; }

void ExpectUnavailable(TransportKind transport, const KernelOffer& o, const std::string& reason) {
  absl::Status s = TransportAvailability(transport, o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition)
      << TransportName(transport) << ": " << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(reason)) << TransportName(transport);
}

// --- TransportAvailability, one transport at a time ---

TEST(TransportAvailabilityTest, ReadRunsOnAnyKernel) {
  EXPECT_TRUE(TransportAvailability(TransportKind::kRead, Nothing()).ok());
  EXPECT_TRUE(TransportAvailability(TransportKind::kRead, Everything()).ok());
}

TEST(TransportAvailabilityTest, RingReadNeedsMultishotRead) {
  KernelOffer o = Everything();
  EXPECT_TRUE(TransportAvailability(TransportKind::kRingRead, o).ok());
  o.read_multishot = false;
  ExpectUnavailable(TransportKind::kRingRead, o, "READ_MULTISHOT is not supported by this kernel");
  // Nothing else matters to ring-read.
  KernelOffer only_multishot = Nothing();
  only_multishot.read_multishot = true;
  EXPECT_TRUE(TransportAvailability(TransportKind::kRingRead, only_multishot).ok());
}

// The io_uring reasons in the order they are checked: each one is the
// first thing missing, so it is the one reported.
TEST(TransportAvailabilityTest, UringReportsTheFirstMissingPiece) {
  KernelOffer o = Everything();
  EXPECT_TRUE(TransportAvailability(TransportKind::kUring, o).ok());

  o.init_over_io_uring = false;
  ExpectUnavailable(TransportKind::kUring, o, "did not offer FUSE_OVER_IO_URING in INIT");
  o.enable_uring = false;
  ExpectUnavailable(TransportKind::kUring, o, "enable_uring is off");
  ExpectUnavailable(TransportKind::kUring, o, "echo 1 > /sys/module/fuse/parameters/enable_uring");
  o.enable_uring_param_exists = false;
  ExpectUnavailable(TransportKind::kUring, o, "this kernel has no FUSE-over-io_uring");
  o.uring_cmd = false;
  ExpectUnavailable(TransportKind::kUring, o, "URING_CMD is not supported by this kernel");
}

TEST(TransportAvailabilityTest, UringMightRunBeforeInitIsKnown) {
  KernelOffer o = Everything();
  o.init_known = false;
  o.init_over_io_uring = false;  // not known yet: not held against uring
  EXPECT_TRUE(TransportAvailability(TransportKind::kUring, o).ok());
}

TEST(TransportAvailabilityTest, UringDoesNotNeedBufpoolKmbufOrMultishot) {
  KernelOffer o = Everything();
  o.init_bufpool = false;
  o.kmbuf = absl::UnimplementedError("no kmbuf");
  o.read_multishot = false;
  EXPECT_TRUE(TransportAvailability(TransportKind::kUring, o).ok());
}

TEST(TransportAvailabilityTest, KmbufNeedsItsRegistrationFirstThenUring) {
  KernelOffer o = Everything();
  EXPECT_TRUE(TransportAvailability(TransportKind::kKmbuf, o).ok());

  // The registration probe's own message is the reason, as FailedPrecondition
  // whatever code the probe returned.
  o.kmbuf = absl::InvalidArgumentError("IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_KM: EINVAL");
  ExpectUnavailable(TransportKind::kKmbuf, o, "IOU_PBUF_RING_KM: EINVAL");
  o.enable_uring = false;  // the registration reason still comes first
  ExpectUnavailable(TransportKind::kKmbuf, o, "IOU_PBUF_RING_KM: EINVAL");

  o.kmbuf = absl::OkStatus();  // registration works, FUSE-over-io_uring does not
  ExpectUnavailable(TransportKind::kKmbuf, o, "enable_uring is off");
}

TEST(TransportAvailabilityTest, KmbufIsUnavailableUntilProbed) {
  KernelOffer o = Everything();
  o.kmbuf = KernelOffer{}.kmbuf;  // the default: never probed
  ExpectUnavailable(TransportKind::kKmbuf, o, "not probed");
}

TEST(TransportAvailabilityTest, BufpoolNeedsUringThenTheInitFlag) {
  KernelOffer o = Everything();
  EXPECT_TRUE(TransportAvailability(TransportKind::kBufpool, o).ok());

  o.init_bufpool = false;
  ExpectUnavailable(TransportKind::kBufpool, o, "did not offer FUSE_HAS_IO_URING_BUFPOOL in INIT");
  o.init_over_io_uring = false;  // the uring reason comes first
  ExpectUnavailable(TransportKind::kBufpool, o, "did not offer FUSE_OVER_IO_URING in INIT");
  o.uring_cmd = false;
  ExpectUnavailable(TransportKind::kBufpool, o, "URING_CMD is not supported");
}

TEST(TransportAvailabilityTest, BufpoolMightRunBeforeInitIsKnown) {
  KernelOffer o = Everything();
  o.init_known = false;
  o.init_over_io_uring = false;
  o.init_bufpool = false;
  EXPECT_TRUE(TransportAvailability(TransportKind::kBufpool, o).ok());
  // Before INIT only the probes count: enable_uring off still rules it out.
  o.enable_uring = false;
  ExpectUnavailable(TransportKind::kBufpool, o, "enable_uring is off");
}

TEST(TransportAvailabilityTest, BufpoolDoesNotNeedKmbuf) {
  KernelOffer o = Everything();
  o.kmbuf = absl::UnimplementedError("no kmbuf");
  EXPECT_TRUE(TransportAvailability(TransportKind::kBufpool, o).ok());
}

TEST(TransportAvailabilityTest, AutoIsARequestNotATransport) {
  absl::Status s = TransportAvailability(TransportKind::kAuto, Everything());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "'auto' is a request, not a transport");
}

TEST(TransportAvailabilityTest, EveryTransportInTheOrderIsKnown) {
  for (TransportKind t : kTransportOrder) {
    EXPECT_TRUE(TransportAvailability(t, Everything()).ok()) << TransportName(t);
  }
}

// --- the names (server_options.h) ---

TEST(TransportNameTest, EveryNameParsesBackAndNothingElseParses) {
  EXPECT_EQ(ParseTransport("auto"), TransportKind::kAuto);
  for (TransportKind t : kTransportOrder) {
    EXPECT_EQ(ParseTransport(TransportName(t)), t) << TransportName(t);
  }
  EXPECT_STREQ(TransportName(TransportKind::kRingRead), "ring-read");
  for (const char* name : {"", "io_uring", "READ", "ring_read", "Auto", "fast"}) {
    EXPECT_EQ(ParseTransport(name), std::nullopt) << "'" << name << "'";
  }
  EXPECT_EQ(TransportChoices(), "auto, kmbuf, bufpool, uring, ring-read or read");
}

// --- Choice::Log ---

TEST(ChoiceTest, LogWithoutSkips) {
  Choice c;
  c.transport = TransportKind::kUring;
  EXPECT_EQ(c.Log(), "transport uring");
}

TEST(ChoiceTest, LogJoinsSkipsWithSemicolons) {
  Choice c;
  c.transport = TransportKind::kUring;
  c.skipped = {"kmbuf: a", "bufpool: b"};
  EXPECT_EQ(c.Log(), "transport uring (skipped kmbuf: a; bufpool: b)");
}

// --- ChooseTransport, forced ---

TEST(ChooseTransportTest, ForcedAvailableTransportIsTakenWithoutSkips) {
  for (TransportKind t : kTransportOrder) {
    absl::StatusOr<Choice> c = ChooseTransport(t, Everything());
    ASSERT_TRUE(c.ok()) << TransportName(t) << ": " << c.status();
    EXPECT_EQ(c->transport, t);
    EXPECT_THAT(c->skipped, IsEmpty());
    EXPECT_EQ(c->Log(), std::string("transport ") + TransportName(t));
  }
}

TEST(ChooseTransportTest, ForcedWorseTransportIsTakenEvenWhenBetterOnesExist) {
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kRead, Everything());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kRead);
}

TEST(ChooseTransportTest, ForcedUnavailableTransportFailsAndNeverFallsBack) {
  KernelOffer o = Everything();
  o.enable_uring = false;
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kUring, o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(c.status().message()),
              StartsWith("transport uring is not available: enable_uring is off"));
  // ... and the message says what to do.
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("echo 1 > /sys/module/fuse/parameters/enable_uring"));
}

TEST(ChooseTransportTest, ForcedTransportFailureNamesEachReason) {
  KernelOffer o = Nothing();
  struct Case {
    TransportKind transport;
    const char* reason;
  } cases[] = {
      {TransportKind::kKmbuf, "transport kmbuf is not available: not probed"},
      {TransportKind::kBufpool, "transport bufpool is not available: io_uring URING_CMD"},
      {TransportKind::kUring, "transport uring is not available: io_uring URING_CMD"},
      {TransportKind::kRingRead, "transport ring-read is not available: io_uring READ_MULTISHOT"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Choice> r = ChooseTransport(c.transport, o);
    ASSERT_FALSE(r.ok()) << TransportName(c.transport);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
        << TransportName(c.transport);
    EXPECT_THAT(std::string(r.status().message()), StartsWith(c.reason));
  }
}

// --- ChooseTransport, auto ---

TEST(ChooseTransportTest, AutoTakesTheBestWhenEverythingIsOffered) {
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kAuto, Everything());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, kTransportOrder[0]);
  EXPECT_EQ(c->transport, TransportKind::kKmbuf);
  EXPECT_THAT(c->skipped, IsEmpty());
}

TEST(ChooseTransportTest, AutoStepsDownOneTransportAtATimeRecordingEachSkip) {
  KernelOffer o = Everything();
  o.kmbuf = absl::UnimplementedError("kmbuf refused");
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kAuto, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kBufpool);
  EXPECT_THAT(c->skipped, ElementsAre("kmbuf: kmbuf refused"));

  o.init_bufpool = false;
  c = ChooseTransport(TransportKind::kAuto, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kUring);
  ASSERT_EQ(c->skipped.size(), 2u);
  EXPECT_EQ(c->skipped[0], "kmbuf: kmbuf refused");
  EXPECT_THAT(c->skipped[1], StartsWith("bufpool: the kernel did not offer FUSE_HAS_IO_URING_BUFPOOL"));
  EXPECT_EQ(c->Log(), "transport uring (skipped " + c->skipped[0] + "; " + c->skipped[1] + ")");

  o.enable_uring = false;
  c = ChooseTransport(TransportKind::kAuto, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kRingRead);
  ASSERT_EQ(c->skipped.size(), 3u);
  EXPECT_THAT(c->skipped[1], StartsWith("bufpool: enable_uring is off"));
  EXPECT_THAT(c->skipped[2], StartsWith("uring: enable_uring is off"));

  o.read_multishot = false;
  c = ChooseTransport(TransportKind::kAuto, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kRead);
  ASSERT_EQ(c->skipped.size(), 4u);
  EXPECT_THAT(c->skipped[3], StartsWith("ring-read: io_uring READ_MULTISHOT"));
}

TEST(ChooseTransportTest, AutoOnAKernelWithNothingEndsAtReadSkippingTheRestInOrder) {
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kAuto, Nothing());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kRead);
  ASSERT_EQ(c->skipped.size(), std::size(kTransportOrder) - 1);
  for (size_t i = 0; i + 1 < std::size(kTransportOrder); i++) {
    EXPECT_THAT(c->skipped[i], StartsWith(std::string(TransportName(kTransportOrder[i])) + ": "))
        << i;
  }
}

TEST(ChooseTransportTest, AutoBeforeInitTakesBufpoolOnProbesAlone) {
  // Without INIT (kmfused --probe as a user) only the probes are known:
  // bufpool "might" run, which INIT would confirm or refuse.
  KernelOffer o = Everything();
  o.kmbuf = absl::UnimplementedError("no kmbuf");
  o.init_known = false;
  o.init_over_io_uring = false;
  o.init_bufpool = false;
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kAuto, o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->transport, TransportKind::kBufpool);
}

// ChooseTransport's InternalError("no transport available") is unreachable
// exactly while the last transport in the order runs on any kernel.
TEST(ChooseTransportTest, TheOrderEndsWithATransportEveryKernelHas) {
  const TransportKind last = kTransportOrder[std::size(kTransportOrder) - 1];
  EXPECT_EQ(last, TransportKind::kRead);
  EXPECT_TRUE(TransportAvailability(last, Nothing()).ok());
}

}  // namespace
}  // namespace kmfuse
