// Internal: the libraries dlock loads only when a command needs them (libpq for a PostgreSQL
// ledger, libssl for rediss://), so that no other command pays for loading them.
#pragma once

#include "dlock/error.hpp"

#include <dlfcn.h>
#include <string>

namespace dlock::detail {

// dlopen()s `soname` for good (what it makes lives until the process ends), or throws
// UnavailableError: "<needed_for> needs <soname> (Debian: <package>): <why>".
inline void* load_library(const std::string& soname, const std::string& needed_for,
                          const std::string& package) {
    void* library = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr)
        throw UnavailableError(needed_for + " needs " + soname + " (Debian: " + package +
                               "): " + ::dlerror());
    return library;
}

// The function `name` of a library load_library() returned, as `Pointer`, or UnavailableError:
// "<soname> has no <name>: not the version dlock was built for".
template <typename Pointer>
Pointer library_function(void* library, const char* name, const std::string& soname) {
    void* const function = ::dlsym(library, name);
    if (function == nullptr)
        throw UnavailableError(soname + " has no " + name +
                               ": not the version dlock was built for");
    return reinterpret_cast<Pointer>(function);
}

} // namespace dlock::detail
