/*
 * consume_rate.c: intake-consume-rate, the C side of bench/python-consumer. Reads `--count`
 * records of one topic's log from its oldest record with intake_consumer_poll_batch (1024 at a
 * time), parses each with intake_record_parse and touches its value (its length and first
 * byte), as the Python consumer does, and prints one line:
 *   records=N seconds=S cpu_seconds=C records_per_second=R
 * Single-threaded; the log is already written when it starts (the script produces first), so
 * the figure is the consumer's own cost.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "intake/consumer.h"

static double clock_seconds(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void usage(FILE *out) {
    fputs("usage: intake-consume-rate --topic T --count N [--shm-dir D]\n"
          "  reads N records of T's log from its oldest; --help, --version\n",
          out);
}

/* What the command line asks for. */
struct rate_options {
    const char *directory;
    const char *topic;
    uint64_t wanted;
};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int rate_apply(struct cli *cli, int option, void *context) {
    struct rate_options *options = context;
    if (option == 'd') options->directory = optarg;
    if (option == 't') options->topic = optarg;
    if (option == 'n') return cli_number(cli, &NUMBER_COUNT_SPEC(1, UINT64_MAX), &options->wanted);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option flags[] = {{"shm-dir", required_argument, NULL, 'd'},
                                          {"topic", required_argument, NULL, 't'},
                                          {"count", required_argument, NULL, 'n'},
                                          CLI_STANDARD_OPTIONS,
                                          {NULL, 0, NULL, 0}};
    struct rate_options chosen = {.directory = "/dev/shm/intake"};
    struct cli cli;
    cli_start(&cli, "intake-consume-rate", flags, usage);
    int exit_now = cli_parse(&cli, argc, argv, rate_apply, &chosen);
    if (exit_now >= 0) return exit_now;
    const char *directory = chosen.directory, *topic = chosen.topic;
    uint64_t wanted = chosen.wanted;
    if (topic == NULL || wanted == 0) {
        cli_refuse(&cli, "--topic T and --count N are required (see --help)");
        return cli_finish(&cli);
    }
    struct intake_consumer_options options = INTAKE_CONSUMER_OPTIONS_INIT;
    options.start = INTAKE_CONSUMER_START_OLDEST;
    options.ephemeral = true;
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (intake_consumer_open(directory, topic, "consume-rate", &options, &consumer, why,
                             sizeof(why)) != 0) {
        fprintf(stderr, "intake-consume-rate: %s\n", why);
        return 1;
    }
    static struct intake_consumer_record records[1024];
    uint64_t seen = 0, bytes = 0, first_bytes = 0;
    double started = clock_seconds(CLOCK_MONOTONIC);
    double cpu_started = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    while (seen < wanted) {
        int count = intake_consumer_poll_batch(consumer, records, 1024);
        if (count < 0) {
            fprintf(stderr, "intake-consume-rate: %s\n", intake_consumer_error(consumer));
            return 1;
        }
        if (count == 0) break; /* the log holds fewer than --count */
        for (int index = 0; index < count; index++) {
            struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
            if (intake_record_parse(records[index].bytes, records[index].length, &view) != 0)
                continue;
            bytes += view.value.length;
            first_bytes += view.value.length > 0 ? view.value.bytes[0] : 0;
        }
        seen += (uint64_t)count;
    }
    double seconds = clock_seconds(CLOCK_MONOTONIC) - started;
    double cpu_seconds = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_started;
    intake_consumer_close(consumer);
    printf("records=%" PRIu64 " seconds=%.4f cpu_seconds=%.4f records_per_second=%.0f "
           "value_bytes=%" PRIu64 " check=%" PRIu64 "\n",
           seen, seconds, cpu_seconds, seconds > 0 ? (double)seen / seconds : 0.0, bytes,
           first_bytes);
    return seen == wanted ? 0 : 1;
}
