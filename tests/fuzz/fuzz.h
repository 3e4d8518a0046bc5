/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the fuzz targets share: a private scratch directory for parsers that
 * read only from a path, and an assertion that reports through libFuzzer
 * (abort(), so the input is saved as a crash) with the failed condition.
 */
#ifndef MM_FUZZ_H
#define MM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Abort with the condition and where, as a crash libFuzzer keeps. */
#define FZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* A directory of this process's own under $TMPDIR (or /tmp), made on the
 * first call and removed with everything in it at exit. Aborts on error. */
const char *fz_dir(void);

/* Make the directories of path below fz_dir() (path relative to it), then
 * write len bytes of data to it, replacing any file there. Returns the
 * full path in a static buffer. Aborts on error. */
const char *fz_write(const char *rel, const void *data, size_t len);

/* Remove the file rel (relative to fz_dir()), if there. Aborts on error. */
void fz_unlink(const char *rel);

/* A NUL-terminated malloc'd copy of len bytes of data. Aborts on ENOMEM. */
char *fz_strndup(const uint8_t *data, size_t len);

#endif
