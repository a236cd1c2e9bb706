/*
 * Change detection: the kernel tells us, through inotify, when anything a
 * trigger file's trust or contents depend on changes, so that a call in
 * the steady state makes at most one system call (a read() of the inotify
 * descriptor that finds nothing), or none in relaxed mode.
 *
 * What is watched is what the trust checks opened: every ancestor of the
 * trigger directory (for the name that leads on), the directory (for its
 * entries), and each trigger file loaded (for changes made through another
 * name: a hard link made later, a descriptor opened through one, a file
 * mounted over the name, none of which the directory's watch hears of).
 * Each watch is set on the very descriptor the checks then examine,
 * before they examine it, so no change can fall between a check and its
 * watch. Any event that concerns a watched name forgets what the view knew
 * about it; the next call loads it again, with every check.
 *
 * A change completed before a call starts is seen by it, whichever thread
 * reads the event: reading events and applying them to the view happen
 * under one lock, which every strict-mode call takes around its read().
 * Where the kernel allows, the ring (ring.c) spares strict mode that
 * read(): a call takes the lock only when the ring shows an event pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "quiet.h"

/* What changes we hear about, per kind of thing watched. An ancestor's
 * events are filtered down to the one name that leads on. */
#define ANCESTOR_EVENTS                                                                            \
	(IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |        \
	 IN_MOVE_SELF)
#define DIR_EVENTS  (ANCESTOR_EVENTS | IN_MODIFY | IN_CLOSE_WRITE)
#define FILE_EVENTS (IN_ATTRIB | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)

/* 16 bytes, the name on the heap: a process watching 100,000 trigger
 * files searches and grows an array of 1.6 MB, not one of 26 MB. */
struct watch {
	int wd;
	enum wrench__opened what;
	char *name; /* the name leading on, or the category; never NULL */
};

enum state { UNTRIED, RUNNING, FAILED };

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int state = UNTRIED;
static int inotify_fd = -1;
static struct watch *watches;
static size_t watch_count, watch_capacity;
/* After a fork, the child's copy of the parent's entries, whose names are
 * freed only if the child starts detection of its own: a child that only
 * calls exec() spends nothing on them. */
static size_t stale_count;
/* Changes applied, so that a load can tell whether one came in while it
 * ran: to everything, and to categories by a hash of their name. A change
 * to another category in the same directory (a temporary file, a busy
 * neighbour) then does not stop a load from being remembered; two names
 * that share a counter only cost an extra load. */
#define CATEGORY_COUNTERS 256
static uint64_t changes;
/* Changes to the entry of the state directory: they let go of the state
 * file mapped, not of what the view knows. */
static uint64_t state_dir_changes;
static uint64_t category_changes[CATEGORY_COUNTERS];

static uint64_t *counter_of(uint64_t hash)
{
	return &category_changes[(hash ^ (hash >> 32)) % CATEGORY_COUNTERS];
}

/* A message for the log, told once the lock is released: a logger may
 * call the library, which takes the lock. */
static char note[256];
static enum wrench_log_level note_level;

struct wrench__watch_hot wrench__watch_hot;

/* Releases watch_lock, then logs what was noted under it. */
static void unlock_and_tell(void)
{
	char message[sizeof(note)];

	memcpy(message, note, sizeof(note));
	note[0] = '\0';
	pthread_mutex_unlock(&watch_lock);
	if (message[0])
		wrench__log(note_level, "%s", message);
	wrench__ring_tell();
}

/* Frees the names of the first COUNT entries of watches. */
static void free_names(size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(watches[i].name);
}

/* Lets go of every watch's entry; the caller closes the descriptor that
 * held the watches. */
static void drop_watches(void)
{
	free_names(watch_count);
	watch_count = 0;
}

/* Everything may have changed: the directory must be walked again. The
 * watches stay: setting a watch on a directory costs the kernel a walk
 * of its cached entries (milliseconds on a busy /tmp), while setting one
 * that exists is cheap, and the walk will set the same ones again. */
static void forget_everything(void)
{
	changes++;
	wrench__view_forget_all();
}

/* CATEGORY: a name the kernel reported, made here, once. */
static void forget_category(const char *category)
{
	struct wrench__name name = wrench__name_of(category);

	(*counter_of(name.hash))++;
	wrench__view_forget(&name);
}

/* Where WD is, or would go, in watches, which is kept sorted by wd: the
 * kernel hands out increasing numbers, so a new watch is nearly always
 * appended, and a lookup among the watches of thousands of trigger files
 * is a binary search, not a scan per load. */
static size_t watch_position(int wd)
{
	size_t lo = 0, hi = watch_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (watches[mid].wd < wd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct watch *find_watch(int wd)
{
	size_t i = watch_position(wd);
	return i < watch_count && watches[i].wd == wd ? &watches[i] : NULL;
}

/* A slot for the new watch WD, in order; the caller made room. */
static struct watch *insert_watch(int wd)
{
	size_t i = watch_position(wd);
	memmove(&watches[i + 1], &watches[i], (watch_count - i) * sizeof(*watches));
	watch_count++;
	return &watches[i];
}

static void remove_watch(struct watch *w)
{
	size_t i = (size_t)(w - watches);
	free(w->name);
	memmove(&watches[i], &watches[i + 1], (watch_count - i - 1) * sizeof(*watches));
	watch_count--;
}

static void apply(const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		forget_everything();
		return;
	}
	struct watch *w = find_watch(ev->wd);
	if (!w)
		return; /* a watch we removed; its last events trickle in */
	if (ev->mask & IN_IGNORED) {
		if (w->what == WRENCH__FILE)
			forget_category(w->name);
		else
			forget_everything();
		remove_watch(w);
		return;
	}
	switch (w->what) {
	case WRENCH__ANCESTOR:
		if (ev->len == 0 || strcmp(ev->name, w->name) == 0)
			forget_everything();
		break;
	case WRENCH__DIR:
		if (!ev->len) {
			forget_everything();
			break;
		}
		/* The state directory lets go of the state file mapped. */
		if (strcmp(ev->name, WRENCH_STATE_DIR) == 0)
			state_dir_changes++;
		forget_category(ev->name);
		break;
	case WRENCH__FILE:
		forget_category(w->name);
		break;
	}
}

static void stop(const char *why);

/* Applies every pending event. Called with watch_lock held. */
static void poll_events(void)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(inotify_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EBADF) {
			/* The application closed it (closefrom, say): no more
			 * events will come, and the number is not ours to close. */
			inotify_fd = -1;
			stop("its inotify descriptor was closed by someone else");
			return;
		}
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			apply(ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

/*
 * What cannot be watched is tried again later, never given up for good:
 * a limit reached (descriptors, watches, memory) is lifted, a squatted
 * name is removed. Meanwhile calls stay cheap, and what could not be
 * watched is looked at again after the back-off: from RETRY_FIRST_MS,
 * doubling while it keeps failing, up to RETRY_MAX_MS.
 */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   10000

static uint64_t retry_interval_ms; /* 0: nothing failed lately */
static int last_failure;           /* the errno last logged, to log it once */

/* Something could not be watched: when to look again. Lock held. */
static void schedule_retry(void)
{
	retry_interval_ms = retry_interval_ms ? 2 * retry_interval_ms : RETRY_FIRST_MS;
	if (retry_interval_ms > RETRY_MAX_MS)
		retry_interval_ms = RETRY_MAX_MS;
	atomic_store(&wrench__hot.retry_at_ms, wrench__coarse_ms() + retry_interval_ms);
}

/* The counters of a load's lines could not all be had (state.c): load
 * again when they may be tried again, MS, at the latest. Lock held. */
static void retry_by(uint64_t ms)
{
	uint64_t due = atomic_load(&wrench__hot.retry_at_ms);

	if (!ms)
		ms = wrench__coarse_ms() + RETRY_FIRST_MS;
	if (!due || ms < due)
		atomic_store(&wrench__hot.retry_at_ms, ms);
}

/* Notes a WARN saying why detection cannot run as it should, once per
 * reason, so that a failure that lasts does not flood the log. Lock held. */
static void note_failure(int err, const char *what, const char *consequence)
{
	if (err == last_failure)
		return;
	last_failure = err;
	note_level = WRENCH_LOG_WARN;
	snprintf(note, sizeof(note),
	         "change detection: %s failed (%s%s); %s, and it is tried again in %llu ms, "
	         "then less often while it fails",
	         what, strerror(err), err == ENOENT ? ": is /proc mounted?" : "", consequence,
	         (unsigned long long)retry_interval_ms);
}

/* Starts change detection; on failure every call checks by itself until
 * a later call starts it. Lock held. */
static void start(void)
{
	free_names(stale_count);
	stale_count = 0;
	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	atomic_store(&state, inotify_fd >= 0 ? RUNNING : FAILED);
	if (inotify_fd >= 0)
		return;
	int err = errno;
	schedule_retry();
	note_failure(err, "inotify_init1", "every call reads the files meanwhile");
}

/* A retry is due: start again, or look again at what could not be
 * watched. Lock held. */
static void retry_if_due(void)
{
	uint64_t due = atomic_load_explicit(&wrench__hot.retry_at_ms, memory_order_relaxed);

	if (!due || wrench__coarse_ms() < due)
		return;
	atomic_store(&wrench__hot.retry_at_ms, 0);
	if (atomic_load(&state) == FAILED)
		start();
	else
		forget_everything();
}

/* This inotify instance can serve no more (the application closed its
 * descriptor): everything is forgotten, and detection starts afresh at
 * the retry. Lock held. */
static void stop(const char *why)
{
	wrench__ring_stop();
	forget_everything();
	if (inotify_fd >= 0)
		close(inotify_fd); /* and with it every watch */
	inotify_fd = -1;
	drop_watches();
	atomic_store(&state, FAILED);
	schedule_retry();
	note_level = WRENCH_LOG_INFO;
	snprintf(note, sizeof(note),
	         "change detection restarts (%s): every call reads the files until then", why);
}

/* A watch on the descriptor itself, not its path: the path may lead
 * elsewhere now. Through /proc/thread-self, which lasts as long as the
 * calling thread: /proc/self is gone once the main thread has called
 * pthread_exit(). Kernels before 3.17 have only /proc/self.
 *
 * Always with IN_MASK_ADD. Every walk sets again the watches of the
 * ancestors it passes, and without it the kernel replaces a watch's mask
 * by clearing it first: an event that comes in that instant (the trigger
 * directory recreated in /tmp while another thread walks through /tmp) is
 * dropped, never queued, and nothing would tell us to look again. Adding
 * to the mask leaves it whole; a name watched in two roles hears the
 * events of both, which apply() sorts out. */
static int add_watch_on_fd(int fd, uint32_t mask)
{
	char proc[64];

	mask |= IN_MASK_ADD;

	snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", fd);
	int wd = inotify_add_watch(inotify_fd, proc, mask);
	if (wd < 0 && errno == ENOENT && access("/proc/thread-self", F_OK) < 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		wd = inotify_add_watch(inotify_fd, proc, mask);
	}
	return wd;
}

/* The trust checks' hook: watch each descriptor before it is checked. A
 * watch that cannot be set leaves detection running for everything else;
 * the load that needed it is remembered until the retry only. */
static void watch_opened(int fd, enum wrench__opened what, const char *next, void *ctx)
{
	static const uint32_t masks[] = {
	        [WRENCH__ANCESTOR] = ANCESTOR_EVENTS,
	        [WRENCH__DIR] = DIR_EVENTS,
	        [WRENCH__FILE] = FILE_EVENTS,
	};
	struct wrench__watching *load = ctx;

	pthread_mutex_lock(&watch_lock);
	if (atomic_load(&state) != RUNNING)
		goto out;
	int wd = add_watch_on_fd(fd, masks[what]);
	if (wd < 0) {
		load->failed = errno;
		goto out;
	}
	const char *name = next ? next : "";
	struct watch *w = find_watch(wd);
	bool same = w && strcmp(w->name, name) == 0;
	char *copy = same ? NULL : strdup(name);
	if (!same && !copy) {
		/* A new watch's events could not be told from a stranger's;
		 * one we had keeps the name it had, and the load is not
		 * remembered. */
		if (!w)
			inotify_rm_watch(inotify_fd, wd);
		load->failed = ENOMEM;
		goto out;
	}
	if (!w && watch_count == watch_capacity) {
		size_t capacity = watch_capacity ? 2 * watch_capacity : 16;
		struct watch *more = realloc(watches, capacity * sizeof(*more));
		if (!more) {
			free(copy);
			inotify_rm_watch(inotify_fd, wd);
			load->failed = ENOMEM;
			goto out;
		}
		watches = more;
		watch_capacity = capacity;
	}
	if (!w) {
		w = insert_watch(wd);
		w->name = NULL;
	}
	w->wd = wd;
	w->what = what;
	if (copy) {
		free(w->name);
		w->name = copy;
	}
out:
	unlock_and_tell();
}

bool wrench__watch_running(void)
{
	return atomic_load_explicit(&state, memory_order_relaxed) == RUNNING;
}

/* Every change to the directory or an ancestor goes through
 * forget_everything(), which counts it. */
uint64_t wrench__watch_epoch(uint64_t *state_epoch)
{
	pthread_mutex_lock(&watch_lock);
	bool sure = atomic_load(&state) == RUNNING && !atomic_load(&wrench__hot.retry_at_ms);
	uint64_t epoch = sure ? changes + 1 : 0;
	/* Both counts only grow: their sum changes when either does. */
	*state_epoch = sure ? changes + state_dir_changes + 1 : 0;
	pthread_mutex_unlock(&watch_lock);
	return epoch;
}

void wrench__watch_look(void)
{
	unsigned ms = atomic_load_explicit(&wrench__watch_hot.recheck_ms, memory_order_relaxed);
	uint64_t now = ms ? wrench__coarse_ms() : 0;

	pthread_mutex_lock(&watch_lock);
	if (atomic_load(&state) == RUNNING)
		wrench__ring_refresh(inotify_fd, poll_events);
	retry_if_due();
	if (ms)
		atomic_store_explicit(&wrench__watch_hot.next_check_ms, now + ms,
		                      memory_order_relaxed);
	unlock_and_tell();
}

/* A load could not set every watch it needed: what it found is kept
 * until the retry, which loads again and tries the watch again; the
 * first failure of a kind is logged. Lock held. */
static void watch_failed(int err)
{
	/* A retry already due keeps its time: loads that keep failing
	 * must not put it off for ever. */
	if (!atomic_load(&wrench__hot.retry_at_ms))
		schedule_retry();
	note_failure(err, "inotify_add_watch",
	             "a change to what could not be watched is seen at the next try, not at "
	             "once");
}

void wrench__watch_begin(const struct wrench__name *category, struct wrench__watching *load,
                         struct wrench__trust *trust)
{
	pthread_mutex_lock(&watch_lock);
	if (atomic_load(&state) == UNTRIED)
		start();
	else
		retry_if_due();
	load->before = changes;
	load->before_category = *counter_of(category->hash);
	load->failed = 0;
	unlock_and_tell();
	trust->opened = watch_opened;
	trust->opened_ctx = load;
}

void wrench__watch_end(const struct wrench__name *category, struct wrench__watching *load,
                       struct wrench__snapshot *snapshot, enum wrench__outcome outcome)
{
	/* What was loaded is current unless a change came in meanwhile:
	 * then the next call loads again. */
	pthread_mutex_lock(&watch_lock);
	if (atomic_load(&state) == RUNNING) {
		/* Through the ring, in either mode: the first load makes it,
		 * so that what the library keeps open is open from then on;
		 * after that, a quiet ring says that nothing came in, as it
		 * does for a call, with no system call. */
		if (!wrench__ring_quiet())
			wrench__ring_refresh(inotify_fd, poll_events);
		bool unchanged = changes == load->before &&
		                 *counter_of(category->hash) == load->before_category;
		if (load->failed)
			watch_failed(load->failed);
		else if (unchanged && outcome != WRENCH__RETRY &&
		         !atomic_load(&wrench__hot.retry_at_ms))
			retry_interval_ms = 0; /* all is watched again */
		if (load->retry)
			retry_by(load->retry_ms);
		if (unchanged && outcome == WRENCH__DIR_UNUSABLE)
			wrench__view_set_dir_unusable();
		else if (unchanged && outcome != WRENCH__RETRY)
			wrench__view_set(category, snapshot);
	}
	unlock_and_tell();
}

void wrench__watch_reset(void)
{
	pthread_mutex_lock(&watch_lock);
	if (atomic_load(&state) == RUNNING)
		forget_everything();
	else
		wrench__view_forget_all();
	pthread_mutex_unlock(&watch_lock);
}

void wrench__set_recheck_ms(unsigned ms)
{
	atomic_store(&wrench__watch_hot.recheck_ms, ms);
	atomic_store(&wrench__watch_hot.next_check_ms, 0);
}

void wrench__watch_init_from_env(void)
{
	const char *text = secure_getenv("WRENCH_RECHECK_MS");
	uint64_t ms;

	wrench__ring_init_from_env();
	if (!text)
		return;
	if (wrench__parse_uint(text, strlen(text), &ms) < 0 || ms > UINT32_MAX) {
		wrench__log(WRENCH_LOG_ERROR,
		            "WRENCH_RECHECK_MS=\"%.32s\" is not a number of milliseconds; using 0 "
		            "(strict)",
		            text);
		return;
	}
	wrench__set_recheck_ms((unsigned)ms);
}

void wrench__watch_atfork_prepare(void)
{
	pthread_mutex_lock(&watch_lock);
}

void wrench__watch_atfork_parent(void)
{
	pthread_mutex_unlock(&watch_lock);
}

/* The child shares the parent's inotify queue: whichever reads an event
 * takes it from the other. So the child starts its own, from nothing. */
void wrench__watch_atfork_child(void)
{
	if (inotify_fd >= 0)
		close(inotify_fd);
	inotify_fd = -1;
	stale_count += watch_count;
	watch_count = 0;
	retry_interval_ms = 0;
	atomic_store(&wrench__hot.retry_at_ms, 0);
	last_failure = 0;
	changes++;
	atomic_store(&state, UNTRIED);
	wrench__view_forget_all();
	pthread_mutex_unlock(&watch_lock);
}
