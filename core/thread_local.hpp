// Thread-local variables of the hot paths use the initial-exec model: a plain fs-relative load
// instead of a call to __tls_get_addr. A dlopen'ed module has little static TLS to spare, so only
// a few scalars and pointers may use it. `__thread` rather than `thread_local`: a variable
// shared between files is then read directly, without the C++ dynamic-initialisation wrapper
// call that `extern thread_local` costs on every access.
#pragma once

#define MEMXX_TLS __thread __attribute__((tls_model("initial-exec")))
