// Fuzz target: whatever bytes a server sends, hiredis's reader plus dlock's reply accessors
// either yield values or throw a ProtocolError, never crash.
#include "dlock/redis.hpp"

#include <cstddef>
#include <cstdint>
#include <hiredis/hiredis.h>

namespace {

void walk(const dlock::redis::ReplyView& view, int depth) {
    if (depth > 8)
        return;
    for (const auto read : {+[](const dlock::redis::ReplyView& v) { (void)v.integer(); },
                            +[](const dlock::redis::ReplyView& v) {
                                (void)v.string();
                            }}) {
        try {
            read(view);
        } catch (const dlock::redis::ProtocolError&) {
        }
    }
    (void)view.is_nil();
    for (std::size_t i = 0; i <= view.size(); ++i) { // one past the end must throw, not crash
        try {
            walk(view[i], depth + 1);
        } catch (const dlock::redis::ProtocolError&) {
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    redisReader* reader = redisReaderCreate();
    redisReaderFeed(reader, reinterpret_cast<const char*>(data), size);
    for (int replies = 0; replies < 16; ++replies) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr)
            break;
        const dlock::redis::Reply reply(static_cast<redisReply*>(raw));
        walk(reply.view(), 0);
    }
    redisReaderFree(reader);
    return 0;
}
