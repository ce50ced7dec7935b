/*
 * examples/c-consumer/consumer.c: a consumer built against the installed libintake. It reads a
 * topic's log under /dev/shm/intake (or the directory given) from its oldest record, prints
 * one line per record ("offset key value", headers appended as key=value), and exits once it
 * has read `count` records (0: follow forever).
 *
 *   make                     # cc consumer.c $(pkg-config --cflags --libs intake)
 *   ./consumer TOPIC [COUNT [SHM_DIR]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <intake/consumer.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOPIC [COUNT [SHM_DIR]]\n", argv[0]);
        return 2;
    }
    const char *topic = argv[1];
    unsigned long long wanted = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    const char *directory = argc > 3 ? argv[3] : "/dev/shm/intake";
    if (intake_version_number() < INTAKE_VERSION_NUMBER) {
        fprintf(stderr, "libintake %s is older than the headers (%s)\n", intake_version(),
                INTAKE_VERSION_STRING);
        return 1;
    }
    struct intake_consumer_options options = INTAKE_CONSUMER_OPTIONS_INIT;
    options.start = INTAKE_CONSUMER_START_OLDEST;
    options.ephemeral = true;
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (intake_consumer_open(directory, topic, "example-c", &options, &consumer, why,
                             sizeof(why)) != 0) {
        fprintf(stderr, "consumer: %s\n", why);
        return 1;
    }
    unsigned long long seen = 0;
    struct intake_consumer_record records[64];
    while (wanted == 0 || seen < wanted) {
        int count = intake_consumer_poll_batch(consumer, records, 64);
        if (count < 0) {
            fprintf(stderr, "consumer: %s\n", intake_consumer_error(consumer));
            break;
        }
        if (count == 0) {
            /* One second at most, so a consumer of a stopped daemon still notices it. */
            int woken = intake_consumer_wait(consumer, 1000000000ull);
            if (woken == 0 && !intake_consumer_writer_alive(consumer)) break;
            continue;
        }
        for (int index = 0; index < count; index++) {
            struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
            if (intake_record_parse(records[index].bytes, records[index].length, &view) != 0) {
                printf("%llu malformed: %s\n", (unsigned long long)records[index].offset,
                       view.problem);
                continue;
            }
            printf("%llu %.*s %.*s", (unsigned long long)records[index].offset,
                   (int)view.key.length, (const char *)view.key.bytes, (int)view.value.length,
                   (const char *)view.value.bytes);
            struct intake_record_header_iterator headers;
            struct intake_record_header header;
            intake_record_headers(&view, &headers);
            while (intake_record_header_next(&headers, &header) == 1)
                printf(" %.*s=%.*s", (int)header.key.length, (const char *)header.key.bytes,
                       (int)header.value.length, (const char *)header.value.bytes);
            putchar('\n');
            seen++;
        }
        intake_consumer_commit(consumer);
    }
    intake_consumer_close(consumer);
    return 0;
}
