/*
 * test_varint.c: varint encode/decode edge cases, rejection of 11-byte and overflowing 10-byte
 * encodings, and the incremental decoder fed every split of every encoding. Single-threaded.
 *
 * intake-test: no-tsan (single-threaded pure code)
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "varint.h"

struct varint_case {
    uint64_t value;
    size_t length;
};

static const struct varint_case edge_cases[] = {
    {0, 1},
    {1, 1},
    {127, 1},
    {128, 2},
    {16383, 2},
    {16384, 3},
    {UINT32_MAX, 5},
    {(uint64_t)1 << 63, 10},
    {UINT64_MAX, 10},
    {(uint64_t)1 << 56, 9},
    {((uint64_t)1 << 56) - 1, 8},
};

/* Feeds `encoded` to a fresh incremental decoder in pieces cut at the given split points. */
static enum varint_result feed_in_pieces(const uint8_t *encoded, size_t length, size_t split_a,
                                         size_t split_b, uint64_t *value) {
    struct varint_decoder decoder;
    memset(&decoder, 0, sizeof(decoder));
    size_t cuts[4] = {0, split_a, split_b, length};
    size_t total_consumed = 0;
    enum varint_result result = VARINT_NEED_MORE;
    for (int piece = 0; piece < 3 && result == VARINT_NEED_MORE; piece++) {
        size_t consumed = 0;
        result = varint_decoder_feed(&decoder, encoded + cuts[piece], cuts[piece + 1] - cuts[piece],
                                     &consumed);
        total_consumed += consumed;
    }
    if (result == VARINT_OK) {
        CHECK(total_consumed == length);
        *value = decoder.value;
    }
    return result;
}

static void check_round_trip(uint64_t value, size_t expected_length) {
    uint8_t encoded[VARINT_BYTES_MAX + 4];
    memset(encoded, 0xEE, sizeof(encoded));
    size_t length = varint_encode(value, encoded);
    CHECK(length == expected_length);
    CHECK(varint_length(value) == expected_length);
    uint64_t decoded = 0;
    size_t consumed = 0;
    /* Trailing bytes after the varint must not be consumed. */
    CHECK(varint_decode(encoded, sizeof(encoded), &decoded, &consumed) == VARINT_OK);
    CHECK(decoded == value);
    CHECK(consumed == length);
    /* Every prefix shorter than the encoding asks for more. */
    for (size_t prefix = 0; prefix < length; prefix++)
        CHECK(varint_decode(encoded, prefix, &decoded, &consumed) == VARINT_NEED_MORE);
    /* Every pair of split points, including empty pieces and byte-by-byte. */
    for (size_t split_a = 0; split_a <= length; split_a++) {
        for (size_t split_b = split_a; split_b <= length; split_b++) {
            uint64_t piecewise = 0;
            CHECK(feed_in_pieces(encoded, length, split_a, split_b, &piecewise) == VARINT_OK);
            CHECK(piecewise == value);
        }
    }
    struct varint_decoder decoder = {0, 0};
    enum varint_result result = VARINT_NEED_MORE;
    for (size_t index = 0; index < length; index++) {
        size_t consumed_one = 0;
        CHECK(result == VARINT_NEED_MORE);
        result = varint_decoder_feed(&decoder, encoded + index, 1, &consumed_one);
        CHECK(consumed_one == 1);
    }
    CHECK(result == VARINT_OK);
    CHECK(decoder.value == value);
}

static void check_rejections(void) {
    uint64_t value = 0;
    size_t consumed = 0;
    /* Eleven bytes: ten continuation bytes then a terminator. */
    uint8_t eleven[11];
    memset(eleven, 0x80, sizeof(eleven));
    eleven[10] = 0x01;
    CHECK(varint_decode(eleven, sizeof(eleven), &value, &consumed) == VARINT_BAD);
    /* Ten bytes whose last carries more than bit 63. */
    uint8_t overflow[10];
    memset(overflow, 0xFF, sizeof(overflow));
    overflow[9] = 0x02;
    CHECK(varint_decode(overflow, sizeof(overflow), &value, &consumed) == VARINT_BAD);
    overflow[9] = 0x7F;
    CHECK(varint_decode(overflow, sizeof(overflow), &value, &consumed) == VARINT_BAD);
    /* The same rejections hold when the bytes arrive one at a time. */
    for (int which = 0; which < 2; which++) {
        const uint8_t *bytes = which == 0 ? eleven : overflow;
        size_t length = which == 0 ? sizeof(eleven) : sizeof(overflow);
        struct varint_decoder decoder = {0, 0};
        enum varint_result result = VARINT_NEED_MORE;
        size_t index = 0;
        while (result == VARINT_NEED_MORE && index < length) {
            size_t consumed_one = 0;
            result = varint_decoder_feed(&decoder, bytes + index, 1, &consumed_one);
            index++;
        }
        CHECK(result == VARINT_BAD);
        CHECK(index == 10);
    }
    /* A non-minimal but in-range 10-byte encoding of 1 is still a valid varint. */
    uint8_t padded[10];
    memset(padded, 0x80, sizeof(padded));
    padded[0] = 0x81;
    padded[9] = 0x00;
    CHECK(varint_decode(padded, sizeof(padded), &value, &consumed) == VARINT_OK);
    CHECK(value == 1 && consumed == 10);
}

/* Any bytes at all, decoded from a buffer with ten or more bytes (the one-load path) and fed one
 * byte at a time to the incremental decoder (the byte-by-byte reference): same verdict, value
 * and length. Continuation bytes are made common so long and overlong varints come up. */
static void check_against_incremental(void) {
    uint64_t random_state = 0x243F6A8885A308D3ULL;
    unsigned mismatches = 0;
    for (int round = 0; round < 200000; round++) {
        uint8_t bytes[16];
        size_t stop = (size_t)(test_random_next(&random_state) % 12);
        for (size_t index = 0; index < sizeof(bytes); index++) {
            uint8_t byte = (uint8_t)test_random_next(&random_state);
            bytes[index] = index < stop ? (uint8_t)(byte | 0x80) : byte;
        }
        if (round % 4 == 0) bytes[9] = (uint8_t)(round % 3); /* a tenth byte of 0, 1 or 2 */
        size_t length = 10 + (size_t)(round % 7);
        uint64_t value = 0;
        size_t consumed = 0;
        enum varint_result fast = varint_decode(bytes, length, &value, &consumed);
        struct varint_decoder decoder = {0, 0};
        enum varint_result slow = VARINT_NEED_MORE;
        size_t fed = 0;
        while (slow == VARINT_NEED_MORE && fed < length) {
            size_t one = 0;
            slow = varint_decoder_feed(&decoder, bytes + fed, 1, &one);
            fed += one;
        }
        if (fast != slow)
            mismatches++;
        else if (fast == VARINT_OK && (value != decoder.value || consumed != fed))
            mismatches++;
    }
    printf("varint: 200000 random buffers against the incremental decoder, %u mismatches\n",
           mismatches);
    CHECK(mismatches == 0);
}

int main(void) {
    check_against_incremental();
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(edge_cases); index++)
        check_round_trip(edge_cases[index].value, edge_cases[index].length);
    uint64_t random_state = 0x9E3779B97F4A7C15ULL;
    for (int round = 0; round < 2000; round++) {
        uint64_t value = test_random_next(&random_state) >> (round % 64);
        check_round_trip(value, varint_length(value));
    }
    check_rejections();
    return test_finish();
}
