// docs/guarantees.md names, for every promise, the tests that prove it. Each test named there
// must exist as a test, so the list cannot rot quietly when a test is renamed or removed: a
// name that survives only in a comment or a string does not count.
#include "support/process.hpp"

#include <cctype>
#include <doctest/doctest.h>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Citation {
    std::string file; // under tests/
    std::string name; // a test's name; one ending in "..." names a prefix
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

// C++ source without its comments; string and character literals are kept as they are.
std::string without_comments(const std::string& text) {
    std::string out;
    for (std::size_t at = 0; at < text.size();) {
        const char c = text[at];
        if (c == '"' || c == '\'') {
            std::size_t end = at + 1;
            while (end < text.size() && text[end] != c && text[end] != '\n')
                end += text[end] == '\\' ? 2 : 1;
            end = std::min(end + 1, text.size());
            out.append(text, at, end - at);
            at = end;
        } else if (text.compare(at, 2, "//") == 0) {
            at = text.find('\n', at);
            if (at == std::string::npos)
                break;
        } else if (text.compare(at, 2, "/*") == 0) {
            const auto end = text.find("*/", at + 2);
            at = end == std::string::npos ? text.size() : end + 2;
            out += ' ';
        } else {
            out += c;
            ++at;
        }
    }
    return out;
}

// Adjacent string literals joined, as the compiler joins a long test name: "...does not "
// followed by "start" on the next line becomes "...does not start".
std::string joined_literals(std::string text) {
    for (std::size_t at = text.find('"'); at != std::string::npos; at = text.find('"', at + 1)) {
        const std::size_t next = text.find_first_not_of(" \t\n", at + 1);
        if (next != std::string::npos && next > at + 1 && text[next] == '"' &&
            text.find('\n', at + 1) < next)
            text.erase(at, next - at + 1);
    }
    return text;
}

bool is_identifier_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

// The names of the tests `source` declares: the first string literal of every TEST_CASE,
// TEST_CASE_FIXTURE (after its fixture class), TEST_CASE_TEMPLATE and SUBCASE.
std::vector<std::string> declared_tests(const std::string& source) {
    const std::string code = joined_literals(without_comments(source));
    std::vector<std::string> names;
    for (std::string_view macro :
         {"TEST_CASE", "TEST_CASE_FIXTURE", "TEST_CASE_TEMPLATE", "SUBCASE"}) {
        for (std::size_t at = code.find(macro); at != std::string::npos;
             at = code.find(macro, at + 1)) {
            const std::size_t after = at + macro.size();
            if ((at > 0 && is_identifier_char(code[at - 1])) ||
                (after < code.size() && is_identifier_char(code[after])))
                continue;
            std::size_t open = code.find_first_not_of(" \t\n", after);
            if (open == std::string::npos || code[open] != '(')
                continue;
            // Only a fixture's class name (letters, ::, <>, a comma) may stand before the name.
            open = code.find_first_not_of(" \t\n", open + 1);
            if (macro == "TEST_CASE_FIXTURE") {
                while (open < code.size() && code[open] != '"' && code[open] != ')' &&
                       code[open] != ';')
                    ++open;
            }
            if (open >= code.size() || code[open] != '"')
                continue;
            const std::size_t close = code.find('"', open + 1);
            if (close == std::string::npos)
                continue;
            names.push_back(code.substr(open + 1, close - open - 1));
        }
    }
    return names;
}

// Does `source` declare a test of exactly this name (or, for a name ending in "...", one that
// starts with what comes before the dots)?
bool declares_test(const std::string& source, const std::string& cited) {
    const bool prefix = cited.size() > 3 && cited.compare(cited.size() - 3, 3, "...") == 0;
    const std::string wanted = prefix ? cited.substr(0, cited.size() - 3) : cited;
    for (const std::string& name : declared_tests(source)) {
        if (prefix ? name.rfind(wanted, 0) == 0 : name == wanted)
            return true;
    }
    return false;
}

} // namespace

TEST_CASE("every test the Guarantees page names is declared as a test of that exact name") {
    const std::string page = dlock::test::read_file(DLOCK_SOURCE_DIR "/docs/guarantees.md");
    const std::vector<Citation> cited = citations(lines_of(page));
    REQUIRE(cited.size() >= 40); // the parser still finds the citations
    for (const Citation& citation : cited) {
        CAPTURE(citation.file);
        CAPTURE(citation.name);
        CHECK(declares_test(dlock::test::read_file(DLOCK_SOURCE_DIR "/tests/" + citation.file),
                            citation.name));
    }
}

TEST_CASE("a cited name counts only as a test's name: not in a comment, not in a string") {
    const std::string source = "// TEST_CASE(\"only in a comment\")\n"
                               "/* SUBCASE(\"only in a block comment\") */\n"
                               "const char* text = \"only in a string\";\n"
                               "CHECK(run(\"TEST_CASE\"));\n"
                               "TEST_CASE(\"a real test, whose name goes on \"\n"
                               "          \"to a second line\") {\n"
                               "    SUBCASE(\"a subcase\") {}\n"
                               "}\n"
                               "TEST_CASE_FIXTURE(Fixture, \"a fixture's test\") {}\n"
                               "TEST_CASE_TEMPLATE(\"a template\", T, int, long) {}\n"
                               "TEST_CASE(\"a real test, and a longer one\") {}\n";
    CHECK_FALSE(declares_test(source, "only in a comment"));
    CHECK_FALSE(declares_test(source, "only in a block comment"));
    CHECK_FALSE(declares_test(source, "only in a string"));
    CHECK_FALSE(declares_test(source, "only in a..."));
    CHECK(declares_test(source, "a real test, whose name goes on to a second line"));
    CHECK(declares_test(source, "a subcase"));
    CHECK(declares_test(source, "a fixture's test"));
    CHECK(declares_test(source, "a template"));
    // Exact unless the citation ends in "...": a prefix of a name is not the name.
    CHECK_FALSE(declares_test(source, "a real test"));
    CHECK(declares_test(source, "a real test..."));
    CHECK_FALSE(declares_test(source, "a real test, whose name goes on to a second"));
    CHECK_FALSE(declares_test(source, "a real test, whose name goes on to a second line, too"));
}
