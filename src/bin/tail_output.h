/*
 * tail_output.h: how intake-tail prints a record (json, text, raw). Its fields come from the
 * consumer library's intake_record_parse (the one record parser). Single-threaded; every
 * function reads only the bytes it is given (a copy made out of the mapping).
 */
#ifndef INTAKE_TAIL_OUTPUT_H
#define INTAKE_TAIL_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "intake/consumer.h"

struct text {
    const uint8_t *bytes;
    uint64_t length;
};

/* One JSON object per line: offset, sequence, receive time, the record's fields (key and value
 * as text when printable, base64 otherwise), headers. `log_topic` (following several topics)
 * comes first when not NULL. A record that does not parse is printed whole, base64. */
void record_json_write(FILE *out, const struct intake_consumer_record *record, struct text bytes,
                       const char *log_topic);
/* "[topic ]offset sequence key=... value=..." on one line. */
void record_text_write(FILE *out, const struct intake_consumer_record *record, struct text bytes,
                       const char *log_topic);
/* Exactly as on the wire: varint length, then the record's bytes. */
void record_raw_write(FILE *out, struct text bytes);

#endif
