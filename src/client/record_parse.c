/*
 * record_parse.c: the one way to read a logged record (include/intake/consumer.h, "Reading a
 * record"): intake_record_parse and the header iterator, over the wire stage's scan
 * (src/wire/record_scan.c), the same checks intaked runs on every record it receives. Pure
 * functions over the caller's bytes; any thread. Nothing is copied: the view points into them.
 */
#include <errno.h>
#include <string.h>

#include "client_abi.h"
#include "intake/consumer.h"
#include "record_scan.h"

/* A view of one contiguous record, as the wire stage's functions take it. */
static struct record_view record_parse_view(const uint8_t *bytes, uint32_t length,
                                            struct slice *slice) {
    slice->bytes = bytes;
    slice->length = length;
    slice->unit = 0;
    struct record_view view = {slice, length > 0 ? 1u : 0u, length};
    return view;
}

static struct intake_bytes record_parse_field(const uint8_t *record, uint32_t offset,
                                              uint32_t length) {
    struct intake_bytes field = {NULL, 0};
    if (length > 0) {
        field.bytes = record + offset;
        field.length = length;
    }
    return field;
}

int intake_record_parse(const void *bytes, size_t length, struct intake_record_view *view) {
    if (view == NULL || (bytes == NULL && length > 0)) return -EINVAL;
    if (client_struct_bytes(view, CLIENT_RECORD_VIEW_BYTES_V1) < CLIENT_RECORD_VIEW_BYTES_V1)
        return -EINVAL;
    struct intake_record_view ours;
    memset(&ours, 0, sizeof(ours));
    ours.struct_bytes = sizeof(ours);
    int result = 0;
    if (length > UINT32_MAX) {
        /* Larger than any record a log can hold (a quarter of its ring, at most 4 GiB). */
        ours.problem = "record is longer than 4 GiB";
        result = -EBADMSG;
    } else {
        const uint8_t *record = bytes;
        struct slice slice;
        struct record_view wire_view = record_parse_view(record, (uint32_t)length, &slice);
        struct record_scan scan;
        if (record_scan_view(&wire_view, &scan) != RECORD_SCAN_OK) {
            ours.problem = scan.detail;
            result = -EBADMSG;
        } else if (scan.is_hello) {
            ours.problem = "a Hello (field 16), not a record";
            result = -EBADMSG;
        } else {
            ours.topic = record_parse_field(record, scan.topic_offset, scan.topic_length);
            ours.key = record_parse_field(record, scan.key_offset, scan.key_length);
            ours.value = record_parse_field(record, scan.value_offset, scan.value_length);
            ours.producer_id =
                record_parse_field(record, scan.producer_id_offset, scan.producer_id_length);
            ours.header_count = scan.header_count;
            ours.timestamp_ns = scan.timestamp_ns;
            ours.sequence = scan.sequence;
            ours.record_bytes = record;
            ours.record_length = length;
        }
    }
    (void)client_struct_out(view, &ours, sizeof(ours), CLIENT_RECORD_VIEW_BYTES_V1);
    return result;
}

void intake_record_headers(const struct intake_record_view *view,
                           struct intake_record_header_iterator *iterator) {
    if (iterator == NULL) return;
    memset(iterator, 0, sizeof(*iterator));
    /* A view that did not parse (or none) iterates over nothing. */
    if (view == NULL || view->problem != NULL || view->record_bytes == NULL) return;
    iterator->record_bytes = view->record_bytes;
    iterator->record_length = view->record_length;
}

int intake_record_header_next(struct intake_record_header_iterator *iterator,
                              struct intake_record_header *header) {
    if (iterator == NULL || header == NULL) return -EINVAL;
    if (iterator->record_bytes == NULL || iterator->position >= iterator->record_length) return 0;
    if (iterator->record_length > UINT32_MAX) return -EBADMSG;
    struct slice slice;
    struct record_view wire_view =
        record_parse_view(iterator->record_bytes, (uint32_t)iterator->record_length, &slice);
    uint32_t position = (uint32_t)iterator->position;
    struct record_scan_header found;
    int result = record_scan_next_header(&wire_view, &position, &found);
    iterator->position = position;
    if (result < 0) {
        iterator->position = iterator->record_length; /* nothing more from these bytes */
        return -EBADMSG;
    }
    if (result == 0) return 0;
    header->key = record_parse_field(iterator->record_bytes, found.key_offset, found.key_length);
    header->value =
        record_parse_field(iterator->record_bytes, found.value_offset, found.value_length);
    return 1;
}
