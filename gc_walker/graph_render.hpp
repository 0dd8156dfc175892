// Rendering DOT text to an image file (or to memory, for a notebook) in-process with Graphviz (cgraph reads, gvc lays out
// and renders). Graphviz is not thread-safe: callers hold the GIL.
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

// Lays out `dot_text` with the dot engine and writes it to `path` in `format`.
// Throws RenderError naming the problem (unknown format, unreadable DOT, unwritable path).
void render_dot(const std::string &dot_text, const std::string &format, const std::string &path);

// The same, returning the image's bytes (an SVG document, a PNG file's contents, ...).
std::string render_dot_data(const std::string &dot_text, const std::string &format);

} // namespace memxx::gc
