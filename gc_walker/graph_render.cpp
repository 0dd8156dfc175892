#include "gc_walker/graph_render.hpp"

#include <gvc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace memxx::gc {

namespace {

// One context for the process: creating it loads the plugin configuration (slow).
GVC_t *context() {
    static GVC_t *gvc = gvContext();
    return gvc;
}

// Graphviz 2.42 (Debian 12) and Graphviz 3+ (Debian sid) differ in two signatures: the list of
// plugins took an unused fourth argument, and the rendered length was an unsigned int. The call
// made is chosen by the declared function's type.
// One of the two is never called, depending on the version.
[[maybe_unused]] char **plugin_list(char **(*list)(GVC_t *, const char *, int *, char *),
                                    GVC_t *gvc, const char *kind, int *count) {
    return list(gvc, kind, count, nullptr);
}
[[maybe_unused]] char **plugin_list(char **(*list)(GVC_t *, const char *, int *), GVC_t *gvc,
                                    const char *kind, int *count) {
    return list(gvc, kind, count);
}
template <class Length>
int render_data(int (*render)(GVC_t *, graph_t *, const char *, char **, Length *), GVC_t *gvc,
                graph_t *graph, const char *format, char **data, size_t *length) {
    Length n = 0;
    const int rc = render(gvc, graph, format, data, &n);
    *length = static_cast<size_t>(n);
    return rc;
}

std::string graphviz_messages;

int collect_message(char *message) {
    graphviz_messages += message;
    return 0;
}

// Routes Graphviz's error messages into graphviz_messages while alive, instead of stderr.
class CapturedErrors {
  public:
    CapturedErrors() : previous_(agseterrf(collect_message)) { graphviz_messages.clear(); }
    ~CapturedErrors() { agseterrf(previous_); }
    std::string text() const {
        std::string t = graphviz_messages;
        while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) {
            t.pop_back();
        }
        return t;
    }

  private:
    agusererrf previous_;
};

} // namespace

std::vector<std::string> render_formats() {
    int count = 0;
    char **list = plugin_list(gvPluginList, context(), "device", &count);
    std::vector<std::string> formats;
    for (int i = 0; i < count; ++i) {
        std::string name = list[i];
        free(list[i]);
        name = name.substr(0, name.find(':'));
        if (std::find(formats.begin(), formats.end(), name) == formats.end()) {
            formats.push_back(name);
        }
    }
    free(list);
    std::sort(formats.begin(), formats.end());
    return formats;
}

namespace {

void check_format(const std::string &format, const std::string &target) {
    std::vector<std::string> formats = render_formats();
    if (std::find(formats.begin(), formats.end(), format) == formats.end()) {
        std::string known;
        for (const std::string &f : formats) {
            known += (known.empty() ? "" : ", ") + f;
        }
        throw RenderError("unknown output format '" + format + "' for " + target +
                          " (Graphviz can write: " + known + ")");
    }
}

// Reads and lays out the DOT text, then calls render(gvc, graph), which returns Graphviz's
// status; throws RenderError with Graphviz's own messages when any step fails.
template <class Render>
void lay_out_and_render(const std::string &dot_text, const std::string &target, Render &&render) {
    CapturedErrors errors;
    Agraph_t *graph = agmemread(dot_text.c_str());
    if (graph == nullptr) {
        throw RenderError("Graphviz could not read the DOT text: " + errors.text());
    }
    GVC_t *gvc = context();
    int rc = gvLayout(gvc, graph, "dot");
    if (rc == 0) {
        rc = render(gvc, graph);
        gvFreeLayout(gvc, graph);
    }
    agclose(graph);
    if (rc != 0) {
        throw RenderError("Graphviz failed to render " + target + ": " + errors.text());
    }
}

} // namespace

std::string render_dot_data(const std::string &dot_text, const std::string &format) {
    const std::string target = "the " + format + " image";
    check_format(format, target);
    std::string image;
    lay_out_and_render(dot_text, target, [&](GVC_t *gvc, Agraph_t *graph) {
        char *data = nullptr;
        size_t length = 0;
        const int rc = render_data(gvRenderData, gvc, graph, format.c_str(), &data, &length);
        if (rc == 0 && data != nullptr) {
            image.assign(data, length);
        }
        gvFreeRenderData(data);
        return rc;
    });
    return image;
}

} // namespace memxx::gc
