/*
 * bench_self_test.c: --self-test (bench_self_test.h): the bench's encoders against decoders
 * (intake records with and without sequences and producer_id, through the consumer library's
 * parser; NATS PUBs turned into MSGs and parsed split), and the histogram's accuracy.
 */
#include "bench_self_test.h"

#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_encoder.h"
#include "bench_histogram.h"
#include "bench_nats.h"
#include "common.h"
#include "intake/consumer.h"
#include "varint.h"

/* Decodes a varint from bytes[0..length); returns bytes used, 0 if incomplete or bad. */
static size_t decode_varint(const uint8_t *bytes, size_t length, uint64_t *value) {
    size_t used = 0;
    return varint_decode(bytes, length, value, &used) == VARINT_OK ? used : 0;
}

static int self_test_failures;
#define SELF_CHECK(condition)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "self-test failed: %s (line %d)\n", #condition, __LINE__);             \
            self_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

static void self_test_histogram(void) {
    static struct latency_histogram histogram;
    uint32_t previous_index = 0;
    for (double step = 1; step < 1e12; step *= 1.01) {
        double value = (double)(uint64_t)step;
        uint32_t index = histogram_index((uint64_t)value);
        double reported = (double)histogram_bucket_value(index);
        SELF_CHECK(index >= previous_index);
        if (!(reported >= value * 0.97 && reported <= value * 1.03 + 1)) {
            fprintf(stderr, "self-test: %.0f reported as %.0f\n", value, reported);
            self_test_failures++;
            break;
        }
        previous_index = index;
    }
    for (uint64_t value = 1; value <= 100000; value++) histogram_record(&histogram, value);
    double median = (double)histogram_quantile(&histogram, 0.5);
    double tail = (double)histogram_quantile(&histogram, 0.999);
    SELF_CHECK(median > 48000 && median < 52000);
    SELF_CHECK(tail > 97000 && tail <= 100000);
}

/* Encodes intake batches (with and without sequences) and reads every record back. */
static void self_test_intake_encoding(void) {
    struct bench_options options = {.target = TARGET_INTAKE,
                                    .connection_count = 3,
                                    .sizes = {64, 300, 70000},
                                    .size_count = 3,
                                    .batch_records = 7,
                                    .topic_count = 5};
    struct batch batch;
    SELF_CHECK(batch_init(&batch, &options) == 0);
    for (uint64_t first_sequence = 0; first_sequence <= 200; first_sequence += 200) {
        const char *producer_id = first_sequence ? "bench-0000beef-2" : NULL;
        batch_encode(&batch, &options, 2, first_sequence, producer_id);
        batch_stamp(&batch, batch.record_count, 2, 41, 123456789);
        size_t at = 0;
        for (uint32_t position = 0; position < batch.record_count; position++) {
            uint64_t frame_bytes = 0;
            size_t used = decode_varint(batch.bytes + at, batch.capacity - at, &frame_bytes);
            SELF_CHECK(used > 0);
            struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
            SELF_CHECK(intake_record_parse(batch.bytes + at + used, frame_bytes, &view) == 0);
            const uint8_t *value = view.value.bytes;
            SELF_CHECK(view.value.length == batch_value_bytes(&options, position));
            SELF_CHECK(value && get_u64_le(value) == 123456789);
            SELF_CHECK(value && get_u64_le(value + 8) == make_tag(2, 41 + position));
            const uint8_t *id = view.producer_id.bytes;
            size_t id_bytes = view.producer_id.length;
            SELF_CHECK((id != NULL) == (producer_id != NULL));
            SELF_CHECK(!producer_id ||
                       (id_bytes == strlen(producer_id) && memcmp(id, producer_id, id_bytes) == 0));
            at += used + frame_bytes;
            SELF_CHECK(at == batch.record_end[position]);
        }
    }
    batch_destroy(&batch);
}

/* Encodes a NATS batch, turns each PUB into the MSG the server would deliver, and parses the
 * stream split at an awkward point, as a subscriber read would see it. */
static void self_test_nats_encoding(void) {
    static struct bench_options options = {.target = TARGET_NATS,
                                           .connection_count = 4,
                                           .sizes = {64, 4096},
                                           .size_count = 2,
                                           .batch_records = 9,
                                           .topic_count = 3};
    static struct bench_run run;
    static uint64_t next_numbers[4];
    static uint8_t stream[1 << 16];
    struct batch batch;
    SELF_CHECK(batch_init(&batch, &options) == 0);
    batch_encode(&batch, &options, 3, 0, NULL);
    batch_stamp(&batch, batch.record_count, 3, 1, 5);
    size_t filled = 0;
    for (uint32_t position = 0; position < batch.record_count; position++) {
        uint32_t value_bytes = batch_value_bytes(&options, position);
        filled += (size_t)sprintf((char *)stream + filled, "MSG bench.%u 1 %u\r\n",
                                  batch_topic(&options, 3, position), value_bytes);
        memcpy(stream + filled, batch.bytes + batch.stamp_offset[position], value_bytes + 2);
        filled += value_bytes + 2;
    }
    run.options = &options;
    run.consumer.next_record_number = next_numbers;
    run.consumer.order_topics = 1;
    size_t split = filled / 2 + 3;
    size_t consumed = nats_parse_messages(&run, stream, split, 1000);
    memmove(stream, stream + consumed, filled - consumed);
    consumed = nats_parse_messages(&run, stream, filled - consumed, 1000);
    SELF_CHECK(run.consumer.records == batch.record_count);
    SELF_CHECK(run.consumer.out_of_order == 0 && run.consumer.short_records == 0);
    SELF_CHECK(next_numbers[3] == batch.record_count + 1);
    SELF_CHECK(histogram_quantile(&run.consumer.histogram, 0.5) == 995);
    batch_destroy(&batch);
}

int run_self_test(void) {
    self_test_histogram();
    self_test_intake_encoding();
    self_test_nats_encoding();
    printf("self-test: %s\n", self_test_failures ? "FAILED" : "ok");
    return self_test_failures ? 1 : 0;
}
