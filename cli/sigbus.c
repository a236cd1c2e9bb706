/*
 * The counters' state file is mapped shared, and with --owner its owner is
 * the agent's user, who can truncate it at any moment: the next read of a
 * page past the new end raises SIGBUS. The size is checked when the file
 * is opened, but a truncation can come between the check and the read.
 * Root's command must not be killed by another user's file: a SIGBUS for
 * an address past the end of a mapped state file (BUS_ADRERR, at an
 * address the library says is one of its state mappings) ends it with a
 * message and status 2. Any other SIGBUS (another mapped file, an I/O
 * error elsewhere, kill -BUS) kills it as before.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Written by the handler, which may only make async-signal-safe calls:
 * so it is formatted, with the directory escaped, before it is needed. */
static char message[PATH_MAX * 4 + 256];
static size_t message_len;

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
	(void)ctx;
	if (info->si_code == BUS_ADRERR && wrench__state_maps(info->si_addr)) {
		ssize_t written = write(STDERR_FILENO, message, message_len);
		(void)written;
		_exit(EXIT_USAGE);
	}
	signal(sig, SIG_DFL);
	raise(sig); /* delivered when the handler returns */
}

void guard_mapped_files(const struct options *o)
{
	FILE *f = fmemopen(message, sizeof(message) - 1, "w");

	if (f) {
		fputs("wrench: a counters file in ", f);
		print_escaped_string(f, o->dir);
		fputs("/" WRENCH_STATE_DIR " could not be read through its mapping (cut "
		      "short by its owner, or a read error); stopped here, and what the "
		      "command changed before stands (wrench list shows the triggers); fix: "
		      "run the command again if it is still needed\n",
		      f);
		fclose(f);
		message_len = strnlen(message, sizeof(message));
	}
	/* Cut short itself (a very long directory), it says less. */
	if (message_len == 0 || message[message_len - 1] != '\n') {
		snprintf(message, sizeof(message),
		         "wrench: a counters file could not be read through its mapping; "
		         "stopped here\n");
		message_len = strlen(message);
	}
	struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}
