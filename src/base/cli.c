/*
 * cli.c: the command-line conventions every intake program shares (see cli.h). getopt_long's
 * own messages are off (opterr = 0) so that a refusal is always one line in one form.
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

#include "intake/version.h"

void cli_start(struct cli *cli, const char *program, const struct option *options,
               cli_usage_fn *usage) {
    INTAKE_ASSERT(program != NULL && options != NULL);
    INTAKE_ASSERT(usage != NULL);
    *cli = (struct cli){.program = program, .options = options, .usage = usage};
    /* A leading ':' makes a missing value ':' rather than '?', so the two read differently. */
    snprintf(cli->short_options, sizeof(cli->short_options), ":");
    /* 0, not 1: glibc then also forgets the permutation state of an earlier parse. */
    optind = 0;
    opterr = 0;
}

void cli_print_version(FILE *out, const char *program) {
    fprintf(out, "%s (intake) %s\n", program, INTAKE_VERSION_STRING);
}

void cli_allow_short(struct cli *cli, const char *short_options) {
    INTAKE_ASSERT(strlen(short_options) + 2 <= sizeof(cli->short_options));
    snprintf(cli->short_options, sizeof(cli->short_options), ":%s", short_options);
}

static int cli_stop(struct cli *cli, int exit_status) {
    cli->exit_status = exit_status;
    return CLI_STOP;
}

int cli_next(struct cli *cli, int argc, char **argv) {
    int index = -1;
    int option = getopt_long(argc, argv, cli->short_options, cli->options, &index);
    const char *typed = optind > 1 && optind - 1 < argc ? argv[optind - 1] : "";
    cli->value = optarg;
    switch (option) {
    case -1:
        if (optind < argc) {
            cli_refuse(cli, "unexpected argument '%s' (see --help)", argv[optind]);
            return CLI_STOP;
        }
        return CLI_END;
    case ':': cli_refuse(cli, "%s needs a value (see --help)", typed); return CLI_STOP;
    case '?': cli_refuse(cli, "unknown option '%s' (see --help)", typed); return CLI_STOP;
    default: break;
    }
    /* The full name, whether it was typed "--count 5", "--count=5" or abbreviated "--cou 5";
     * a one-letter option (no index) is "-X". */
    if (index >= 0)
        snprintf(cli->flag_text, sizeof(cli->flag_text), "--%s", cli->options[index].name);
    else
        snprintf(cli->flag_text, sizeof(cli->flag_text), "-%c", option);
    cli->flag = cli->flag_text;
    if (option == 'h' && index < 0) option = CLI_OPTION_HELP;
    if (option == CLI_OPTION_HELP) {
        cli->usage(stdout);
        return cli_stop(cli, 0);
    }
    if (option == CLI_OPTION_VERSION) {
        cli_print_version(stdout, cli->program);
        return cli_stop(cli, 0);
    }
    return option;
}

int cli_refuse(struct cli *cli, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(cli->why, sizeof(cli->why), format, arguments);
    va_end(arguments);
    cli->exit_status = CLI_EXIT_USAGE;
    return -1;
}

int cli_number(struct cli *cli, const struct number_spec *spec, uint64_t *value) {
    INTAKE_ASSERT(cli->value != NULL);
    if (number_parse(cli->flag, cli->value, spec, value, cli->why, sizeof(cli->why)) == NUMBER_OK)
        return 0;
    cli->exit_status = CLI_EXIT_USAGE;
    return -1;
}

int cli_number_u32(struct cli *cli, const struct number_spec *spec, uint32_t *value) {
    INTAKE_ASSERT(spec->maximum <= UINT32_MAX);
    uint64_t wide = 0;
    if (cli_number(cli, spec, &wide) < 0) return -1;
    *value = (uint32_t)wide;
    return 0;
}

int cli_choose(struct cli *cli, const struct cli_word *words, size_t count, int *value) {
    INTAKE_ASSERT(count >= 1);
    INTAKE_ASSERT(cli->value != NULL);
    for (size_t index = 0; index < count; index++) {
        if (strcmp(cli->value, words[index].word) == 0) {
            *value = words[index].value;
            return 0;
        }
    }
    /* "a, b or c" */
    char wanted[CLI_WHY_BYTES / 2] = "";
    size_t used = 0;
    for (size_t index = 0; index < count && used < sizeof(wanted); index++) {
        const char *separator = index == 0 ? "" : index + 1 == count ? " or " : ", ";
        used += (size_t)snprintf(wanted + used, sizeof(wanted) - used, "%s%s", separator,
                                 words[index].word);
    }
    return cli_bad_value(cli, wanted);
}

int cli_parse(struct cli *cli, int argc, char **argv, cli_apply_fn *apply, void *context) {
    int option = CLI_END;
    while ((option = cli_next(cli, argc, argv)) >= 0)
        if (apply(cli, option, context) < 0) return cli_finish(cli);
    return option == CLI_STOP ? cli_finish(cli) : -1;
}

int cli_bad_value(struct cli *cli, const char *wanted) {
    return cli_refuse(cli, "%s: '%s' is not %s", cli->flag, cli->value ? cli->value : "", wanted);
}

int cli_finish(const struct cli *cli) {
    if (cli->exit_status != 0)
        fprintf(stderr, "%s: %s\n", cli->program, cli->why[0] ? cli->why : "bad usage");
    return cli->exit_status;
}

/* cli_parse_numbers' apply: the option's val is its row in the table. */
static int cli_apply_number(struct cli *cli, int option, void *context) {
    const struct cli_number_flag *flag = &((const struct cli_number_flag *)context)[option];
    return flag->u64 != NULL ? cli_number(cli, &flag->spec, flag->u64)
                             : cli_number_u32(cli, &flag->spec, flag->u32);
}

int cli_parse_numbers(const char *program, int argc, char **argv,
                      const struct cli_number_flag *flags, size_t flag_count, cli_usage_fn *usage) {
    INTAKE_ASSERT(flag_count <= CLI_NUMBER_FLAGS_MAX);
    /* getopt's table, built from the flags: each option's val is its row. */
    struct option options[CLI_NUMBER_FLAGS_MAX + 3] = {
        CLI_STANDARD_OPTIONS,
    };
    for (size_t row = 0; row < flag_count; row++) {
        INTAKE_ASSERT((flags[row].u32 == NULL) != (flags[row].u64 == NULL));
        options[2 + row] = (struct option){flags[row].name, required_argument, NULL, (int)row};
    }
    struct cli cli;
    cli_start(&cli, program, options, usage);
    return cli_parse(&cli, argc, argv, cli_apply_number, (void *)flags);
}
