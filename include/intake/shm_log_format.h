/*
 * intake/shm_log_format.h: the public, versioned layout of a topic's shared-memory log.
 *
 * Written by intaked (one writer per topic) and read by consumers in other processes and other
 * languages. docs/shm-log-format.md is the specification (with test vectors); this header is its
 * C rendering, self-contained (C11 or C++, no other intake header), and usable from both.
 * Everything is little-endian, fixed-width, and versioned: any layout change bumps
 * SHM_LOG_VERSION, and readers refuse other versions.
 *
 * Two files per topic under the log directory, named by shm_log_file_name:
 *   <name>.log        the writer's header (SHM_LOG_HEADER_BYTES) then the data ring. Only the
 *                     writer writes it (mode 0640); consumers open it O_RDONLY and map it
 *                     PROT_READ, so no consumer can damage the ring or the writer's state.
 *   <name>.consumers  the consumer region: a small header and SHM_LOG_CONSUMER_SLOTS slots.
 *                     Consumers map it read-write (mode 0660); a bad value there can only cost
 *                     the consumer whose slot it is (the writer validates what it reads).
 *   <name>.dedupe     the daemon's deduplication table (mode 0600): not for consumers.
 *
 * Two more files per log directory (their own version, SHM_LOG_NOTIFY_VERSION; optional for
 * readers): intake.notify (the writer's: a futex word every publish on any log bumps, and a
 * counter bumped when a log is created) and intake.notify-waiters (consumers set a flag there
 * before sleeping), so one consumer of many topics sleeps on one word. See struct
 * shm_log_notify below and "The directory's wake-up files" in docs/shm-log-format.md.
 *
 * Positions. A "position" is a byte count since the log was created; it only grows and never
 * wraps (64 bits). Its place in the ring is position & (capacity - 1). Every entry starts at a
 * multiple of 8. An "offset" is a record's number in the topic: 0, 1, 2, ... one per record.
 *
 * Entry: struct shm_log_entry_header followed by `length` record bytes, padded to 8 bytes.
 * Entries never straddle the ring end. When the next entry does not fit before the end:
 *   - if at least SHM_LOG_ENTRY_HEADER_BYTES remain, the writer puts a padding entry there
 *     (length == SHM_LOG_ENTRY_LENGTH_PADDING, offset = the next record's offset) and the entry
 *     goes to the ring start;
 *   - if fewer remain, they are implicit padding (no header is written): readers skip them.
 * checksum = CRC32C (Castagnoli) of the 40 header bytes with the checksum field zero, followed
 * by the `length` record bytes (none for padding). See shm_log_entry_checksum.
 * Every entry names the principal that wrote it: the tag of the name its connection proved
 * ("anonymous" on a plaintext listener), the first 8 bytes of SHA-256(name) read as a
 * little-endian u64 (docs/shm-log-format.md has the vectors). A consumer can tell who wrote a
 * record by hashing the name it expects, and the daemon rebuilds its per-principal
 * deduplication state from the log.
 *
 * The protocol (one writer, any number of readers, no locks shared with the writer):
 *   1. Commit (length-commit): the writer writes entries beyond commit_position, then
 *      release-stores commit_position. A reader acquire-loads commit_position; every entry below
 *      it is then complete (header, bytes and checksum).
 *   2. Retention (seqlock-style lower bound): before the writer overwrites ring bytes that held
 *      old entries, it advances retained_position past them and issues a release fence, so the
 *      new bound is visible before any overwriting store. A reader that reads an entry at
 *      position P then issues an acquire fence and reloads retained_position: if it is still
 *      <= P, nothing it read was overwritten; if it passed P, the reader discards what it read
 *      and reports a gap.
 *   3. Hold-back (block mode): a live consumer release-stores read_position in its slot once it
 *      is done with the bytes below it; the writer never moves retained_position past the
 *      smallest read_position of a live slot. Live = state ACTIVE, its slot's byte range is
 *      locked (an OFD lock, released by the kernel when the process dies), and its heartbeat is
 *      neither in the future nor older than the log's consumer_stale_ns.
 *   4. Registration handshake (block mode; Dekker on two words, both sides seq_cst):
 *        consumer: write the slot (read_position = P) and state ACTIVE; fetch_add registrations;
 *                  load retiring_position. If it is <= P, P is safe. Otherwise wait (bounded)
 *                  until retained_position == retiring_position, and if retained_position > P,
 *                  move P up to it (publishing read_position again) and check again.
 *        writer:   store retiring_position = the new bound R; load registrations; if it changed
 *                  since the writer last scanned the slots, rescan them; if a live slot needs
 *                  bytes below R, store retiring_position back and wait; otherwise store
 *                  retained_position = R (release fence) and overwrite.
 *      So a registration that the writer has not seen always sees the retirement, and one that
 *      it has seen holds it back: a consumer is protected from the moment its open returns.
 *   5. Wake-up: commit_sequence changes on every publish and is the futex word. A reader sets
 *      readers_waiting (consumer region), rechecks commit_position and FUTEX_WAITs on
 *      commit_sequence (read-only mapping); the writer wakes only when readers_waiting was set.
 */
#ifndef INTAKE_SHM_LOG_FORMAT_H
#define INTAKE_SHM_LOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Words marked SHM_LOG_ATOMIC(type) are written by one process while others read them: the
 * protocol above names the order of each access. They are plain fixed-width fields in this
 * header, so that any language's generator reads it (bindgen included); the rule is that every
 * access to one is atomic, with the protocol's order: in C or C++ with GCC or Clang
 * __atomic_load_n(&header->commit_position, __ATOMIC_ACQUIRE), in Go sync/atomic, in Rust
 * AtomicU64::from_ptr. intake's own sources are compiled with INTAKE_ATOMIC_FIELDS, which
 * declares the same words _Atomic (std::atomic in C++) so that the compiler checks every
 * access; the layout is identical either way (the asserts below hold in both). */
#if defined(INTAKE_ATOMIC_FIELDS) && defined(__cplusplus)
#include <atomic>
#define SHM_LOG_ATOMIC(type) std::atomic<type>
#elif defined(INTAKE_ATOMIC_FIELDS)
#include <stdatomic.h>
#define SHM_LOG_ATOMIC(type) _Atomic type
#else
#define SHM_LOG_ATOMIC(type) type
#endif
#ifdef __cplusplus
#define SHM_LOG_ALIGNAS(bytes)                 alignas(bytes)
#define SHM_LOG_STATIC_ASSERT(condition, text) static_assert(condition, text)
extern "C" {
#else
#include <stdalign.h>
#define SHM_LOG_ALIGNAS(bytes)                 alignas(bytes)
#define SHM_LOG_STATIC_ASSERT(condition, text) _Static_assert(condition, text)
#endif

#define SHM_LOG_CACHE_LINE_BYTES 64

/* ThreadSanitizer does not model atomic_thread_fence (GCC warns with -Wtsan). The edges TSan
 * checks are the release/acquire pairs; the fences add the seqlock and Dekker orderings. */
#ifdef __SANITIZE_THREAD__
#pragma GCC diagnostic ignored "-Wtsan"
#endif

/* "INTKLOG1" little-endian: the first 8 bytes of every log file (all versions). */
#define SHM_LOG_MAGIC 0x31474f4c4b544e49ull
/* "INTKCONS" little-endian: the first 8 bytes of every consumer region file. */
#define SHM_LOG_CONSUMERS_MAGIC 0x534e4f434b544e49ull
/* Bumped on any layout change; readers and writers refuse other versions. Version 1 had one
 * read-write file and a project-specific checksum; version 2 a 32-byte entry header without the
 * principal. */
#define SHM_LOG_VERSION 3u
/* Consumer slots per log. */
#define SHM_LOG_CONSUMER_SLOTS 64
/* Bytes of a consumer name, including the terminating NUL. */
#define SHM_LOG_CONSUMER_NAME_BYTES 64
/* Bytes reserved for the topic name (up to 255 bytes plus NUL). */
#define SHM_LOG_TOPIC_BYTES 256
/* Bytes of the log file's header; the data ring starts here (page aligned). */
#define SHM_LOG_HEADER_BYTES 4096u
/* Bytes of the consumer region file: its header line pair, then the slots. */
#define SHM_LOG_CONSUMERS_HEADER_BYTES 128u
#define SHM_LOG_CONSUMERS_FILE_BYTES   12288u
/* Smallest and largest data ring. */
#define SHM_LOG_CAPACITY_MIN 4096ull
#define SHM_LOG_CAPACITY_MAX (1ull << 40)
/* Entries start at multiples of this. */
#define SHM_LOG_ENTRY_ALIGNMENT 8u
/* `length` of a padding entry: skip to the ring start. */
#define SHM_LOG_ENTRY_LENGTH_PADDING UINT32_MAX
/* "No offset yet" (a slot that never committed). */
#define SHM_LOG_OFFSET_NONE UINT64_MAX
/* Byte range of the consumer region that a registering consumer locks (OFD write lock) while
 * it chooses and fills a slot, so registrations never race each other. */
#define SHM_LOG_CONSUMERS_CLAIM_LOCK_START 0u
#define SHM_LOG_CONSUMERS_CLAIM_LOCK_BYTES 64u

/* Consumer slot states. Anything else is treated as FREE garbage by readers and the writer. */
enum shm_log_slot_state {
    SHM_LOG_SLOT_FREE = 0,     /* unused */
    SHM_LOG_SLOT_ACTIVE = 2,   /* registered; holds the writer back while live (block mode) */
    SHM_LOG_SLOT_DETACHED = 4, /* closed, keeps its committed cursor for the same name */
};

/* Consumer slot flags. */
#define SHM_LOG_SLOT_FLAG_EPHEMERAL 1u /* freed on close; its cursor is never resumed */

struct shm_log_entry_header {
    uint32_t length;          /* record bytes, or SHM_LOG_ENTRY_LENGTH_PADDING */
    uint32_t checksum;        /* CRC32C: this header with checksum 0, then the record bytes */
    uint64_t offset;          /* topic offset (padding: the next record's offset) */
    uint64_t sequence;        /* the producer's sequence (0: no ack wanted) */
    uint64_t receive_time_ns; /* wall clock when the daemon admitted the record */
    uint64_t principal;       /* tag of the writing connection's principal (padding: 0) */
};
#define SHM_LOG_ENTRY_HEADER_BYTES 40u
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_entry_header) == SHM_LOG_ENTRY_HEADER_BYTES,
                      "entry header is 40 bytes");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_entry_header, principal) == 32, "principal at 32");
SHM_LOG_STATIC_ASSERT(SHM_LOG_ENTRY_HEADER_BYTES % SHM_LOG_ENTRY_ALIGNMENT == 0, "aligned entries");

/* The log file's header: written only by the writer. */
struct shm_log_header {
    /* --- line 0: identity, written once at creation, covered by identity_checksum --- */
    uint64_t magic;             /* SHM_LOG_MAGIC */
    uint32_t version;           /* SHM_LOG_VERSION */
    uint32_t header_bytes;      /* SHM_LOG_HEADER_BYTES */
    uint64_t capacity_bytes;    /* data ring bytes, a power of two */
    uint64_t record_bytes_max;  /* largest record an entry may hold */
    uint64_t created_wall_ns;   /* CLOCK_REALTIME at creation; also names the consumer region */
    uint32_t topic_length;      /* bytes of topic, without NUL */
    uint32_t consumer_slots;    /* SHM_LOG_CONSUMER_SLOTS */
    uint32_t identity_checksum; /* CRC32C of bytes 0..319 with this field zero */
    uint32_t reserved0[3];
    /* --- lines 1..4: the real topic name, NUL padded (file names are encoded) --- */
    char topic[SHM_LOG_TOPIC_BYTES];
    /* --- line 5: the writer's commit state and settings --- */
    /* End of published entries (the length-commit word). */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint64_t) commit_position;
    SHM_LOG_ATOMIC(uint64_t) commit_offset;   /* next offset at commit_position (seqlock) */
    SHM_LOG_ATOMIC(uint32_t) commit_sequence; /* futex word and seqlock: odd while publishing */
    SHM_LOG_ATOMIC(int32_t) writer_pid;       /* informational (the writer's own namespace) */
    SHM_LOG_ATOMIC(uint32_t) retention;       /* 0 block, 1 overwrite: the current writer's */
    uint32_t reserved1;
    SHM_LOG_ATOMIC(uint64_t) consumer_stale_ns; /* heartbeat well within this while waiting */
    uint8_t reserved2[24];
    /* --- line 6: the oldest retained entry, and the retirement in progress --- */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint64_t) retained_position;
    SHM_LOG_ATOMIC(uint64_t) retained_offset;   /* informational */
    SHM_LOG_ATOMIC(uint64_t) retiring_position; /* == retained_position unless deciding */
    uint8_t reserved3[40];
};
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, identity_checksum) == 48, "identity");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, topic) == 64, "topic starts line 1");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, commit_position) == 320, "commit line 5");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, retention) == 344, "settings line 5");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, consumer_stale_ns) == 352, "stale time");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, retained_position) == 384, "line 6");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_header, retiring_position) == 400, "retiring");
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_header) == 448, "header size");
SHM_LOG_STATIC_ASSERT(SHM_LOG_HEADER_BYTES % 4096 == 0, "ring is page aligned");
/* Bytes the identity checksum covers: line 0 and the topic. */
#define SHM_LOG_IDENTITY_BYTES 320u

/* One consumer: two cache lines in the consumer region. Written by its consumer only. */
struct shm_log_consumer_slot {
    char name[SHM_LOG_CONSUMER_NAME_BYTES]; /* NUL-terminated */
    SHM_LOG_ATOMIC(uint32_t) state;         /* enum shm_log_slot_state */
    uint32_t flags;                         /* SHM_LOG_SLOT_FLAG_* */
    SHM_LOG_ATOMIC(int32_t) pid;            /* informational only (pid namespaces differ) */
    uint32_t reserved0;
    SHM_LOG_ATOMIC(uint64_t) heartbeat_ns;       /* CLOCK_MONOTONIC of the last poll/wait/commit */
    SHM_LOG_ATOMIC(uint64_t) read_position;      /* bytes below are released by this consumer */
    SHM_LOG_ATOMIC(uint64_t) committed_position; /* where a restart with this name resumes */
    SHM_LOG_ATOMIC(uint64_t) committed_offset;   /* the offset expected there, or OFFSET_NONE */
    uint8_t reserved1[16];
};
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_consumer_slot) == 2 * SHM_LOG_CACHE_LINE_BYTES,
                      "slot is two cache lines");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_consumer_slot, state) == 64, "slot state");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_consumer_slot, read_position) == 88, "read pos");

/* The consumer region file: written by the writer at creation, then by consumers. */
struct shm_log_consumers {
    /* --- line 0: identity (the writer's, at creation) --- */
    uint64_t magic;               /* SHM_LOG_CONSUMERS_MAGIC */
    uint32_t version;             /* SHM_LOG_VERSION */
    uint32_t slot_count;          /* SHM_LOG_CONSUMER_SLOTS */
    uint64_t log_created_wall_ns; /* the log's created_wall_ns: pairs the two files */
    uint8_t reserved0[40];
    /* --- line 1: registration handshake and wake-up flag --- */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint64_t) registrations;
    SHM_LOG_ATOMIC(uint32_t) readers_waiting; /* set by a reader before it sleeps */
    uint8_t reserved1[52];
    /* --- lines 2..: slots; slot i is locked as bytes [128 + 128 i, 128 + 128 (i + 1)) --- */
    struct shm_log_consumer_slot slots[SHM_LOG_CONSUMER_SLOTS];
};
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_consumers, registrations) == 64, "line 1");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_consumers, slots) == SHM_LOG_CONSUMERS_HEADER_BYTES,
                      "slots at 128");
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_consumers) <= SHM_LOG_CONSUMERS_FILE_BYTES, "fits");
SHM_LOG_STATIC_ASSERT(sizeof(SHM_LOG_ATOMIC(uint64_t)) == 8, "lock-free 64-bit words");

/* ------------------------------------------------- the directory's wake-up files --- */
/* Two small files per log directory, beside the logs, let one consumer wait for a publish on
 * any of them (docs/shm-log-format.md, "The directory's wake-up files"). They have their own
 * version, independent of SHM_LOG_VERSION. Neither name ends in .log or .consumers, so no topic
 * maps to them. */
#define SHM_LOG_NOTIFY_FILE_NAME         "intake.notify"
#define SHM_LOG_NOTIFY_WAITERS_FILE_NAME "intake.notify-waiters"
/* "INTKNTFY" and "INTKWAIT" little-endian. */
#define SHM_LOG_NOTIFY_MAGIC         0x5946544e4b544e49ull
#define SHM_LOG_NOTIFY_WAITERS_MAGIC 0x544941574b544e49ull
#define SHM_LOG_NOTIFY_VERSION       1u
/* Both files are this long. */
#define SHM_LOG_NOTIFY_FILE_BYTES 4096u

/* intake.notify: written only by intaked (mode 0640); consumers map it read-only. */
struct shm_log_notify {
    /* --- line 0: identity, written once at creation --- */
    uint64_t magic;           /* SHM_LOG_NOTIFY_MAGIC */
    uint32_t version;         /* SHM_LOG_NOTIFY_VERSION */
    uint32_t file_bytes;      /* SHM_LOG_NOTIFY_FILE_BYTES */
    uint64_t created_wall_ns; /* CLOCK_REALTIME at creation; pairs it with its waiters file */
    uint8_t reserved0[40];
    /* --- line 1: the futex word, bumped (release) after every publish on any log here --- */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint32_t) publish_sequence;
    uint8_t reserved1[60];
    /* --- line 2: bumped (release) after a log here is created or recreated --- */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint64_t) logs_changed;
    uint8_t reserved2[56];
};
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_notify, created_wall_ns) == 16, "notify identity");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_notify, publish_sequence) == 64, "notify line 1");
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_notify, logs_changed) == 128, "notify line 2");
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_notify) == 192, "notify size");

/* intake.notify-waiters: written by intaked at creation, then by consumers (mode 0660). */
struct shm_log_notify_waiters {
    /* --- line 0: identity (the writer's, at creation) --- */
    uint64_t magic;           /* SHM_LOG_NOTIFY_WAITERS_MAGIC */
    uint32_t version;         /* SHM_LOG_NOTIFY_VERSION */
    uint32_t file_bytes;      /* SHM_LOG_NOTIFY_FILE_BYTES */
    uint64_t created_wall_ns; /* equal to intake.notify's, or the file is not its pair */
    uint8_t reserved0[40];
    /* --- line 1: set (non-zero) by a consumer before it sleeps on publish_sequence --- */
    SHM_LOG_ALIGNAS(SHM_LOG_CACHE_LINE_BYTES) SHM_LOG_ATOMIC(uint32_t) readers_waiting;
    uint8_t reserved1[60];
};
SHM_LOG_STATIC_ASSERT(offsetof(struct shm_log_notify_waiters, readers_waiting) == 64, "line 1");
SHM_LOG_STATIC_ASSERT(sizeof(struct shm_log_notify_waiters) == 128, "waiters size");

/* Byte offset of slot `index` in the consumer region (also its OFD lock range start). */
static inline uint64_t shm_log_slot_lock_start(uint32_t index) {
    return SHM_LOG_CONSUMERS_HEADER_BYTES + (uint64_t)index * sizeof(struct shm_log_consumer_slot);
}

/* Bytes an entry of `record_bytes` occupies in the ring (header plus padded bytes). */
static inline uint64_t shm_log_entry_span(uint64_t record_bytes) {
    uint64_t padded =
        (record_bytes + SHM_LOG_ENTRY_ALIGNMENT - 1) & ~(uint64_t)(SHM_LOG_ENTRY_ALIGNMENT - 1);
    return SHM_LOG_ENTRY_HEADER_BYTES + padded;
}

/* Largest record a ring of `capacity_bytes` accepts: a quarter of the ring, so that the worst
 * wrap padding plus one entry always fits in a drained ring, and overwrite mode always keeps
 * at least a few records for its readers. */
static inline uint64_t shm_log_record_bytes_max_for(uint64_t capacity_bytes) {
    uint64_t quarter = capacity_bytes / 4;
    return quarter < UINT32_MAX - 1 ? quarter : UINT32_MAX - 1;
}

/* ---------------------------------------------------------------- CRC32C --- */
/* CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor
 * 0xFFFFFFFF (as in iSCSI, ext4, Kafka record batches). shm_log_crc32c(0, "123456789", 9) is
 * 0xE3069283. Chaining: shm_log_crc32c(shm_log_crc32c(0, a), b) == shm_log_crc32c(0, a || b).
 * shm_log_crc32c is the specification's reference: bitwise, portable, and slow (a few ns a
 * byte). A reader checking every entry wants a faster function that computes the same (the
 * CPU's CRC32C instruction, a table-driven one, a library's); intake's own code uses
 * intake_crc32c (src/base/crc32c.c: SSE4.2 or ARMv8 CRC32). The checksum helpers below take
 * the function to use, so either serves. */
#define SHM_LOG_CRC32C_POLYNOMIAL 0x82F63B78u

static inline uint32_t shm_log_crc32c(uint32_t crc, const void *data, size_t length) {
    const uint8_t *bytes = (const uint8_t *)data;
    crc = ~crc;
    for (size_t index = 0; index < length; index++) {
        crc ^= bytes[index];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (SHM_LOG_CRC32C_POLYNOMIAL & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* A CRC32C function with shm_log_crc32c's arguments and results. */
typedef uint32_t shm_log_crc32c_function(uint32_t crc, const void *data, size_t length);

/* The CRC32C of an entry's header with its checksum field zero: the start of its checksum. */
static inline uint32_t shm_log_entry_header_crc(const struct shm_log_entry_header *entry,
                                                shm_log_crc32c_function *crc32c) {
    struct shm_log_entry_header copy;
    memcpy(&copy, entry, sizeof(copy));
    copy.checksum = 0;
    return crc32c(0, &copy, sizeof(copy));
}

/* The checksum stored in an entry: its header (checksum zero), then its record bytes. */
static inline uint32_t shm_log_entry_checksum(const struct shm_log_entry_header *entry,
                                              const uint8_t *bytes,
                                              shm_log_crc32c_function *crc32c) {
    uint32_t crc = shm_log_entry_header_crc(entry, crc32c);
    if (entry->length == SHM_LOG_ENTRY_LENGTH_PADDING) return crc;
    return crc32c(crc, bytes, entry->length);
}

/* The identity checksum of a log header (bytes 0..319, identity_checksum read as zero). */
static inline uint32_t shm_log_identity_checksum(const struct shm_log_header *header,
                                                 shm_log_crc32c_function *crc32c) {
    uint8_t identity[SHM_LOG_IDENTITY_BYTES];
    memcpy(identity, (const void *)header, sizeof(identity));
    memset(identity + offsetof(struct shm_log_header, identity_checksum), 0, 4);
    return crc32c(0, identity, sizeof(identity));
}

/* ------------------------------------------------------------- file names --- */
static inline int shm_log_topic_byte_is_safe(uint8_t byte) {
    return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
           (byte >= '0' && byte <= '9') || byte == '-' || byte == '_' || byte == '.';
}

/* Bytes of encoded topic kept before a long name is shortened with a checksum suffix. */
#define SHM_LOG_FILE_NAME_ENCODED_MAX 200
/* Room for any file name shm_log_file_name writes, suffix included (NAME_MAX is 255). */
#define SHM_LOG_FILE_NAME_BYTES       256
#define SHM_LOG_FILE_SUFFIX           ".log"
#define SHM_LOG_CONSUMERS_FILE_SUFFIX ".consumers"
/* The daemon's deduplication table for the topic (mode 0600, read by no one else; its layout is
 * in docs/shm-log-format.md, "The deduplication table"). */
#define SHM_LOG_DEDUPE_FILE_SUFFIX ".dedupe"

/* Writes the base name of `topic`'s files into `out` (SHM_LOG_FILE_NAME_BYTES; append
 * SHM_LOG_FILE_SUFFIX or SHM_LOG_CONSUMERS_FILE_SUFFIX): percent-encoding (RFC 3986 style,
 * upper-case hex) of every byte other than [A-Za-z0-9._-], and of a leading '.', so no name is
 * hidden, "." or "..". An encoding longer than SHM_LOG_FILE_NAME_ENCODED_MAX bytes is cut at
 * the last whole byte that fits and gets "~" and the CRC32C of the whole topic as 8 lower-case
 * hex digits. The header holds the real topic, checked on every open. */
static inline void shm_log_file_base_name(const char *topic, char *out) {
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
    out[written] = '\0';
    if (shortened)
        snprintf(out + written, SHM_LOG_FILE_NAME_BYTES - written, "~%08x",
                 (unsigned)shm_log_crc32c(0, topic, topic_length));
}

/* The log file's name: base name and ".log". */
static inline void shm_log_file_name(const char *topic, char *out) {
    shm_log_file_base_name(topic, out);
    size_t length = strlen(out);
    snprintf(out + length, SHM_LOG_FILE_NAME_BYTES - length, "%s", SHM_LOG_FILE_SUFFIX);
}

/* The consumer region's name: base name and ".consumers". */
static inline void shm_log_consumers_file_name(const char *topic, char *out) {
    shm_log_file_base_name(topic, out);
    size_t length = strlen(out);
    snprintf(out + length, SHM_LOG_FILE_NAME_BYTES - length, "%s", SHM_LOG_CONSUMERS_FILE_SUFFIX);
}

/* The deduplication table's name: base name and ".dedupe". */
static inline void shm_log_dedupe_file_name(const char *topic, char *out) {
    shm_log_file_base_name(topic, out);
    size_t length = strlen(out);
    snprintf(out + length, SHM_LOG_FILE_NAME_BYTES - length, "%s", SHM_LOG_DEDUPE_FILE_SUFFIX);
}

static inline const struct shm_log_entry_header *
shm_log_entry_at(const uint8_t *ring, uint64_t capacity, uint64_t position) {
    return (const struct shm_log_entry_header *)(const void *)(ring + (position & (capacity - 1)));
}

#ifdef __cplusplus
}
#endif

#endif
