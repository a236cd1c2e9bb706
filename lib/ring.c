/*
 * The ring: in strict mode, lets a call learn that nothing changed with no
 * system call, where the inotify path alone costs a read() per call.
 *
 * One io_uring per process holds a multishot poll on the inotify
 * descriptor. It is set up with SINGLE_ISSUER | DEFER_TASKRUN |
 * TASKRUN_FLAG: when inotify queues an event, the wake-up runs inside the
 * writer's own system call (io_poll_wake -> io_req_local_work_add) and sets
 * IORING_SQ_TASKRUN in the ring's shared memory before that call returns.
 * A change completed before a call starts is therefore visible to it as a
 * flag in memory. The hot path (wrench__ring_quiet) reads the flags, the
 * completion queue's head and tail and a generation counter, with plain
 * acquire loads; only when they show nothing pending does the caller
 * answer from the view. Anything else takes the inotify path, which is
 * correct on its own: the ring only ever says "maybe something changed".
 *
 * Only the thread that made the ring (its owner) may run its task work,
 * which clears the flag: it makes the generation odd first, so that no
 * caller trusts the ring while the flag is clear but the events are not
 * applied yet, and even again once the view is current. Other threads that
 * find the flag set read inotify as before; past a bounded number of such
 * calls without a drain (the owner is busy elsewhere, or blocked), the
 * calling thread makes a ring of its own. The owner's exit retires the ring.
 *
 * A caller may be between its loads of ring memory while another thread
 * retires the ring, so that memory is never unmapped: retiring replaces
 * it, in one mmap(MAP_FIXED), by a page of zeroes that stays (the
 * generation, odd by then, tells the caller not to trust them); its
 * submission entries are replaced likewise. Two pages of address space per
 * retired ring, bounded by MAX_RINGS.
 *
 * Every way the ring can be unavailable, or stop working, turns it off for
 * the process, with one INFO line; strict mode then reads inotify on each
 * call, as it does without the ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "quiet.h"

/* The one setup that measured no missed change: with any other, the flag
 * is set late (COOP_TASKRUN) or not at all. */
#define RING_SETUP                                                                                 \
	(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG)
#define RING_ENTRIES 4
#define POLL_TAG     0x7772656e6368ull /* user_data of the poll request */
/* Slow calls by other threads, without a drain by the owner, after which
 * the calling thread takes the ring over. */
#define MOVE_AFTER_SLOW_CALLS 64
/* Rings made in a process's life; each retired one leaves a page of
 * address space behind. */
#define MAX_RINGS 1024

enum ring_state { RING_UNTRIED, RING_ON, RING_OFF };

/* Guards everything below but the atomics; taken inside the watch lock. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static int ring_state = RING_UNTRIED;
static struct io_uring ring;
static bool turned_off_by_env, self_tested;
/* RING_OFF, for good: read without the lock, so that the path without the
 * ring costs what it did before there was one. */
static atomic_bool off_for_good;

static unsigned rings_made;

/* Which ring this thread owns, if it is still the current one. */
static uint64_t ring_id;
static WRENCH_TLS uint64_t owned_id;
static pthread_key_t owner_key;
static pthread_once_t owner_key_once = PTHREAD_ONCE_INIT;
static unsigned slow_calls_by_others;
static bool owner_gone;
/* Set while this thread runs wrench__ring_refresh: the inotify reader it
 * calls back may stop change detection, and with it the ring. */
static WRENCH_TLS bool refreshing;

/* Why the ring went off, told after the locks are released (a logger may
 * call the library). */
static char message[320];
static atomic_bool message_pending;

static void turn_off(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WRENCH_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WRENCH_TSAN 1
#endif

#ifdef WRENCH_TSAN
/*
 * In a ThreadSanitizer build only: its runtime reads these suppressions,
 * built in so that every process of the tests has them, whatever it can
 * read. liburing maps and unmaps rings with its own system calls, not
 * through libc, so ThreadSanitizer never learns that a ring's memory is
 * new: where an earlier mapping of the process was (a state file, say), it
 * pairs liburing's reads of the ring (inlined from its header, or expanded
 * from its macros in ring_drain()) with that mapping's creation by another
 * thread. The memory is the kernel's, written by the kernel, which
 * ThreadSanitizer cannot see either.
 */
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__tsan_default_suppressions(void)
{
	return "race:liburing.h\nrace:ring_drain\n";
}
#endif

/* Makes the generation odd, if it is not, before the kernel is entered:
 * a caller that then finds the flag clear also finds the generation
 * changed. The fence orders the store before the system call's effects on
 * weakly ordered machines too. */
static void gen_make_odd(void)
{
	if (!(atomic_load(&wrench__hot.ring_gen) & 1))
		atomic_fetch_add(&wrench__hot.ring_gen, 1);
	atomic_thread_fence(memory_order_seq_cst);
}

static void gen_make_even(void)
{
	if (atomic_load(&wrench__hot.ring_gen) & 1)
		atomic_fetch_add_explicit(&wrench__hot.ring_gen, 1, memory_order_release);
}

/* Ring memory, read the way the hot path reads it. */
static bool ring_memory_clean(void)
{
	unsigned flags = wrench__ring_word(&wrench__hot.kflags);

	return !(flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) &&
	       wrench__ring_word(&wrench__hot.ktail) == wrench__ring_word(&wrench__hot.khead);
}

static bool taskrun_flag_set(void)
{
	return wrench__ring_word(&wrench__hot.kflags) & IORING_SQ_TASKRUN;
}

/* Lets go of the ring. FD_OURS: its descriptor is still ours to close
 * (not after EBADF: the number may belong to someone else by now). */
static void retire(bool fd_ours)
{
	if (ring_state != RING_ON)
		return;
	gen_make_odd();
	/* Zeroes in place of the ring's memory, in one step (see the header
	 * comment). This cannot fail on a range we own; if it did, the old
	 * ring would stay mapped: wasted, not unsafe. */
	(void)mmap(ring.sq.ring_ptr, ring.sq.ring_sz, PROT_READ,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	/* The submission entries too, rather than unmapped: a later ring's
	 * memory must never land where this one's entries were written, so
	 * that no address the hot path reads was ever written by the library
	 * (ThreadSanitizer, which cannot see the kernel's writes, would take
	 * the new ring's words for the old entries). */
	(void)mmap(ring.sq.sqes, ring.sq.ring_entries * sizeof(struct io_uring_sqe), PROT_NONE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (fd_ours)
		close(ring.ring_fd);
	memset(&ring, 0, sizeof(ring));
	ring_state = RING_UNTRIED;
}

static void turn_off(const char *fmt, ...)
{
	va_list ap;
	int n;

	retire(true);
	ring_state = RING_OFF;
	atomic_store(&off_for_good, true);
	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n > 0)
		atomic_store(&message_pending, true);
}

static int arm_poll(int inotify_fd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, inotify_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, POLL_TAG);
	int rc = io_uring_submit(&ring);
	return rc == 1 ? 0 : rc < 0 ? rc : -EIO;
}

/* Points the hot path at the ring's memory. The SQ and CQ rings must
 * share one mapping (Linux 5.4 and later), the one retire() replaces. */
static int expose(void)
{
	if (ring.sq.ring_ptr != ring.cq.ring_ptr)
		return -EINVAL;
	atomic_store(&wrench__hot.kflags, ring.sq.kflags);
	atomic_store(&wrench__hot.khead, ring.cq.khead);
	atomic_store(&wrench__hot.ktail, ring.cq.ktail);
	return 0;
}

static void owner_exits(void *unused);

static void make_owner_key(void)
{
	pthread_key_create(&owner_key, owner_exits);
}

/* Makes a ring owned by the calling thread, polling INOTIFY_FD. Returns 0
 * or a negative errno and the step that failed in *STEP. The generation
 * stays odd: the caller makes it even once the view is current. */
static int build(int inotify_fd, const char **step)
{
	struct io_uring_params p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.flags = RING_SETUP;
	*step = "io_uring_setup";
	rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
	if (rc < 0) {
		memset(&ring, 0, sizeof(ring));
		return rc;
	}
	ring_state = RING_ON;
	rings_made++;
	/* A child must never see, or keep alive, its parent's ring. */
	*step = "mapping the ring";
	rc = io_uring_ring_dontfork(&ring);
	if (rc == 0)
		rc = expose();
	if (rc == 0) {
		*step = "arming the poll";
		rc = arm_poll(inotify_fd);
	}
	if (rc < 0) {
		retire(true);
		return rc;
	}
	pthread_once(&owner_key_once, make_owner_key);
	owned_id = ++ring_id;
	/* A non-NULL value makes pthreads call owner_exits at thread exit. */
	pthread_setspecific(owner_key, (void *)1);
	slow_calls_by_others = 0;
	owner_gone = false;
	return 0;
}

/* Runs the ring's task work and consumes its completions, then has
 * READ_EVENTS read inotify until it is empty (in that order: an event
 * queued after the read wakes the poll again rather than merging into one
 * already read), and arms the poll again if the kernel ended it. The
 * owner only, generation odd. Returns 0 or a negative errno. */
static int ring_drain(int inotify_fd, void (*read_events)(void))
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	bool rearm = false;

	if (ring_state != RING_ON)
		return -ESHUTDOWN;
	int rc = io_uring_get_events(&ring);
	if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
		read_events();
		return rc;
	}
	io_uring_for_each_cqe(&ring, head, cqe)
	{
		if (cqe->user_data == POLL_TAG &&
		    (!(cqe->flags & IORING_CQE_F_MORE) || cqe->res < 0))
			rearm = true;
		seen++;
	}
	io_uring_cq_advance(&ring, seen);
	read_events();
	if (ring_state != RING_ON)
		return -ESHUTDOWN; /* change detection stopped meanwhile */
	return rearm ? arm_poll(inotify_fd) : 0;
}

/* Unrelated events (a busy /tmp among the watched ancestors) may set the
 * flag again at any moment: a few rounds let the ring be seen quiet. */
static int drain_until_clean(int inotify_fd, void (*read_events)(void))
{
	for (int round = 0; round < 64; round++) {
		int rc = ring_drain(inotify_fd, read_events);
		if (rc < 0)
			return rc;
		if (ring_memory_clean())
			return 0;
	}
	return -EPROTO;
}

/* Linux 6.3; older headers lack it, and older kernels refuse it (EINVAL). */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

/*
 * The self-test: the kernel behaviour the ring relies on, checked once.
 * A change to a file watched through the same inotify descriptor must set
 * the flag before the system call that made it returns; after a drain the
 * ring must be clean again. Returns 0, or a negative errno with what
 * failed in *WHAT.
 *
 * The file is a memfd, which no file system shows: a machine without a
 * trigger directory must find nothing made or written by the library, not
 * even for a moment. Its inode is new, so the test's watch can never be
 * one the library holds (adding a watch to a watched inode would replace
 * that watch's mask, and removing it would remove the library's). The
 * change is an fchmod(): IN_ATTRIB, queued and woken up as any event is.
 * Not a write(): Linux 6.18, for one, reports no event for a write to a
 * memfd; a change of attributes is reported for every inode. Without
 * memfds or /proc, the ring is not used.
 */
static int self_test(int inotify_fd, void (*read_events)(void), const char **what)
{
	char proc[64];
	int rc;

	*what = "cannot make a memfd to watch";
	/* Never executable, and no warning in the log of kernels from 6.3 on. */
	int fd = memfd_create("wrench-ring-test", MFD_CLOEXEC | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("wrench-ring-test", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* /proc/self/fd is empty once the main thread has called
	 * pthread_exit(); every kernel with the ring has thread-self. */
	snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", fd);
	*what = "cannot watch the memfd through /proc/thread-self/fd";
	int wd = inotify_add_watch(inotify_fd, proc, IN_ATTRIB);
	if (wd < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*what = "the ring did not settle before the test";
	rc = drain_until_clean(inotify_fd, read_events);
	if (rc == 0) {
		*what = "a change did not set the flag before its system call returned";
		/* The seal refuses only a change of the executable bits. */
		if (fchmod(fd, 0600) < 0)
			rc = -errno;
		else if (!taskrun_flag_set()) /* no system call since fchmod */
			rc = -EPROTO;
	}
	/* The watch holds the inode: it would outlive the close. */
	inotify_rm_watch(inotify_fd, wd);
	close(fd);
	if (rc == 0) {
		*what = "the ring did not settle after a drain";
		rc = drain_until_clean(inotify_fd, read_events);
	}
	return rc;
}

/* Why a step of the ring's setup failed, for the INFO line. */
static const char *setup_refusal(const char *step, int rc, char *buf, size_t len)
{
	char value[8] = "";
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, value, sizeof(value) - 1);
		value[n > 0 ? n : 0] = '\0';
		value[strcspn(value, "\n")] = '\0';
		close(fd);
	}
	if (strcmp(step, "io_uring_setup") != 0)
		return "unexpected error";
	if ((rc == -EPERM || rc == -EACCES) && value[0] && strcmp(value, "0") != 0) {
		snprintf(buf, len, "/proc/sys/kernel/io_uring_disabled is %s", value);
		return buf;
	}
	switch (-rc) {
	case ENOSYS:
	case EINVAL:
		return "the kernel is older than 6.1 or built without io_uring";
	case EPERM:
	case EACCES:
		return "a seccomp filter or security policy forbids it";
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		return "a memory or descriptor limit was reached";
	default:
		return "unexpected error";
	}
}

/* First strict call with change detection running: makes the ring. */
static void start(int inotify_fd, void (*read_events)(void))
{
	const char *step, *what;
	int rc;

	if (turned_off_by_env) {
		turn_off("io_uring not used: WRENCH_IO_URING=0; strict mode reads the inotify "
		         "descriptor on each call");
		read_events();
		return;
	}
	if (rings_made >= MAX_RINGS) {
		turn_off("io_uring turned off: %d rings were made in this process (the threads "
		         "that own one keep exiting, and each leaves two pages of address space "
		         "behind); strict mode reads the inotify descriptor on each call",
		         MAX_RINGS);
		read_events();
		return;
	}
	rc = build(inotify_fd, &step);
	if (rc < 0) {
		char why[64];
		turn_off("io_uring not used (%s: %s: %s); strict mode reads the inotify descriptor "
		         "on each call. Set WRENCH_IO_URING=0 to skip the attempt",
		         step, strerror(-rc), setup_refusal(step, rc, why, sizeof(why)));
		read_events();
		return;
	}
	if (!self_tested) {
		rc = self_test(inotify_fd, read_events, &what);
		if (rc == -ESHUTDOWN)
			return;
		if (rc < 0) {
			turn_off("io_uring not used: its self-test failed (%s: %s); strict mode "
			         "reads the inotify descriptor on each call",
			         what, strerror(-rc));
			read_events();
			return;
		}
		self_tested = true;
	}
	rc = ring_drain(inotify_fd, read_events);
	if (rc == -ESHUTDOWN)
		return;
	if (rc < 0)
		turn_off("io_uring not used (first drain: %s); strict mode reads the inotify "
		         "descriptor on each call",
		         strerror(-rc));
	else
		gen_make_even();
}

/* The owner's drain; any failure turns the ring off. Its descriptor is
 * then left alone: after EBADF, or EOPNOTSUPP, the number may belong to
 * another file of the application's by now. */
static void owner_drain(int inotify_fd, void (*read_events)(void))
{
	gen_make_odd();
	int rc = ring_drain(inotify_fd, read_events);
	if (rc == -ESHUTDOWN)
		return;
	if (rc < 0)
		retire(false);
	if (rc == -EBADF) {
		turn_off("io_uring turned off: its descriptor was closed by someone else (EBADF); "
		         "strict mode reads the inotify descriptor on each call");
		return;
	}
	if (rc < 0) {
		turn_off("io_uring turned off (drain: %s); strict mode reads the inotify "
		         "descriptor on each call",
		         strerror(-rc));
		return;
	}
	slow_calls_by_others = 0;
	gen_make_even();
}

void wrench__ring_refresh(int inotify_fd, void (*read_events)(void))
{
	if (atomic_load_explicit(&off_for_good, memory_order_relaxed)) {
		read_events();
		return;
	}
	pthread_mutex_lock(&ring_lock);
	refreshing = true;
	switch (ring_state) {
	case RING_UNTRIED:
		start(inotify_fd, read_events);
		break;
	case RING_ON:
		if (owned_id == ring_id) {
			owner_drain(inotify_fd, read_events);
		} else if (owner_gone || ++slow_calls_by_others > MOVE_AFTER_SLOW_CALLS) {
			/* The owner is gone, or has not drained for a while:
			 * this thread takes over, rather than pay a read() per
			 * call. */
			retire(true);
			start(inotify_fd, read_events);
		} else {
			read_events(); /* correct; the flag stays set for the owner */
		}
		break;
	default:
		read_events();
		break;
	}
	refreshing = false;
	pthread_mutex_unlock(&ring_lock);
}

/* pthreads calls this when a thread that owned a ring exits: with it gone,
 * nobody could drain the ring, and a kernel may cancel its poll. Calls
 * stop trusting it at once; the next one makes a ring of its own. */
static void owner_exits(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&ring_lock);
	if (ring_state == RING_ON && owned_id == ring_id) {
		gen_make_odd();
		owner_gone = true;
	}
	pthread_mutex_unlock(&ring_lock);
}

void wrench__ring_stop(void)
{
	if (!refreshing)
		pthread_mutex_lock(&ring_lock);
	retire(true);
	if (!refreshing)
		pthread_mutex_unlock(&ring_lock);
}

bool wrench__ring_is_owner(void)
{
	pthread_mutex_lock(&ring_lock);
	bool owner = ring_state == RING_ON && owned_id == ring_id && !owner_gone;
	pthread_mutex_unlock(&ring_lock);
	return owner;
}

bool wrench__ring_active(void)
{
	pthread_mutex_lock(&ring_lock);
	bool on = ring_state == RING_ON;
	pthread_mutex_unlock(&ring_lock);
	return on;
}

void wrench__ring_tell(void)
{
	char text[sizeof(message)];

	if (!atomic_load_explicit(&message_pending, memory_order_relaxed))
		return;
	pthread_mutex_lock(&ring_lock);
	memcpy(text, message, sizeof(text));
	message[0] = '\0';
	atomic_store(&message_pending, false);
	pthread_mutex_unlock(&ring_lock);
	if (text[0])
		wrench__log(WRENCH_LOG_INFO, "%s", text);
}

void wrench__ring_init_from_env(void)
{
	const char *text = secure_getenv("WRENCH_IO_URING");

	if (!text || strcmp(text, "1") == 0)
		return;
	if (strcmp(text, "0") == 0) {
		turned_off_by_env = true;
		return;
	}
	wrench__log(WRENCH_LOG_ERROR,
	            "WRENCH_IO_URING=\"%.32s\" is neither 0 (off) nor 1 (on where the kernel "
	            "allows); using 1",
	            text);
}

void wrench__ring_atfork_prepare(void)
{
	pthread_mutex_lock(&ring_lock);
}

void wrench__ring_atfork_parent(void)
{
	pthread_mutex_unlock(&ring_lock);
}

/* The child has no mapping of the parent's ring (DONTFORK) and closes its
 * copy of the descriptor, which leaves the parent's ring alone. It makes
 * its own on its first strict call; the kernel behaviour was checked. */
void wrench__ring_atfork_child(void)
{
	atomic_store(&wrench__hot.ring_gen, atomic_load(&wrench__hot.ring_gen) | 1);
	if (ring_state == RING_ON) {
		close(ring.ring_fd);
		memset(&ring, 0, sizeof(ring));
		ring_state = RING_UNTRIED;
	}
	ring_id++;
	pthread_mutex_unlock(&ring_lock);
}
