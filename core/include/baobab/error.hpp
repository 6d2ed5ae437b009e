// The exception family of the core. The Python layer maps each class to the
// class of the same name in baobab (baobab.Error and its subclasses). The core
// never aborts the process on bad input: it throws one of these.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace baobab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Wrong dtype, shape, layout, op, algorithm name, root, ...
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Ranks disagree on the arguments of one collective (count, dtype, op, root,
// algorithm, or which collective it is).
class MismatchError : public Error {
 public:
  using Error::Error;
};

// A collective or transfer did not complete before its deadline.
class TimeoutError : public Error {
 public:
  TimeoutError(const std::string& what, std::string op, uint64_t seq, std::vector<int> missing)
      : Error(what), op_(std::move(op)), seq_(seq), missing_(std::move(missing)) {}
  const std::string& op() const { return op_; }
  uint64_t seq() const { return seq_; }
  // Ranks that had not entered the operation when the deadline passed.
  const std::vector<int>& missing() const { return missing_; }

 private:
  std::string op_;
  uint64_t seq_;
  std::vector<int> missing_;
};

class MPIError : public Error {
 public:
  MPIError(const std::string& what, int code) : Error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class CUDAError : public Error {
 public:
  using Error::Error;
};

}  // namespace baobab
