// Status and Result<T>: the one error vocabulary of edgefl.
//
// Anything that comes from outside (the wire, files, TOML, the CLI, a client's update) is
// answered with a Status, never an exception or an assert. Codes are abseil's canonical ones
// and their numeric values are never renumbered (the C API and the wire carry them).
// Status and Result are values: cheap to move, safe to copy, no shared state.
//
//   Result<Dataset> data = LoadFashionMnist(dir);
//   if (!data.ok()) return data.status();
//   EDGEFL_ASSIGN_OR_RETURN(Dataset d, LoadFashionMnist(dir));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "edgefl/common/check.h"

namespace edgefl {

enum class StatusCode : int32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "INVALID_ARGUMENT", ... as abseil spells them.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: update has 10 values, layout expects 7850" or "OK".
  std::string ToString() const;

  // Returns a Status with `context + ": "` prepended to the message; OK stays OK.
  Status WithContext(std::string_view context) const;

  // Marks a Status as deliberately dropped.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status CancelledError(std::string message);
Status UnknownError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);

// A T or the non-OK Status that explains why there is none. GCC 12 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {  // NOLINT: implicit by design
    EDGEFL_CHECK(!std::get<Status>(value_).ok()) << "Result built from an OK Status";
  }
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, Result>)
  Result(U&& value) : value_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  // OK when a value is present.
  Status status() const { return ok() ? OkStatus() : std::get<Status>(value_); }

  // Preconditions: ok(). Checked, also in release builds.
  T& value() & {
    CheckOk();
    return std::get<T>(value_);
  }
  const T& value() const& {
    CheckOk();
    return std::get<T>(value_);
  }
  T&& value() && {
    CheckOk();
    return std::get<T>(std::move(value_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(value_) : std::move(fallback); }

 private:
  void CheckOk() const {
    EDGEFL_CHECK(ok()) << "Result accessed without a value: " << std::get<Status>(value_).ToString();
  }
  std::variant<T, Status> value_;
};

}  // namespace edgefl

#define EDGEFL_STATUS_CONCAT_INNER_(a, b) a##b
#define EDGEFL_STATUS_CONCAT_(a, b) EDGEFL_STATUS_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define EDGEFL_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    ::edgefl::Status edgefl_status_ = (expr);          \
    if (!edgefl_status_.ok()) return edgefl_status_;   \
  } while (0)

// `EDGEFL_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from the Result's value or returns its
// Status from the enclosing function.
#define EDGEFL_ASSIGN_OR_RETURN(lhs, expr) \
  EDGEFL_ASSIGN_OR_RETURN_IMPL_(EDGEFL_STATUS_CONCAT_(edgefl_result_, __LINE__), lhs, expr)
#define EDGEFL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
