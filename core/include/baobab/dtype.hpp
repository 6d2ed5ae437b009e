// Element types and reduction operators understood by the core.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace baobab {

enum class DType : uint8_t {
  f16 = 0, bf16, f32, f64,
  i8, i16, i32, i64,
  u8, u16, u32, u64,
  byte,  // opaque bytes: movable, not reducible
  count_
};

enum class RedOp : uint8_t { sum = 0, prod, min, max, count_ };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f16: case DType::bf16: case DType::i16: case DType::u16: return 2;
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::f64: case DType::i64: case DType::u64: return 8;
    case DType::i8: case DType::u8: case DType::byte: return 1;
    default: return 0;
  }
}

constexpr std::string_view dtype_name(DType t) {
  constexpr std::string_view names[] = {"float16", "bfloat16", "float32", "float64", "int8",
                                        "int16",   "int32",    "int64",   "uint8",   "uint16",
                                        "uint32",  "uint64",   "byte"};
  auto i = static_cast<size_t>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : std::string_view("?");
}

constexpr std::string_view redop_name(RedOp op) {
  constexpr std::string_view names[] = {"sum", "prod", "min", "max"};
  auto i = static_cast<size_t>(op);
  return i < 4 ? names[i] : std::string_view("?");
}

}  // namespace baobab
