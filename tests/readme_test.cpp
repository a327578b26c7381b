// docs/guarantees.md names, for every promise, the tests that prove it. Each test named there
// must exist, so the list cannot rot quietly when a test is renamed or removed.
#include "support/process.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

namespace {

struct Citation {
    std::string file; // under tests/
    std::string name; // a TEST_CASE's name; one ending in "..." names a prefix
};

// The lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t at = 0;
    while (at < text.size()) {
        const auto newline = text.find('\n', at);
        const auto end = newline == std::string::npos ? text.size() : newline;
        lines.push_back(text.substr(at, end - at));
        at = end + 1;
    }
    return lines;
}

// The last cell of each table row holds `file.cpp: "name"`, `"name"`, ... spans; a bare
// `"name"` belongs to the file named before it in the same cell.
std::vector<Citation> citations(const std::vector<std::string>& lines) {
    std::vector<Citation> out;
    for (const std::string& line : lines) {
        if (line.size() < 2 || line.front() != '|' || line.back() != '|')
            continue;
        const std::string cell = line.substr(line.rfind('|', line.size() - 2));
        std::string file;
        for (std::size_t open = cell.find('`'); open != std::string::npos;) {
            const std::size_t close = cell.find('`', open + 1);
            REQUIRE(close != std::string::npos);
            const std::string span = cell.substr(open + 1, close - open - 1);
            open = cell.find('`', close + 1);
            const std::size_t colon = span.find(".cpp: \"");
            std::string quoted = span;
            if (colon != std::string::npos) {
                file = span.substr(0, colon + 4);
                quoted = span.substr(colon + 6);
            }
            if (file.empty() || quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"')
                continue;
            out.push_back({file, quoted.substr(1, quoted.size() - 2)});
        }
    }
    return out;
}

// A test source with string literals that continue on the next line joined, as the compiler
// joins a long test name: "...does not "\n     "start" becomes "...does not start".
std::string joined_literals(std::string text) {
    for (std::size_t at = text.find("\"\n"); at != std::string::npos; at = text.find("\"\n", at)) {
        const std::size_t next = text.find_first_not_of(" \t\n", at + 1);
        if (next != std::string::npos && text[next] == '"')
            text.erase(at, next - at + 1);
        else
            ++at;
    }
    return text;
}

} // namespace

TEST_CASE("every test the Guarantees page names exists") {
    const std::string page = dlock::test::read_file(DLOCK_SOURCE_DIR "/docs/guarantees.md");
    const std::vector<Citation> cited = citations(lines_of(page));
    REQUIRE(cited.size() >= 40); // the parser still finds the citations
    for (const Citation& citation : cited) {
        CAPTURE(citation.file);
        CAPTURE(citation.name);
        const std::string source =
            joined_literals(dlock::test::read_file(DLOCK_SOURCE_DIR "/tests/" + citation.file));
        const bool prefix = citation.name.size() > 3 &&
                            citation.name.compare(citation.name.size() - 3, 3, "...") == 0;
        const std::string needle =
            "\"" +
            (prefix ? citation.name.substr(0, citation.name.size() - 3) : citation.name + "\"");
        CHECK(source.find(needle) != std::string::npos);
    }
}
