/*
 * log: writes the human log to stderr or syslog, one line per call.
 * See log.h for the conventions.  Thread-safe as far as stdio and syslog
 * are: each line is formatted into a local buffer and written at once.
 */
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_to_stderr = true;
static bool log_verbose;
static const char *log_ident = "bridgehead";

void
log_init(const char *ident, bool to_stderr, bool verbose)
{
	log_ident = ident;
	log_to_stderr = to_stderr;
	log_verbose = verbose;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void
log_vemit(int prio, const char *fmt, va_list ap)
{
	char line[4096];

	vsnprintf(line, sizeof line, fmt, ap);
	if (!log_to_stderr) {
		syslog(prio, "%s", line);
		return;
	}
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	const char *level = prio == LOG_WARNING ? " warning:" :
			    prio == LOG_DEBUG   ? " debug:" :
			    prio <= LOG_ERR     ? " error:" : "";
	fprintf(stderr, "%s.%03ldZ %s[%d]:%s %s\n", stamp,
		ts.tv_nsec / 1000000, log_ident, (int)getpid(), level, line);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (log_to_stderr) {
		/* CLI errors: one plain sentence, no timestamp. */
		fprintf(stderr, "bridgehead: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		log_vemit(LOG_ERR, fmt, ap);
	}
	va_end(ap);
	exit(status);
}

void
panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vemit(LOG_CRIT, fmt, ap);
	va_end(ap);
	abort();
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char c = s[i];
		size_t need = (c < 0x20 || c >= 0x7f || c == '\\' || c == '"') ? 4 : 1;
		if (o + need + 4 > dstlen) {
			if (dstlen >= 4) {
				o = o > dstlen - 4 ? dstlen - 4 : o;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
