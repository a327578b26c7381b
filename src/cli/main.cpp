// The dlock command line; subcommands arrive in src/cli/ one group per file.
#include <cstdio>

int main() {
    std::fputs("dlock: no subcommands yet\n", stderr);
    return 64;
}
