/*
 * shm_log_format.h: the on-memory layout of a topic's shared-memory log, shared by the writer
 * (src/shm_log.c, the daemon's worker) and the readers (src/consumer.c, other processes).
 *
 * Everything here is fixed-width and versioned: a change to any struct below bumps
 * SHM_LOG_VERSION. Nothing here allocates; the inline helpers are pure functions, any thread.
 *
 * File: <directory>/<encoded topic>.log (see shm_log_file_name), laid out as
 *   [struct shm_log_header: SHM_LOG_HEADER_BYTES][data ring: capacity_bytes, a power of two]
 *
 * Positions. A "position" is a byte count since the log was created; it only grows and never
 * wraps (64 bits). Its place in the ring is position & (capacity - 1). Every entry starts at a
 * multiple of 8. An "offset" is a record's number in the topic: 0, 1, 2, ... one per record.
 *
 * Entry: struct shm_log_entry_header followed by `length` record bytes, padded to 8 bytes.
 * Entries never straddle the ring end. When the next entry does not fit before the end:
 *   - if at least SHM_LOG_ENTRY_HEADER_BYTES remain, the writer puts a padding entry there
 *     (length == SHM_LOG_ENTRY_LENGTH_PADDING) and the entry goes to the ring start;
 *   - if fewer remain, they are implicit padding (no header is written): readers skip them.
 *
 * The protocol (one writer, any number of readers, no locks):
 *   1. Commit (length-commit): the writer writes entries beyond commit_position, then
 *      release-stores commit_position. A reader acquire-loads commit_position; every entry below
 *      it is then complete (header, bytes and checksum).
 *   2. Retention (seqlock-style lower bound): before the writer overwrites ring bytes that held
 *      old entries, it advances retained_position past them and issues a release fence, so the
 *      new bound is visible before any overwriting store. A reader that reads an entry at
 *      position P (header, bytes, checksum) then issues an acquire fence and reloads
 *      retained_position: if it is still <= P, nothing it read was overwritten (no torn read);
 *      if it passed P, the reader discards what it read and reports a gap.
 *   3. Hold-back (block mode): each live consumer release-stores read_position in its slot once
 *      it is done with the bytes below it; the writer acquire-loads it and never moves
 *      retained_position past the smallest one (unless that consumer is dead or stale).
 *   4. Wake-up: commit_sequence changes on every publish and is the futex word. A reader sets
 *      readers_waiting, rechecks commit_position and FUTEX_WAITs on commit_sequence; the writer
 *      wakes only when readers_waiting was set.
 */
#ifndef INTAKE_SHM_LOG_FORMAT_H
#define INTAKE_SHM_LOG_FORMAT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Self-contained: readers in other programs include only this header. */
#define SHM_LOG_CACHE_LINE_BYTES 64

/* ThreadSanitizer does not model atomic_thread_fence (GCC warns with -Wtsan). The edges TSan
 * checks here are the release/acquire pairs (commit_position, read_position, slot state); the
 * fences add only the seqlock and Dekker orderings, which matter when the writer overwrites
 * unreleased bytes (overwrite mode) or races a sleeping reader. They stay in TSan builds. */
#ifdef __SANITIZE_THREAD__
#pragma GCC diagnostic ignored "-Wtsan"
#endif

/* "INTKLOG1" little-endian: the first 8 bytes of every log file. */
#define SHM_LOG_MAGIC 0x31474f4c4b544e49ull
/* Bumped on any layout change; readers and writers refuse other versions. */
#define SHM_LOG_VERSION 1u
/* Consumer slots per log. */
#define SHM_LOG_CONSUMER_SLOTS 64
/* Bytes of a consumer name, including the terminating NUL. */
#define SHM_LOG_CONSUMER_NAME_BYTES 64
/* Bytes reserved for the topic name (up to 255 bytes plus NUL). */
#define SHM_LOG_TOPIC_BYTES 256
/* Bytes of the file header; the data ring starts here (page aligned). */
#define SHM_LOG_HEADER_BYTES 12288u
/* Smallest and largest data ring. */
#define SHM_LOG_CAPACITY_MIN 4096ull
#define SHM_LOG_CAPACITY_MAX (1ull << 40)
/* Entries start at multiples of this. */
#define SHM_LOG_ENTRY_ALIGNMENT 8u
/* `length` of a padding entry: skip to the ring start. */
#define SHM_LOG_ENTRY_LENGTH_PADDING UINT32_MAX
/* "No offset yet" (a slot that never committed). */
#define SHM_LOG_OFFSET_NONE UINT64_MAX

/* Consumer slot states. */
enum shm_log_slot_state {
    SHM_LOG_SLOT_FREE = 0,     /* unused; may be claimed with a compare-exchange */
    SHM_LOG_SLOT_CLAIMING = 1, /* a consumer is filling it in; the writer ignores it */
    SHM_LOG_SLOT_ACTIVE = 2,   /* live: holds the writer back in block mode */
    SHM_LOG_SLOT_STALE = 3,    /* the writer saw it dead or silent; a heartbeat revives it */
    SHM_LOG_SLOT_DETACHED = 4, /* closed, keeps its committed cursor for the same name */
};

/* Consumer slot flags. */
#define SHM_LOG_SLOT_FLAG_EPHEMERAL 1u /* freed on close; reclaimable once its pid is gone */

struct shm_log_entry_header {
    uint32_t length;          /* record bytes, or SHM_LOG_ENTRY_LENGTH_PADDING */
    uint32_t checksum;        /* shm_log_entry_checksum over the fields below and the bytes */
    uint64_t offset;          /* topic offset (padding: the next record's offset) */
    uint64_t sequence;        /* the producer's sequence (0: no ack wanted) */
    uint64_t receive_time_ns; /* wall clock when the daemon admitted the record */
};
#define SHM_LOG_ENTRY_HEADER_BYTES 32u
_Static_assert(sizeof(struct shm_log_entry_header) == SHM_LOG_ENTRY_HEADER_BYTES,
               "entry header is 32 bytes");
_Static_assert(SHM_LOG_ENTRY_HEADER_BYTES % SHM_LOG_ENTRY_ALIGNMENT == 0, "aligned entries");

/* One consumer: two cache lines. Written by its consumer; the writer reads it and may move
 * state ACTIVE -> STALE. */
struct shm_log_consumer_slot {
    char name[SHM_LOG_CONSUMER_NAME_BYTES]; /* NUL-terminated; written while CLAIMING */
    _Atomic uint32_t state;                 /* enum shm_log_slot_state */
    uint32_t flags;                         /* SHM_LOG_SLOT_FLAG_* */
    _Atomic int32_t pid;                    /* owning process, 0 when detached */
    uint32_t reserved0;
    _Atomic uint64_t heartbeat_ns;          /* CLOCK_MONOTONIC of the last poll/wait/commit */
    _Atomic uint64_t read_position;         /* bytes below are released by this consumer */
    _Atomic uint64_t committed_position;    /* where a restart with the same name resumes */
    _Atomic uint64_t committed_offset;      /* the offset expected there (or OFFSET_NONE) */
    uint8_t reserved1[16];
};
_Static_assert(sizeof(struct shm_log_consumer_slot) == 2 * SHM_LOG_CACHE_LINE_BYTES,
               "slot is two cache lines");
_Static_assert(offsetof(struct shm_log_consumer_slot, state) == SHM_LOG_CACHE_LINE_BYTES,
               "slot state starts the second line");

struct shm_log_header {
    /* --- line 0: identity, written once at creation (retention/stale by each writer open) --- */
    uint64_t magic;                  /* SHM_LOG_MAGIC */
    uint32_t version;                /* SHM_LOG_VERSION */
    uint32_t header_bytes;           /* SHM_LOG_HEADER_BYTES */
    uint64_t capacity_bytes;         /* data ring bytes, a power of two */
    uint64_t record_bytes_max;       /* largest record an entry may hold */
    uint32_t topic_length;           /* bytes of topic, without NUL */
    uint32_t consumer_slots;         /* SHM_LOG_CONSUMER_SLOTS */
    _Atomic uint32_t retention;      /* enum shm_log_retention of the current writer */
    uint32_t reserved0;
    _Atomic uint64_t consumer_stale_ns; /* consumers heartbeat well within this while waiting */
    uint64_t created_wall_ns;        /* CLOCK_REALTIME at creation */
    /* --- lines 1..4: the real topic name (file names are encoded) --- */
    char topic[SHM_LOG_TOPIC_BYTES];
    /* --- line 5: the writer's commit state --- */
    /* End of published entries (the length-commit word). */
    alignas(SHM_LOG_CACHE_LINE_BYTES) _Atomic uint64_t commit_position;
    _Atomic uint64_t commit_offset;    /* next offset at commit_position (seqlock-paired) */
    _Atomic uint32_t commit_sequence;  /* futex word and seqlock: odd while publishing */
    _Atomic uint32_t readers_waiting;  /* set by a reader before it sleeps on the futex */
    _Atomic int32_t writer_pid;        /* informational */
    uint8_t reserved1[36];
    /* --- line 6: the oldest retained entry --- */
    alignas(SHM_LOG_CACHE_LINE_BYTES) _Atomic uint64_t retained_position; /* oldest intact entry */
    _Atomic uint64_t retained_offset;  /* informational: its offset as the writer last knew it */
    uint8_t reserved2[48];
    /* --- lines 7..: consumer slots --- */
    alignas(SHM_LOG_CACHE_LINE_BYTES) struct shm_log_consumer_slot slots[SHM_LOG_CONSUMER_SLOTS];
};
_Static_assert(offsetof(struct shm_log_header, topic) == 64, "topic starts line 1");
_Static_assert(offsetof(struct shm_log_header, commit_position) == 320, "commit state line 5");
_Static_assert(offsetof(struct shm_log_header, retained_position) == 384, "retained line 6");
_Static_assert(offsetof(struct shm_log_header, slots) == 448, "slots start at line 7");
_Static_assert(sizeof(struct shm_log_header) == 448 + 128 * SHM_LOG_CONSUMER_SLOTS, "header size");
_Static_assert(sizeof(struct shm_log_header) <= SHM_LOG_HEADER_BYTES, "header fits");
_Static_assert(SHM_LOG_HEADER_BYTES % 4096 == 0, "ring is page aligned");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "lock-free words");

/* Bytes an entry of `record_bytes` occupies in the ring (header plus padded bytes). */
static inline uint64_t shm_log_entry_span(uint64_t record_bytes) {
    uint64_t padded = (record_bytes + SHM_LOG_ENTRY_ALIGNMENT - 1) &
                      ~(uint64_t)(SHM_LOG_ENTRY_ALIGNMENT - 1);
    return SHM_LOG_ENTRY_HEADER_BYTES + padded;
}

/* Largest record a ring of `capacity_bytes` accepts: a quarter of the ring, so that the worst
 * wrap padding plus one entry always fits in a drained ring, and overwrite mode always keeps
 * at least a few records for its readers. */
static inline uint64_t shm_log_record_bytes_max_for(uint64_t capacity_bytes) {
    uint64_t quarter = capacity_bytes / 4;
    return quarter < UINT32_MAX - 1 ? quarter : UINT32_MAX - 1;
}

static inline uint64_t shm_log_rotate_left(uint64_t value, unsigned bits) {
    return (value << bits) | (value >> (64 - bits));
}

static inline uint64_t shm_log_mix(uint64_t hash) {
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdull;
    hash ^= hash >> 33;
    hash *= 0xc4ceb9fe1a85ec53ull;
    hash ^= hash >> 33;
    return hash;
}

/* A small 64-bit hash (multiply-rotate over 8-byte words, then a murmur-style finaliser).
 * Written for this project; it detects torn or corrupted entries, it is not cryptographic. */
static inline uint64_t shm_log_hash64(const uint8_t *bytes, size_t length, uint64_t seed) {
    const uint64_t prime1 = 0x9e3779b185ebca87ull;
    const uint64_t prime2 = 0xc2b2ae3d27d4eb4full;
    uint64_t hash = seed ^ (length * prime1);
    size_t index = 0;
    for (; index + 8 <= length; index += 8) {
        uint64_t word;
        memcpy(&word, bytes + index, 8);
        hash ^= shm_log_rotate_left(word * prime2, 31) * prime1;
        hash = shm_log_rotate_left(hash, 27) * prime1 + 0x165667b19e3779f9ull;
    }
    uint64_t tail = 0;
    for (size_t shift = 0; index < length; index++, shift += 8)
        tail |= (uint64_t)bytes[index] << shift;
    hash ^= shm_log_rotate_left(tail * prime2, 31) * prime1;
    return shm_log_mix(hash);
}

/* The checksum stored in an entry: covers its length, offset, sequence, receive time and bytes,
 * so a header torn from its bytes is detected too. */
static inline uint32_t shm_log_entry_checksum(const struct shm_log_entry_header *entry,
                                              const uint8_t *bytes) {
    uint64_t seed = shm_log_mix(entry->offset ^ ((uint64_t)entry->length << 32)) ^
                    shm_log_mix(entry->sequence + 0x9e3779b97f4a7c15ull) ^
                    shm_log_mix(entry->receive_time_ns ^ 0x2545f4914f6cdd1dull);
    uint64_t length = entry->length == SHM_LOG_ENTRY_LENGTH_PADDING ? 0 : entry->length;
    uint64_t hash = shm_log_hash64(bytes, (size_t)length, seed);
    return (uint32_t)(hash ^ (hash >> 32));
}

static inline int shm_log_topic_byte_is_safe(uint8_t byte) {
    return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
           (byte >= '0' && byte <= '9') || byte == '-' || byte == '_' || byte == '.';
}

/* Bytes of encoded topic kept before a long name is shortened with a hash suffix. */
#define SHM_LOG_FILE_NAME_ENCODED_MAX 200
/* Room for any file name shm_log_file_name writes (NAME_MAX is 255). */
#define SHM_LOG_FILE_NAME_BYTES 256

/* Writes the file name of `topic` into `out` (SHM_LOG_FILE_NAME_BYTES): bytes other than
 * [A-Za-z0-9._-] become %XX (a leading '.' too, so no name is hidden or "." / ".."), then
 * ".log". A name longer than SHM_LOG_FILE_NAME_ENCODED_MAX is cut there and gets "~" and a
 * 64-bit hash of the whole topic. The header holds the real topic, checked on every open. */
static inline void shm_log_file_name(const char *topic, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    size_t topic_length = strlen(topic);
    size_t written = 0;
    int shortened = 0;
    for (size_t index = 0; index < topic_length; index++) {
        uint8_t byte = (uint8_t)topic[index];
        int safe = shm_log_topic_byte_is_safe(byte) && !(index == 0 && byte == '.');
        if (written + (safe ? 1 : 3) > SHM_LOG_FILE_NAME_ENCODED_MAX) {
            shortened = 1;
            break;
        }
        if (safe) {
            out[written++] = (char)byte;
        } else {
            out[written++] = '%';
            out[written++] = hex[byte >> 4];
            out[written++] = hex[byte & 15];
        }
    }
    if (shortened) {
        uint64_t hash = shm_log_hash64((const uint8_t *)topic, topic_length, 0);
        written += (size_t)snprintf(out + written, SHM_LOG_FILE_NAME_BYTES - written,
                                    "~%016llx", (unsigned long long)hash);
    }
    snprintf(out + written, SHM_LOG_FILE_NAME_BYTES - written, ".log");
}

static inline struct shm_log_entry_header *shm_log_entry_at(uint8_t *ring, uint64_t capacity,
                                                            uint64_t position) {
    return (struct shm_log_entry_header *)(void *)(ring + (position & (capacity - 1)));
}

#endif
