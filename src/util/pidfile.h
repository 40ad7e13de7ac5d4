/*
 * pidfile: how the CLI finds a running server: state_dir/bridgehead.pid.
 *
 *   pidfile_write()   serve writes its pid (atomically) at start; an
 *                     existing file whose process still runs is an error
 *                     (two servers on one state_dir).
 *   pidfile_remove()  at a clean stop.
 *   pidfile_signal()  send a signal to the running server (reload: SIGHUP).
 *
 * A stale file (no such process) counts as "not running".
 */
#ifndef BH_UTIL_PIDFILE_H
#define BH_UTIL_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/* 0, or -1 with a sentence in err. */
int pidfile_write(const char *state_dir, char *err, size_t errlen);
void pidfile_remove(const char *state_dir);
/* The running server's pid, or 0 when none runs. */
pid_t pidfile_running(const char *state_dir);
/* 0 sent; -1 not running (errno ESRCH) or not allowed (EPERM). */
int pidfile_signal(const char *state_dir, int sig);

#endif
