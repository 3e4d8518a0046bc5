/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The version of mm (version.h), from the header cmake/MmVersion.cmake
 * writes into the build tree: the only file that includes it, so that a
 * new git describe at configure time rebuilds one object.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mm_version.h"
#include "version.h"

const char *
version_string(void)
{
	return MM_VERSION;
}

void
version_print_exit(const char *prog)
{
	printf("%s %s\n", prog, MM_VERSION);
	exit(fflush(stdout) == 0 ? 0 : 1);
}
