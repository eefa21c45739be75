// Whole-file helpers for integration tests (testonly). Errors come back as
// values, never as a crash, so a test can report them next to its context.
#ifndef KMFUSE_TESTS_TESTING_FILE_IO_H_
#define KMFUSE_TESTS_TESTING_FILE_IO_H_

#include <fcntl.h>

#include <string>

#include "gtest/gtest.h"

namespace kmfuse::itest {

inline constexpr int kCreateTruncate = O_WRONLY | O_CREAT | O_TRUNC;

// Opens path with flags (mode 0644 when creating) and writes all of data.
::testing::AssertionResult WriteFile(const std::string& path, const std::string& data,
                                     int flags = kCreateTruncate);
// The same, with fsync before close: the data is durable when it returns.
::testing::AssertionResult WriteFileSynced(const std::string& path, const std::string& data);
// The whole file, or "<error: ...>" (never equal to real content).
std::string ReadFile(const std::string& path);

}  // namespace kmfuse::itest

#endif  // KMFUSE_TESTS_TESTING_FILE_IO_H_
