// The peak recorder's frame source where there is none (core/peak_shadow.cpp is built for 3.12
// and 3.13 only): every stack's key is found by a walk of its frames.
#include "core/peak_recorder.hpp"

namespace memxx::core {

void peak_shadow(bool) {}
bool peak_shadow_possible() { return false; }

} // namespace memxx::core
