/*
 * fuzz_ack_reader.c: the producer library's Ack reader (ack_frame_decode, src/wire/ack_frame.h)
 * on an arbitrary byte stream from "the daemon", received in arbitrary pieces.
 *
 * Input: the stream, then (from the tail) one byte whose low 5 bits count the split bytes
 * before it, then the split bytes (fuzz_util.h; here they are receive sizes).
 *
 * The reader loop is the producer's (src/client/producer.c producer_parse_acks): a fixed
 * 4096-byte receive buffer, decode every complete frame, keep the partial tail (memmove),
 * stop at the first error. Properties asserted:
 *   1. No crash, no read outside the bytes given (ASan), for every input.
 *   2. A decoded frame lies inside the bytes given, and a frame never exceeds the buffer: the
 *      reader never waits for a frame it could not hold (the producer asserts that).
 *   3. The result does not depend on how the bytes arrived: the Acks (sequence, status,
 *      detail) and the final error equal those of the whole stream decoded in one go.
 *   4. Round trip: an Ack the reactor's encoder writes (sequence, status and detail taken from
 *      the input) decodes to what was encoded, the detail cut as the encoder cuts it.
 */
#include <stdint.h>
#include <string.h>

#include "ack_frame.h"
#include "fuzz_util.h"
#include "varint.h"

/* The producer's receive buffer and its frame limit. */
#define READER_BUFFER_BYTES   4096
#define READER_BODY_BYTES_MAX (READER_BUFFER_BYTES - VARINT_BYTES_MAX)
/* Acks compared per run; later ones are decoded but not kept. */
#define READER_ACKS_KEPT 64

struct reader_outcome {
    size_t ack_count;
    uint64_t sequences[READER_ACKS_KEPT];
    uint32_t statuses[READER_ACKS_KEPT];
    uint64_t detail_hashes[READER_ACKS_KEPT];
    enum ack_frame_result error; /* ACK_FRAME_OK when the stream ended without one */
    uint64_t error_body_bytes;
};

static uint64_t text_hash(const char *text) {
    uint64_t hash = 0xcbf29ce484222325ull;
    for (; *text != '\0'; text++) hash = (hash ^ (uint8_t)*text) * 0x100000001b3ull;
    return hash;
}

/* Decodes every complete frame at the start of bytes[0..length); returns the bytes used, or
 * records the error in the outcome. */
static size_t reader_parse(const uint8_t *bytes, size_t length, struct reader_outcome *outcome) {
    size_t position = 0;
    while (position < length && outcome->error == ACK_FRAME_OK) {
        struct ack_frame_decoded ack;
        enum ack_frame_result result =
            ack_frame_decode(bytes + position, length - position, READER_BODY_BYTES_MAX, &ack);
        if (result == ACK_FRAME_NEED_MORE) break;
        if (result != ACK_FRAME_OK) {
            outcome->error = result;
            outcome->error_body_bytes = ack.body_bytes;
            if (result == ACK_FRAME_TOO_LONG) FUZZ_CHECK(ack.body_bytes > READER_BODY_BYTES_MAX);
            if (result == ACK_FRAME_UNREADABLE) FUZZ_CHECK(ack.problem != NULL);
            break;
        }
        FUZZ_CHECK(ack.frame_bytes > 0 && ack.frame_bytes <= length - position);
        FUZZ_CHECK(ack.body_bytes <= READER_BODY_BYTES_MAX);
        FUZZ_CHECK(memchr(ack.detail, '\0', sizeof(ack.detail)) != NULL);
        if (outcome->ack_count < READER_ACKS_KEPT) {
            outcome->sequences[outcome->ack_count] = ack.sequence;
            outcome->statuses[outcome->ack_count] = ack.status;
            outcome->detail_hashes[outcome->ack_count] = text_hash(ack.detail);
        }
        outcome->ack_count++;
        position += ack.frame_bytes;
    }
    return position;
}

/* The producer's loop: receive into the buffer as the pieces say, parse, keep the tail. */
static void reader_run(const uint8_t *stream, size_t length, const uint8_t *splits,
                       size_t split_count, struct reader_outcome *outcome) {
    memset(outcome, 0, sizeof(*outcome));
    uint8_t *buffer = malloc(READER_BUFFER_BYTES);
    FUZZ_CHECK(buffer != NULL);
    size_t fill = 0, position = 0, piece_index = 0;
    while (position < length && outcome->error == ACK_FRAME_OK) {
        /* What the producer asserts before every recv: there is room. */
        FUZZ_CHECK(fill < READER_BUFFER_BYTES);
        size_t piece =
            split_count ? (size_t)(splits[piece_index++ % split_count] & 63) + 1 : length;
        if (piece > READER_BUFFER_BYTES - fill) piece = READER_BUFFER_BYTES - fill;
        if (piece > length - position) piece = length - position;
        memcpy(buffer + fill, stream + position, piece);
        fill += piece;
        position += piece;
        /* Decode from an exact-sized copy so ASan sees reads past the received bytes. */
        uint8_t *received = malloc(fill);
        FUZZ_CHECK(received != NULL);
        memcpy(received, buffer, fill);
        size_t used = reader_parse(received, fill, outcome);
        free(received);
        FUZZ_CHECK(used <= fill);
        memmove(buffer, buffer + used, fill - used);
        fill -= used;
    }
    free(buffer);
}

/* Property 4. */
static void check_round_trip(const uint8_t *bytes, size_t length) {
    uint64_t sequence = 0;
    uint32_t status = 0;
    size_t taken = length < 8 ? length : 8;
    memcpy(&sequence, bytes, taken);
    bytes += taken;
    length -= taken;
    taken = length < 4 ? length : 4;
    memcpy(&status, bytes, taken);
    /* Ack.status is a protobuf enum (int32): the reactor sends 0..4; nanopb refuses values
     * above INT32_MAX as "integer too large", so the round trip covers 0..INT32_MAX. */
    status &= 0x7fffffffu;
    bytes += taken;
    length -= taken;
    char detail[ACK_DETAIL_BYTES_MAX + 60];
    size_t detail_length = 0;
    for (; detail_length < length && detail_length < sizeof(detail) - 1; detail_length++)
        detail[detail_length] = bytes[detail_length] ? (char)bytes[detail_length] : ' ';
    detail[detail_length] = '\0';
    uint8_t frame[ACK_FRAME_BYTES_MAX];
    size_t frame_length = ack_frame_encode(sequence, status, detail, frame);
    FUZZ_CHECK(frame_length <= ACK_FRAME_BYTES_MAX);
    struct ack_frame_decoded ack;
    FUZZ_CHECK(ack_frame_decode(frame, frame_length, READER_BODY_BYTES_MAX, &ack) == ACK_FRAME_OK);
    FUZZ_CHECK(ack.frame_bytes == frame_length);
    FUZZ_CHECK(ack.sequence == sequence);
    FUZZ_CHECK(ack.status == status);
    size_t kept = strlen(ack.detail);
    FUZZ_CHECK(kept <= ACK_DETAIL_BYTES_MAX && kept <= detail_length);
    FUZZ_CHECK(memcmp(ack.detail, detail, kept) == 0);
    /* The encoder cuts only to stay within ACK_DETAIL_BYTES_MAX, at a UTF-8 boundary: for
     * valid UTF-8 at most 3 bytes short of it (invalid UTF-8 may be cut further back). */
    uint32_t utf8_state = 0;
    int valid_utf8 =
        intake_utf8_feed(&utf8_state, (const uint8_t *)detail, detail_length) && utf8_state == 0;
    if (detail_length <= ACK_DETAIL_BYTES_MAX)
        FUZZ_CHECK(kept == detail_length);
    else if (valid_utf8)
        FUZZ_CHECK(kept + 3 >= ACK_DETAIL_BYTES_MAX);
    /* Every proper prefix of the frame is "need more". */
    for (size_t cut = 0; cut < frame_length; cut++)
        FUZZ_CHECK(ack_frame_decode(frame, cut, READER_BODY_BYTES_MAX, &ack) ==
                   ACK_FRAME_NEED_MORE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_input input = {data, size};
    uint8_t control = fuzz_take_byte(&input);
    uint8_t splits[FUZZ_SPLIT_BYTES_MAX] = {0};
    size_t split_count = fuzz_take_bytes(&input, splits, control & 31);
    struct reader_outcome whole, pieces;
    reader_run(input.head, input.head_length, NULL, 0, &whole);
    reader_run(input.head, input.head_length, splits, split_count, &pieces);
    /* The whole stream at once may hold more than the buffer: decode it directly too. */
    struct reader_outcome direct;
    memset(&direct, 0, sizeof(direct));
    uint8_t *copy = malloc(input.head_length ? input.head_length : 1);
    FUZZ_CHECK(copy != NULL);
    if (input.head_length) memcpy(copy, input.head, input.head_length);
    (void)reader_parse(copy, input.head_length, &direct);
    free(copy);
    FUZZ_CHECK(memcmp(&whole, &pieces, sizeof(whole)) == 0);
    FUZZ_CHECK(memcmp(&whole, &direct, sizeof(whole)) == 0);
    check_round_trip(input.head, input.head_length);
    return 0;
}
