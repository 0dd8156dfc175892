// Rendering DOT text to an image in memory, in-process with Graphviz (cgraph reads, gvc lays
// out and renders); the caller writes it through mprof/output_file.hpp, so Graphviz never
// opens a path. Graphviz is not thread-safe: callers hold the GIL.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace memxx::gc {

struct RenderError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Output formats the linked Graphviz can write (png, svg, pdf, ...), sorted.
std::vector<std::string> render_formats();

// Lays out `dot_text` with the dot engine and returns the image's bytes in `format` (an SVG
// document, a PNG file's contents, ...). Throws RenderError naming the problem (unknown format,
// unreadable DOT).
std::string render_dot_data(const std::string &dot_text, const std::string &format);

} // namespace memxx::gc
