/* SPDX-License-Identifier: Apache-2.0 */
/* The fuzz targets' scratch directory and helpers (fuzz.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static char dir[PATH_MAX];

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void
cleanup(void)
{
	if (dir[0] != '\0')
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fz_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0] != '\0')
		return dir;
	snprintf(dir, sizeof(dir), "%s/mm-fuzz.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(cleanup);
	return dir;
}

const char *
fz_write(const char *rel, const void *data, size_t len)
{
	static char path[PATH_MAX];
	char *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fz_dir(), rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		for (p = path + strlen(fz_dir()) + 1;
		    (p = strchr(p, '/')) != NULL; p++) {
			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				perror(path);
				abort();
			}
			*p = '/';
		}
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	}
	if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len)) {
		perror(path);
		abort();
	}
	close(fd);
	return path;
}

void
fz_unlink(const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", fz_dir(), rel);
	if (unlink(path) < 0 && errno != ENOENT) {
		perror(path);
		abort();
	}
}

char *
fz_strndup(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}
