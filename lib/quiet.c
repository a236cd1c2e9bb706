/*
 * The words every quiet call reads (quiet.h), defined once, in one cache
 * line: a call that finds nothing changed touches this line, its call
 * site's, and the ring's memory, nothing else. The ring's generation
 * starts odd: no ring yet.
 */
#include "quiet.h"

struct wrench__hot wrench__hot = {.ring_gen = 1};
