/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The version of mm, as every program prints it with --version: the
 * project's version and, for a build from a git checkout, what
 * `git describe --always --dirty` said when the build was configured.
 */
#ifndef MM_VERSION_H_
#define MM_VERSION_H_

/* "0.1.0 (git 0d27c51-dirty)", or "0.1.0" outside git; static. */
const char *version_string(void);

/* Print "<prog> <version>" on stdout and exit(0): the --version option.
 * prog is the program's name ("mm-collector"). */
void version_print_exit(const char *prog) __attribute__((noreturn));

#endif
