// PageRank, connected components and community detection kernels and their
// bindings (to be written).
#include <nanobind/nanobind.h>

namespace nb = nanobind;

void bind_analytics(nb::module_& m) { (void)m; }
