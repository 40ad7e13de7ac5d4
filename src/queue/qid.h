/*
 * qid: queue ids.  16 characters of [0-9A-Za-z]: 9 of base62 microseconds
 * since the epoch (fixed width, so ids sort by time as plain strings until
 * the year 2398), then 7 random ones from getrandom(2) (62^7, about 2^41
 * per microsecond).  Unique across processes and restarts without any
 * shared state; the spool still creates files with O_EXCL and renames with
 * RENAME_NOREPLACE, so a collision is an error, never an overwrite.
 *
 *   qid_new()     a fresh id.
 *   qid_valid()   8-32 of [0-9A-Za-z] (DESIGN.md), what spool_id_valid says.
 */
#ifndef BH_QUEUE_QID_H
#define BH_QUEUE_QID_H

#include <stdbool.h>
#include <stddef.h>

#define QID_LEN 16
#define QID_MIN 8
#define QID_MAX 32

/* 0, or -1 with errno (getrandom failed).  id holds QID_LEN + 1 bytes. */
int qid_new(char id[QID_LEN + 1]);
bool qid_valid(const char *id, size_t len);

#endif
