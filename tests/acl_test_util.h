/*
 * acl_test_util.h: what the --acl end-to-end tests share (header-only, like daemon_util.h):
 * writing the rules file as an operator's tools would, and reading a principal's row of the
 * running daemon's counters region the way intake-stat does.
 */
#ifndef INTAKE_ACL_TEST_UTIL_H
#define INTAKE_ACL_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "counters_view.h"
#include "harness.h"

/* Writes `text` whole under another name and renames it to `path`, so a reload never sees half
 * a file. */
__attribute__((unused)) static void acl_test_write(const char *path, const char *text) {
    char temporary[512];
    snprintf(temporary, sizeof(temporary), "%s.new", path);
    FILE *file = fopen(temporary, "w");
    REQUIRE(file != NULL);
    REQUIRE(fputs(text, file) >= 0);
    REQUIRE(fclose(file) == 0);
    REQUIRE(rename(temporary, path) == 0);
}

/* The row in force of principal `name` (or "other") in the counters region of the daemon whose
 * --shm-dir is `directory`; the rule set in force and the refused reloads. False when the
 * daemon runs without --acl or the rules in force do not name it. */
__attribute__((unused)) static bool acl_test_principal(const char *directory, const char *name,
                                                       struct counters_view_principal *principal,
                                                       uint64_t *generation, uint64_t *failures) {
    char path[512], why[256];
    snprintf(path, sizeof(path), "%s/%s", directory, INTAKE_COUNTERS_FILE_NAME);
    struct counters_view view;
    REQUIRE(counters_view_open(path, &view, why, sizeof(why)) == 0);
    bool enabled = counters_view_acl(&view, generation, failures);
    bool found = counters_view_principal_named(&view, name, principal);
    counters_view_close(&view);
    return enabled && found;
}

#endif
