/*
 * intake/version.h: the library's version, at compile time (these macros) and at run time
 * (intake_version, intake_version_number), and the export marker of the public API.
 *
 * libintake.so.MAJOR: the ABI is stable within one major version (the SONAME). A minor version
 * adds functions, or fields at the end of structs that carry their own size (struct_bytes, see
 * intake/consumer.h "Structs that grow"); it never changes what existed. A program checks at
 * run time that the library it loaded is at least the one it was compiled against:
 *
 *     if (intake_version_number() < INTAKE_VERSION_NUMBER) ... refuse to run
 *
 * CMakeLists.txt reads the version from this file (the one place it is written).
 */
#ifndef INTAKE_VERSION_H
#define INTAKE_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define INTAKE_VERSION_MAJOR  1
#define INTAKE_VERSION_MINOR  0
#define INTAKE_VERSION_PATCH  0
#define INTAKE_VERSION_STRING "1.0.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH: compares with <, as intake_version_number() does. */
#define INTAKE_VERSION_NUMBER                                                                      \
    (INTAKE_VERSION_MAJOR * 10000 + INTAKE_VERSION_MINOR * 100 + INTAKE_VERSION_PATCH)

/* Marks a function libintake exports. The library is built with -fvisibility=hidden and a
 * version script that exports only intake_* (nm -D lists nothing else), so everything not
 * marked stays inside it. */
#if defined(__GNUC__) || defined(__clang__)
#define INTAKE_API __attribute__((visibility("default")))
#else
#define INTAKE_API
#endif

/* "1.0.0": the version of the library loaded at run time (a static string). */
INTAKE_API const char *intake_version(void);
/* The same as INTAKE_VERSION_NUMBER, of the library loaded at run time. */
INTAKE_API unsigned intake_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
