// gtest assertions over absl::StatusOr (testonly).
//
//   ASSERT_OK_AND_ASSIGN(auto entry, driver.Lookup(kRoot, "f"));
//   ASSERT_OK_AND_ASSIGN(existing_var, SomeStatusOr());
//
// evaluates the expression once; on error the test fails (fatally, so only
// in functions returning void) printing the status, else the value is moved
// into the declaration or variable.
#ifndef KMFUSE_FS_TESTING_STATUS_MACROS_H_
#define KMFUSE_FS_TESTING_STATUS_MACROS_H_

#include <utility>

#include "gtest/gtest.h"

#define KMFUSE_TESTING_CONCAT_INNER(a, b) a##b
#define KMFUSE_TESTING_CONCAT(a, b) KMFUSE_TESTING_CONCAT_INNER(a, b)
#define KMFUSE_TESTING_ASSERT_OK_AND_ASSIGN(var, expr, tmp) \
  auto tmp = (expr);                                        \
  ASSERT_TRUE(tmp.ok()) << tmp.status();                    \
  var = std::move(*tmp)
#define ASSERT_OK_AND_ASSIGN(var, expr) \
  KMFUSE_TESTING_ASSERT_OK_AND_ASSIGN(var, expr, KMFUSE_TESTING_CONCAT(status_or_, __LINE__))

#endif  // KMFUSE_FS_TESTING_STATUS_MACROS_H_
