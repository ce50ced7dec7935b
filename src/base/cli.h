/*
 * cli.h: what every intake program does with its command line, written once. Programs read
 * their flags with getopt_long through cli_next (long options only), their numbers through
 * number_parse.h, and end the same way:
 *   --help      the program's usage on stdout, exit 0;
 *   --version   "PROGRAM (intake) 1.0.0" on stdout (include/intake/version.h), exit 0;
 *   bad usage   one line on stderr, "PROGRAM: --flag: 'value' is not ...", exit 2
 *               (CLI_EXIT_USAGE): an unknown option, a missing or bad value, flags that do not
 *               go together. Exit 1 stays for failures after the command line was accepted.
 * Main thread, startup only. A program:
 *
 *     static int apply(struct cli *cli, int option, void *context) {   one option
 *         struct options *options = context;
 *         switch (option) {
 *         case 'n': return cli_number(cli, &NUMBER_COUNT_SPEC(1, UINT64_MAX), &options->count);
 *         case 'f': return cli_choose(cli, formats, 2, &options->format);  (an int)
 *         ...
 *     static const struct option table[] = {{"count", required_argument, NULL, 'n'}, ...,
 *                                           CLI_STANDARD_OPTIONS, {NULL, 0, NULL, 0}};
 *     struct cli cli;
 *     cli_start(&cli, "intake-produce", table, usage);
 *     int exit_now = cli_parse(&cli, argc, argv, apply, &options);
 *     if (exit_now >= 0) return exit_now;        (help, version, or a refusal printed)
 *     ... rules between flags: return cli_refuse(&cli, ...), cli_finish(&cli) ...
 */
#ifndef INTAKE_CLI_H
#define INTAKE_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "number_parse.h"

#define CLI_EXIT_USAGE 2
/* One refusal line, without the program's name. */
#define CLI_WHY_BYTES 512

/* cli_next's answers besides an option's own val (every val a program uses is >= 0). */
#define CLI_END  (-1) /* no more options, none refused */
#define CLI_STOP (-2) /* --help or --version printed, or a refusal: return cli_finish() */

/* The two options every program has; put this at the end of its table, before the {NULL}. */
#define CLI_OPTION_HELP    0x10000
#define CLI_OPTION_VERSION 0x10001
#define CLI_STANDARD_OPTIONS                                                                       \
    {"help", no_argument, NULL, CLI_OPTION_HELP}, {                                                \
        "version", no_argument, NULL, CLI_OPTION_VERSION                                           \
    }

typedef void cli_usage_fn(FILE *out);

struct cli {
    const char *program;          /* the first word of every line printed */
    const struct option *options; /* ends with {NULL, 0, NULL, 0} */
    cli_usage_fn *usage;          /* writes the usage text for --help */
    const char *flag;             /* the option cli_next returned last: "--count" */
    const char *value;            /* its value (optarg), or NULL */
    int exit_status;              /* what cli_finish returns: 0 after help/version, else 2 */
    char why[CLI_WHY_BYTES];      /* the refusal line, "" when there is none */
    char flag_text[64];           /* where cli->flag is written */
    char short_options[32];       /* getopt's optstring: ':' and any cli_allow_short letters */
};

/* Resets getopt (optind = 0, its own messages off) for a parse of argv. */
void cli_start(struct cli *cli, const char *program, const struct option *options,
               cli_usage_fn *usage);
/* Also takes these one-letter options, in getopt's form ("X:" for -X VALUE); their val is
 * the letter. An 'h' among them is another way to ask for --help. */
void cli_allow_short(struct cli *cli, const char *short_options);
/* The next option's val (with cli->flag and cli->value set), CLI_END, or CLI_STOP after
 * --help, --version (printed here) or an unknown option or missing value (cli->why says so). */
int cli_next(struct cli *cli, int argc, char **argv);
/* Parses the current option's value as `spec` says into *value: 0, or -1 with the refusal in
 * cli->why ("--count: '10x' is not a whole number ..."). */
int cli_number(struct cli *cli, const struct number_spec *spec, uint64_t *value) INTAKE_MUST_CHECK;
/* The same for a value that must fit 32 bits (spec->maximum <= UINT32_MAX). */
int cli_number_u32(struct cli *cli, const struct number_spec *spec,
                   uint32_t *value) INTAKE_MUST_CHECK;
/* One word a flag may take, and what it stands for. */
struct cli_word {
    const char *word;
    int value;
};
/* The current option's value as one of `words`: 0 with *value set to its value, or -1 with the
 * refusal "--format: 'xml' is not text or prometheus". */
int cli_choose(struct cli *cli, const struct cli_word *words, size_t count,
               int *value) INTAKE_MUST_CHECK;
/* Refuses the current option's value: "--format: 'xml' is not text or prometheus". -1. */
int cli_bad_value(struct cli *cli, const char *wanted);
/* Refuses the command line for another reason (flags that do not go together): -1. */
int cli_refuse(struct cli *cli, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Applies one option (its val) to `context`: 0, or -1 after a cli_* refusal. */
typedef int cli_apply_fn(struct cli *cli, int option, void *context);
/* Reads the whole command line, handing each option to `apply`. -1: read, run the program;
 * otherwise the status to exit with now: 0 after --help or --version, 2 after the refusal
 * line was printed. */
int cli_parse(struct cli *cli, int argc, char **argv, cli_apply_fn *apply, void *context);
/* Prints the refusal, if any, as "PROGRAM: why" on stderr; returns the exit status. */
int cli_finish(const struct cli *cli);
/* A program whose flags are all numbers (the micro-benchmarks) describes them in a table and
 * reads them with cli_parse_numbers: --NAME VALUE stores into exactly one of u32 or u64. */
#define CLI_NUMBER_FLAGS_MAX 16
struct cli_number_flag {
    const char *name; /* without the dashes: "records" */
    struct number_spec spec;
    uint32_t *u32; /* spec->maximum <= UINT32_MAX */
    uint64_t *u64;
};
/* -1 to run, or the status to exit with now (after --help, --version or a refusal line). */
int cli_parse_numbers(const char *program, int argc, char **argv,
                      const struct cli_number_flag *flags, size_t flag_count, cli_usage_fn *usage);

/* "PROGRAM (intake) 1.0.0" and a newline on `out`. */
void cli_print_version(FILE *out, const char *program);

#endif
