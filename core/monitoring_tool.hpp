// One sys.monitoring (PEP 669) tool id, held under one of our names, for the two users of the
// events: the line tracer's event source (core/line_events_monitoring.cpp, 3.12+) and the peak
// recorder's frames' shadow (core/peak_shadow.cpp, 3.12 and 3.13). Ids are shared with every
// other tool in the process (coverage.py takes COVERAGE_ID, cProfile PROFILER_ID), so a user
// takes the first free id of its own list, and checks that it is still ours before changing its
// events: another tool may have freed it and taken it since.
//
// Built for 3.12+ only (core/CMakeLists.txt). GIL held for everything here.
#pragma once

#include <Python.h>

#include <cstddef>
#include <string>

namespace memxx::core {

// sys.monitoring (new reference), or nullptr with the error set.
PyObject *monitoring_module();

// The bit of sys.monitoring.events.<name>, or -1 with the error set.
long monitoring_event_bit(PyObject *mon, const char *name);

class MonitoringTool {
  public:
    template <std::size_t N>
    constexpr MonitoringTool(const char *name, const int (&ids)[N])
        : name_(name), ids_(ids), count_(N) {}

    const char *name() const { return name_; }
    bool held() const { return id_ >= 0; }

    // Takes the first free id of the list. 1: taken; 0: every id is held (`holders`, when
    // given, lists them as "id: 'name'"); -1 with the error set.
    int take(PyObject *mon, std::string *holders = nullptr);
    // 1 if the id is still ours; 0 if another tool freed or took it (it is then forgotten); -1
    // with the error set.
    int still_ours(PyObject *mon);
    // Registers def's function for `event`, or none when def is nullptr. False with the error set.
    bool register_callback(PyObject *mon, long event, PyMethodDef *def);
    // sys.monitoring.set_events, or set_local_events when code is given. False with the error
    // set.
    bool set_events(PyObject *mon, long mask, PyObject *code = nullptr);
    // Frees the id (events and callbacks must be cleared first). False with the error set.
    bool free_id(PyObject *mon);

  private:
    const char *name_;
    const int *ids_;
    std::size_t count_;
    int id_ = -1;
};

} // namespace memxx::core
