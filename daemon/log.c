/*
 * log.c - see log.h.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"

static atomic_int threshold = OVC_LOG_INFO;
static int journal;

void ovc_log_init(enum ovc_log_level level)
{
	const char *j = getenv("JOURNAL_STREAM");

	journal = j && *j;
	atomic_store(&threshold, (int)level);
}

void ovc_log_set_level(enum ovc_log_level level)
{
	atomic_store(&threshold, (int)level);
}

void ovc_log(enum ovc_log_level level, const char *fmt, ...)
{
	static const int prio[] = { 3, 4, 6, 7 };
	char line[1024];
	size_t n;
	int k;
	va_list ap;

	if ((int)level > atomic_load(&threshold))
		return;
	if (journal)
		k = snprintf(line, sizeof(line), "<%d>", prio[level]);
	else
		k = snprintf(line, sizeof(line), "overcryptd: %s: ",
			     ovc_log_level_name(level));
	n = k > 0 ? (size_t)k : 0;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	n += (size_t)k < sizeof(line) - n - 1 ? (size_t)k : sizeof(line) - n - 2;
	/* one line per message: no embedded newlines reach the journal */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
