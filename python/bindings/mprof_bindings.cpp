#include "python/bindings/bindings.hpp"

namespace memxx::bindings {

void bind_mprof(pybind11::module_& m) { (void)m; }

} // namespace memxx::bindings
