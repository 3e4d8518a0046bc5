/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the bus checks of its configuration before it connects, and the
 * one way a broker URL is shown: its scheme and TLS files, where the
 * password comes from (a systemd credential, a file, the URL), and the
 * URL with its password redacted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus_int.h"

/*
 * The ':' before the URL's password, or NULL when it has none, with
 * *ret_at its end: the userinfo is what precedes the last '@' of the
 * authority, and its password what follows its first ':'.
 */
static const char *
password_span(const char *url, const char **ret_at)
{
	const char *auth, *end, *at = NULL;

	auth = strstr(url, "://");
	auth = auth != NULL ? auth + 3 : url;
	end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	*ret_at = at;
	return at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
}

/* One URL of a list, from url to end, redacted into buf at *off. */
static void
redact_one(const char *url, const char *end, char *buf, size_t size,
    size_t *off)
{
	char one[1024];
	const char *at, *colon;
	size_t len = (size_t)(end - url);
	int n;

	if (len >= sizeof(one))
		len = sizeof(one) - 1;
	memcpy(one, url, len);
	one[len] = '\0';
	colon = password_span(one, &at);
	if (colon == NULL)
		n = snprintf(buf + *off, size - *off, "%s", one);
	else
		n = snprintf(buf + *off, size - *off, "%.*s***%s",
		    (int)(colon + 1 - one), one, at);
	if (n > 0)
		*off += (size_t)n < size - *off ? (size_t)n : size - *off - 1;
}

char *
bus_url_redact(const char *url, char *buf, size_t size)
{
	size_t off = 0;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	if (url == NULL) {
		snprintf(buf, size, "(none)");
		return buf;
	}
	/* A list "URL, URL, ...": each one's password. */
	for (const char *p = url;;) {
		const char *end = p + strcspn(p, ",");

		redact_one(p, end, buf, size, &off);
		if (*end == '\0' || off + 1 >= size)
			break;
		off += (size_t)snprintf(buf + off, size - off, ",");
		p = end + 1;
	}
	return buf;
}

int
bus_url_split(const char *list, char urls[][BUS_URL_MAX], size_t max,
    size_t *ret_n)
{
	size_t n = 0;

	*ret_n = 0;
	for (const char *p = list;;) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0)
			return -EINVAL;
		if (n == max)
			return -E2BIG;
		if (len >= BUS_URL_MAX)
			return -ENAMETOOLONG;
		memcpy(urls[n], p, len);
		urls[n][len] = '\0';
		n++;
		p += strcspn(p, ",");
		if (*p == '\0')
			break;
		p++;
	}
	*ret_n = n;
	return 0;
}

static int
fail(struct bus_check *ret, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct bus_check *ret, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ret->err, sizeof(ret->err), fmt, ap);
	va_end(ap);
	explicit_bzero(ret->password, sizeof(ret->password));
	return r;
}

static int
check_readable(struct bus_check *ret, const char *key, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail(ret, -errno, "%s \"%s\": cannot read: %s", key,
		    path, strerror(errno));
	close(fd);
	return 0;
}

/*
 * The first line of path into ret->password. Returns 1, 0 for an empty
 * file or line (no password from it), or a negative errno. With
 * mode_check a file others may read is refused: the password is a secret.
 */
static int
read_password(struct bus_check *ret, const char *key, const char *path,
    bool mode_check)
{
	char *buf = ret->password;
	size_t len;
	struct stat st;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (f == NULL)
		return fail(ret, -errno, "%s \"%s\": cannot read: %s", key,
		    path, strerror(errno));
	if (fstat(fileno(f), &st) < 0) {
		r = fail(ret, -errno, "%s \"%s\": %s", key, path,
		    strerror(errno));
		goto out;
	}
	if (mode_check && (st.st_mode & S_IROTH)) {
		r = fail(ret, -EACCES, "%s \"%s\" is readable by everyone "
		    "(mode %04o): chmod o-r it", key, path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (fgets(buf, BUS_PASSWORD_MAX, f) == NULL) {
		r = ferror(f) ? fail(ret, -EIO, "%s \"%s\": cannot read",
		    key, path) : 0;
		buf[0] = '\0';
		goto out;
	}
	len = strlen(buf);
	if (len == BUS_PASSWORD_MAX - 1 && buf[len - 1] != '\n' &&
	    (r = fgetc(f)) != EOF && r != '\n') {
		r = fail(ret, -EINVAL, "%s \"%s\": the password is longer "
		    "than %d bytes", key, path, BUS_PASSWORD_MAX - 1);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	r = len > 0;
out:
	fclose(f);
	return r;
}

/* The credential systemd passes with LoadCredential=bus.password:... */
static int
read_credential(struct bus_check *ret)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[4096];

	if (dir == NULL || *dir == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/bus.password", dir);
	if (access(path, F_OK) < 0)
		return 0;
	return read_password(ret, "credential", path, false);
}

static int
check_password(const struct bus_config *cfg, struct bus_check *ret,
    bool url_has_password)
{
	int r;

	ret->password[0] = '\0';
	if (cfg->password != NULL) {
		if (strlen(cfg->password) >= BUS_PASSWORD_MAX)
			return fail(ret, -EINVAL, "password: longer than %d "
			    "bytes", BUS_PASSWORD_MAX - 1);
		snprintf(ret->password, sizeof(ret->password), "%s",
		    cfg->password);
		ret->password_from = BUS_PASSWORD_GIVEN;
	} else if ((r = read_credential(ret)) != 0) {
		if (r < 0)
			return r;
		ret->password_from = BUS_PASSWORD_CREDENTIAL;
	} else if (cfg->password_file != NULL &&
	    (r = read_password(ret, "password_file", cfg->password_file,
	    true)) != 0) {
		if (r < 0)
			return r;
		ret->password_from = BUS_PASSWORD_FILE;
	} else {
		ret->password_from = BUS_PASSWORD_URL;
	}
	ret->url_password_ignored = url_has_password &&
	    ret->password_from != BUS_PASSWORD_URL;
	return 0;
}

/* Whether the URL's userinfo has a password ("user:password@"). */
static bool
url_has_password(const char *url)
{
	const char *at;

	return password_span(url, &at) != NULL;
}

/* One URL of the list: its form; its scheme, user and vhost must be
 * those of the first (one identity, one password, on every node). */
static int
check_url(struct bus_check *ret, char *url, size_t i,
    struct amqp_connection_info *first)
{
	struct amqp_connection_info info;
	unsigned char addr[sizeof(struct in6_addr)];
	char shown[512];

	bus_url_redact(url, shown, sizeof(shown));
	if (strncmp(url, "amqp://", 7) != 0 &&
	    strncmp(url, "amqps://", 8) != 0)
		return fail(ret, -EINVAL, "url \"%s\": not an amqp:// or "
		    "amqps:// URL", shown);
	amqp_default_connection_info(&info);
	if (amqp_parse_url(url, &info) != AMQP_STATUS_OK)
		return fail(ret, -EINVAL, "url \"%s\": not of the form "
		    "amqp[s]://user:password@host:port/vhost", shown);
	if (i == 0) {
		*first = info;
		ret->tls = info.ssl;
	} else if (info.ssl != first->ssl || strcmp(info.user,
	    first->user) != 0 || strcmp(info.vhost, first->vhost) != 0) {
		return fail(ret, -EINVAL, "url \"%s\": the URLs of a list "
		    "must differ only in host and port (the nodes of one "
		    "cluster: same scheme, user and vhost as the first)",
		    shown);
	}
	ret->host_is_ip |= inet_pton(AF_INET, info.host, addr) == 1 ||
	    inet_pton(AF_INET6, info.host, addr) == 1;
	return 0;
}

int
bus_config_check(const struct bus_config *cfg, struct bus_check *ret)
{
	struct amqp_connection_info first;
	char urls[BUS_URLS_MAX][BUS_URL_MAX];
	const char *tls_key = NULL;
	char shown[512];
	bool has_password = false;
	size_t n;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (cfg == NULL || cfg->url == NULL)
		return fail(ret, -EINVAL, "url: not set");
	bus_url_redact(cfg->url, shown, sizeof(shown));
	r = bus_url_split(cfg->url, urls, BUS_URLS_MAX, &n);
	if (r == -E2BIG)
		return fail(ret, -EINVAL, "url \"%s\": more than %d URLs",
		    shown, BUS_URLS_MAX);
	if (r == -ENAMETOOLONG)
		return fail(ret, -EINVAL, "url \"%s\": a URL longer than %d "
		    "bytes", shown, BUS_URL_MAX - 1);
	if (r < 0)
		return fail(ret, -EINVAL, "url \"%s\": an empty URL in the "
		    "list (URLs are separated by commas)", shown);
	for (size_t i = 0; i < n; i++) {
		/* Checked before parsing: amqp_parse_url() cuts it up. */
		has_password |= url_has_password(urls[i]);
		r = check_url(ret, urls[i], i, &first);
		if (r < 0)
			return r;
	}
	ret->n_urls = n;

	if (cfg->ca_file != NULL)
		tls_key = "ca_file";
	else if (cfg->cert_file != NULL)
		tls_key = "cert_file";
	else if (cfg->key_file != NULL)
		tls_key = "key_file";
	if (!ret->tls && tls_key != NULL)
		return fail(ret, -EINVAL, "%s is set but url \"%s\" is not "
		    "amqps://: TLS files need an amqps:// URL", tls_key,
		    shown);
	if (ret->tls && cfg->ca_file == NULL && !cfg->no_verify_peer)
		return fail(ret, -EINVAL, "url \"%s\" is amqps:// but ca_file "
		    "is not set: the broker's certificate cannot be checked "
		    "(set ca_file, or verify_peer = no to skip the check)",
		    shown);
	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL))
		return fail(ret, -EINVAL, "%s is set without %s: a client "
		    "certificate needs its key", cfg->cert_file != NULL ?
		    "cert_file" : "key_file", cfg->cert_file != NULL ?
		    "key_file" : "cert_file");
	if (cfg->ca_file != NULL &&
	    (r = check_readable(ret, "ca_file", cfg->ca_file)) < 0)
		return r;
	if (cfg->cert_file != NULL &&
	    (r = check_readable(ret, "cert_file", cfg->cert_file)) < 0)
		return r;
	if (cfg->key_file != NULL &&
	    (r = check_readable(ret, "key_file", cfg->key_file)) < 0)
		return r;
	return check_password(cfg, ret, has_password);
}
