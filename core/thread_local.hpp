// Thread-local variables of the hot paths use the initial-exec model: a plain fs-relative load
// instead of a call to __tls_get_addr. A dlopen'ed module has little static TLS to spare, so only
// a few scalars and pointers may use it.
#pragma once

#define MEMXX_TLS thread_local __attribute__((tls_model("initial-exec")))
