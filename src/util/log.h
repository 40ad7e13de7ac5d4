/*
 * log: the human log of bridgehead (not the message tracking log, which is
 * queue/tracking).  One line per event: the object id first, then
 * key=value pairs; peer-supplied text goes through log_escape() first.
 *
 *   log_init()   choose the sink: stderr (foreground, CLI) or syslog.
 *   log_info(), log_warn(), log_debug()   an event line.
 *   fatal()      start-up, configuration and CLI errors only: message, exit.
 *   panic()      a broken invariant: message, abort().
 *   log_escape() make untrusted bytes safe for one log line.
 *
 * Three error tiers (see docs/ARCHITECTURE.md): fatal at start-up, panic
 * for bugs, and everything a peer, DNS or the disk can cause is logged with
 * log_warn and handled.
 */
#ifndef BH_UTIL_LOG_H
#define BH_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void log_init(const char *ident, bool to_stderr, bool verbose);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy src (srclen bytes, may hold any byte) into dst as printable ASCII:
 * '\\', '"', control and non-ASCII bytes become \xNN.  Always NUL-terminates;
 * output that does not fit is cut and ends in "...".  Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const void *src, size_t srclen);

#endif
