// Failed system calls as the error a user can act on, internal to the library.
#pragma once

#include "dlock/error.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace dlock::detail {

// True for the errno values that mean the system ran out of something dlock needs.
inline bool out_of_resources(int error) {
    return error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOBUFS ||
           error == EAGAIN;
}

// `doing` ("pipe2", "fork") failed with `error`: out of descriptors, memory or processes is a
// ResourceError (71), anything else an InternalError (70).
[[noreturn]] inline void throw_os_error(std::string_view doing, int error) {
    const std::string what = std::string(doing) + ": " + std::strerror(error);
    if (error == EMFILE || error == ENFILE)
        throw ResourceError("out of file descriptors (" + what + ")");
    if (out_of_resources(error))
        throw ResourceError("out of system resources (" + what + ")");
    throw InternalError(what);
}

} // namespace dlock::detail
