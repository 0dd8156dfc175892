#include "gc_walker/graph_render.hpp"

#include <gvc.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace memxx::gc {

namespace {

// One context for the process: creating it loads the plugin configuration (slow).
GVC_t *context() {
    static GVC_t *gvc = gvContext();
    return gvc;
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
    char **list = gvPluginList(context(), "device", &count, nullptr);
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

void render_dot(const std::string &dot_text, const std::string &format, const std::string &path) {
    std::vector<std::string> formats = render_formats();
    if (std::find(formats.begin(), formats.end(), format) == formats.end()) {
        std::string known;
        for (const std::string &f : formats) {
            known += (known.empty() ? "" : ", ") + f;
        }
        throw RenderError("unknown output format '" + format + "' for " + path +
                          " (Graphviz can write: " + known + ")");
    }
    // Check the path first: gvRenderFilename reports an unwritable file only on stderr.
    FILE *probe = std::fopen(path.c_str(), "wb");
    if (probe == nullptr) {
        throw RenderError("cannot write " + path + ": " + std::strerror(errno));
    }
    std::fclose(probe);

    CapturedErrors errors;
    Agraph_t *graph = agmemread(dot_text.c_str());
    if (graph == nullptr) {
        throw RenderError("Graphviz could not read the DOT text: " + errors.text());
    }
    GVC_t *gvc = context();
    int rc = gvLayout(gvc, graph, "dot");
    if (rc == 0) {
        rc = gvRenderFilename(gvc, graph, format.c_str(), path.c_str());
        gvFreeLayout(gvc, graph);
    }
    agclose(graph);
    if (rc != 0) {
        throw RenderError("Graphviz failed to render " + path + ": " + errors.text());
    }
}

} // namespace memxx::gc
