#include "uring/probe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmfuse::uring {
namespace {

class ProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    items_ = ProbeIoUring();
    const ProbeItem* setup = FindProbeItem(items_, ProbeId::kRingSetup);
    ASSERT_NE(setup, nullptr);
    if (!setup->supported) GTEST_SKIP() << "io_uring unavailable: " << FormatProbeItem(*setup);
  }
  const ProbeItem& Get(ProbeId id) {
    const ProbeItem* item = FindProbeItem(items_, id);
    EXPECT_NE(item, nullptr);
    static const ProbeItem kMissing{"missing", false, ""};
    return item ? *item : kMissing;
  }
  std::vector<ProbeItem> items_;
};

TEST_F(ProbeTest, OneItemPerCheck) { EXPECT_EQ(items_.size(), 9u); }

TEST_F(ProbeTest, ReadMultishotAndUringCmdSupported) {
  EXPECT_TRUE(Get(ProbeId::kOpReadMultishot).supported) << FormatProbeItem(Get(ProbeId::kOpReadMultishot));
  EXPECT_TRUE(Get(ProbeId::kOpUringCmd).supported) << FormatProbeItem(Get(ProbeId::kOpUringCmd));
  EXPECT_TRUE(Get(ProbeId::kSqe128).supported);
  EXPECT_TRUE(Get(ProbeId::kProvidedBufferRing).supported)
      << FormatProbeItem(Get(ProbeId::kProvidedBufferRing));
}

TEST_F(ProbeTest, RealMultishotReadWorks) {
  const ProbeItem& item = Get(ProbeId::kReadMultishotPipe);
  EXPECT_TRUE(item.supported) << FormatProbeItem(item);
  EXPECT_THAT(item.detail, ::testing::HasSubstr("F_MORE"));
}

TEST_F(ProbeTest, KmbufNotSupportedWithEinval) {
  const ProbeItem& item = Get(ProbeId::kKmbufRing);
  EXPECT_FALSE(item.supported);
  EXPECT_EQ(item.error, EINVAL);
  EXPECT_EQ(item.detail, "errno EINVAL");
  EXPECT_EQ(FormatProbeItem(item),
            "kmbuf ring (IOU_PBUF_RING_KERNEL_MANAGED): not supported (EINVAL)");
}

TEST(ProbeFormatTest, Formats) {
  EXPECT_EQ(FormatProbeItem(ProbeItem{"x", true, ""}), "x: supported");
  EXPECT_EQ(FormatProbeItem(ProbeItem{"x", true, "res 4"}), "x: supported (res 4)");
  EXPECT_EQ(FormatProbeItem(ProbeItem{"x", false, "errno ENOSYS", ENOSYS}),
            "x: not supported (ENOSYS)");
}

}  // namespace
}  // namespace kmfuse::uring
