/* dlock_min_client: the physical limit of `dlock acquire`, one process and one round trip.
 *
 *   dlock_min_client --record FILE SOCKET   listen on the unix socket SOCKET, take one
 *                                           connection, save its first request to FILE and
 *                                           answer it with a nil reply
 *   dlock_min_client FILE SOCKET            connect to the Redis server on SOCKET, send the
 *                                           request saved in FILE, print the reply as it came,
 *                                           exit 0 unless it is an error reply
 *
 * scripts/bench records the EVAL one `dlock acquire` sends (the same script, keys, token and
 * holder record) and then times this program sending exactly those bytes and parsing the reply
 * with hiredis's reader (as dlock does), against `dlock acquire` doing its whole job: parse its
 * options, connect, EVAL, print the token. The difference is what dlock's own start-up and work
 * cost. A static C program, so that its start is the cheapest a process gets; built a second
 * time as dlock_min_client_dynamic, linked against libc and libm as dlock is. Not installed;
 * asserts nothing about speed.
 */
#include <hiredis/read.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char* what) {
    fprintf(stderr, "dlock_min_client: %s\n", what);
    return 69;
}

static int unix_address(const char* path, struct sockaddr_un* address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path)
        return -1;
    strcpy(address->sun_path, path);
    return 0;
}

/* Saves the first complete RESP request a client sends, recognised by hiredis's reader (a
 * request is an array of bulk strings, which the reader parses as it would a reply). Without
 * reply functions the reader builds no objects; it still says when a whole one has arrived. */
static int record(const char* file, const char* socket_path) {
    struct sockaddr_un address;
    if (unix_address(socket_path, &address) != 0)
        return fail("socket path too long");
    const int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(socket_path);
    if (listener < 0 || bind(listener, (struct sockaddr*)&address, sizeof address) != 0 ||
        listen(listener, 1) != 0)
        return fail("cannot listen");
    const int peer = accept(listener, NULL, NULL);
    if (peer < 0)
        return fail("accept failed");
    redisReader* reader = redisReaderCreateWithFunctions(NULL);
    char* request = NULL;
    size_t length = 0;
    void* parsed = NULL;
    while (parsed == NULL) {
        char chunk[16384];
        const ssize_t got = read(peer, chunk, sizeof chunk);
        if (got <= 0)
            return fail("the client hung up before a whole request");
        char* grown = realloc(request, length + (size_t)got);
        if (grown == NULL)
            return fail("out of memory");
        request = grown;
        memcpy(request + length, chunk, (size_t)got);
        length += (size_t)got;
        redisReaderFeed(reader, chunk, (size_t)got);
        if (redisReaderGetReply(reader, &parsed) != REDIS_OK)
            return fail("not a RESP request");
    }
    redisReaderFree(reader);
    FILE* out = fopen(file, "wb");
    if (out == NULL || fwrite(request, 1, length, out) != length || fclose(out) != 0)
        return fail("cannot write the request file");
    free(request);
    const char nil[] = "$-1\r\n";
    if (write(peer, nil, sizeof nil - 1) < 0)
        return fail("cannot answer");
    close(peer);
    close(listener);
    unlink(socket_path);
    return 0;
}

static int replay(const char* file, const char* socket_path) {
    FILE* in = fopen(file, "rb");
    if (in == NULL)
        return fail("cannot read the request file");
    char request[65536];
    const size_t length = fread(request, 1, sizeof request, in);
    fclose(in);
    struct sockaddr_un address;
    if (unix_address(socket_path, &address) != 0)
        return fail("socket path too long");
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&address, sizeof address) != 0)
        return fail("cannot connect");
    if (write(fd, request, length) != (ssize_t)length)
        return fail("cannot send");
    /* Without reply functions the reader still parses the whole reply and says its type. */
    redisReader* reader = redisReaderCreateWithFunctions(NULL);
    void* type = NULL;
    char reply[16384];
    size_t reply_length = 0;
    while (type == NULL) {
        const ssize_t got = read(fd, reply + reply_length, sizeof reply - reply_length);
        if (got <= 0)
            return fail("no reply");
        redisReaderFeed(reader, reply + reply_length, (size_t)got);
        reply_length += (size_t)got;
        if (redisReaderGetReply(reader, &type) != REDIS_OK)
            return fail("not a RESP reply");
    }
    redisReaderFree(reader);
    close(fd);
    if (fwrite(reply, 1, reply_length, stdout) != reply_length)
        return fail("cannot write the reply");
    return (intptr_t)type == REDIS_REPLY_ERROR ? 69 : 0;
}

int main(int argc, char** argv) {
    if (argc == 4 && strcmp(argv[1], "--record") == 0)
        return record(argv[2], argv[3]);
    if (argc == 3)
        return replay(argv[1], argv[2]);
    fprintf(stderr, "usage: dlock_min_client [--record] FILE SOCKET\n");
    return 64;
}
