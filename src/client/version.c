/*
 * version.c: the library's version at run time (include/intake/version.h). Any thread.
 */
#include "intake/version.h"

const char *intake_version(void) {
    return INTAKE_VERSION_STRING;
}

unsigned intake_version_number(void) {
    return INTAKE_VERSION_NUMBER;
}
