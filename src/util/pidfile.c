/*
 * pidfile: state_dir/bridgehead.pid, written atomically (temp file and
 * rename) so a reader never sees a half-written number.
 */
#include "util/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
pidfile_path(const char *state_dir, const char *name, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s", state_dir, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

pid_t
pidfile_running(const char *state_dir)
{
	char path[4096], text[32];

	if (pidfile_path(state_dir, "bridgehead.pid", path, sizeof path) != 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	char *end;
	long pid = strtol(text, &end, 10);
	if (pid <= 1 || (*end != '\n' && *end != '\0'))
		return 0;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 0;
	return (pid_t)pid;
}

int
pidfile_write(const char *state_dir, char *err, size_t errlen)
{
	char path[4096], tmp[4096], text[32];

	pid_t other = pidfile_running(state_dir);
	if (other != 0 && other != getpid()) {
		snprintf(err, errlen,
			 "another server (pid %ld) already runs on %s",
			 (long)other, state_dir);
		return -1;
	}
	if (pidfile_path(state_dir, "bridgehead.pid", path, sizeof path) ||
	    pidfile_path(state_dir, ".bridgehead.pid.tmp", tmp, sizeof tmp)) {
		snprintf(err, errlen, "%s: path too long", state_dir);
		return -1;
	}
	int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void
pidfile_remove(const char *state_dir)
{
	char path[4096];

	if (pidfile_running(state_dir) == getpid() &&
	    pidfile_path(state_dir, "bridgehead.pid", path, sizeof path) == 0)
		unlink(path);
}

int
pidfile_signal(const char *state_dir, int sig)
{
	pid_t pid = pidfile_running(state_dir);
	if (pid == 0) {
		errno = ESRCH;
		return -1;
	}
	return kill(pid, sig);
}
