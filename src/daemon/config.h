/*
 * config.h: intaked's command line, parsed into a struct pipeline_config. Main thread, startup.
 */
#ifndef INTAKE_CONFIG_H
#define INTAKE_CONFIG_H

#include <stddef.h>

#include "pipeline.h"

enum config_result {
    CONFIG_OK = 0,
    CONFIG_DONE = 1,   /* --help or --version: printed on stdout, exit 0 */
    CONFIG_ERROR = -1, /* `why` holds one line, exit 2 */
};

/* Starts from pipeline_config_defaults. Strings in the config point into argv. With --acl, the
 * file is read and parsed here (a malformed one is a CONFIG_ERROR naming its line), and the
 * policy left in config->acl_policy for pipeline_start to take. */
enum config_result config_parse(int argc, char **argv, struct pipeline_config *config, char *why,
                                size_t why_capacity) INTAKE_MUST_CHECK;
/* The --help text. */
void config_print_usage(FILE *out);

#endif
