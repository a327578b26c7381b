// The docs stay true to the tree: the Layout list in docs/architecture.md names every source
// file, and every relative link in the README and docs/ leads somewhere.
#include "support/process.hpp"

#include <algorithm>
#include <cctype>
#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path source_dir{DLOCK_SOURCE_DIR};

// The lines of a file.
std::vector<std::string> read_lines(const fs::path& path) {
    std::istringstream in(dlock::test::read_file(path.string()));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

// The lines inside the first fenced code block after the heading `heading`.
std::vector<std::string> code_block_after(const std::vector<std::string>& lines,
                                          const std::string& heading) {
    auto at = std::find(lines.begin(), lines.end(), heading);
    REQUIRE_MESSAGE(at != lines.end(), "no heading '" << heading << "'");
    at = std::find_if(at, lines.end(), [](const std::string& l) { return l.rfind("```", 0) == 0; });
    REQUIRE(at != lines.end());
    const auto end = std::find_if(std::next(at), lines.end(),
                                  [](const std::string& l) { return l.rfind("```", 0) == 0; });
    return {std::next(at), end};
}

// The files the Layout block names, as paths from the source root. A line that starts in the
// first column with a folder ("src/cli/") opens that folder; an indented line names a file in
// it by its first word.
std::set<std::string> layout_files(const std::vector<std::string>& block) {
    std::set<std::string> files;
    std::string folder;
    for (const std::string& line : block) {
        std::istringstream words(line);
        std::string first;
        if (!(words >> first))
            continue;
        if (line[0] != ' ') {
            folder = first.back() == '/' ? first : "";
            continue;
        }
        if (!folder.empty() && first.find('.') != std::string::npos)
            files.insert(folder + first);
    }
    return files;
}

// The files the Layout list must name: the library's headers and sources and the CLI's.
std::set<std::string> source_files() {
    std::set<std::string> files;
    for (const char* folder : {"include/dlock", "src", "src/cli"}) {
        for (const auto& entry : fs::directory_iterator(source_dir / folder)) {
            if (entry.is_regular_file())
                files.insert(std::string(folder) + "/" + entry.path().filename().string());
        }
    }
    return files;
}

// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
std::string anchor_of(const std::string& heading) {
    std::string anchor;
    for (const char c : heading) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '_' || u >= 0x80)
            anchor += static_cast<char>(std::tolower(u));
        else if (c == ' ')
            anchor += '-';
    }
    return anchor;
}

// The anchors of a Markdown file's headings, outside code blocks; repeats get -1, -2, ...
std::set<std::string> anchors_of(const fs::path& markdown) {
    std::set<std::string> anchors;
    std::map<std::string, int> seen;
    bool in_code = false;
    for (const std::string& line : read_lines(markdown)) {
        if (line.rfind("```", 0) == 0)
            in_code = !in_code;
        if (in_code || line.empty() || line[0] != '#')
            continue;
        const auto text = line.find_first_not_of('#');
        if (text == std::string::npos || line[text] != ' ')
            continue;
        const std::string anchor = anchor_of(line.substr(text + 1));
        const int n = seen[anchor]++;
        anchors.insert(n == 0 ? anchor : anchor + "-" + std::to_string(n));
    }
    return anchors;
}

// Every Markdown file of the project, outside build folders and hidden ones.
std::vector<fs::path> markdown_files() {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(source_dir); it != fs::end(it); ++it) {
        const std::string name = it->path().filename().string();
        if (it->is_directory() &&
            (name[0] == '.' || name.rfind("build", 0) == 0 || name.rfind("cmake-build", 0) == 0)) {
            it.disable_recursion_pending();
            continue;
        }
        if (it->is_regular_file() && it->path().extension() == ".md")
            files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

// The targets of a Markdown file's inline links, outside code blocks and code spans.
std::vector<std::string> link_targets(const fs::path& markdown) {
    static const std::regex link(R"(\]\(([^()\s]+)\))");
    static const std::regex code_span("`[^`]*`");
    std::vector<std::string> targets;
    bool in_code = false;
    for (const std::string& line : read_lines(markdown)) {
        if (line.rfind("```", 0) == 0)
            in_code = !in_code;
        if (in_code)
            continue;
        const std::string text = std::regex_replace(line, code_span, "``");
        for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it)
            targets.push_back((*it)[1]);
    }
    return targets;
}

} // namespace

TEST_CASE("the Layout list in docs/architecture.md names every source file, and only those") {
    const auto block =
        code_block_after(read_lines(source_dir / "docs/architecture.md"), "## Layout");
    const std::set<std::string> named = layout_files(block);
    REQUIRE(named.size() >= 10); // the parser still finds the list
    for (const std::string& file : source_files()) {
        CHECK_MESSAGE(named.count(file) == 1,
                      file << " exists, but the Layout list in docs/architecture.md does not name "
                              "it: add a line for it under its folder");
    }
    for (const std::string& file : named) {
        CHECK_MESSAGE(fs::exists(source_dir / file),
                      "the Layout list in docs/architecture.md names " << file
                                                                       << ", which does not exist");
    }
}

TEST_CASE("every relative link in the README and the docs resolves, anchors included") {
    const std::vector<fs::path> pages = markdown_files();
    REQUIRE(pages.size() >= 8);
    int links = 0;
    for (const fs::path& page : pages) {
        for (const std::string& target : link_targets(page)) {
            if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0 ||
                target.rfind("mailto:", 0) == 0)
                continue;
            ++links;
            const auto hash = target.find('#');
            const std::string file = target.substr(0, hash);
            const fs::path resolved = file.empty() ? page : page.parent_path() / file;
            const std::string where = fs::relative(page, source_dir).string() + ": " + target;
            CHECK_MESSAGE(fs::exists(resolved), where << ": no such file");
            if (hash == std::string::npos || !fs::exists(resolved) || resolved.extension() != ".md")
                continue;
            CHECK_MESSAGE(anchors_of(resolved).count(target.substr(hash + 1)) == 1,
                          where << ": no such heading");
        }
    }
    CHECK(links >= 20); // the parser still finds the links
}

TEST_CASE("GitHub's heading anchors") {
    CHECK(anchor_of("`dlock run`: run a command while holding a lock") ==
          "dlock-run-run-a-command-while-holding-a-lock");
    CHECK(anchor_of("dlock and Laravel's `Cache::lock`") == "dlock-and-laravels-cachelock");
    CHECK(anchor_of("cron or systemd") == "cron-or-systemd");
}
