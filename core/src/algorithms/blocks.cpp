// Runs and blocks of elements (blocks.hpp).
#include "blocks.hpp"

#include <algorithm>

namespace baobab::algo {

size_t total(const Extents& e) {
  size_t n = 0;
  for (auto s : e) n += s.len;
  return n;
}

void append_merged(Extents& e, Span s) {
  if (s.len == 0) return;
  if (!e.empty() && e.back().off + e.back().len == s.off) e.back().len += s.len;
  else e.push_back(s);
}

Blocks Blocks::even(size_t count, int parts) {
  Blocks b;
  b.off.resize(parts);
  b.cnt.resize(parts);
  size_t base = count / parts, extra = count % parts, o = 0;
  for (int i = 0; i < parts; ++i) {
    b.off[i] = o;
    b.cnt[i] = base + (static_cast<size_t>(i) < extra ? 1 : 0);
    o += b.cnt[i];
  }
  b.total = count;
  return b;
}

Blocks Blocks::of(const std::vector<size_t>& counts) {
  Blocks b;
  size_t o = 0;
  for (size_t c : counts) {
    b.off.push_back(o);
    b.cnt.push_back(c);
    o += c;
  }
  b.total = o;
  return b;
}

size_t Blocks::max() const { return cnt.empty() ? 0 : *std::max_element(cnt.begin(), cnt.end()); }

Blocks Blocks::shifted(size_t delta) const {
  Blocks b = *this;
  for (auto& o : b.off) o += delta;
  return b;
}

}  // namespace baobab::algo
